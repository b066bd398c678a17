//! What several controllers ask of pods and owners, with Kubernetes' meanings.

use chrono::{DateTime, Utc};
use keel_schema::Object;
use keel_schema::types::meta::{ObjectMeta, OwnerReference};
use keel_schema::types::pod::{Pod, PodSpec, PodTemplateSpec};
use keel_schema::validate::meta::{MANAGED_BY_LABEL, REVISION_ANNOTATION};

/// Not finished and not being deleted: it counts toward its owner's replicas.
pub fn is_active(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none() && !pod.is_finished()
}

/// When the pod became Ready, if it is.
pub fn ready_since(pod: &Pod) -> Option<Option<DateTime<Utc>>> {
    pod.ready_condition().map(|c| c.last_transition_time)
}

/// Ready for at least `min_ready_seconds` (Kubernetes' "available"); otherwise, when it will
/// be, if it is ready at all.
pub fn available(pod: &Pod, min_ready_seconds: i64, now: DateTime<Utc>) -> Availability {
    match ready_since(pod) {
        None => Availability::No,
        Some(_) if min_ready_seconds <= 0 => Availability::Yes,
        // Ready without a time: count it from now on.
        Some(None) => Availability::After(std::time::Duration::from_secs(
            min_ready_seconds.unsigned_abs(),
        )),
        Some(Some(since)) => {
            // A minReadySeconds too large for a date means "not in this era".
            let at = chrono::Duration::try_seconds(min_ready_seconds)
                .and_then(|d| since.checked_add_signed(d));
            match at {
                Some(at) if at <= now => Availability::Yes,
                Some(at) => Availability::After((at - now).to_std().unwrap_or_default()),
                None => Availability::No,
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Availability {
    Yes,
    No,
    After(std::time::Duration),
}

/// The owner reference marked `controller: true`, if any.
pub fn controller_of(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true))
}

/// True when `meta` is controlled by the object with `uid`.
pub fn controlled_by(meta: &ObjectMeta, uid: &str) -> bool {
    controller_of(meta).is_some_and(|r| r.uid == uid)
}

/// A controller reference to `owner`.
pub fn reference_to(owner: &Object) -> OwnerReference {
    let info = owner.info();
    OwnerReference {
        api_version: info.api_version.to_string(),
        kind: info.kind.to_string(),
        name: owner.name().to_string(),
        uid: owner.meta().uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// A pod from `template`, named `name` in `namespace`, controlled by `owner`.
pub fn from_template(
    template: &PodTemplateSpec,
    namespace: &str,
    name: String,
    owner: OwnerReference,
) -> Pod {
    let mut pod = Pod::default();
    pod.metadata.name = Some(name);
    pod.metadata.namespace = Some(namespace.to_string());
    pod.metadata.labels.clone_from(&template.metadata.labels);
    pod.metadata
        .annotations
        .clone_from(&template.metadata.annotations);
    pod.metadata.owner_references = Some(vec![owner]);
    pod.spec = PodSpec::clone(&template.spec);
    without_git_markers(&mut pod.metadata);
    pod
}

/// Drops keel's git markers from a derived object: only what git applied carries them
/// (anything else labelled so would be pruned as if git had dropped it).
pub fn without_git_markers(meta: &mut ObjectMeta) {
    if let Some(labels) = meta.labels.as_mut() {
        labels.remove(MANAGED_BY_LABEL);
    }
    if let Some(annotations) = meta.annotations.as_mut() {
        annotations.remove(REVISION_ANNOTATION);
    }
}

/// Kubernetes' generateName alphabet: no vowels (no words), no look-alikes.
pub const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// `prefix` + `-` + five random characters, as Kubernetes names pods of a ReplicaSet.
pub fn generate_name(prefix: &str) -> String {
    let bytes = *uuid::Uuid::new_v4().as_bytes();
    let suffix: String = bytes[..5]
        .iter()
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect();
    // Names are at most 253 characters; Kubernetes cuts the prefix to 58 first.
    let prefix: String = prefix.chars().take(57).collect();
    format!("{prefix}-{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_schema::types::meta::Condition;
    use keel_schema::types::pod::PodStatus;

    fn ready_pod(since: Option<DateTime<Utc>>) -> Pod {
        Pod {
            status: Some(PodStatus {
                phase: Some(keel_schema::types::pod::PodPhase::Running),
                conditions: Some(vec![Condition {
                    type_: "Ready".into(),
                    status: "True".into(),
                    last_transition_time: since,
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn availability_waits_out_min_ready_seconds() {
        let now = Utc::now();
        let pod = ready_pod(Some(now - chrono::Duration::seconds(3)));
        assert_eq!(available(&pod, 0, now), Availability::Yes);
        assert_eq!(available(&pod, 3, now), Availability::Yes);
        assert_eq!(
            available(&pod, 10, now),
            Availability::After(std::time::Duration::from_secs(7))
        );
        assert_eq!(available(&Pod::default(), 0, now), Availability::No);
    }

    #[test]
    fn generated_names_are_valid_and_distinct() {
        let a = generate_name("web-7d9c8b5f4");
        let b = generate_name("web-7d9c8b5f4");
        assert_ne!(a, b);
        assert!(a.starts_with("web-7d9c8b5f4-") && a.len() == "web-7d9c8b5f4-".len() + 5);
        assert!(
            keel_schema::validate::names::dns1123_subdomain(&generate_name(&"x".repeat(300)))
                .is_none()
        );
    }
}
