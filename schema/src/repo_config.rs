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
}

impl RepoConfig {
    pub fn allow_empty(&self) -> bool {
        self.allow_empty.unwrap_or(false)
    }
}
