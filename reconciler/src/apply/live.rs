//! What the cluster keeps of a live object when git's version of it is applied: state that
//! is the cluster's (or an operator's), not git's, and that undoing would disturb.
//!
//! - A Pod from git that leaves `spec.nodeName` to the scheduler keeps the node it was
//!   bound to: undoing the binding would move the pod.
//! - A Deployment, StatefulSet or DaemonSet keeps its pod template's
//!   `kubectl.kubernetes.io/restartedAt` (`kubectl rollout restart`) unless git sets it:
//!   dropping it would roll the pods back out again. Plans ignore it likewise.
//! - A workload a HorizontalPodAutoscaler of the revision scales keeps its live `replicas`:
//!   git's count is where it starts, and after that the autoscaler's count is no drift (what
//!   Argo CD users write `ignoreDifferences` on `/spec/replicas` for).

use std::borrow::Cow;
use std::collections::BTreeSet;

use keel_schema::types::pod::PodTemplateSpec;
use keel_schema::{Kind, Object};

/// The annotation `kubectl rollout restart` sets on a workload's pod template.
pub const RESTARTED_AT: &str = "kubectl.kubernetes.io/restartedAt";

/// The workloads the autoscalers of a revision scale: (kind, namespace, name).
#[derive(Debug, Default)]
pub struct Autoscaled(BTreeSet<(Kind, String, String)>);

impl Autoscaled {
    /// The targets of the HorizontalPodAutoscalers among `objects`.
    pub fn of<'a>(objects: impl IntoIterator<Item = &'a Object>) -> Autoscaled {
        let targets = objects.into_iter().filter_map(|o| match o {
            Object::HorizontalPodAutoscaler(h) => {
                let target = &h.spec.scale_target_ref;
                let kind = Kind::from_name(&target.kind)?;
                Some((kind, o.meta().namespace().to_string(), target.name.clone()))
            }
            _ => None,
        });
        Autoscaled(targets.collect())
    }

    pub fn scales(&self, object: &Object) -> bool {
        let meta = object.meta();
        self.0.contains(&(
            object.kind(),
            meta.namespace().to_string(),
            meta.name().to_string(),
        ))
    }
}

/// `manifest`, with what the cluster keeps of `current`.
pub fn kept<'a>(
    manifest: &'a Object,
    current: &Object,
    autoscaled: &Autoscaled,
) -> Cow<'a, Object> {
    if let (Object::Pod(m), Object::Pod(c)) = (manifest, current)
        && m.spec.node_name.as_deref().is_none_or(str::is_empty)
        && c.spec.node_name.as_deref().is_some_and(|n| !n.is_empty())
    {
        let mut bound = m.clone();
        bound.spec.node_name.clone_from(&c.spec.node_name);
        return Cow::Owned(Object::Pod(bound));
    }
    let mut kept = Cow::Borrowed(manifest);
    if let Some(at) = restarted_at(current)
        && restarted_at(manifest).is_none()
        && let Some(template) = template_mut(kept.to_mut())
    {
        template
            .metadata
            .annotations
            .get_or_insert_default()
            .insert(RESTARTED_AT.to_string(), at);
    }
    if autoscaled.scales(manifest)
        && let Some(live) = current.replicas()
        && manifest.replicas() != Some(live)
        && let Some(count) = kept.to_mut().replicas_mut()
    {
        *count = Some(live);
    }
    kept
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
    use super::{Autoscaled, RESTARTED_AT, kept, restarted_at, template_mut};
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
        let none = Autoscaled::default();
        let git = deployment();
        let mut live = deployment();
        template_mut(&mut live)
            .unwrap()
            .metadata
            .annotations
            .get_or_insert_default()
            .insert(RESTARTED_AT.into(), "2026-12-05T21:00:00Z".into());
        let applied = kept(&git, &live, &none);
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
        assert_eq!(
            restarted_at(&kept(&marked, &live, &none)).as_deref(),
            Some("git")
        );
        assert!(restarted_at(&kept(&git, &deployment(), &none)).is_none());
    }

    fn autoscaler() -> Object {
        Object::from_json(serde_json::json!({
            "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                     "maxReplicas": 10}
        }))
        .unwrap()
    }

    #[test]
    fn an_autoscaled_workload_keeps_its_live_replicas_and_git_starts_it() {
        let with_replicas = |n: i64| {
            let mut d = deployment();
            if let Object::Deployment(d) = &mut d {
                d.spec.replicas = Some(n);
            }
            d
        };
        let hpa = autoscaler();
        let autoscaled = Autoscaled::of([&hpa, &with_replicas(2)]);
        let (git, live) = (with_replicas(2), with_replicas(7));
        let applied = kept(&git, &live, &autoscaled);
        assert_eq!(applied.replicas(), Some(7));
        assert!(
            applied.same_declared(&live, &[], &[]),
            "no drift to correct"
        );
        // Without the autoscaler in the revision, git's count is applied again.
        let applied = kept(&git, &live, &Autoscaled::default());
        assert_eq!(applied.replicas(), Some(2));
        // Another workload of the same name is not its target.
        let mut other = autoscaler();
        if let Object::HorizontalPodAutoscaler(h) = &mut other {
            h.spec.scale_target_ref.kind = "StatefulSet".into();
        }
        assert_eq!(
            kept(&git, &live, &Autoscaled::of([&other])).replicas(),
            Some(2)
        );
    }
}
