//! What the cluster keeps of a live object when git's version of it is applied: state that
//! is the cluster's (or an operator's), not git's, and that undoing would disturb.
//!
//! - A Pod from git that leaves `spec.nodeName` to the scheduler keeps the node it was
//!   bound to: undoing the binding would move the pod.
//! - A Deployment, StatefulSet or DaemonSet keeps its pod template's
//!   `kubectl.kubernetes.io/restartedAt` (`kubectl rollout restart`) unless git sets it:
//!   dropping it would roll the pods back out again. Plans ignore it likewise.

use std::borrow::Cow;

use keel_schema::Object;
use keel_schema::types::pod::PodTemplateSpec;

/// The annotation `kubectl rollout restart` sets on a workload's pod template.
pub const RESTARTED_AT: &str = "kubectl.kubernetes.io/restartedAt";

/// `manifest`, with what the cluster keeps of `current`.
pub fn kept<'a>(manifest: &'a Object, current: &Object) -> Cow<'a, Object> {
    match (manifest, current) {
        (Object::Pod(m), Object::Pod(c))
            if m.spec.node_name.as_deref().is_none_or(str::is_empty)
                && c.spec.node_name.as_deref().is_some_and(|n| !n.is_empty()) =>
        {
            let mut bound = m.clone();
            bound.spec.node_name.clone_from(&c.spec.node_name);
            Cow::Owned(Object::Pod(bound))
        }
        _ => match restarted_at(current) {
            Some(at) if restarted_at(manifest).is_none() => {
                let mut restarted = manifest.clone();
                if let Some(template) = template_mut(&mut restarted) {
                    template
                        .metadata
                        .annotations
                        .get_or_insert_default()
                        .insert(RESTARTED_AT.to_string(), at);
                }
                Cow::Owned(restarted)
            }
            _ => Cow::Borrowed(manifest),
        },
    }
}

/// The restart mark on a workload's pod template.
pub fn restarted_at(object: &Object) -> Option<String> {
    let template = match object {
        Object::Deployment(d) => d.spec.template.as_ref(),
        Object::StatefulSet(s) => s.spec.template.as_ref(),
        Object::DaemonSet(d) => d.spec.template.as_ref(),
        _ => None,
    }?;
    template
        .metadata
        .annotation(RESTARTED_AT)
        .map(str::to_string)
}

/// The pod template of a workload `kubectl rollout restart` restarts.
pub fn template_mut(object: &mut Object) -> Option<&mut PodTemplateSpec> {
    match object {
        Object::Deployment(d) => d.spec.template.as_mut(),
        Object::StatefulSet(s) => s.spec.template.as_mut(),
        Object::DaemonSet(d) => d.spec.template.as_mut(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::{RESTARTED_AT, kept, restarted_at, template_mut};
    use keel_schema::Object;

    fn deployment() -> Object {
        Object::from_json(serde_json::json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "c", "image": "x:1"}]}}}
        }))
        .unwrap()
    }

    #[test]
    fn a_restart_mark_outlives_applying_git() {
        let git = deployment();
        let mut live = deployment();
        template_mut(&mut live)
            .unwrap()
            .metadata
            .annotations
            .get_or_insert_default()
            .insert(RESTARTED_AT.into(), "2026-12-05T21:00:00Z".into());
        let applied = kept(&git, &live);
        assert_eq!(
            restarted_at(&applied).as_deref(),
            Some("2026-12-05T21:00:00Z")
        );
        assert!(
            applied.same_declared(&live, &[], &[]),
            "no drift to correct"
        );
        // git's own mark wins.
        let mut marked = deployment();
        template_mut(&mut marked)
            .unwrap()
            .metadata
            .annotations
            .get_or_insert_default()
            .insert(RESTARTED_AT.into(), "git".into());
        assert_eq!(restarted_at(&kept(&marked, &live)).as_deref(), Some("git"));
        assert!(restarted_at(&kept(&git, &deployment())).is_none());
    }
}
