//! [`Object`]: one value of any supported kind, and the table of kinds ([`KINDS`]).

use serde::Serialize;

use crate::decode::{Issue, decode};
use crate::types::apps::{DaemonSet, Deployment, ReplicaSet};
use crate::types::batch::Job;
use crate::types::core::{
    ConfigMap, Endpoints, Event, Namespace, Node, ReplicationController, Secret, Service,
};
use crate::types::meta::ObjectMeta;
use crate::types::pod::Pod;
use crate::yaml;

/// What keel knows about a kind: where it is served, what it is called on the command line,
/// and whether git may declare it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KindInfo {
    pub kind: &'static str,
    pub api_version: &'static str,
    /// The API group (`""` for core `v1`); duplicates are judged by group, kind and name.
    pub group: &'static str,
    pub plural: &'static str,
    pub short_names: &'static [&'static str],
    pub namespaced: bool,
    /// Kept by the cluster itself; a manifest in git may not declare it.
    pub live_only: bool,
}

const fn kind(
    kind: &'static str,
    api_version: &'static str,
    group: &'static str,
    plural: &'static str,
    short_names: &'static [&'static str],
    namespaced: bool,
    live_only: bool,
) -> KindInfo {
    KindInfo {
        kind,
        api_version,
        group,
        plural,
        short_names,
        namespaced,
        live_only,
    }
}

/// Every kind keel supports.
pub const KINDS: &[KindInfo] = &[
    kind("Pod", "v1", "", "pods", &["po"], true, false),
    kind("Service", "v1", "", "services", &["svc"], true, false),
    kind(
        "ReplicationController",
        "v1",
        "",
        "replicationcontrollers",
        &["rc"],
        true,
        false,
    ),
    kind("ConfigMap", "v1", "", "configmaps", &["cm"], true, false),
    kind("Secret", "v1", "", "secrets", &[], true, false),
    kind("Namespace", "v1", "", "namespaces", &["ns"], false, false),
    kind("Node", "v1", "", "nodes", &["no"], false, true),
    kind("Endpoints", "v1", "", "endpoints", &["ep"], true, true),
    kind("Event", "v1", "", "events", &["ev"], true, true),
    kind(
        "Deployment",
        "apps/v1",
        "apps",
        "deployments",
        &["deploy"],
        true,
        false,
    ),
    kind(
        "ReplicaSet",
        "apps/v1",
        "apps",
        "replicasets",
        &["rs"],
        true,
        false,
    ),
    kind(
        "DaemonSet",
        "apps/v1",
        "apps",
        "daemonsets",
        &["ds"],
        true,
        false,
    ),
    kind("Job", "batch/v1", "batch", "jobs", &[], true, false),
];

/// The kind named exactly (`Deployment`).
pub fn kind_info(kind: &str) -> Option<&'static KindInfo> {
    KINDS.iter().find(|k| k.kind == kind)
}

/// The kind a user typed on the command line: its name, plural or short name, any case.
pub fn lookup_kind(name: &str) -> Option<&'static KindInfo> {
    let lower = name.to_ascii_lowercase();
    KINDS.iter().find(|k| {
        k.kind.to_ascii_lowercase() == lower
            || k.plural == lower
            || k.short_names.contains(&lower.as_str())
    })
}

/// One object of a supported kind.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Object {
    Pod(Pod),
    Service(Service),
    ReplicationController(ReplicationController),
    ConfigMap(ConfigMap),
    Secret(Secret),
    Namespace(Namespace),
    Node(Node),
    Endpoints(Endpoints),
    Event(Event),
    Deployment(Deployment),
    ReplicaSet(ReplicaSet),
    DaemonSet(DaemonSet),
    Job(Job),
}

macro_rules! each_kind {
    ($self:expr, $o:ident => $body:expr) => {
        match $self {
            Object::Pod($o) => $body,
            Object::Service($o) => $body,
            Object::ReplicationController($o) => $body,
            Object::ConfigMap($o) => $body,
            Object::Secret($o) => $body,
            Object::Namespace($o) => $body,
            Object::Node($o) => $body,
            Object::Endpoints($o) => $body,
            Object::Event($o) => $body,
            Object::Deployment($o) => $body,
            Object::ReplicaSet($o) => $body,
            Object::DaemonSet($o) => $body,
            Object::Job($o) => $body,
        }
    };
}

/// Parses into the variant named by `$kind` with `$parse`, an expression whose output type
/// each arm infers (so one expression serves every kind).
macro_rules! parse_as {
    ($kind:expr, $parse:expr) => {{
        let kind: &str = $kind;
        let invalid = |source| ObjectError::Invalid {
            kind: kind.to_string(),
            source,
        };
        Ok(match kind {
            "Pod" => Object::Pod($parse.map_err(invalid)?),
            "Service" => Object::Service($parse.map_err(invalid)?),
            "ReplicationController" => Object::ReplicationController($parse.map_err(invalid)?),
            "ConfigMap" => Object::ConfigMap($parse.map_err(invalid)?),
            "Secret" => Object::Secret($parse.map_err(invalid)?),
            "Namespace" => Object::Namespace($parse.map_err(invalid)?),
            "Node" => Object::Node($parse.map_err(invalid)?),
            "Endpoints" => Object::Endpoints($parse.map_err(invalid)?),
            "Event" => Object::Event($parse.map_err(invalid)?),
            "Deployment" => Object::Deployment($parse.map_err(invalid)?),
            "ReplicaSet" => Object::ReplicaSet($parse.map_err(invalid)?),
            "DaemonSet" => Object::DaemonSet($parse.map_err(invalid)?),
            "Job" => Object::Job($parse.map_err(invalid)?),
            _ => return Err(ObjectError::UnknownKind(kind.to_string())),
        })
    }};
}

/// Why a JSON value could not be made into an [`Object`].
#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    #[error("object has no kind")]
    NoKind,
    #[error("unsupported kind {0:?}")]
    UnknownKind(String),
    #[error("invalid {kind}: {source}")]
    Invalid {
        kind: String,
        #[source]
        source: serde_json::Error,
    },
}

impl Object {
    pub fn info(&self) -> &'static KindInfo {
        let name = match self {
            Object::Pod(_) => "Pod",
            Object::Service(_) => "Service",
            Object::ReplicationController(_) => "ReplicationController",
            Object::ConfigMap(_) => "ConfigMap",
            Object::Secret(_) => "Secret",
            Object::Namespace(_) => "Namespace",
            Object::Node(_) => "Node",
            Object::Endpoints(_) => "Endpoints",
            Object::Event(_) => "Event",
            Object::Deployment(_) => "Deployment",
            Object::ReplicaSet(_) => "ReplicaSet",
            Object::DaemonSet(_) => "DaemonSet",
            Object::Job(_) => "Job",
        };
        kind_info(name).unwrap_or(&KINDS[0])
    }

    pub fn kind(&self) -> &'static str {
        self.info().kind
    }

    pub fn meta(&self) -> &ObjectMeta {
        each_kind!(self, o => &o.metadata)
    }

    pub fn meta_mut(&mut self) -> &mut ObjectMeta {
        each_kind!(self, o => &mut o.metadata)
    }

    pub fn name(&self) -> &str {
        self.meta().name()
    }

    pub fn namespace(&self) -> &str {
        self.meta().namespace()
    }

    /// This object as git declares it: no status and none of the metadata the cluster sets
    /// (uid, resourceVersion, generation, timestamps, owners). Two objects that differ only
    /// there are the same desired state.
    pub fn declared(&self) -> Object {
        let mut o = self.clone();
        {
            let meta = o.meta_mut();
            meta.uid = None;
            meta.resource_version = None;
            meta.generation = None;
            meta.creation_timestamp = None;
            meta.deletion_timestamp = None;
            meta.owner_references = None;
        }
        match &mut o {
            Object::Pod(x) => x.status = None,
            Object::Service(x) => x.status = None,
            Object::ReplicationController(x) => x.status = None,
            Object::Namespace(x) => x.status = None,
            Object::Node(x) => x.status = None,
            Object::Deployment(x) => x.status = None,
            Object::ReplicaSet(x) => x.status = None,
            Object::DaemonSet(x) => x.status = None,
            Object::Job(x) => x.status = None,
            Object::ConfigMap(_) | Object::Secret(_) | Object::Endpoints(_) | Object::Event(_) => {}
        }
        o
    }

    /// True when `self` and `other` declare the same desired state: everything but status,
    /// cluster-set metadata, and the labels and annotations named (keel's own markers).
    /// Compares in place, without copies (a resync compares thousands of objects).
    pub fn same_declared(
        &self,
        other: &Object,
        ignore_labels: &[&str],
        ignore_annotations: &[&str],
    ) -> bool {
        fn same_map(
            a: &Option<std::collections::BTreeMap<String, String>>,
            b: &Option<std::collections::BTreeMap<String, String>>,
            ignore: &[&str],
        ) -> bool {
            let kept = |m: &Option<std::collections::BTreeMap<String, String>>| {
                m.iter()
                    .flatten()
                    .filter(|(k, _)| !ignore.contains(&k.as_str()))
                    .count()
            };
            let (ma, mb) = (a.as_ref(), b.as_ref());
            kept(a) == kept(b)
                && ma
                    .into_iter()
                    .flatten()
                    .filter(|(k, _)| !ignore.contains(&k.as_str()))
                    .all(|(k, v)| mb.and_then(|m| m.get(k)) == Some(v))
        }
        let (ma, mb) = (self.meta(), other.meta());
        if ma.name != mb.name
            || ma.namespace != mb.namespace
            || !same_map(&ma.labels, &mb.labels, ignore_labels)
            || !same_map(&ma.annotations, &mb.annotations, ignore_annotations)
        {
            return false;
        }
        match (self, other) {
            (Object::Pod(a), Object::Pod(b)) => a.spec == b.spec,
            (Object::Service(a), Object::Service(b)) => a.spec == b.spec,
            (Object::ReplicationController(a), Object::ReplicationController(b)) => {
                a.spec == b.spec
            }
            (Object::ConfigMap(a), Object::ConfigMap(b)) => {
                (&a.data, &a.binary_data, a.immutable) == (&b.data, &b.binary_data, b.immutable)
            }
            (Object::Secret(a), Object::Secret(b)) => {
                (&a.type_, &a.data, &a.string_data, a.immutable)
                    == (&b.type_, &b.data, &b.string_data, b.immutable)
            }
            (Object::Namespace(_), Object::Namespace(_)) => true,
            (Object::Node(a), Object::Node(b)) => a.spec == b.spec,
            (Object::Endpoints(a), Object::Endpoints(b)) => a.subsets == b.subsets,
            (Object::Event(_), Object::Event(_)) => self.declared() == other.declared(),
            (Object::Deployment(a), Object::Deployment(b)) => a.spec == b.spec,
            (Object::ReplicaSet(a), Object::ReplicaSet(b)) => a.spec == b.spec,
            (Object::DaemonSet(a), Object::DaemonSet(b)) => a.spec == b.spec,
            (Object::Job(a), Object::Job(b)) => a.spec == b.spec,
            _ => false,
        }
    }

    /// Takes `old`'s status when this object has none: a write from git declares intent and
    /// must not erase what controllers observed (as Kubernetes' status subresource).
    pub fn keep_status_from(&mut self, old: &Object) {
        match (self, old) {
            (Object::Pod(n), Object::Pod(o)) if n.status.is_none() => {
                n.status.clone_from(&o.status)
            }
            (Object::Service(n), Object::Service(o)) if n.status.is_none() => {
                n.status.clone_from(&o.status)
            }
            (Object::ReplicationController(n), Object::ReplicationController(o))
                if n.status.is_none() =>
            {
                n.status.clone_from(&o.status)
            }
            (Object::Namespace(n), Object::Namespace(o)) if n.status.is_none() => {
                n.status.clone_from(&o.status)
            }
            (Object::Node(n), Object::Node(o)) if n.status.is_none() => {
                n.status.clone_from(&o.status)
            }
            (Object::Deployment(n), Object::Deployment(o)) if n.status.is_none() => {
                n.status.clone_from(&o.status)
            }
            (Object::ReplicaSet(n), Object::ReplicaSet(o)) if n.status.is_none() => {
                n.status.clone_from(&o.status)
            }
            (Object::DaemonSet(n), Object::DaemonSet(o)) if n.status.is_none() => {
                n.status.clone_from(&o.status)
            }
            (Object::Job(n), Object::Job(o)) if n.status.is_none() => {
                n.status.clone_from(&o.status)
            }
            _ => {}
        }
    }

    /// Sets `apiVersion` and `kind` to this variant's.
    pub fn set_type_meta(&mut self) {
        let info = self.info();
        each_kind!(self, o => {
            o.api_version = info.api_version.to_string();
            o.kind = info.kind.to_string();
        })
    }

    /// Decodes a located YAML tree of a known kind (see [`kind_info`]).
    pub fn decode(info: &KindInfo, node: &yaml::Node) -> (Option<Object>, Vec<Issue>) {
        fn wrap<T: serde::de::DeserializeOwned>(
            node: &yaml::Node,
            f: fn(T) -> Object,
        ) -> (Option<Object>, Vec<Issue>) {
            let (value, issues) = decode::<T>(node);
            (value.map(f), issues)
        }
        match info.kind {
            "Pod" => wrap(node, Object::Pod),
            "Service" => wrap(node, Object::Service),
            "ReplicationController" => wrap(node, Object::ReplicationController),
            "ConfigMap" => wrap(node, Object::ConfigMap),
            "Secret" => wrap(node, Object::Secret),
            "Namespace" => wrap(node, Object::Namespace),
            "Node" => wrap(node, Object::Node),
            "Endpoints" => wrap(node, Object::Endpoints),
            "Event" => wrap(node, Object::Event),
            "Deployment" => wrap(node, Object::Deployment),
            "ReplicaSet" => wrap(node, Object::ReplicaSet),
            "DaemonSet" => wrap(node, Object::DaemonSet),
            _ => wrap(node, Object::Job),
        }
    }

    /// Reads an object back from JSON (the store's format), choosing the variant by `kind`.
    pub fn from_json(value: serde_json::Value) -> Result<Object, ObjectError> {
        let kind = value
            .get("kind")
            .and_then(|k| k.as_str())
            .ok_or(ObjectError::NoKind)?
            .to_string();
        parse_as!(&kind, serde_json::from_value(value))
    }

    /// Reads an object of a known kind straight from JSON bytes (the store's hot path: no
    /// intermediate `Value`).
    pub fn from_json_slice(kind: &str, bytes: &[u8]) -> Result<Object, ObjectError> {
        parse_as!(kind, serde_json::from_slice(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_by_name_plural_and_short_name() {
        assert_eq!(lookup_kind("deploy").map(|k| k.kind), Some("Deployment"));
        assert_eq!(lookup_kind("Pods").map(|k| k.kind), Some("Pod"));
        assert_eq!(lookup_kind("ep").map(|k| k.kind), Some("Endpoints"));
        assert_eq!(
            lookup_kind("rc").map(|k| k.kind),
            Some("ReplicationController")
        );
        assert!(lookup_kind("ingress").is_none());
        for info in KINDS {
            let mut obj = Object::from_json(serde_json::json!({"kind": info.kind})).unwrap();
            assert_eq!(obj.kind(), info.kind);
            obj.set_type_meta();
            let json = serde_json::to_value(&obj).unwrap();
            assert_eq!(json["apiVersion"], info.api_version);
        }
    }
}
