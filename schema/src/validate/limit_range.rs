//! LimitRange: its items as Kubernetes checks them, and, when a revision loads, the bounds
//! of the ranges declared in a namespace against its pod templates and claims (with the
//! ranges' defaults applied first, as the pods will get them).

use std::collections::BTreeMap;

use super::cross::Item;
use super::{Errors, FieldError};
use crate::object::Object;
use crate::path::FieldPath;
use crate::types::policy::{LimitRange, LimitRangeSpec};

pub fn validate_limit_range(spec: &LimitRangeSpec, path: &FieldPath, errs: &mut Errors) {
    for (i, item) in spec.limits.iter().enumerate() {
        let at = path.field("limits").index(i);
        match item.type_.as_str() {
            "" => errs.required(&at.field("type")),
            t => errs.one_of(
                &at.field("type"),
                Some(t),
                &["Container", "Pod", "PersistentVolumeClaim"],
            ),
        }
        let resources: &[&str] = if item.type_ == "PersistentVolumeClaim" {
            &["storage"]
        } else {
            &["cpu", "memory"]
        };
        let maps = [
            ("max", &item.max),
            ("min", &item.min),
            ("default", &item.default),
            ("defaultRequest", &item.default_request),
            ("maxLimitRequestRatio", &item.max_limit_request_ratio),
        ];
        for (field, map) in maps {
            if item.type_ != "Container"
                && matches!(field, "default" | "defaultRequest")
                && map.is_some()
            {
                errs.forbidden(
                    &at.field(field),
                    format!("may not be specified when `type` is '{}'", item.type_),
                );
                continue;
            }
            for (key, q) in map.iter().flatten() {
                let kat = at.field(field).key_name(key);
                if !resources.contains(&key.as_str()) {
                    errs.unsupported(&kat, key, resources);
                    continue;
                }
                match if key == "cpu" { q.millis() } else { q.value() } {
                    Ok(v) if v < 0 => {
                        errs.invalid(&kat, q.as_str(), "must be greater than or equal to 0")
                    }
                    Ok(_) => {}
                    Err(e) => errs.invalid(&kat, q.as_str(), e),
                }
            }
        }
        // min <= defaultRequest <= default <= max, per resource.
        let get = |m: &Option<BTreeMap<String, crate::quantity::Quantity>>, k: &str| {
            let q = m.as_ref()?.get(k)?;
            let v = if k == "cpu" { q.millis() } else { q.value() }.ok()?;
            Some((v, q.as_str().to_string()))
        };
        for key in resources {
            let chain = [
                ("min", get(&item.min, key)),
                ("defaultRequest", get(&item.default_request, key)),
                ("default", get(&item.default, key)),
                ("max", get(&item.max, key)),
            ];
            let present: Vec<(&str, i64, String)> = chain
                .into_iter()
                .filter_map(|(n, v)| v.map(|(v, text)| (n, v, text)))
                .collect();
            for pair in present.windows(2) {
                let ((low_name, low, low_text), (high_name, high, high_text)) =
                    (&pair[0], &pair[1]);
                if low > high {
                    errs.invalid(
                        &at.field(high_name).key_name(key),
                        high_text.as_str(),
                        format!("{low_name} value {low_text} is greater than {high_name} value {high_text}"),
                    );
                }
            }
        }
    }
}

/// The LimitRanges the revision declares, by namespace.
pub fn ranges_by_namespace<'a>(items: &[Item<'a>]) -> BTreeMap<&'a str, Vec<&'a LimitRange>> {
    let mut out: BTreeMap<&str, Vec<&LimitRange>> = BTreeMap::new();
    for item in items {
        if let Object::LimitRange(r) = item.object {
            out.entry(item.object.namespace()).or_default().push(r);
        }
    }
    out
}

/// Every pod template and claim that breaks its namespace's ranges.
pub fn bounds(items: &[Item<'_>], out: &mut Vec<(usize, FieldError)>) {
    let ranges = ranges_by_namespace(items);
    for (i, item) in items.iter().enumerate() {
        let Some(ranges) = ranges.get(item.object.namespace()) else {
            continue;
        };
        if let Some(template) = item.object.pod_template() {
            // Pods controllers make get the defaults; a Pod declared in git runs as written.
            let defaults = !matches!(item.object, Object::Pod(_));
            for (container, message) in crate::limits::violations(template.spec(), ranges, defaults)
            {
                let path = match container {
                    Some((field, index)) => template
                        .spec_path()
                        .field(field)
                        .index(index)
                        .field("resources"),
                    None => template.spec_path(),
                };
                out.push((
                    i,
                    FieldError {
                        path,
                        message: format!("Forbidden: {message}"),
                    },
                ));
            }
        }
        if let Object::PersistentVolumeClaim(c) = item.object {
            let storage = c
                .spec
                .resources
                .as_ref()
                .and_then(|r| r.requests.as_ref())
                .and_then(|r| r.get("storage"));
            for message in crate::limits::claim_violations(storage, ranges) {
                let path = FieldPath::new("spec")
                    .field("resources")
                    .field("requests")
                    .field("storage");
                out.push((
                    i,
                    FieldError {
                        path,
                        message: format!("Forbidden: {message}"),
                    },
                ));
            }
        }
    }
}
