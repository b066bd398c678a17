//! The error bodies the API answers with: a Kubernetes `Status` on the Kubernetes paths, and
//! `{"error": "…"}` on keel's own.

use serde::{Deserialize, Serialize};

/// A Kubernetes `Status` object, as the API's errors are.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub kind: String,
    #[serde(rename = "apiVersion")]
    pub api_version: String,
    #[serde(default)]
    pub metadata: serde_json::Map<String, serde_json::Value>,
    pub status: String,
    pub message: String,
    pub reason: String,
    pub code: u16,
}

impl Status {
    /// A failure with Kubernetes' reason (`NotFound`, `BadRequest`, `Unauthorized`, …).
    pub fn failure(code: u16, reason: &str, message: impl Into<String>) -> Status {
        Status {
            kind: "Status".into(),
            api_version: "v1".into(),
            metadata: Default::default(),
            status: "Failure".into(),
            message: message.into(),
            reason: reason.into(),
            code,
        }
    }
}

/// Any error body the server sends: what the client reports.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ErrorBody {
    pub reason: Option<String>,
    pub message: Option<String>,
    pub error: Option<String>,
}

impl ErrorBody {
    /// The server's message, or `fallback` when the body had none.
    pub fn message_or(&self, fallback: &str) -> String {
        self.message
            .clone()
            .or_else(|| self.error.clone())
            .unwrap_or_else(|| fallback.to_string())
    }
}
