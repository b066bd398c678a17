//! `namespace`, `namePrefix` and `nameSuffix`, and the back references that follow them: a
//! Deployment naming ConfigMap `app` names `prod-app-5f2h59g7k9` once the ConfigMap is
//! renamed, as kustomize's name-reference table has it for the standard kinds.

use super::kustomization::Kustomization;
use super::node::{self, get_mut, string};
use super::resource::{Id, Res};
use crate::yaml::{Node, Value};

/// Moves every namespaced object into `namespace`. A Namespace object is renamed to it (as
/// kustomize does), and ServiceAccount subjects of role bindings that were in `default`
/// follow.
pub fn set_namespace(objects: &mut [Res], namespace: &str) {
    for res in objects.iter_mut() {
        if res.kind() == "Namespace" {
            res.rename(namespace);
            continue;
        }
        if res.is_namespaced() {
            res.set_namespace(namespace);
        }
        if matches!(res.kind(), "RoleBinding" | "ClusterRoleBinding") {
            let mark = res.mark();
            if let Some(Value::Seq(subjects)) =
                get_mut(&mut res.node, "subjects").map(|n| &mut n.value)
            {
                // The `default` ServiceAccount of the namespace moves with it; others follow
                // their ServiceAccount when references are fixed.
                for s in subjects.iter_mut() {
                    let is_sa = s.get("kind").and_then(Node::as_str) == Some("ServiceAccount");
                    if is_sa && node::text_at(s, &["name"]) == Some("default") {
                        node::set(s, "namespace", string(namespace, mark));
                    }
                }
            }
        }
    }
}

/// Adds the kustomization's prefix and suffix to every name but those of Namespaces and
/// CustomResourceDefinitions (whose names are fixed by what they define).
pub fn prefix_suffix(k: &Kustomization, objects: &mut [Res]) {
    let prefix = k.name_prefix.as_deref().unwrap_or("");
    let suffix = k.name_suffix.as_deref().unwrap_or("");
    if prefix.is_empty() && suffix.is_empty() {
        return;
    }
    for res in objects.iter_mut() {
        if matches!(res.kind(), "Namespace" | "CustomResourceDefinition") {
            continue;
        }
        let name = format!("{prefix}{}{suffix}", res.name());
        res.rename(&name);
        if !prefix.is_empty() {
            res.prefixes.push(prefix.to_string());
        }
        if !suffix.is_empty() {
            res.suffixes.push(suffix.to_string());
        }
    }
}

/// Where objects name others: (kind named, kinds naming it, path of the name within them).
/// A path's parts step into mappings; lists are stepped through item by item. `POD` stands
/// for the pod spec of every workload kind.
const REFERENCES: &[(&str, &[&str], &str)] = &[
    ("ConfigMap", &["POD"], "volumes/configMap/name"),
    (
        "ConfigMap",
        &["POD"],
        "volumes/projected/sources/configMap/name",
    ),
    (
        "ConfigMap",
        &["POD"],
        "CONTAINERS/env/valueFrom/configMapKeyRef/name",
    ),
    (
        "ConfigMap",
        &["POD"],
        "CONTAINERS/envFrom/configMapRef/name",
    ),
    ("Secret", &["POD"], "volumes/secret/secretName"),
    ("Secret", &["POD"], "volumes/projected/sources/secret/name"),
    (
        "Secret",
        &["POD"],
        "CONTAINERS/env/valueFrom/secretKeyRef/name",
    ),
    ("Secret", &["POD"], "CONTAINERS/envFrom/secretRef/name"),
    ("Secret", &["POD"], "imagePullSecrets/name"),
    ("Secret", &["ServiceAccount"], "imagePullSecrets/name"),
    ("Secret", &["Ingress"], "spec/tls/secretName"),
    (
        "Secret",
        &["Ingress"],
        "metadata/annotations/nginx.ingress.kubernetes.io~1auth-secret",
    ),
    (
        "Secret",
        &["Ingress"],
        "metadata/annotations/ingress.kubernetes.io~1auth-secret",
    ),
    (
        "Secret",
        &["Ingress"],
        "metadata/annotations/nginx.ingress.kubernetes.io~1auth-tls-secret",
    ),
    ("ServiceAccount", &["POD"], "serviceAccountName"),
    (
        "PersistentVolumeClaim",
        &["POD"],
        "volumes/persistentVolumeClaim/claimName",
    ),
    ("PriorityClass", &["POD"], "priorityClassName"),
    (
        "Service",
        &["Ingress"],
        "spec/rules/http/paths/backend/service/name",
    ),
    ("Service", &["Ingress"], "spec/defaultBackend/service/name"),
    ("Service", &["StatefulSet"], "spec/serviceName"),
    (
        "PersistentVolume",
        &["PersistentVolumeClaim"],
        "spec/volumeName",
    ),
    (
        "StorageClass",
        &["PersistentVolumeClaim"],
        "spec/storageClassName",
    ),
    (
        "StorageClass",
        &["StatefulSet"],
        "spec/volumeClaimTemplates/spec/storageClassName",
    ),
];

/// References that name their kind beside the name (`roleRef`, `scaleTargetRef`): (kinds
/// holding them, path of the reference). Role binding subjects are [`fix_subjects`]'.
const TYPED_REFERENCES: &[(&[&str], &str)] = &[
    (&["RoleBinding", "ClusterRoleBinding"], "roleRef"),
    (&["HorizontalPodAutoscaler"], "spec/scaleTargetRef"),
];

/// Where each workload kind keeps its pod spec.
fn pod_spec(kind: &str) -> Option<&'static str> {
    match kind {
        "Pod" => Some("spec"),
        "Deployment"
        | "ReplicaSet"
        | "DaemonSet"
        | "StatefulSet"
        | "Job"
        | "ReplicationController" => Some("spec/template/spec"),
        "CronJob" => Some("spec/jobTemplate/spec/template/spec"),
        _ => None,
    }
}

/// Points every reference to a renamed object at its current name.
pub fn fix_references(objects: &mut [Res]) {
    let ids: Vec<Known> = objects
        .iter()
        .map(|o| Known {
            id: o.id(),
            history: o.history.clone(),
            prefixes: o.prefixes.clone(),
            suffixes: o.suffixes.clone(),
        })
        .collect();
    if ids.iter().all(|k| k.history.is_empty()) {
        return;
    }
    for res in objects.iter_mut() {
        let kind = res.kind().to_string();
        let from = Known {
            id: res.id(),
            history: Vec::new(),
            prefixes: res.prefixes.clone(),
            suffixes: res.suffixes.clone(),
        };
        for (referent, holders, path) in REFERENCES {
            let prefix = if holders.contains(&"POD") {
                pod_spec(&kind)
            } else {
                holders.contains(&kind.as_str()).then_some("")
            };
            let Some(prefix) = prefix else { continue };
            let full = if prefix.is_empty() {
                path.to_string()
            } else {
                format!("{prefix}/{path}")
            };
            for path in expand_containers(&full) {
                let parts: Vec<String> = path.split('/').map(|p| p.replace("~1", "/")).collect();
                let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
                visit(&mut res.node, &parts, &mut |name_node| {
                    rewrite(name_node, referent, None, &from, &ids);
                });
            }
        }
        if matches!(kind.as_str(), "RoleBinding" | "ClusterRoleBinding") {
            fix_subjects(&mut res.node, &ids);
        }
        for (holders, path) in TYPED_REFERENCES {
            if !holders.contains(&kind.as_str()) {
                continue;
            }
            let parts: Vec<&str> = path.split('/').collect();
            visit(&mut res.node, &parts, &mut |reference| {
                let Some(target_kind) = reference
                    .get("kind")
                    .and_then(Node::as_str)
                    .map(str::to_string)
                else {
                    return;
                };
                let namespace = node::text_at(reference, &["namespace"]).map(str::to_string);
                if let Some(name) = get_mut(reference, "name") {
                    rewrite(name, &target_kind, namespace.as_deref(), &from, &ids);
                }
            });
        }
    }
}

fn expand_containers(path: &str) -> Vec<String> {
    if path.contains("CONTAINERS") {
        ["containers", "initContainers", "ephemeralContainers"]
            .iter()
            .map(|c| path.replace("CONTAINERS", c))
            .collect()
    } else {
        vec![path.to_string()]
    }
}

/// Calls `f` on every node at `parts` under `node`, stepping through lists.
fn visit(node: &mut Node, parts: &[&str], f: &mut dyn FnMut(&mut Node)) {
    if let Value::Seq(items) = &mut node.value {
        for item in items {
            visit(item, parts, f);
        }
        return;
    }
    let Some((first, rest)) = parts.split_first() else {
        f(node);
        return;
    };
    if let Some(child) = get_mut(node, first) {
        visit(child, rest, f);
    }
}

/// An object as references see it: who it is and was, and the prefixes and suffixes its
/// name was given, outermost last.
struct Known {
    id: Id,
    history: Vec<Id>,
    prefixes: Vec<String>,
    suffixes: Vec<String>,
}

/// Whether `a` and `b` end alike (the shorter is the end of the longer): a reference points
/// only at objects renamed as its own object was, so two apps' `config` stay apart.
fn same_ending(a: &[String], b: &[String]) -> bool {
    let n = a.len().min(b.len());
    a[a.len() - n..] == b[b.len() - n..]
}

/// Renames one reference: the object of kind `kind` that had this name (in the referrer's
/// namespace, or `namespace` when the reference gives one) now has another.
fn rewrite(name_node: &mut Node, kind: &str, namespace: Option<&str>, from: &Known, ids: &[Known]) {
    let Some(name) = name_node.as_str().map(str::to_string) else {
        return;
    };
    if ids
        .iter()
        .any(|k| k.id.kind == kind && k.id.name == name && same_space(&k.id, namespace, &from.id))
    {
        return;
    }
    let candidates: Vec<&Known> = ids
        .iter()
        .filter(|k| {
            k.id.kind == kind
                && k.history.iter().any(|h| h.name == name)
                && same_space(&k.id, namespace, &from.id)
                && same_ending(&k.prefixes, &from.prefixes)
                && same_ending(&k.suffixes, &from.suffixes)
        })
        .collect();
    if let [only] = candidates.as_slice() {
        let mark = name_node.mark;
        *name_node = string(&only.id.name, mark);
    }
}

/// Whether the object `id` is where a reference from `from` (naming `namespace`, if it
/// does) points: cluster-wide objects are everywhere; no namespace means `default`.
fn same_space(id: &Id, namespace: Option<&str>, from: &Id) -> bool {
    !super::resource::is_namespaced(&id.kind)
        || or_default(&id.namespace) == or_default(namespace.unwrap_or(&from.namespace))
}

fn or_default(namespace: &str) -> &str {
    if namespace.is_empty() {
        "default"
    } else {
        namespace
    }
}

/// ServiceAccount subjects follow the ServiceAccount they named: the one that had the
/// subject's name in the subject's namespace as its file wrote it (kustomize compares the
/// namespaces before any transformer ran, so a subject that spelled out a base's new
/// namespace stays as written).
fn fix_subjects(binding: &mut Node, ids: &[Known]) {
    let Some(Value::Seq(subjects)) = get_mut(binding, "subjects").map(|n| &mut n.value) else {
        return;
    };
    for s in subjects.iter_mut() {
        if s.get("kind").and_then(Node::as_str) != Some("ServiceAccount") {
            continue;
        }
        let Some(name) = node::text_at(s, &["name"]).map(str::to_string) else {
            continue;
        };
        let namespace = node::text_at(s, &["namespace"]).unwrap_or("").to_string();
        let found: Vec<&Id> = ids
            .iter()
            .filter(|k| {
                let original = k.history.first().unwrap_or(&k.id);
                k.id.kind == "ServiceAccount"
                    && (k.id.name == name || k.history.iter().any(|h| h.name == name))
                    && or_default(&original.namespace) == or_default(&namespace)
            })
            .map(|k| &k.id)
            .collect();
        let [sa] = found.as_slice() else { continue };
        let mark = s.mark;
        node::set(s, "name", string(&sa.name, mark));
        if !sa.namespace.is_empty() {
            node::set(s, "namespace", string(&sa.namespace, mark));
        }
    }
}
