//! `POST /api/keel/ui-login` (`keel ui`): a one-time path that signs a browser in to the
//! web UI as the caller's token.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UiLogin {
    /// `/ui/login?code=…`, to append to the server's address.
    pub path: String,
    /// How long the code waits to be used; it works once.
    pub expires_in_seconds: u64,
}
