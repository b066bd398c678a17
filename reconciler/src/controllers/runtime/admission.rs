//! What Kubernetes' admission does to a pod a controller makes, before it is stored: the
//! namespace's LimitRange defaults (`keel_schema::limits`), and the ServiceAccount's
//! `imagePullSecrets` for a pod that names none.

use keel_schema::types::pod::Pod;
use keel_schema::types::policy::LimitRange;
use keel_schema::{Kind, Object};
use keel_store::ObjectKey;

use crate::cache::Cache;

pub fn admit(pod: &mut Pod, cache: &Cache) {
    let namespace = pod.metadata.namespace().to_string();
    let ranges = cache.list(Kind::LimitRange, Some(&namespace));
    let ranges: Vec<&LimitRange> = ranges
        .iter()
        .filter_map(|s| match &s.object {
            Object::LimitRange(r) => Some(r),
            _ => None,
        })
        .collect();
    keel_schema::limits::apply_defaults(&mut pod.spec, &ranges);
    if pod
        .spec
        .image_pull_secrets
        .as_ref()
        .is_none_or(Vec::is_empty)
    {
        let account = pod
            .spec
            .service_account_name
            .clone()
            .or_else(|| pod.spec.service_account.clone())
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "default".to_string());
        let key = ObjectKey::new(Kind::ServiceAccount, &namespace, &account);
        if let Some(stored) = cache.get(&key)
            && let Object::ServiceAccount(sa) = &stored.object
            && sa
                .image_pull_secrets
                .as_ref()
                .is_some_and(|s| !s.is_empty())
        {
            pod.spec
                .image_pull_secrets
                .clone_from(&sa.image_pull_secrets);
        }
    }
}
