//! kustomize's default ("legacy") output order: kinds others depend on first (Namespaces,
//! CustomResourceDefinitions, ServiceAccounts, RBAC, ConfigMaps, Secrets, Services, …),
//! webhook configurations last, and within a place by group, version, kind, namespace and
//! name.

use super::resource::Res;

const FIRST: [&str; 22] = [
    "Namespace",
    "ResourceQuota",
    "StorageClass",
    "CustomResourceDefinition",
    "ServiceAccount",
    "PodSecurityPolicy",
    "Role",
    "ClusterRole",
    "RoleBinding",
    "ClusterRoleBinding",
    "ConfigMap",
    "Secret",
    "Endpoints",
    "Service",
    "LimitRange",
    "PriorityClass",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "Deployment",
    "StatefulSet",
    "CronJob",
    "PodDisruptionBudget",
];

const LAST: [&str; 2] = [
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
];

fn place(kind: &str) -> i64 {
    if let Some(i) = FIRST.iter().position(|k| *k == kind) {
        return i as i64 - FIRST.len() as i64;
    }
    LAST.iter()
        .position(|k| *k == kind)
        .map_or(0, |i| i as i64 + 1)
}

/// kustomize's spelling of a group, version and kind, which it compares as text.
fn gvk(res: &Res) -> String {
    let group = if res.group().is_empty() {
        "~G"
    } else {
        res.group()
    };
    let version = if res.version().is_empty() {
        "~V"
    } else {
        res.version()
    };
    format!("{group}_{version}_{}", res.kind())
}

pub fn legacy_sort(objects: &mut [Res]) {
    objects.sort_by(|a, b| {
        place(a.kind())
            .cmp(&place(b.kind()))
            .then_with(|| gvk(a).cmp(&gvk(b)))
            .then_with(|| sort_namespace(a).cmp(sort_namespace(b)))
            .then_with(|| a.name().cmp(b.name()))
    });
}

/// kustomize spells "no namespace" `~X`, so objects without one come after those with one.
fn sort_namespace(res: &Res) -> &str {
    match res.namespace() {
        "" => "~X",
        ns => ns,
    }
}
