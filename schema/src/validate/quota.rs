//! ResourceQuota, enforced when a revision is applied: per namespace, what the revision
//! declares (workloads at their replica counts, Services, claims, objects by kind) must fit
//! every quota declared there. The object that goes over gets the error, in Kubernetes'
//! words (`exceeded quota: NAME, requested: …, used: …, limited: …`); a quota on CPU or
//! memory also needs every container to say what it asks.

use std::collections::{BTreeMap, BTreeSet};

use super::cross::Item;
use super::{Errors, FieldError};
use crate::object::Object;
use crate::path::FieldPath;
use crate::resource::PodTemplateRef;
use crate::types::pod::PodSpec;
use crate::types::policy::ResourceQuotaSpec;

/// The resource names keel counts (`cpu`/`memory` are `requests.*`, as in Kubernetes).
const COMPUTE: &[&str] = &[
    "requests.cpu",
    "requests.memory",
    "limits.cpu",
    "limits.memory",
    "cpu",
    "memory",
];
const COUNTS: &[&str] = &[
    "pods",
    "services",
    "services.nodeports",
    "services.loadbalancers",
    "persistentvolumeclaims",
    "requests.storage",
    "configmaps",
    "secrets",
    "replicationcontrollers",
];

pub fn validate_quota_spec(spec: &ResourceQuotaSpec, path: &FieldPath, errs: &mut Errors) {
    for (key, q) in spec.hard.iter().flatten() {
        let at = path.field("hard").key_name(key);
        let known = COMPUTE.contains(&key.as_str())
            || COUNTS.contains(&key.as_str())
            || key.strip_prefix("count/").is_some_and(|r| !r.is_empty());
        if !known {
            errs.invalid(
                &at,
                key.as_str(),
                "keel counts pods, cpu, memory, requests.*, limits.*, services, services.nodeports, services.loadbalancers, persistentvolumeclaims, requests.storage, configmaps, secrets, replicationcontrollers and count/<resource>",
            );
            continue;
        }
        let parsed = if key.ends_with("cpu") {
            q.millis()
        } else {
            q.value()
        };
        match parsed {
            Ok(v) if v < 0 => errs.invalid(&at, q.as_str(), "must be greater than or equal to 0"),
            Ok(_) => {}
            Err(e) => errs.invalid(&at, q.as_str(), e),
        }
    }
    if spec.scopes.as_ref().is_some_and(|s| !s.is_empty()) || spec.scope_selector.is_some() {
        errs.forbidden(
            &path.field("scopes"),
            "keel enforces quotas over every object of the namespace; scopes are not supported",
        );
    }
}

/// What one object adds to its namespace's use, by quota resource name (CPU in millis).
fn usage(
    object: &Object,
    ranges: &[&crate::types::policy::LimitRange],
) -> (BTreeMap<String, i64>, Vec<String>) {
    let mut used: BTreeMap<String, i64> = BTreeMap::new();
    let mut add = |k: &str, v: i64| {
        let total = used.entry(k.to_string()).or_insert(0);
        *total = total.saturating_add(v);
    };
    let info = object.info();
    add(&format!("count/{}", info.resource()), 1);
    let mut unspecified = Vec::new();
    match object {
        Object::Service(s) => {
            add("services", 1);
            match s.spec.type_.as_deref() {
                Some("NodePort") => add("services.nodeports", 1),
                Some("LoadBalancer") => {
                    add("services.nodeports", 1);
                    add("services.loadbalancers", 1);
                }
                _ => {}
            }
        }
        Object::ConfigMap(_) => add("configmaps", 1),
        Object::Secret(_) => add("secrets", 1),
        Object::ReplicationController(_) => add("replicationcontrollers", 1),
        Object::PersistentVolumeClaim(c) => {
            add("persistentvolumeclaims", 1);
            add("requests.storage", storage(&c.spec));
        }
        _ => {}
    }
    // Pods: a workload's at its replica count (a DaemonSet's count is its nodes', not known
    // from the revision, so it counts one).
    let (pods, spec) = match object.pod_template() {
        Some(PodTemplateRef::Pod(p)) => (1, Some(&p.spec)),
        Some(t) => (replicas(object), Some(t.spec())),
        None => (0, None),
    };
    if let Some(spec) = spec {
        add("pods", pods);
        // The pods controllers make get the namespace's LimitRange defaults before they
        // count; a Pod declared in git runs as written.
        let mut spec = spec.clone();
        if !matches!(object, Object::Pod(_)) {
            crate::limits::apply_defaults(&mut spec, ranges);
        }
        let (requests, limits, missing) = compute(&spec);
        unspecified = missing;
        for (k, v) in requests {
            add(&format!("requests.{k}"), v.saturating_mul(pods));
        }
        for (k, v) in limits {
            add(&format!("limits.{k}"), v.saturating_mul(pods));
        }
    }
    if let Object::StatefulSet(s) = object {
        let n = s.spec.replicas.unwrap_or(1).max(0);
        for t in s.spec.volume_claim_templates.iter().flatten() {
            add("persistentvolumeclaims", n);
            add("requests.storage", storage(&t.spec).saturating_mul(n));
        }
    }
    (used, unspecified)
}

fn storage(spec: &crate::types::storage::PersistentVolumeClaimSpec) -> i64 {
    spec.resources
        .as_ref()
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get("storage"))
        .and_then(|q| q.value().ok())
        .unwrap_or(0)
}

fn replicas(object: &Object) -> i64 {
    let n = match object {
        // At most the pods that run at once: parallelism, no more than completions.
        Object::Job(j) => match (j.spec.parallelism, j.spec.completions) {
            (Some(p), Some(c)) => Some(p.min(c)),
            (p, c) => p.or(c),
        },
        Object::CronJob(c) => c.spec.job_template.spec.parallelism,
        _ => object.replicas(),
    };
    n.unwrap_or(1).max(0)
}

/// A pod's requests and limits per resource (init containers as the scheduler counts
/// them), and the resources some container leaves unsaid (`requests.cpu`, …).
#[allow(clippy::type_complexity)]
fn compute(
    spec: &PodSpec,
) -> (
    BTreeMap<&'static str, i64>,
    BTreeMap<&'static str, i64>,
    Vec<String>,
) {
    let mut out = (BTreeMap::new(), BTreeMap::new());
    let mut missing = BTreeSet::new();
    for (side, which) in [(0usize, "requests"), (1, "limits")] {
        for res in ["cpu", "memory"] {
            let amount = |c: &crate::types::pod::Container| {
                let r = c.resources.as_ref();
                let map = if side == 0 {
                    // As Kubernetes: a limit without a request requests the limit.
                    r.and_then(|r| r.requests.as_ref().and_then(|m| m.get(res)))
                        .or_else(|| r.and_then(|r| r.limits.as_ref().and_then(|m| m.get(res))))
                } else {
                    r.and_then(|r| r.limits.as_ref().and_then(|m| m.get(res)))
                };
                map.and_then(|q| if res == "cpu" { q.millis() } else { q.value() }.ok())
            };
            let mut sum = 0i64;
            for c in &spec.containers {
                match amount(c) {
                    Some(v) => sum = sum.saturating_add(v),
                    None => {
                        missing.insert(format!("{which}.{res}"));
                    }
                }
            }
            let init = spec
                .init_containers
                .iter()
                .flatten()
                .filter_map(amount)
                .max()
                .unwrap_or(0);
            let total = sum.max(init);
            if side == 0 {
                out.0.insert(res, total);
            } else {
                out.1.insert(res, total);
            }
        }
    }
    (out.0, out.1, missing.into_iter().collect())
}

fn show(key: &str, v: i64) -> String {
    if key.ends_with("cpu") {
        if v % 1000 == 0 {
            format!("{key}={}", v / 1000)
        } else {
            format!("{key}={v}m")
        }
    } else {
        format!("{key}={v}")
    }
}

/// A quota's limits by resource name.
type Limits = BTreeMap<String, i64>;
/// A resource over its limit: name, what the object asks, what was used before, the limit.
type Over<'a> = (&'a String, i64, i64, i64);

/// Every object that takes its namespace past a quota declared in the revision.
pub fn quotas(items: &[Item<'_>], out: &mut Vec<(usize, FieldError)>) {
    // Per namespace: the quotas (name, limits; `cpu`/`memory` read as `requests.*`).
    let mut quotas: BTreeMap<&str, Vec<(&str, Limits)>> = BTreeMap::new();
    for item in items {
        if let Object::ResourceQuota(q) = item.object {
            let limits = q
                .spec
                .hard
                .iter()
                .flatten()
                // Only what validation accepts: a known name and a number not below zero.
                .filter(|(k, _)| {
                    COMPUTE.contains(&k.as_str())
                        || COUNTS.contains(&k.as_str())
                        || k.starts_with("count/")
                })
                .filter_map(|(k, v)| {
                    let key = match k.as_str() {
                        "cpu" | "memory" => format!("requests.{k}"),
                        other => other.to_string(),
                    };
                    let v = if key.ends_with("cpu") {
                        v.millis()
                    } else {
                        v.value()
                    };
                    Some((key, v.ok().filter(|v| *v >= 0)?))
                })
                .collect();
            quotas
                .entry(item.object.namespace())
                .or_default()
                .push((item.object.name(), limits));
        }
    }
    let ranges = super::limit_range::ranges_by_namespace(items);
    let mut used: BTreeMap<(&str, &str), BTreeMap<String, i64>> = BTreeMap::new();
    for (i, item) in items.iter().enumerate() {
        let namespace = item.object.namespace();
        let Some(list) = quotas.get(namespace) else {
            continue;
        };
        let namespace_ranges = ranges.get(namespace).map(Vec::as_slice).unwrap_or_default();
        let (adds, unspecified) = usage(item.object, namespace_ranges);
        for (name, limits) in list {
            let so_far = used.entry((namespace, name)).or_default();
            // A quota on compute needs every container to say what it asks.
            let unsaid: Vec<&String> = unspecified
                .iter()
                .filter(|u| limits.contains_key(u.as_str()))
                .collect();
            if !unsaid.is_empty() {
                let list = unsaid
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(",");
                out.push((i, FieldError {
                    path: spec_path(item.object),
                    message: format!("Forbidden: failed quota: {name}: must specify {list} for every container"),
                }));
                continue;
            }
            let over: Vec<Over<'_>> = limits
                .iter()
                .filter_map(|(k, limit)| {
                    let add = adds.get(k).copied().unwrap_or(0);
                    let before = so_far.get(k).copied().unwrap_or(0);
                    (add > 0 && before.saturating_add(add) > *limit)
                        .then_some((k, add, before, *limit))
                })
                .collect();
            for (k, v) in &adds {
                let total = so_far.entry(k.clone()).or_insert(0);
                *total = total.saturating_add(*v);
            }
            if over.is_empty() {
                continue;
            }
            let part =
                |f: &dyn Fn(&Over<'_>) -> String| over.iter().map(f).collect::<Vec<_>>().join(",");
            out.push((
                i,
                FieldError {
                    path: spec_path(item.object),
                    message: format!(
                        "Forbidden: exceeded quota: {name}, requested: {}, used: {}, limited: {}",
                        part(&|(k, add, _, _)| show(k, *add)),
                        part(&|(k, _, before, _)| show(k, *before)),
                        part(&|(k, _, _, limit)| show(k, *limit)),
                    ),
                },
            ));
        }
    }
}

fn spec_path(object: &Object) -> FieldPath {
    match object.pod_template() {
        Some(t) if !matches!(t, PodTemplateRef::Pod(_)) => FieldPath::new("spec").field("replicas"),
        _ => FieldPath::new("metadata").field("name"),
    }
}
