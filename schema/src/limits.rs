//! LimitRange, as Kubernetes' LimitRanger admission applies it: a container without a limit
//! gets the `default`, without a request the `defaultRequest` (else its limit); then every
//! container must stay within `min` and `max` (and `maxLimitRequestRatio`), and a pod's
//! containers together within the `Pod` item's. keel applies the defaults to the pods its
//! controllers make, and checks the bounds when a revision is loaded.

use std::collections::BTreeMap;

use crate::quantity::Quantity;
use crate::types::pod::{Container, PodSpec, ResourceRequirements};
use crate::types::policy::{LimitRange, LimitRangeItem};

fn amount(resource: &str, q: &Quantity) -> Option<i64> {
    if resource == "cpu" {
        q.millis()
    } else {
        q.value()
    }
    .ok()
}

fn show(resource: &str, v: i64) -> String {
    if resource == "cpu" && v % 1000 != 0 {
        format!("{v}m")
    } else if resource == "cpu" {
        (v / 1000).to_string()
    } else {
        v.to_string()
    }
}

fn items<'a>(
    ranges: &[&'a LimitRange],
    type_: &'a str,
) -> impl Iterator<Item = &'a LimitRangeItem> {
    ranges
        .iter()
        .flat_map(|r| r.spec.limits.iter())
        .filter(move |i| i.type_ == type_)
}

/// Gives each container the defaults it does not set (its own values always win).
pub fn apply_defaults(spec: &mut PodSpec, ranges: &[&LimitRange]) {
    for c in spec.all_containers_mut() {
        default_container(c, ranges);
    }
}

/// An item's defaults per resource, in Kubernetes' order: the limit is `default`, else
/// `max`; the request is `defaultRequest`, else that limit, else `min`.
fn item_defaults(
    item: &LimitRangeItem,
) -> (BTreeMap<String, Quantity>, BTreeMap<String, Quantity>) {
    let mut limits = item.max.clone().unwrap_or_default();
    limits.extend(item.default.clone().unwrap_or_default());
    let mut requests = item.min.clone().unwrap_or_default();
    requests.extend(limits.clone());
    requests.extend(item.default_request.clone().unwrap_or_default());
    (limits, requests)
}

fn default_container(c: &mut Container, ranges: &[&LimitRange]) {
    for item in items(ranges, "Container") {
        let (limits, requests) = item_defaults(item);
        if limits.is_empty() && requests.is_empty() {
            continue;
        }
        let res = c
            .resources
            .get_or_insert_with(ResourceRequirements::default);
        // A container that sets a limit but no request requests its own limit (the pod's
        // defaulting, before admission).
        let own_limits = res.limits.clone().unwrap_or_default();
        for (key, q) in limits {
            let set = res.limits.get_or_insert_with(Default::default);
            set.entry(key).or_insert(q);
        }
        for (key, q) in requests {
            let set = res.requests.get_or_insert_with(Default::default);
            let own = own_limits.get(&key).cloned();
            set.entry(key).or_insert_with(|| own.unwrap_or(q));
        }
        if res.limits.as_ref().is_some_and(|m| m.is_empty()) {
            res.limits = None;
        }
        if res.requests.as_ref().is_some_and(|m| m.is_empty()) {
            res.requests = None;
        }
    }
}

/// What breaks the ranges, once defaulted: `(container index path part, message)`, with
/// Kubernetes' wording; `None` as the container for a pod-wide bound.
pub fn violations(
    spec: &PodSpec,
    ranges: &[&LimitRange],
    defaults: bool,
) -> Vec<(Option<(&'static str, usize)>, String)> {
    let mut defaulted = spec.clone();
    if defaults {
        apply_defaults(&mut defaulted, ranges);
    }
    let mut out = Vec::new();
    let get = |c: &Container, side: &str, key: &str| -> Option<i64> {
        let r = c.resources.as_ref()?;
        let map = if side == "requests" {
            r.requests.as_ref()
        } else {
            r.limits.as_ref()
        }?;
        amount(key, map.get(key)?)
    };
    for (field, i, c) in defaulted.all_containers() {
        for item in items(ranges, "Container") {
            for (key, q) in item.max.iter().flatten() {
                let Some(max) = amount(key, q) else { continue };
                match get(c, "limits", key) {
                    Some(limit) if limit > max => out.push((
                        Some((field, i)),
                        format!(
                            "maximum {key} usage per Container is {}, but limit is {}",
                            show(key, max),
                            show(key, limit)
                        ),
                    )),
                    None => out.push((
                        Some((field, i)),
                        format!(
                            "maximum {key} usage per Container is {}. No limit is specified",
                            show(key, max)
                        ),
                    )),
                    _ => {}
                }
            }
            for (key, q) in item.min.iter().flatten() {
                let Some(min) = amount(key, q) else { continue };
                match get(c, "requests", key) {
                    Some(request) if request < min => out.push((
                        Some((field, i)),
                        format!(
                            "minimum {key} usage per Container is {}, but request is {}",
                            show(key, min),
                            show(key, request)
                        ),
                    )),
                    None => out.push((
                        Some((field, i)),
                        format!(
                            "minimum {key} usage per Container is {}. No request is specified",
                            show(key, min)
                        ),
                    )),
                    _ => {}
                }
            }
            for (key, q) in item.max_limit_request_ratio.iter().flatten() {
                let (Some(ratio), Some(limit), Some(request)) = (
                    q.value().ok(),
                    get(c, "limits", key),
                    get(c, "requests", key),
                ) else {
                    continue;
                };
                if request > 0 && limit > request.saturating_mul(ratio) {
                    out.push((Some((field, i)), format!(
                        "{key} max limit to request ratio per Container is {ratio}, but provided ratio is {:.6}", limit as f64 / request as f64)));
                }
            }
        }
    }
    for item in items(ranges, "Pod") {
        for (side, bound, word) in [
            ("limits", &item.max, "maximum"),
            ("requests", &item.min, "minimum"),
        ] {
            for (key, q) in bound.iter().flatten() {
                let Some(b) = amount(key, q) else { continue };
                let total = defaulted
                    .containers
                    .iter()
                    .filter_map(|c| get(c, side, key))
                    .fold(0i64, i64::saturating_add);
                let bad = if word == "maximum" {
                    total > b
                } else {
                    total < b
                };
                if bad {
                    let what = if side == "limits" { "limit" } else { "request" };
                    out.push((
                        None,
                        format!(
                            "{word} {key} usage per Pod is {}, but {what} is {}",
                            show(key, b),
                            show(key, total)
                        ),
                    ));
                }
            }
        }
    }
    out
}

/// A claim's size against the `PersistentVolumeClaim` items.
pub fn claim_violations(storage: Option<&Quantity>, ranges: &[&LimitRange]) -> Vec<String> {
    let Some(size) = storage.and_then(|q| q.value().ok()) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for item in items(ranges, "PersistentVolumeClaim") {
        if let Some(max) = item
            .max
            .as_ref()
            .and_then(|m| m.get("storage"))
            .and_then(|q| q.value().ok())
            && size > max
        {
            out.push(format!(
                "maximum storage usage per PersistentVolumeClaim is {max}, but request is {size}"
            ));
        }
        if let Some(min) = item
            .min
            .as_ref()
            .and_then(|m| m.get("storage"))
            .and_then(|q| q.value().ok())
            && size < min
        {
            out.push(format!(
                "minimum storage usage per PersistentVolumeClaim is {min}, but request is {size}"
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn range(limits: serde_json::Value) -> LimitRange {
        serde_json::from_value(json!({"metadata": {"name": "r"}, "spec": {"limits": limits}}))
            .unwrap()
    }

    fn spec(containers: serde_json::Value) -> PodSpec {
        serde_json::from_value(json!({"containers": containers})).unwrap()
    }

    fn resources(s: &PodSpec, i: usize) -> serde_json::Value {
        serde_json::to_value(&s.containers[i].resources).unwrap()
    }

    #[test]
    fn defaults_fill_only_what_a_container_leaves_unsaid() {
        let r = range(json!([{"type": "Container",
            "default": {"cpu": "500m", "memory": "256Mi"}, "defaultRequest": {"cpu": "100m"}}]));
        let mut s = spec(json!([
            {"name": "bare", "image": "x"},
            {"name": "own", "image": "x", "resources": {"limits": {"cpu": "2"}, "requests": {"memory": "64Mi"}}},
            {"name": "limit-only", "image": "x", "resources": {"limits": {"memory": "1Gi"}}}
        ]));
        apply_defaults(&mut s, &[&r]);
        assert_eq!(
            resources(&s, 0),
            json!({"limits": {"cpu": "500m", "memory": "256Mi"}, "requests": {"cpu": "100m", "memory": "256Mi"}})
        );
        assert_eq!(
            resources(&s, 1),
            json!({"limits": {"cpu": "2", "memory": "256Mi"}, "requests": {"cpu": "2", "memory": "64Mi"}})
        );
        assert_eq!(
            resources(&s, 2)["requests"]["memory"],
            "1Gi",
            "its own limit, not the default"
        );
        let mut untouched = spec(json!([{"name": "bare", "image": "x"}]));
        apply_defaults(
            &mut untouched,
            &[&range(json!([{"type": "Pod", "max": {"cpu": "1"}}]))],
        );
        assert_eq!(resources(&untouched, 0), serde_json::Value::Null);
    }

    #[test]
    fn defaults_come_per_resource_from_max_and_min_too() {
        // Kubernetes accepts both: min alone gives the request, max the limit.
        let r = range(json!([{"type": "Container", "min": {"memory": "32Mi"},
            "default": {"cpu": "500m"}, "max": {"memory": "2Gi"}}]));
        let mut s = spec(json!([{"name": "bare", "image": "x"}]));
        apply_defaults(&mut s, &[&r]);
        assert_eq!(
            resources(&s, 0),
            json!({"limits": {"cpu": "500m", "memory": "2Gi"}, "requests": {"cpu": "500m", "memory": "2Gi"}})
        );
        assert!(violations(&spec(json!([{"name": "bare", "image": "x"}])), &[&r], true).is_empty());
        let only_min = range(json!([{"type": "Container", "min": {"memory": "32Mi"}}]));
        let mut s = spec(json!([{"name": "bare", "image": "x"}]));
        apply_defaults(&mut s, &[&only_min]);
        assert_eq!(resources(&s, 0), json!({"requests": {"memory": "32Mi"}}));
    }

    #[test]
    fn bounds_speak_as_kubernetes() {
        let r = range(json!([
            {"type": "Container", "max": {"cpu": "1"}, "min": {"memory": "32Mi"}, "maxLimitRequestRatio": {"cpu": "4"}},
            {"type": "Pod", "max": {"memory": "1Gi"}}
        ]));
        let s = spec(json!([
            {"name": "a", "image": "x", "resources": {"limits": {"cpu": "2", "memory": "800Mi"}, "requests": {"memory": "16Mi"}}},
            {"name": "b", "image": "x", "resources": {"limits": {"cpu": "1", "memory": "800Mi"}, "requests": {"cpu": "100m", "memory": "64Mi"}}}
        ]));
        let found: Vec<String> = violations(&s, &[&r], true)
            .into_iter()
            .map(|(_, m)| m)
            .collect();
        assert_eq!(
            found,
            [
                "maximum cpu usage per Container is 1, but limit is 2",
                "minimum memory usage per Container is 33554432, but request is 16777216",
                "cpu max limit to request ratio per Container is 4, but provided ratio is 10.000000",
                "maximum memory usage per Pod is 1073741824, but limit is 1677721600",
            ]
        );
    }
}
