//! What the web UI keeps between requests, in the server's state.

use super::declarations::Declarations;
use super::session::{OneTimeLogins, Sessions};

/// What the UI keeps between requests.
#[derive(Default)]
pub struct UiState {
    /// The signed-in browsers.
    pub sessions: Sessions,
    /// One-time sign-in codes (`keel ui`).
    pub logins: OneTimeLogins,
    /// The declarations of the commit last shown on an object page.
    pub declarations: Declarations,
}
