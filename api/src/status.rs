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
}
