//! `POST /api/keel/plan` (`keel plan --server`): a loaded revision's objects, planned against
//! what the server has applied; and the rows every plan renders from.

use keel_schema::{Kind, Object};
use serde::{Deserialize, Serialize};

/// What a change does to an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Create,
    Update,
    Delete,
}

impl Action {
    pub fn verb(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Update => "update",
            Action::Delete => "delete",
        }
    }
}

/// One change as shown: what, where, its effect, and its (redacted) YAML diff. Plans made
/// by a server travel as rows, so every format renders from them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanRow {
    pub action: Action,
    pub kind: Kind,
    pub namespace: String,
    pub name: String,
    pub summary: String,
    pub diff: String,
    /// The app of the repository (keel.yaml `apps:`) the object belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
}

/// The request: the objects of a loaded revision. Secrets go without values (the server
/// compares them by key only, so it never confirms or denies a value).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanRequest<O = Object> {
    pub objects: Vec<O>,
    #[serde(default)]
    pub allow_empty: bool,
}

/// The answer: the changes from what the server applied.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlanReport {
    /// The applied commit (short), or `cluster` before anything was applied.
    pub from: String,
    pub changes: Vec<PlanRow>,
    #[serde(default)]
    pub notes: Vec<String>,
    /// Applying it would be refused (it would delete everything, or take another
    /// Service's address).
    #[serde(default)]
    pub refused: bool,
}
