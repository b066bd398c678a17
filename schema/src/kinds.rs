//! The one table of kinds keel supports ([`kinds!`] below). It declares [`Kind`] and
//! [`Object`] and every dispatch between them, so a kind is added in one line here plus its
//! type's [`Resource`] impl; every `match` over kinds elsewhere is exhaustive, so the
//! compiler then names each place that must handle it (validation, defaults, the JSON
//! Schema, `keel get` columns, health, …).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::decode::{Issue, decode};
use crate::resource::Resource;
use crate::types::apiextensions::CustomResourceDefinition;
use crate::types::apps::{ControllerRevision, DaemonSet, Deployment, ReplicaSet, StatefulSet};
use crate::types::autoscaling::HorizontalPodAutoscaler;
use crate::types::batch::{CronJob, Job};
use crate::types::core::{
    ConfigMap, Endpoints, Event, Namespace, Node, ReplicationController, Secret, Service,
    ServiceAccount,
};
use crate::types::custom::CustomObject;
use crate::types::meta::ObjectMeta;
use crate::types::networking::{Ingress, IngressClass};
use crate::types::pod::Pod;
use crate::types::policy::{LimitRange, NetworkPolicy, PodDisruptionBudget, ResourceQuota};
use crate::types::rbac::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use crate::types::storage::{PersistentVolume, PersistentVolumeClaim};
use crate::yaml;

pub mod custom;

pub use custom::CustomKind;

/// What keel knows about a kind: where it is served, what it is called on the command line,
/// and whether git may declare it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KindInfo {
    pub kind: Kind,
    pub api_version: &'static str,
    pub plural: &'static str,
    pub short_names: &'static [&'static str],
    pub namespaced: bool,
    /// Kept by the cluster itself; a manifest in git may not declare it.
    pub live_only: bool,
}

/// The group of an `apiVersion` (`apps` of `apps/v1`; `""` for core `v1`).
pub fn api_group(api_version: &str) -> &str {
    api_version.rsplit_once('/').map_or("", |(g, _)| g)
}

/// The version of a grouped `apiVersion` (`v1` of `apps/v1`; `""` for core `v1`, which
/// has no group to be a version of).
pub fn group_version(api_version: &str) -> &str {
    api_version.rsplit_once('/').map_or("", |(_, v)| v)
}

impl KindInfo {
    /// The API group (`""` for core `v1`); duplicates are judged by group, kind and name.
    pub fn group(&self) -> &'static str {
        api_group(self.api_version)
    }

    /// `pods`, or `deployments.apps` for a kind in a group, as Kubernetes names resources.
    pub fn resource(&self) -> String {
        match self.group() {
            "" => self.plural.to_string(),
            group => format!("{}.{group}", self.plural),
        }
    }
}

impl Kind {
    /// Whether keel acts on objects of this kind. The RBAC kinds, ServiceAccounts,
    /// NetworkPolicies and PodDisruptionBudgets are stored (validated, served, diffed), so
    /// repositories written for Kubernetes apply unchanged, but nothing enforces them
    /// (keel has no voluntary evictions for a budget to hold back); plans and status say so.
    /// A custom kind's objects are for whatever watches them (an operator); their health
    /// is their own conditions'.
    pub fn enforced(self) -> bool {
        !matches!(
            self,
            Kind::ServiceAccount
                | Kind::NetworkPolicy
                | Kind::PodDisruptionBudget
                | Kind::Role
                | Kind::ClusterRole
                | Kind::RoleBinding
                | Kind::ClusterRoleBinding
        )
    }
}

/// What plans and status say of an object of a kind keel does not enforce.
pub const NOT_ENFORCED: &str = "stored, not enforced by keel";

/// A kind's own type (`Pod`, `Deployment`, …): which kind it is, and itself inside an
/// [`Object`] of that kind.
pub trait OfKind: Sized {
    const KIND: Kind;

    /// `object` as this type, when it is of this kind.
    fn of(object: &Object) -> Option<&Self>;
}

/// Why a JSON value could not be made into an [`Object`].
#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    #[error("object has no kind")]
    NoKind,
    #[error("unsupported kind {0:?}")]
    UnknownKind(String),
    #[error("invalid custom object: {0}")]
    Custom(String),
    #[error("invalid {kind}: {source}")]
    Invalid {
        kind: Kind,
        #[source]
        source: serde_json::Error,
    },
}

macro_rules! kinds {
    ($(
        $kind:ident {
            api_version: $api_version:literal,
            plural: $plural:literal,
            short_names: [$($short:literal),*],
            namespaced: $namespaced:literal,
            live_only: $live_only:literal $(,)?
        }
    ),* $(,)?) => {
        /// A kind keel supports: a row of the table, or one a CustomResourceDefinition
        /// declares. Serialized as its name (`Deployment`; `CronTab.stable.example.com` for
        /// a custom kind); ordered by name.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Kind {
            $($kind,)*
            Custom(CustomKind),
        }

        impl Kind {
            /// Every built-in kind, in the table's order (the order plans list changes in).
            pub const ALL: &'static [Kind] = &[$(Kind::$kind),*];

            pub fn info(self) -> &'static KindInfo {
                match self {
                    $(Kind::$kind => &KindInfo {
                        kind: Kind::$kind,
                        api_version: $api_version,
                        plural: $plural,
                        short_names: &[$($short),*],
                        namespaced: $namespaced,
                        live_only: $live_only,
                    },)*
                    Kind::Custom(c) => c.info(),
                }
            }

            /// The kind's name, as in `kind:`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Kind::$kind => stringify!($kind),)*
                    Kind::Custom(c) => c.name(),
                }
            }
        }

        /// One object of a supported kind.
        #[derive(Debug, Clone, PartialEq, Serialize)]
        #[serde(untagged)]
        pub enum Object {
            $($kind($kind),)*
            Custom(CustomObject),
        }

        $(
            impl OfKind for $kind {
                const KIND: Kind = Kind::$kind;

                fn of(object: &Object) -> Option<&$kind> {
                    match object {
                        Object::$kind(o) => Some(o),
                        _ => None,
                    }
                }
            }

            impl From<$kind> for Object {
                fn from(object: $kind) -> Object {
                    Object::$kind(object)
                }
            }

            /// The object as its kind's type; an object of another kind comes back as is.
            impl TryFrom<Object> for $kind {
                type Error = Object;

                fn try_from(object: Object) -> Result<$kind, Object> {
                    match object {
                        Object::$kind(o) => Ok(o),
                        other => Err(other),
                    }
                }
            }
        )*

        impl Object {
            pub fn kind(&self) -> Kind {
                match self {
                    $(Object::$kind(_) => Kind::$kind,)*
                    Object::Custom(o) => Kind::Custom(o.kind()),
                }
            }

            pub fn meta(&self) -> &ObjectMeta {
                match self {
                    $(Object::$kind(o) => &o.metadata,)*
                    Object::Custom(o) => &o.metadata,
                }
            }

            pub fn meta_mut(&mut self) -> &mut ObjectMeta {
                match self {
                    $(Object::$kind(o) => &mut o.metadata,)*
                    Object::Custom(o) => &mut o.metadata,
                }
            }

            /// Sets `apiVersion` and `kind` to this variant's (a custom object's are its
            /// kind's already).
            pub fn set_type_meta(&mut self) {
                let info = self.info();
                match self {
                    $(Object::$kind(o) => {
                        o.api_version = info.api_version.to_string();
                        o.kind = info.kind.as_str().to_string();
                    })*
                    Object::Custom(_) => {}
                }
            }

            /// The same object as the kind's own type sees it (see [`Resource`]).
            pub(crate) fn resource(&self) -> &dyn Resource {
                match self {
                    $(Object::$kind(o) => o,)*
                    Object::Custom(o) => o,
                }
            }

            pub(crate) fn resource_mut(&mut self) -> &mut dyn Resource {
                match self {
                    $(Object::$kind(o) => o,)*
                    Object::Custom(o) => o,
                }
            }

            /// True when both are of one kind and declare the same body (spec, data), by
            /// that kind's [`Resource::same_body`].
            pub(crate) fn same_body(&self, other: &Object) -> bool {
                match (self, other) {
                    $((Object::$kind(a), Object::$kind(b)) => a.same_body(b),)*
                    (Object::Custom(a), Object::Custom(b)) => {
                        a.kind() == b.kind() && a.same_body(b)
                    }
                    _ => false,
                }
            }

            /// Takes `old`'s status where this object has none (both of one kind).
            pub fn keep_status_from(&mut self, old: &Object) {
                match (self, old) {
                    $((Object::$kind(new), Object::$kind(old)) => new.keep_status_from(old),)*
                    (Object::Custom(new), Object::Custom(old)) if new.kind() == old.kind() => {
                        new.keep_status_from(old)
                    }
                    _ => {}
                }
            }

            /// Decodes a located YAML tree of a built-in `kind`, reporting every problem. A
            /// custom kind's objects are read against their definition instead
            /// (`load`), so asking for one here is refused.
            pub fn decode(kind: Kind, node: &yaml::Node) -> (Option<Object>, Vec<Issue>) {
                match kind {
                    $(Kind::$kind => {
                        let (value, issues) = decode::<$kind>(node);
                        (value.map(Object::$kind), issues)
                    })*
                    Kind::Custom(c) => (
                        None,
                        vec![Issue {
                            path: crate::path::FieldPath::new("kind"),
                            mark: node.mark,
                            message: format!(
                                "{} is read against its CustomResourceDefinition",
                                c.qualified()
                            ),
                            suggestion: None,
                        }],
                    ),
                }
            }

            /// Reads an object of a known kind straight from JSON bytes (the store's hot
            /// path: no intermediate `Value`).
            pub fn from_json_slice(kind: Kind, bytes: &[u8]) -> Result<Object, ObjectError> {
                let invalid = |source| ObjectError::Invalid { kind, source };
                Ok(match kind {
                    $(Kind::$kind => Object::$kind(serde_json::from_slice(bytes).map_err(invalid)?),)*
                    Kind::Custom(_) => Object::Custom(serde_json::from_slice(bytes).map_err(invalid)?),
                })
            }

            /// Reads an object from a JSON value, choosing the type by its `kind` and the
            /// group of its `apiVersion`: a built-in kind's name in another group is a
            /// custom kind.
            pub fn from_json(value: serde_json::Value) -> Result<Object, ObjectError> {
                let name = value
                    .get("kind")
                    .and_then(|k| k.as_str())
                    .ok_or(ObjectError::NoKind)?;
                let group = value
                    .get("apiVersion")
                    .and_then(|v| v.as_str())
                    .map(api_group);
                let builtin = Kind::from_name(name)
                    .filter(|k| group.is_none_or(|g| g == k.info().group()));
                let kind = match (builtin, group) {
                    (Some(kind), _) => kind,
                    (None, Some(g)) if !g.is_empty() => {
                        let object = CustomObject::from_json(value)
                            .map_err(|e| ObjectError::Custom(e.to_string()))?;
                        return Ok(Object::Custom(object));
                    }
                    _ => return Err(ObjectError::UnknownKind(name.to_string())),
                };
                let invalid = |source| ObjectError::Invalid { kind, source };
                Ok(match kind {
                    $(Kind::$kind => Object::$kind(serde_json::from_value(value).map_err(invalid)?),)*
                    Kind::Custom(_) => return Err(ObjectError::UnknownKind(name.to_string())),
                })
            }
        }
    };
}

kinds! {
    Pod {
        api_version: "v1", plural: "pods", short_names: ["po"],
        namespaced: true, live_only: false,
    },
    Service {
        api_version: "v1", plural: "services", short_names: ["svc"],
        namespaced: true, live_only: false,
    },
    ReplicationController {
        api_version: "v1", plural: "replicationcontrollers", short_names: ["rc"],
        namespaced: true, live_only: false,
    },
    ConfigMap {
        api_version: "v1", plural: "configmaps", short_names: ["cm"],
        namespaced: true, live_only: false,
    },
    Secret {
        api_version: "v1", plural: "secrets", short_names: [],
        namespaced: true, live_only: false,
    },
    Namespace {
        api_version: "v1", plural: "namespaces", short_names: ["ns"],
        namespaced: false, live_only: false,
    },
    ServiceAccount {
        api_version: "v1", plural: "serviceaccounts", short_names: ["sa"],
        namespaced: true, live_only: false,
    },
    Role {
        api_version: "rbac.authorization.k8s.io/v1", plural: "roles", short_names: [],
        namespaced: true, live_only: false,
    },
    ClusterRole {
        api_version: "rbac.authorization.k8s.io/v1", plural: "clusterroles", short_names: [],
        namespaced: false, live_only: false,
    },
    RoleBinding {
        api_version: "rbac.authorization.k8s.io/v1", plural: "rolebindings", short_names: [],
        namespaced: true, live_only: false,
    },
    ClusterRoleBinding {
        api_version: "rbac.authorization.k8s.io/v1", plural: "clusterrolebindings", short_names: [],
        namespaced: false, live_only: false,
    },
    PersistentVolumeClaim {
        api_version: "v1", plural: "persistentvolumeclaims", short_names: ["pvc"],
        namespaced: true, live_only: false,
    },
    PersistentVolume {
        api_version: "v1", plural: "persistentvolumes", short_names: ["pv"],
        namespaced: false, live_only: true,
    },
    Node {
        api_version: "v1", plural: "nodes", short_names: ["no"],
        namespaced: false, live_only: true,
    },
    Endpoints {
        api_version: "v1", plural: "endpoints", short_names: ["ep"],
        namespaced: true, live_only: true,
    },
    Event {
        api_version: "v1", plural: "events", short_names: ["ev"],
        namespaced: true, live_only: true,
    },
    Deployment {
        api_version: "apps/v1", plural: "deployments", short_names: ["deploy"],
        namespaced: true, live_only: false,
    },
    ReplicaSet {
        api_version: "apps/v1", plural: "replicasets", short_names: ["rs"],
        namespaced: true, live_only: false,
    },
    DaemonSet {
        api_version: "apps/v1", plural: "daemonsets", short_names: ["ds"],
        namespaced: true, live_only: false,
    },
    StatefulSet {
        api_version: "apps/v1", plural: "statefulsets", short_names: ["sts"],
        namespaced: true, live_only: false,
    },
    ControllerRevision {
        api_version: "apps/v1", plural: "controllerrevisions", short_names: [],
        namespaced: true, live_only: true,
    },
    Job {
        api_version: "batch/v1", plural: "jobs", short_names: [],
        namespaced: true, live_only: false,
    },
    CronJob {
        api_version: "batch/v1", plural: "cronjobs", short_names: ["cj"],
        namespaced: true, live_only: false,
    },
    Ingress {
        api_version: "networking.k8s.io/v1", plural: "ingresses", short_names: ["ing"],
        namespaced: true, live_only: false,
    },
    IngressClass {
        api_version: "networking.k8s.io/v1", plural: "ingressclasses", short_names: [],
        namespaced: false, live_only: false,
    },
    LimitRange {
        api_version: "v1", plural: "limitranges", short_names: ["limits"],
        namespaced: true, live_only: false,
    },
    ResourceQuota {
        api_version: "v1", plural: "resourcequotas", short_names: ["quota"],
        namespaced: true, live_only: false,
    },
    NetworkPolicy {
        api_version: "networking.k8s.io/v1", plural: "networkpolicies", short_names: ["netpol"],
        namespaced: true, live_only: false,
    },
    PodDisruptionBudget {
        api_version: "policy/v1", plural: "poddisruptionbudgets", short_names: ["pdb"],
        namespaced: true, live_only: false,
    },
    HorizontalPodAutoscaler {
        api_version: "autoscaling/v2", plural: "horizontalpodautoscalers", short_names: ["hpa"],
        namespaced: true, live_only: false,
    },
    CustomResourceDefinition {
        api_version: "apiextensions.k8s.io/v1", plural: "customresourcedefinitions",
        short_names: ["crd", "crds"], namespaced: false, live_only: false,
    },
}

impl Kind {
    /// The kind named exactly (`Deployment`).
    pub fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL.iter().copied().find(|k| k.as_str() == name)
    }

    /// The kind a user typed on the command line: its name, plural or short name, any case.
    pub fn lookup(name: &str) -> Option<Kind> {
        let lower = name.to_ascii_lowercase();
        Kind::ALL.iter().copied().find(|k| {
            let info = k.info();
            k.as_str().to_ascii_lowercase() == lower
                || info.plural == lower
                || info.short_names.contains(&lower.as_str())
        })
    }

    /// The kind served at `api_version` (`v1`, `apps/v1`) under `plural`.
    pub fn served_at(api_version: &str, plural: &str) -> Option<Kind> {
        Kind::ALL.iter().copied().find(|k| {
            let info = k.info();
            info.api_version == api_version && info.plural == plural
        })
    }

    /// The kinds a manifest in git may declare.
    pub fn declarable() -> impl Iterator<Item = Kind> {
        Kind::ALL.iter().copied().filter(|k| !k.info().live_only)
    }

    /// Where this kind sits in the table (plans list changes in this order).
    pub fn rank(self) -> usize {
        Kind::ALL
            .iter()
            .position(|k| *k == self)
            .unwrap_or(usize::MAX)
    }
}

/// Read by its `kind` (the API's and the store's JSON), as [`Object::from_json`].
impl<'de> Deserialize<'de> for Object {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Object, D::Error> {
        let value = serde_json::Value::deserialize(deserializer)?;
        Object::from_json(value).map_err(serde::de::Error::custom)
    }
}

impl Kind {
    /// The first part of its objects' store keys: the name of a built-in kind, or
    /// [`crate::kinds::custom::KEY_PREFIX`] and `Kind.group` for a custom kind.
    pub fn key_segment(self) -> std::borrow::Cow<'static, str> {
        match self {
            Kind::Custom(c) => {
                format!("{}{}", crate::kinds::custom::KEY_PREFIX, c.qualified()).into()
            }
            builtin => builtin.as_str().into(),
        }
    }

    /// The kind a key segment names (see [`Kind::key_segment`]).
    pub fn from_key_segment(segment: &str) -> Option<Kind> {
        match segment.strip_prefix(crate::kinds::custom::KEY_PREFIX) {
            Some(qualified) => CustomKind::of_qualified(qualified).map(Kind::Custom),
            None => Kind::from_name(segment),
        }
    }

    /// Its name where a kind of another group could have the same one: `Deployment`, or
    /// `CronTab.stable.example.com` for a custom kind.
    pub fn qualified(self) -> &'static str {
        match self {
            Kind::Custom(c) => c.qualified(),
            builtin => builtin.as_str(),
        }
    }
}

/// A kind is serialized as [`Kind::qualified`] names it.
impl Serialize for Kind {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.qualified())
    }
}

impl<'de> Deserialize<'de> for Kind {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Kind, D::Error> {
        let name = String::deserialize(deserializer)?;
        Kind::from_name(&name)
            .or_else(|| CustomKind::of_qualified(&name).map(Kind::Custom))
            .ok_or_else(|| serde::de::Error::custom(format!("unsupported kind {name:?}")))
    }
}

impl PartialOrd for Kind {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Kind {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.qualified().cmp(other.qualified())
    }
}

/// [`Kind::qualified`]: a custom kind with its group, so a message never leaves it unclear.
impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.qualified())
    }
}

impl PartialEq<str> for Kind {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Kind {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

#[cfg(test)]
mod tests;
