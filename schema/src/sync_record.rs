//! What keel records of each revision it tried to apply (`keel history`): keel's own record,
//! beside the Kubernetes types, kept by the store and served by the API.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// How an attempt at a revision ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyncResult {
    /// Its objects were written.
    Applied,
    /// The store already matched it.
    Unchanged,
    /// It could not be read or is invalid; nothing was applied.
    Failed,
    /// It would delete every applied object and the repository does not allow that.
    Refused,
}

impl SyncResult {
    pub const fn as_str(self) -> &'static str {
        match self {
            SyncResult::Applied => "applied",
            SyncResult::Unchanged => "unchanged",
            SyncResult::Failed => "failed",
            SyncResult::Refused => "refused",
        }
    }

    /// Applied or unchanged: the revision runs.
    pub const fn is_success(self) -> bool {
        matches!(self, SyncResult::Applied | SyncResult::Unchanged)
    }
}

impl std::fmt::Display for SyncResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One revision keel attempted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncRecord {
    pub commit: String,
    pub time: DateTime<Utc>,
    pub result: SyncResult,
    pub error: Option<String>,
    pub author: Option<String>,
    pub message: Option<String>,
    /// The app of the repository (keel.yaml `apps:`) the record is about; absent for the
    /// repository's own files, and for a revision that failed whole (keel.yaml itself, or
    /// a tree keel cannot read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_keep_their_stored_spelling() {
        for (result, text) in [
            (SyncResult::Applied, "applied"),
            (SyncResult::Unchanged, "unchanged"),
            (SyncResult::Failed, "failed"),
            (SyncResult::Refused, "refused"),
        ] {
            assert_eq!(serde_json::to_value(result).unwrap(), text);
            assert_eq!(result.to_string(), text);
        }
        assert!(serde_json::from_value::<SyncResult>(serde_json::json!("pending")).is_err());
    }
}
