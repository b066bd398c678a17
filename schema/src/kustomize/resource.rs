//! One object as kustomize carries it through a build: its tree, where it came from, the
//! names it had before (so references to them can follow a rename), and whether it still
//! needs its content-hash suffix.

use std::sync::Arc;

use super::node::{self, text_at};
use crate::yaml::{Mark, Node};

/// Who an object is: group, kind, namespace and name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Id {
    pub group: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

#[derive(Debug, Clone)]
pub struct Res {
    pub node: Node,
    /// The file that declared the object (a kustomization for a generated one).
    pub file: Arc<str>,
    /// Who the object was before each rename and namespace change, oldest first.
    pub history: Vec<Id>,
    /// Made by a generator: how it combines with a same-named one, and whether its name
    /// gets the hash of its content.
    pub generated: Option<Generated>,
    /// The `namePrefix`es and `nameSuffix`es its name was given, innermost first.
    pub prefixes: Vec<String>,
    pub suffixes: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Generated {
    pub hashed: bool,
}

impl Res {
    pub fn new(node: Node, file: Arc<str>) -> Self {
        Self {
            node,
            file,
            history: Vec::new(),
            generated: None,
            prefixes: Vec::new(),
            suffixes: Vec::new(),
        }
    }

    pub fn mark(&self) -> Mark {
        self.node.mark
    }

    pub fn api_version(&self) -> &str {
        text_at(&self.node, &["apiVersion"]).unwrap_or("")
    }

    pub fn group(&self) -> &str {
        crate::kinds::api_group(self.api_version())
    }

    pub fn version(&self) -> &str {
        let v = self.api_version();
        v.rsplit_once('/').map_or(v, |(_, v)| v)
    }

    pub fn kind(&self) -> &str {
        text_at(&self.node, &["kind"]).unwrap_or("")
    }

    pub fn name(&self) -> &str {
        text_at(&self.node, &["metadata", "name"]).unwrap_or("")
    }

    /// The namespace as written (empty when none is).
    pub fn namespace(&self) -> &str {
        text_at(&self.node, &["metadata", "namespace"]).unwrap_or("")
    }

    pub fn id(&self) -> Id {
        Id {
            group: self.group().to_string(),
            kind: self.kind().to_string(),
            namespace: self.namespace().to_string(),
            name: self.name().to_string(),
        }
    }

    /// The object's first identity (before any rename), for matching patches and
    /// generators that name the object as its own file did.
    pub fn original(&self) -> Id {
        self.history.first().cloned().unwrap_or_else(|| self.id())
    }

    /// Whether `name` is, or was, this object's name.
    pub fn is_or_was_named(&self, name: &str) -> bool {
        self.name() == name || self.history.iter().any(|id| id.name == name)
    }

    /// Whether the object is, or as its file wrote it was, in `namespace` (none and
    /// `default` being the same): how a patch or generator without a target finds it.
    pub fn is_in(&self, namespace: &str) -> bool {
        let norm = |ns: &str| {
            if ns.is_empty() {
                "default".to_string()
            } else {
                ns.to_string()
            }
        };
        let want = norm(namespace);
        norm(self.namespace()) == want || norm(&self.original().namespace) == want
    }

    /// Renames the object, keeping who it was.
    pub fn rename(&mut self, name: &str) {
        if name == self.name() {
            return;
        }
        self.history.push(self.id());
        let mark = self.mark();
        if let Some(meta) = node::ensure_map(&mut self.node, "metadata") {
            node::set(meta, "name", node::string(name, mark));
        }
    }

    /// Moves the object to `namespace`, keeping who it was.
    pub fn set_namespace(&mut self, namespace: &str) {
        if namespace == self.namespace() {
            return;
        }
        self.history.push(self.id());
        let mark = self.mark();
        if let Some(meta) = node::ensure_map(&mut self.node, "metadata") {
            node::set(meta, "namespace", node::string(namespace, mark));
        }
    }

    /// The map at `metadata.KEY` as (key, value) text pairs.
    pub fn meta_map(&self, key: &str) -> Vec<(String, String)> {
        let Some(crate::yaml::Value::Map(entries)) = self
            .node
            .get("metadata")
            .and_then(|m| m.get(key))
            .map(|n| &n.value)
        else {
            return Vec::new();
        };
        entries
            .iter()
            .filter_map(|(k, v)| Some((k.as_str()?.to_string(), v.as_str()?.to_string())))
            .collect()
    }

    /// Whether the object's kind is one Kubernetes builds in (in its own group), which
    /// kustomize has a schema for.
    pub fn is_builtin(&self) -> bool {
        crate::kinds::Kind::from_name(self.kind()).is_some_and(|k| k.info().group() == self.group())
            || BUILTIN_ELSEWHERE.contains(&self.kind())
    }

    /// Whether the object lives in a namespace (kinds kustomize knows as cluster-wide do not;
    /// any other kind, custom ones included, does).
    pub fn is_namespaced(&self) -> bool {
        is_namespaced(self.kind())
    }
}

/// Built-in kinds keel itself does not model, whose lists still merge by Kubernetes' keys.
const BUILTIN_ELSEWHERE: [&str; 5] = [
    "HorizontalPodAutoscaler",
    "PodTemplate",
    "Endpoints",
    "EndpointSlice",
    "ValidatingWebhookConfiguration",
];

/// Whether objects of `kind` live in a namespace, as kustomize knows kinds.
pub fn is_namespaced(kind: &str) -> bool {
    !CLUSTER_SCOPED.contains(&kind)
}

/// Kinds without a namespace, as kustomize's built-in list has them.
const CLUSTER_SCOPED: [&str; 20] = [
    "APIService",
    "CertificateSigningRequest",
    "ClusterRole",
    "ClusterRoleBinding",
    "ComponentStatus",
    "CSIDriver",
    "CSINode",
    "CustomResourceDefinition",
    "IngressClass",
    "MutatingWebhookConfiguration",
    "Namespace",
    "Node",
    "PersistentVolume",
    "PodSecurityPolicy",
    "PriorityClass",
    "RuntimeClass",
    "StorageClass",
    "ValidatingAdmissionPolicy",
    "ValidatingWebhookConfiguration",
    "VolumeAttachment",
];
