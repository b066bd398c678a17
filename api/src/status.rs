//! `GET /api/keel/status`: what the sync loop reports.

use chrono::{DateTime, Utc};
use keel_schema::{ObjectKey, SyncResult};
use serde::{Deserialize, Serialize};

/// The repository followed, the revision applied, and how the last attempt went.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SyncStatus {
    /// `--repo`, without any credentials it holds.
    pub repo: String,
    pub branch: String,
    /// The commit whose objects are applied now.
    pub applied_commit: Option<String>,
    /// The branch's tip when it was last read (it may not be tried yet).
    #[serde(default)]
    pub tip: Option<String>,
    /// The last commit tried, and how that went.
    pub last_commit: Option<String>,
    pub last_result: Option<SyncResult>,
    pub last_error: Option<String>,
    /// Set while fetching the remote fails (the applied revision keeps running).
    pub fetch_error: Option<String>,
    pub last_sync: Option<DateTime<Utc>>,
    /// The objects the applied commit declares (for `keel status`: one declared but absent
    /// from the store is Missing).
    #[serde(default)]
    pub declared: Vec<ObjectKey>,
    /// Which server answered, and who leads (several servers on one etcd).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_plane: Option<ServerRole>,
    /// How each notification target (keel.yaml `notify:`) has fared.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notifications: Vec<NotificationStatus>,
    /// Each app of the repository (keel.yaml `apps:`), when it has any: the top-level
    /// fields then sum them up (the tip counts as applied once every app applied it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub apps: Vec<AppStatus>,
    /// Nodes cordoned (`kubectl cordon`): no new pods are scheduled to them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cordoned: Vec<String>,
    /// The last commit tried failed as a whole (it could not be read, or its keel.yaml is
    /// invalid): no app runs it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub failed_whole: bool,
}

/// One app of the repository, as the sync loop last left it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppStatus {
    /// keel.yaml's name for it; `(root)` for the files under no app's path.
    pub name: String,
    /// Its folder in the repository.
    pub path: String,
    /// The commit whose objects of this app are applied now.
    pub applied_commit: Option<String>,
    /// The last commit that changed the app (its inputs), and how applying it went.
    pub last_commit: Option<String>,
    pub last_result: Option<SyncResult>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    pub last_sync: Option<DateTime<Utc>>,
    /// The objects its applied commit declares.
    #[serde(default)]
    pub declared: Vec<ObjectKey>,
}

impl AppStatus {
    /// The app runs the last commit that changed it.
    pub fn at_tip(&self) -> bool {
        self.last_result.is_some_and(SyncResult::is_success)
            && self.applied_commit.is_some()
            && self.applied_commit == self.last_commit
    }
}

/// One notification target's deliveries.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NotificationStatus {
    /// The target's name (keel.yaml's, or its kind and position: `webhook-0`).
    pub target: String,
    pub sent: u64,
    /// Events given up on (after every retry), or never sent (a secret missing).
    pub failed: u64,
    /// Events dropped because the target's queue was full.
    #[serde(default)]
    pub dropped: u64,
    /// Failures since the last success.
    #[serde(default)]
    pub consecutive_failures: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error_at: Option<DateTime<Utc>>,
}

/// One server's place among the control planes sharing a store.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerRole {
    /// The server that answered (its advertised HTTP address).
    pub server: String,
    /// `leader`, `follower`, or `sole` (the embedded store: one server, always leading).
    pub role: String,
    /// The leading server, when one is known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader: Option<String>,
    /// The leader's term (the election key's etcd revision): it grows with every new leader.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub term: Option<i64>,
    /// Since when the leader leads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader_since: Option<DateTime<Utc>>,
    /// Times this server became or stopped being the leader.
    #[serde(default)]
    pub transitions: u64,
    /// Why the election cannot be read or run right now (etcd unreachable, say).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}
