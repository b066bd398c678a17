//! Workloads an autoscaler scales: once they exist, their replicas are the autoscaler's,
//! and a different count in git is not a change (applying it keeps the live count, see
//! `crate::apply::live`). Plans against the server and between two revisions both say so.

use std::collections::HashMap;

use keel_schema::Object;
use keel_store::ObjectKey;

use crate::apply::live::Autoscaled;

/// Gives each workload of `after` that an autoscaler of `after` scales the replicas it has
/// in `before` (the live objects, or the older revision); one note per count git changed.
pub fn leave_to_autoscalers(before: &[Object], after: &mut [Object]) -> Vec<String> {
    let autoscaled = Autoscaled::of(after.iter());
    let counts: HashMap<ObjectKey, i64> = before
        .iter()
        .filter_map(|o| Some((ObjectKey::of(o), o.replicas()?)))
        .collect();
    let mut notes = Vec::new();
    for object in after.iter_mut() {
        if !autoscaled.scales(object) {
            continue;
        }
        let Some(&count) = counts.get(&ObjectKey::of(object)) else {
            continue;
        };
        let git = object.replicas();
        if git == Some(count) {
            continue;
        }
        notes.push(format!(
            "{} {}/{}: replicas are its autoscaler's (now {count}); git's {} only starts a new one",
            object.kind(),
            object.meta().namespace(),
            object.meta().name(),
            git.map_or_else(|| "default".to_string(), |n| n.to_string()),
        ));
        if let Some(field) = object.replicas_mut() {
            *field = Some(count);
        }
    }
    notes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn objects(replicas: i64, autoscaled: bool) -> Vec<Object> {
        let mut list = vec![
            Object::from_json(serde_json::json!({
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "web", "namespace": "default"},
                "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                         "template": {"metadata": {"labels": {"app": "web"}},
                                      "spec": {"containers": [{"name": "c", "image": "x:1"}]}}}
            }))
            .unwrap(),
        ];
        if autoscaled {
            list.push(
                Object::from_json(serde_json::json!({
                    "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
                    "metadata": {"name": "web", "namespace": "default"},
                    "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"},
                             "maxReplicas": 9}
                }))
                .unwrap(),
            );
        }
        list
    }

    #[test]
    fn a_count_an_autoscaler_owns_is_no_change_and_is_noted() {
        let before = objects(5, true);
        let mut after = objects(2, true);
        let notes = leave_to_autoscalers(&before, &mut after);
        assert_eq!(after[0].replicas(), Some(5));
        assert_eq!(
            notes,
            [
                "Deployment default/web: replicas are its autoscaler's (now 5); git's 2 only starts a new one"
            ]
        );
        // Without an autoscaler in the new revision, git's count is a change again.
        let mut after = objects(2, false);
        assert!(leave_to_autoscalers(&before, &mut after).is_empty());
        assert_eq!(after[0].replicas(), Some(2));
        // A new workload starts from git's count.
        let mut after = objects(2, true);
        assert!(leave_to_autoscalers(&[], &mut after).is_empty());
        assert_eq!(after[0].replicas(), Some(2));
    }
}
