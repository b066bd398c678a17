//! `keel.yaml`: settings a repository gives keel about itself, at its root (or under `--path`).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The name of the repo config file; it is not a manifest.
pub const REPO_CONFIG_FILE: &str = "keel.yaml";

#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct RepoConfig {
    /// Allow a revision that would delete every applied object (default false: such a
    /// revision is refused, since an empty tree is far more often a mistake than a wish).
    pub allow_empty: Option<bool>,
    /// Privileges pods may use, by namespace (none anywhere by default), as
    /// `podSecurity: {monitoring: [hostNetwork, hostPID]}`. A pod using one its namespace is
    /// not allowed is refused with the revision.
    pub pod_security: Option<std::collections::BTreeMap<String, Vec<PodPrivilege>>>,
    /// Kinds keel neither builds in nor finds a CustomResourceDefinition for in the
    /// revision, as `GROUP/KIND` (`monitoring.coreos.com/ServiceMonitor`). Their objects are
    /// stored as written, unchecked beyond their metadata, in the default namespace when
    /// they name none; the API does not serve them (it knows no plural for them). Any other
    /// unknown kind is an error.
    pub accept_unknown_kinds: Option<Vec<String>>,
}

/// A privilege a pod can ask for that gives it power over the node.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
pub enum PodPrivilege {
    /// `securityContext.privileged: true`: every device and capability of the node.
    #[serde(rename = "privileged")]
    Privileged,
    /// `hostNetwork: true`: the node's network namespace.
    #[serde(rename = "hostNetwork")]
    HostNetwork,
    /// `hostPID: true`: the node's process namespace.
    #[serde(rename = "hostPID")]
    HostPid,
    /// `securityContext.capabilities.add`: capabilities beyond Docker's default set.
    #[serde(rename = "capabilities")]
    Capabilities,
    /// `ports[].hostPort`: a port of the node's own addresses (Kubernetes' baseline policy
    /// forbids it, as it lets a pod take traffic meant for the node).
    #[serde(rename = "hostPort")]
    HostPort,
    /// `securityContext.sysctls` outside Kubernetes' safe set.
    #[serde(rename = "unsafeSysctls")]
    UnsafeSysctls,
    /// `seccompProfile: {type: Unconfined}`: no system call filter.
    #[serde(rename = "seccompUnconfined")]
    SeccompUnconfined,
}

impl PodPrivilege {
    pub fn name(self) -> &'static str {
        match self {
            PodPrivilege::Privileged => "privileged",
            PodPrivilege::HostNetwork => "hostNetwork",
            PodPrivilege::HostPid => "hostPID",
            PodPrivilege::Capabilities => "capabilities",
            PodPrivilege::HostPort => "hostPort",
            PodPrivilege::UnsafeSysctls => "unsafeSysctls",
            PodPrivilege::SeccompUnconfined => "seccompUnconfined",
        }
    }
}

impl RepoConfig {
    /// Whether objects of `group`'s `kind` are to be stored opaque.
    pub fn accepts_unknown(&self, group: &str, kind: &str) -> bool {
        self.accept_unknown_kinds
            .iter()
            .flatten()
            .any(|entry| entry.split_once('/') == Some((group, kind)))
    }

    pub fn allow_empty(&self) -> bool {
        self.allow_empty.unwrap_or(false)
    }

    /// Whether pods in `namespace` may use `privilege`.
    pub fn allows(&self, namespace: &str, privilege: PodPrivilege) -> bool {
        self.pod_security
            .as_ref()
            .and_then(|p| p.get(namespace))
            .is_some_and(|list| list.contains(&privilege))
    }
}
