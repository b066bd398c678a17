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
    /// Where keel reports what it does with each revision: webhooks, and commit statuses on
    /// GitHub or GitLab. Secrets (HMAC keys, tokens) are named, not written: each is a file
    /// in the server's `--notify-secrets-dir`.
    pub notify: Option<Vec<NotifyTarget>>,
    /// Several apps in one repository, each validated and applied on its own: a broken app
    /// holds back only itself, and a commit that touches nothing an app reads does not
    /// render that app again. Files outside every app's path form the repository's own
    /// app (`keel status` shows it as `(root)`), as a repository without `apps:` is whole.
    pub apps: Option<Vec<AppConfig>>,
}

/// One app of a repository (`apps:` in keel.yaml).
#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct AppConfig {
    /// How `keel status`, `history` and `plan` name the app, and the value of the label
    /// `keel.dev/app` on what it applies (a DNS label: `web`, `billing-api`).
    pub name: String,
    /// The folder holding its manifests (and kustomizations), relative to keel.yaml's
    /// folder; apps' folders do not nest.
    pub path: String,
    /// The namespace of its namespaced objects that name none (default `default`).
    pub namespace: Option<String>,
    /// Whether objects it no longer declares are deleted (default true; false leaves them
    /// running, and `keel plan` says so).
    pub prune: Option<bool>,
    /// As the top-level `allowEmpty`, for this app alone (default: the top-level value).
    pub allow_empty: Option<bool>,
}

/// One place notifications go: exactly one of `webhook`, `github` and `gitlab`.
#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct NotifyTarget {
    /// How `keel status` and `/metrics` name the target (default: its kind and position,
    /// `webhook-0`).
    pub name: Option<String>,
    /// The events to send (default: all of them).
    pub events: Option<Vec<NotifyEvent>>,
    /// POST a JSON event, signed with HMAC-SHA256 (`X-Keel-Signature: sha256=…`).
    pub webhook: Option<WebhookTarget>,
    /// Set commit statuses through GitHub's API (or a compatible one).
    pub github: Option<CommitStatusTarget>,
    /// Set commit statuses through GitLab's API.
    pub gitlab: Option<CommitStatusTarget>,
}

#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct WebhookTarget {
    /// `http://` or `https://`.
    pub url: String,
    /// The file in `--notify-secrets-dir` holding the HMAC key; without it, events go
    /// unsigned.
    pub secret: Option<String>,
}

#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct CommitStatusTarget {
    /// The API's base URL (default `https://api.github.com`, or `https://gitlab.com`).
    pub url: Option<String>,
    /// `OWNER/NAME` on GitHub; the project's path or numeric ID on GitLab.
    pub repository: String,
    /// The file in `--notify-secrets-dir` holding the API token.
    pub token: String,
    /// The status's name (GitHub's context, GitLab's name; default `keel`).
    pub context: Option<String>,
}

/// What happened, as a notification names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum NotifyEvent {
    /// A new revision is being applied.
    Started,
    /// It was applied.
    Applied,
    /// It was not applied (invalid, refused or unreadable).
    Failed,
    /// What it declares is Healthy (after `applied`, or again after `degraded`).
    Healthy,
    /// Something it declares stopped being Healthy.
    Degraded,
}

impl NotifyEvent {
    pub fn as_str(self) -> &'static str {
        match self {
            NotifyEvent::Started => "started",
            NotifyEvent::Applied => "applied",
            NotifyEvent::Failed => "failed",
            NotifyEvent::Healthy => "healthy",
            NotifyEvent::Degraded => "degraded",
        }
    }
}

impl NotifyTarget {
    /// The target's name: given, or its kind and position.
    pub fn name(&self, index: usize) -> String {
        self.name.clone().unwrap_or_else(|| {
            let kind = if self.webhook.is_some() {
                "webhook"
            } else if self.github.is_some() {
                "github"
            } else {
                "gitlab"
            };
            format!("{kind}-{index}")
        })
    }

    pub fn wants(&self, event: NotifyEvent) -> bool {
        self.events.as_ref().is_none_or(|e| e.contains(&event))
    }
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
