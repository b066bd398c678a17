//! One line per change saying what it will do to running workloads, e.g.
//! "Deployment web: image web:1 → web:2, rolling update of 3 pods, maxSurge 1,
//! maxUnavailable 0". Secret values are never mentioned, only key names.

use std::collections::{BTreeMap, BTreeSet};

use keel_schema::Object;
use keel_schema::intorstr::IntOrString;
use keel_schema::types::core::ServiceSpec;
use keel_schema::types::pod::PodTemplateSpec;
use serde_json::Value;

use super::diff::{Action, Change, comparable};

fn plural(n: i64, one: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {one}s")
    }
}

/// The pod template and replica count of a workload.
fn workload(o: &Object) -> Option<(Option<&PodTemplateSpec>, Option<i64>)> {
    match o {
        Object::Deployment(d) => Some((d.spec.template.as_ref(), d.spec.replicas)),
        Object::ReplicaSet(r) => Some((r.spec.template.as_ref(), r.spec.replicas)),
        Object::ReplicationController(r) => Some((r.spec.template.as_ref(), r.spec.replicas)),
        Object::DaemonSet(d) => Some((d.spec.template.as_ref(), None)),
        Object::StatefulSet(s) => Some((s.spec.template.as_ref(), s.spec.replicas)),
        Object::Job(j) => Some((
            j.spec.template.as_ref(),
            j.spec.completions.or(j.spec.parallelism),
        )),
        _ => None,
    }
}

fn images(t: Option<&PodTemplateSpec>) -> BTreeMap<String, String> {
    t.map(|t| {
        t.spec
            .all_containers()
            .map(|(_, _, c)| (c.name.clone(), c.image.clone().unwrap_or_default()))
            .collect()
    })
    .unwrap_or_default()
}

fn image_list(t: Option<&PodTemplateSpec>) -> String {
    let set: BTreeSet<String> = images(t).into_values().collect();
    set.into_iter().collect::<Vec<_>>().join(", ")
}

fn ports(spec: &ServiceSpec) -> String {
    let list: Vec<String> = spec
        .ports
        .iter()
        .flatten()
        .map(|p| {
            let proto = p.protocol.as_deref().unwrap_or("TCP");
            let target = match &p.target_port {
                Some(IntOrString::Int(t)) if *t == p.port => String::new(),
                Some(t) => format!("→{t}"),
                None => String::new(),
            };
            let node = p
                .node_port
                .map(|n| format!(" (nodePort {n})"))
                .unwrap_or_default();
            format!("{}/{proto}{target}{node}", p.port)
        })
        .collect();
    list.join(", ")
}

fn keys(o: &Object) -> BTreeMap<String, String> {
    match o {
        Object::ConfigMap(c) => {
            let mut all = c.data.clone().unwrap_or_default();
            all.extend(c.binary_data.clone().unwrap_or_default());
            all
        }
        Object::Secret(s) => s.data.as_ref().map(|d| d.0.clone()).unwrap_or_default(),
        _ => BTreeMap::new(),
    }
}

/// What creating `o` does.
fn created(o: &Object) -> String {
    match o {
        Object::DaemonSet(d) => format!(
            "one pod starts on every matching node ({})",
            image_list(d.spec.template.as_ref())
        ),
        Object::Job(j) => format!(
            "runs {} to completion ({})",
            plural(j.spec.completions.unwrap_or(1), "pod"),
            image_list(j.spec.template.as_ref())
        ),
        Object::Pod(p) => {
            let imgs: BTreeSet<String> = p
                .spec
                .all_containers()
                .filter_map(|(_, _, c)| c.image.clone())
                .collect();
            format!(
                "pod starts ({})",
                imgs.into_iter().collect::<Vec<_>>().join(", ")
            )
        }
        Object::Service(s) => format!(
            "{} service on {}",
            s.spec.type_.as_deref().unwrap_or("ClusterIP"),
            if s.spec.ports.as_ref().is_none_or(|p| p.is_empty()) {
                "no ports (headless)".to_string()
            } else {
                ports(&s.spec)
            }
        ),
        Object::ConfigMap(_) | Object::Secret(_) => {
            let k: Vec<String> = keys(o).into_keys().collect();
            format!(
                "keys: {}",
                if k.is_empty() {
                    "none".into()
                } else {
                    k.join(", ")
                }
            )
        }
        Object::Namespace(_) => "namespace created".to_string(),
        Object::PersistentVolumeClaim(c) => format!(
            "claims {} ({}), made on the node where its first pod runs",
            c.spec
                .resources
                .as_ref()
                .and_then(|r| r.requests.as_ref())
                .and_then(|r| r.get("storage"))
                .map_or("?", |q| q.as_str()),
            c.spec.storage_class_name.as_deref().unwrap_or("local-path")
        ),
        Object::CronJob(c) => format!(
            "runs a Job on schedule {:?}{} ({})",
            c.spec.schedule,
            c.spec
                .time_zone
                .as_deref()
                .map(|z| format!(" in {z}"))
                .unwrap_or_default(),
            image_list(c.spec.job_template.spec.template.as_ref())
        ),
        _ => match workload(o) {
            Some((t, replicas)) => format!(
                "{} start ({})",
                plural(replicas.unwrap_or(1), "pod"),
                image_list(t)
            ),
            None => "created".to_string(),
        },
    }
}

/// What deleting `o` does.
fn deleted(o: &Object) -> String {
    match o {
        Object::DaemonSet(_) => "its pod stops on every node".to_string(),
        Object::Job(_) => "the job and its pods are removed".to_string(),
        Object::Pod(_) => "pod stops".to_string(),
        Object::Service(_) => "service removed: its address stops answering".to_string(),
        Object::Namespace(_) => "namespace removed".to_string(),
        Object::PersistentVolumeClaim(_) => {
            "claim removed: its volume and data are deleted once no pod uses it".to_string()
        }
        Object::ConfigMap(_) | Object::Secret(_) => {
            "removed (pods that use it cannot start again until it is back)".to_string()
        }
        _ => match workload(o) {
            Some((_, replicas)) => format!("{} stop", plural(replicas.unwrap_or(1), "pod")),
            None => "deleted".to_string(),
        },
    }
}

/// What updating `old` to `new` does.
fn updated(old: &Object, new: &Object) -> String {
    let mut parts = Vec::new();
    if let (Some((t_old, r_old)), Some((t_new, r_new))) = (workload(old), workload(new)) {
        let (i_old, i_new) = (images(t_old), images(t_new));
        for (name, image) in &i_new {
            match i_old.get(name) {
                Some(before) if before != image => parts.push(format!("image {before} → {image}")),
                None => parts.push(format!("container {name} added ({image})")),
                _ => {}
            }
        }
        for name in i_old.keys().filter(|n| !i_new.contains_key(*n)) {
            parts.push(format!("container {name} removed"));
        }
        if r_old != r_new {
            parts.push(format!(
                "replicas {} → {}",
                r_old.unwrap_or(1),
                r_new.unwrap_or(1)
            ));
        }
        let template_changed = t_old.map(|t| serde_json::to_value(t).ok())
            != t_new.map(|t| serde_json::to_value(t).ok());
        if template_changed {
            parts.push(rollout(new, r_new.unwrap_or(1)));
        }
    }
    match (old, new) {
        (Object::Service(a), Object::Service(b)) => {
            if a.spec.type_ != b.spec.type_ {
                parts.push(format!(
                    "type {} → {}",
                    a.spec.type_.as_deref().unwrap_or("ClusterIP"),
                    b.spec.type_.as_deref().unwrap_or("ClusterIP")
                ));
            }
            let (pa, pb) = (ports(&a.spec), ports(&b.spec));
            if pa != pb {
                parts.push(format!("port {pa} → {pb}"));
            }
            if a.spec.selector != b.spec.selector {
                parts
                    .push("selector changed: traffic moves to the newly selected pods".to_string());
            }
        }
        (Object::ConfigMap(_), Object::ConfigMap(_)) | (Object::Secret(_), Object::Secret(_)) => {
            let (ka, kb) = (keys(old), keys(new));
            let changed: Vec<&String> = kb
                .iter()
                .filter(|(k, v)| ka.get(*k).is_some_and(|o| o != *v))
                .map(|(k, _)| k)
                .collect();
            let added: Vec<&String> = kb.keys().filter(|k| !ka.contains_key(*k)).collect();
            let removed: Vec<&String> = ka.keys().filter(|k| !kb.contains_key(*k)).collect();
            for (label, list) in [("changed", changed), ("added", added), ("removed", removed)] {
                if !list.is_empty() {
                    let names: Vec<&str> = list.iter().map(|s| s.as_str()).collect();
                    parts.push(format!("keys {label}: {}", names.join(", ")));
                }
            }
        }
        _ => {}
    }
    if parts.is_empty() {
        let fields = changed_fields(&comparable(old), &comparable(new));
        parts.push(format!("changed: {}", fields.join(", ")));
    }
    parts.join(", ")
}

/// How a template change reaches running pods.
fn rollout(new: &Object, replicas: i64) -> String {
    match new {
        Object::Deployment(d) => {
            let strategy = d.spec.strategy.as_ref();
            if strategy.and_then(|s| s.type_.as_deref()) == Some("Recreate") {
                return format!(
                    "recreate: all {} stop, then start again",
                    plural(replicas, "pod")
                );
            }
            let ru = strategy.and_then(|s| s.rolling_update.as_ref());
            let show = |v: Option<&IntOrString>| v.map_or("25%".to_string(), |v| v.to_string());
            format!(
                "rolling update of {}, maxSurge {}, maxUnavailable {}",
                plural(replicas, "pod"),
                show(ru.and_then(|r| r.max_surge.as_ref())),
                show(ru.and_then(|r| r.max_unavailable.as_ref()))
            )
        }
        Object::DaemonSet(d) => match d
            .spec
            .update_strategy
            .as_ref()
            .and_then(|s| s.type_.as_deref())
        {
            Some("OnDelete") => {
                "template changed: pods are replaced only when deleted (OnDelete)".to_string()
            }
            _ => "rolling update on every node".to_string(),
        },
        Object::StatefulSet(s) => {
            let strategy = s.spec.update_strategy.as_ref();
            if strategy.and_then(|s| s.type_.as_deref()) == Some("OnDelete") {
                return "template changed: pods are replaced only when deleted (OnDelete)"
                    .to_string();
            }
            let partition = strategy
                .and_then(|s| s.rolling_update.as_ref())
                .and_then(|r| r.partition)
                .unwrap_or(0);
            let first = s.spec.ordinals.as_ref().and_then(|o| o.start).unwrap_or(0);
            if partition > 0 {
                format!(
                    "rolling update, one pod at a time from the highest ordinal, of pods with ordinal {} and above only (partition {partition})",
                    first.saturating_add(partition)
                )
            } else {
                format!(
                    "rolling update of {}, one at a time from the highest ordinal",
                    plural(replicas, "pod")
                )
            }
        }
        Object::Job(_) => "template changed: only pods started from now on use it".to_string(),
        _ => "template changed: running pods keep the old spec until replaced".to_string(),
    }
}

/// Dotted paths of the leaves that differ (at most a few, for a readable line).
fn changed_fields(a: &Value, b: &Value) -> Vec<String> {
    let mut out = Vec::new();
    walk(a, b, String::new(), &mut out);
    if out.len() > 4 {
        let more = out.len() - 4;
        out.truncate(4);
        out.push(format!("and {more} more"));
    }
    out
}

fn walk(a: &Value, b: &Value, path: String, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(ma), Value::Object(mb)) => {
            let keys: BTreeSet<&String> = ma.keys().chain(mb.keys()).collect();
            for k in keys {
                let child = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match (ma.get(k), mb.get(k)) {
                    (Some(x), Some(y)) => walk(x, y, child, out),
                    _ => out.push(child),
                }
            }
        }
        _ if a != b => out.push(if path.is_empty() {
            "object".to_string()
        } else {
            path
        }),
        _ => {}
    }
}

/// The summary of one change.
pub fn summarize(change: &Change) -> String {
    let said = match (change.action, &change.old, &change.new) {
        (Action::Create, _, Some(n)) => created(n),
        (Action::Delete, Some(o), _) => deleted(o),
        (Action::Update, Some(o), Some(n)) => updated(o, n),
        _ => String::new(),
    };
    // Never silently: a reviewer must not read an RBAC change as one that takes effect.
    let object = change.new.as_ref().or(change.old.as_ref());
    match object.map(Object::kind) {
        Some(kind) if !kind.enforced() => {
            format!("{said} ({})", keel_schema::kinds::NOT_ENFORCED)
        }
        _ => said,
    }
}
