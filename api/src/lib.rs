//! keel's HTTP API as data, shared by `keel server` (which serves it) and its clients.
//!
//! # Layout
//! - [`paths`]: where each kind's objects are served (Kubernetes' paths).
//! - [`status`]: `/api/keel/status`, what the sync loop reports.
//! - [`plan`]: `POST /api/keel/plan`, a revision planned against what the server applied.
//! - [`tokens`]: `/api/keel/tokens`, join tokens.
//! - [`ui`]: `/api/keel/ui-login`, the one-time sign-in link of the web UI (`keel ui`).
//! - [`errors`]: the error bodies (Kubernetes `Status`, or `{"error": …}`).
//! - [`metrics`]: `metrics.k8s.io` (`keel top`).
//! - [`channels`]: the channel protocol of exec, attach and port-forward over WebSocket.
//! - [`lists`]: the list shape every list endpoint answers with.
//! - [`columns`]: kubectl's columns for each kind (`keel get`, and the server's Tables).
//! - [`health`]: an object's health as Argo CD shows it (`keel status`, and the server's
//!   notifications).
//! - `client` (feature `client`): the typed client; verbs never handle raw JSON.
//!
//! Objects travel as `keel-schema`'s types; Secret values never leave the server (each is
//! replaced by [`REDACTED`]).
#![forbid(unsafe_code)]

pub mod channels;
pub mod columns;
pub mod errors;
pub mod health;
pub mod lists;
pub mod metrics;
pub mod paths;
pub mod plan;
pub mod status;
pub mod tokens;
pub mod ui;

#[cfg(feature = "client")]
pub mod client;

/// What the API shows in place of each Secret value.
pub const REDACTED: &str = "<redacted>";
/// [`REDACTED`] as a Secret's `data` carries it over the API: base64, so that clients
/// decoding `data` (kubectl describe, client-go, kube-rs) read the marker, not an error.
pub const REDACTED_DATA: &str = "PHJlZGFjdGVkPg==";

/// Shows a Secret's redacted `data` values as [`REDACTED`] again (the CLI's view).
pub fn show_redacted(object: &mut keel_schema::Object) {
    if let keel_schema::Object::Secret(secret) = object {
        for value in secret.data.iter_mut().flat_map(|d| d.0.values_mut()) {
            if value == REDACTED_DATA {
                *value = REDACTED.to_string();
            }
        }
    }
}

/// What a plan shows in place of a Secret value that changed.
pub const REDACTED_CHANGED: &str = "<redacted, changed>";

/// The address the CLI talks to by default (`keel server --listen`'s default).
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:7400";
