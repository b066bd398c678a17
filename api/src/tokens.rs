//! `/api/keel/tokens` (`keel token create|list|delete`): join tokens new nodes join with,
//! and view tokens that read the API.

use serde::{Deserialize, Serialize};

/// `POST`: make a token.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// How long it lives, as `keel token create --ttl` takes it (`24h`, `30m`).
    pub ttl: Option<String>,
    pub description: Option<String>,
    /// `join` (the default) or `view`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}

/// The made token: the only time its secret is shown.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreatedToken {
    pub token: String,
    pub id: String,
    #[serde(default = "join")]
    pub role: String,
    /// RFC 3339.
    pub expires: String,
}

/// `GET`: the live tokens, without secrets.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TokenList {
    pub items: Vec<TokenInfo>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenInfo {
    pub id: String,
    #[serde(default = "join")]
    pub role: String,
    /// RFC 3339.
    pub created: String,
    pub expires: String,
    pub description: Option<String>,
}

/// The role of a token a server that predates roles reports.
fn join() -> String {
    "join".into()
}
