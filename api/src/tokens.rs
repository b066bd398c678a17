//! `/api/keel/tokens` (`keel token create|list`): bootstrap tokens new nodes join with.

use serde::{Deserialize, Serialize};

/// `POST`: make a token.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// How long it lives, as `keel token create --ttl` takes it (`24h`, `30m`).
    pub ttl: Option<String>,
    pub description: Option<String>,
}

/// The made token: the only time its secret is shown.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreatedToken {
    pub token: String,
    pub id: String,
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
    /// RFC 3339.
    pub created: String,
    pub expires: String,
    pub description: Option<String>,
}
