//! What the API serves, as discovery describes it: every built-in kind, and every version a
//! stored CustomResourceDefinition serves.

use keel_schema::kinds::custom::CustomKind;
use keel_schema::types::apiextensions::{CustomResourceColumnDefinition, CustomResourceDefinition};
use keel_schema::{Kind, KindInfo, Object};

use super::super::state::AppState;

/// Every verb a resource answers. Writes are listed so that clients send them and read why
/// they are refused (or, for the few operations that are not desired state, done); a verb
/// missing from discovery makes kubectl stop before asking, with no reason given.
pub const VERBS: &[&str] = &[
    "get",
    "list",
    "watch",
    "create",
    "update",
    "patch",
    "delete",
    "deletecollection",
];

/// Resources `kubectl get all` shows, as Kubernetes groups them.
const IN_ALL: &[Kind] = &[
    Kind::Pod,
    Kind::Service,
    Kind::ReplicationController,
    Kind::Deployment,
    Kind::ReplicaSet,
    Kind::DaemonSet,
    Kind::StatefulSet,
    Kind::Job,
    Kind::CronJob,
];

/// One resource at one group and version.
#[derive(Debug, Clone)]
pub struct Served {
    pub group: String,
    pub version: String,
    pub kind_name: String,
    pub plural: String,
    pub singular: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    /// Subresources and the verbs each answers (`log`: get).
    pub subresources: Vec<(&'static str, &'static [&'static str])>,
    pub verbs: &'static [&'static str],
}

impl Served {
    /// `v1`, or `apps/v1`.
    pub fn group_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    fn built_in(info: &KindInfo) -> Served {
        let (group, version) = match info.api_version.rsplit_once('/') {
            Some((g, v)) => (g.to_string(), v.to_string()),
            None => (String::new(), info.api_version.to_string()),
        };
        let subresources: Vec<(&'static str, &'static [&'static str])> = match info.kind {
            Kind::Pod => vec![("log", &["get"])],
            _ => Vec::new(),
        };
        Served {
            group,
            version,
            kind_name: info.kind.as_str().to_string(),
            plural: info.plural.to_string(),
            singular: info.kind.as_str().to_ascii_lowercase(),
            namespaced: info.namespaced,
            short_names: info.short_names.iter().map(|s| s.to_string()).collect(),
            categories: if IN_ALL.contains(&info.kind) {
                vec!["all".to_string()]
            } else {
                Vec::new()
            },
            subresources,
            verbs: VERBS,
        }
    }

    fn custom(crd: &CustomResourceDefinition, version: &str) -> Served {
        let names = &crd.spec.names;
        Served {
            group: crd.spec.group.clone(),
            version: version.to_string(),
            kind_name: names.kind.clone(),
            plural: names.plural.clone(),
            singular: names
                .singular
                .clone()
                .unwrap_or_else(|| names.kind.to_ascii_lowercase()),
            namespaced: crd.spec.scope != "Cluster",
            short_names: names.short_names.clone().unwrap_or_default(),
            categories: names.categories.clone().unwrap_or_default(),
            subresources: Vec::new(),
            verbs: VERBS,
        }
    }

    /// The resources of `metrics.k8s.io/v1beta1`, served from the agents' samples
    /// (`super::metrics`).
    fn metrics(plural: &str, kind: &str, namespaced: bool) -> Served {
        Served {
            group: "metrics.k8s.io".into(),
            version: "v1beta1".into(),
            kind_name: kind.into(),
            plural: plural.into(),
            singular: String::new(),
            namespaced,
            short_names: Vec::new(),
            categories: Vec::new(),
            subresources: Vec::new(),
            verbs: &["get", "list"],
        }
    }
}

/// A resource path resolved: the kind, and a custom kind's printer columns.
pub struct Resolved {
    pub info: &'static KindInfo,
    pub columns: Vec<CustomResourceColumnDefinition>,
}

/// The kind served at `api_version` + `plural`: a built-in one, or one a stored
/// CustomResourceDefinition declares and serves at that version.
pub async fn resolve(state: &AppState, api_version: &str, plural: &str) -> Option<Resolved> {
    if let Some(kind) = Kind::served_at(api_version, plural) {
        return Some(Resolved {
            info: kind.info(),
            columns: Vec::new(),
        });
    }
    let (group, version) = api_version.rsplit_once('/')?;
    definitions(state).await.into_iter().find_map(|crd| {
        let served = crd
            .spec
            .versions
            .iter()
            .find(|v| v.name == version && v.served);
        match served {
            Some(v) if crd.spec.group == group && crd.spec.names.plural == plural => {
                Some(Resolved {
                    info: Kind::Custom(CustomKind::of_definition(&crd, version)).info(),
                    columns: v.additional_printer_columns.clone().unwrap_or_default(),
                })
            }
            _ => None,
        }
    })
}

/// Everything served now: the built-in kinds, then each custom kind's served versions.
pub async fn served(state: &AppState) -> Vec<Served> {
    let mut out: Vec<Served> = Kind::ALL
        .iter()
        .map(|k| Served::built_in(k.info()))
        .collect();
    out.push(Served::metrics("nodes", "NodeMetrics", false));
    out.push(Served::metrics("pods", "PodMetrics", true));
    out.extend(definitions(state).await.iter().flat_map(|crd| {
        crd.spec
            .versions
            .iter()
            .filter(|v| v.served)
            .map(|v| Served::custom(crd, &v.name))
            .collect::<Vec<_>>()
    }));
    out
}

/// The stored CustomResourceDefinitions (none when the store cannot be read: discovery
/// then shows the built-in kinds, which need no store).
pub async fn definitions(state: &AppState) -> Vec<CustomResourceDefinition> {
    let Ok(list) = state
        .store
        .list(Kind::CustomResourceDefinition, None, None)
        .await
    else {
        return Vec::new();
    };
    list.items
        .into_iter()
        .filter_map(|stored| match stored.object {
            Object::CustomResourceDefinition(crd) => Some(crd),
            _ => None,
        })
        .collect()
}

/// The groups served, in the order first seen (core first), each with its versions,
/// preferred first.
pub fn groups(served: &[Served]) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for s in served {
        match out.iter_mut().find(|(g, _)| *g == s.group) {
            Some((_, versions)) if !versions.contains(&s.version) => {
                versions.push(s.version.clone())
            }
            Some(_) => {}
            None => out.push((s.group.clone(), vec![s.version.clone()])),
        }
    }
    for (_, versions) in &mut out {
        versions.sort_by_key(|v| std::cmp::Reverse(version_priority(v)));
    }
    out
}

/// Kubernetes' order of versions: GA before beta before alpha, higher numbers first
/// (`v2`, `v1`, `v1beta2`, `v1beta1`, `v1alpha1`); other names last.
fn version_priority(version: &str) -> (u8, u64, u64) {
    let Some(rest) = version.strip_prefix('v') else {
        return (0, 0, 0);
    };
    let digits = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    let Ok(major) = rest[..digits].parse::<u64>() else {
        return (0, 0, 0);
    };
    let tail = &rest[digits..];
    let (class, number) = if tail.is_empty() {
        (3, "0")
    } else if let Some(n) = tail.strip_prefix("beta") {
        (2, n)
    } else if let Some(n) = tail.strip_prefix("alpha") {
        (1, n)
    } else {
        return (0, 0, 0);
    };
    match number.parse::<u64>() {
        Ok(minor) => (class, major, minor),
        Err(_) => (0, 0, 0),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn versions_in_kubernetes_order() {
        let mut v = vec!["v1alpha1", "v1", "v1beta2", "foo", "v2", "v1beta1"];
        v.sort_by_key(|v| std::cmp::Reverse(super::version_priority(v)));
        assert_eq!(v, ["v2", "v1", "v1beta2", "v1beta1", "v1alpha1", "foo"]);
    }
}
