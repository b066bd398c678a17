//! The field transformers: `commonLabels` and `labels` (into selectors and pod templates
//! where asked), `commonAnnotations`, `replicas` and `images`, each on the fields kustomize's
//! built-in field specs name.

use std::collections::BTreeMap;

use super::kustomization::Kustomization;
use super::node::{self, ensure_map, get_mut, string};
use super::resource::Res;
use crate::yaml::{Node, Style, Value};

/// A field spec: the kinds it applies to (empty for all), its path, and whether missing
/// fields on the way are made.
struct Spec {
    kinds: &'static [&'static str],
    path: &'static str,
    create: bool,
}

const WORKLOADS: &[&str] = &["Deployment", "ReplicaSet", "DaemonSet", "StatefulSet"];
const AFFINITY: [&str; 4] = [
    "spec/template/spec/affinity/podAffinity/preferredDuringSchedulingIgnoredDuringExecution/podAffinityTerm/labelSelector/matchLabels",
    "spec/template/spec/affinity/podAffinity/requiredDuringSchedulingIgnoredDuringExecution/labelSelector/matchLabels",
    "spec/template/spec/affinity/podAntiAffinity/preferredDuringSchedulingIgnoredDuringExecution/podAffinityTerm/labelSelector/matchLabels",
    "spec/template/spec/affinity/podAntiAffinity/requiredDuringSchedulingIgnoredDuringExecution/labelSelector/matchLabels",
];

/// Where labels go in selectors (only `commonLabels` and `includeSelectors: true`).
fn selector_specs() -> Vec<Spec> {
    let mut specs = vec![
        Spec {
            kinds: &["Service", "ReplicationController"],
            path: "spec/selector",
            create: true,
        },
        Spec {
            kinds: WORKLOADS,
            path: "spec/selector/matchLabels",
            create: true,
        },
        Spec {
            kinds: &["Job"],
            path: "spec/selector/matchLabels",
            create: false,
        },
        Spec {
            kinds: &["CronJob"],
            path: "spec/jobTemplate/spec/selector/matchLabels",
            create: false,
        },
        Spec {
            kinds: &["PodDisruptionBudget"],
            path: "spec/selector/matchLabels",
            create: false,
        },
        Spec {
            kinds: &["NetworkPolicy"],
            path: "spec/podSelector/matchLabels",
            create: false,
        },
        Spec {
            kinds: &["NetworkPolicy"],
            path: "spec/ingress/from/podSelector/matchLabels",
            create: false,
        },
        Spec {
            kinds: &["NetworkPolicy"],
            path: "spec/egress/to/podSelector/matchLabels",
            create: false,
        },
    ];
    for path in AFFINITY {
        specs.push(Spec {
            kinds: &["Deployment", "StatefulSet"],
            path,
            create: false,
        });
    }
    specs.push(Spec {
        kinds: &["Deployment", "StatefulSet"],
        path: "spec/template/spec/topologySpreadConstraints/labelSelector/matchLabels",
        create: false,
    });
    specs
}

/// Where labels go in templates (`commonLabels`, `includeSelectors` or `includeTemplates`).
fn template_specs(what: &'static str) -> Vec<Spec> {
    let path = |p: &'static str| p;
    let (tmpl, job_tmpl, job_pod_tmpl, claims) = if what == "labels" {
        (
            path("spec/template/metadata/labels"),
            path("spec/jobTemplate/metadata/labels"),
            path("spec/jobTemplate/spec/template/metadata/labels"),
            Some("spec/volumeClaimTemplates/metadata/labels"),
        )
    } else {
        (
            path("spec/template/metadata/annotations"),
            path("spec/jobTemplate/metadata/annotations"),
            path("spec/jobTemplate/spec/template/metadata/annotations"),
            None,
        )
    };
    let mut specs = vec![
        Spec {
            kinds: &[
                "Deployment",
                "ReplicaSet",
                "DaemonSet",
                "StatefulSet",
                "Job",
                "ReplicationController",
            ],
            path: tmpl,
            create: true,
        },
        Spec {
            kinds: &["CronJob"],
            path: job_tmpl,
            create: true,
        },
        Spec {
            kinds: &["CronJob"],
            path: job_pod_tmpl,
            create: true,
        },
    ];
    if let Some(claims) = claims {
        specs.push(Spec {
            kinds: &["StatefulSet"],
            path: claims,
            create: true,
        });
    }
    specs
}

/// `labels` entries, then `commonLabels` (so a key both give takes `commonLabels`' value,
/// as in kustomize).
pub fn labels(k: &Kustomization, objects: &mut [Res]) {
    for entry in k.labels.iter().flatten() {
        let Some(pairs) = entry.pairs.as_ref().filter(|p| !p.is_empty()) else {
            continue;
        };
        let selectors = entry.include_selectors == Some(true);
        let templates = selectors || entry.include_templates == Some(true);
        apply_all(objects, pairs, "labels", selectors, templates);
    }
    if let Some(common) = k.common_labels.as_ref().filter(|l| !l.is_empty()) {
        apply_all(objects, common, "labels", true, true);
    }
}

pub fn annotations(k: &Kustomization, objects: &mut [Res]) {
    if let Some(common) = k.common_annotations.as_ref().filter(|l| !l.is_empty()) {
        apply_all(objects, common, "annotations", false, true);
    }
}

fn apply_all(
    objects: &mut [Res],
    pairs: &BTreeMap<String, String>,
    what: &'static str,
    selectors: bool,
    templates: bool,
) {
    let mut specs = vec![Spec {
        kinds: &[],
        path: if what == "labels" {
            "metadata/labels"
        } else {
            "metadata/annotations"
        },
        create: true,
    }];
    if templates {
        specs.extend(template_specs(what));
    }
    if selectors {
        specs.extend(selector_specs());
    }
    for res in objects.iter_mut() {
        let kind = res.kind().to_string();
        let mark = res.mark();
        for spec in specs
            .iter()
            .filter(|s| s.kinds.is_empty() || s.kinds.contains(&kind.as_str()))
        {
            let parts: Vec<&str> = spec.path.split('/').collect();
            at_path(&mut res.node, &parts, spec.create, &mut |map| {
                for (k, v) in pairs {
                    node::set(map, k, string(v, mark));
                }
            });
        }
    }
}

/// Calls `f` on each mapping at `parts`, stepping through lists; with `create`, missing
/// mappings on the way are made (not through lists).
fn at_path(node: &mut Node, parts: &[&str], create: bool, f: &mut dyn FnMut(&mut Node)) {
    if let Value::Seq(items) = &mut node.value {
        for item in items {
            at_path(item, parts, create, f);
        }
        return;
    }
    let Some((first, rest)) = parts.split_first() else {
        if node.is_null() {
            node.value = Value::Map(Vec::new());
        }
        if matches!(node.value, Value::Map(_)) {
            f(node);
        }
        return;
    };
    let child = if create {
        ensure_map_or_list(node, first)
    } else {
        get_mut(node, first)
    };
    if let Some(child) = child {
        at_path(child, rest, create, f);
    }
}

fn ensure_map_or_list<'a>(node: &'a mut Node, key: &str) -> Option<&'a mut Node> {
    if matches!(get_mut(node, key).map(|n| &n.value), Some(Value::Seq(_))) {
        return get_mut(node, key);
    }
    ensure_map(node, key)
}

/// `replicas`: counts for Deployments, ReplicaSets, ReplicationControllers and StatefulSets
/// by name (as written in the base, or as renamed). Returns the indexes of the entries that
/// name no such object (kustomize refuses them).
pub fn replicas(k: &Kustomization, objects: &mut [Res]) -> Vec<usize> {
    let mut unmatched = Vec::new();
    for (i, entry) in k.replicas.iter().flatten().enumerate() {
        let (Some(name), Some(count)) = (&entry.name, entry.count) else {
            continue;
        };
        let mut found = false;
        for res in objects.iter_mut() {
            let scalable = matches!(
                res.kind(),
                "Deployment" | "ReplicaSet" | "ReplicationController" | "StatefulSet"
            );
            if !scalable || !res.is_or_was_named(name) {
                continue;
            }
            found = true;
            let mark = res.mark();
            if let Some(spec) = ensure_map(&mut res.node, "spec") {
                node::set(
                    spec,
                    "replicas",
                    Node {
                        mark,
                        value: Value::Scalar(count.to_string(), Style::Plain),
                    },
                );
            }
        }
        if !found {
            unmatched.push(i);
        }
    }
    unmatched
}

/// `images`: new names, tags and digests for the images of every container and init
/// container of every object.
pub fn images(k: &Kustomization, objects: &mut [Res]) {
    let Some(images) = k.images.as_ref().filter(|i| !i.is_empty()) else {
        return;
    };
    for res in objects.iter_mut() {
        containers(&mut res.node, &mut |container| {
            let Some(image) = node::text_at(container, &["image"]).map(str::to_string) else {
                return;
            };
            let (name, tag) = split_image(&image);
            let Some(rule) = images.iter().find(|i| i.name.as_deref() == Some(name)) else {
                return;
            };
            let new_name = rule
                .new_name
                .as_deref()
                .filter(|n| !n.is_empty())
                .unwrap_or(name);
            let new_tag = rule.new_tag.as_deref().filter(|t| !t.is_empty());
            let digest = rule.digest.as_deref().filter(|d| !d.is_empty());
            let new_tag = match (new_tag, digest) {
                (Some(t), Some(d)) => format!(":{t}@{d}"),
                (None, Some(d)) => format!("@{d}"),
                (Some(t), None) => format!(":{t}"),
                (None, None) => tag.to_string(),
            };
            let mark = container.mark;
            node::set(
                container,
                "image",
                string(&format!("{new_name}{new_tag}"), mark),
            );
        });
    }
}

/// An image's name and its `:tag`, `@digest` or `:tag@digest` (empty when it has none).
pub fn split_image(image: &str) -> (&str, &str) {
    let name_end = match image.find('@') {
        Some(at) => at,
        None => image.len(),
    };
    let last_slash = image[..name_end].rfind('/').map_or(0, |i| i + 1);
    let name_end = match image[last_slash..name_end].find(':') {
        Some(colon) => last_slash + colon,
        None => name_end,
    };
    (&image[..name_end], &image[name_end..])
}

/// Calls `f` on every item of every `containers` and `initContainers` list in the tree.
fn containers(node: &mut Node, f: &mut dyn FnMut(&mut Node)) {
    match &mut node.value {
        Value::Map(entries) => {
            for (key, value) in entries.iter_mut() {
                let is_list = matches!(key.as_str(), Some("containers" | "initContainers"));
                if is_list && let Value::Seq(items) = &mut value.value {
                    for item in items.iter_mut() {
                        f(item);
                    }
                    continue;
                }
                containers(value, f);
            }
        }
        Value::Seq(items) => items.iter_mut().for_each(|i| containers(i, f)),
        Value::Scalar(..) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::split_image;

    #[test]
    fn images_split_into_name_and_tag_past_a_registry_port() {
        assert_eq!(split_image("nginx"), ("nginx", ""));
        assert_eq!(split_image("nginx:1.25"), ("nginx", ":1.25"));
        assert_eq!(
            split_image("registry.example.com:5000/app:2"),
            ("registry.example.com:5000/app", ":2")
        );
        assert_eq!(
            split_image("registry.example.com:5000/app"),
            ("registry.example.com:5000/app", "")
        );
        assert_eq!(split_image("app@sha256:abc"), ("app", "@sha256:abc"));
        assert_eq!(split_image("app:1@sha256:abc"), ("app", ":1@sha256:abc"));
    }
}
