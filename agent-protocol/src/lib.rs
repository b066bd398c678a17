//! The gRPC protocol between keel's control plane and its node agents, package
//! `keel.agent.v1` (`proto/agent.proto`), compiled by tonic-prost-build.
//!
//! - `NodeAgent` is served by every `keel-agent`: the control plane pushes each node's full
//!   desired set (`Sync`), reads logs (`Logs`) and usage samples (`Metrics`), and opens
//!   interactive sessions (`Exec`) and connections into pods (`PortForward`), each a
//!   bidirectional stream.
//! - `ControlPlane` is served by the control plane: agents join, register, renew their
//!   certificates and stream their status reports.
//!
//! Objects travel as the JSON of `keel-schema`'s types, not as a second protobuf model, so
//! this crate depends on nothing of keel's and crates that do not speak gRPC (the schema, the
//! proxy) build without tonic or protoc.
#![forbid(unsafe_code)]
#![allow(clippy::all, clippy::pedantic)]

pub mod codec;

use std::time::Duration;

tonic::include_proto!("keel.agent.v1");

/// The shortest heartbeat interval (`RegisterResponse.heartbeat_interval_ms`): the control
/// plane asks for none shorter, and an agent told a shorter one beats this often instead.
pub const HEARTBEAT_INTERVAL_MIN: Duration = Duration::from_millis(250);
/// The longest heartbeat interval, held to in the same way.
pub const HEARTBEAT_INTERVAL_MAX: Duration = Duration::from_secs(10);
/// The longest an agent waits between attempts to reach a control plane it lost (its
/// backoff doubles up to this). A control plane that starts gives the nodes it knows this
/// long, beyond their grace, to come back before their silence counts.
pub const RECONNECT_BACKOFF_MAX: Duration = Duration::from_secs(10);

// NodeDesired carries Secrets: its Debug (the build skips the derived one) shows counts only.
impl std::fmt::Debug for NodeDesired {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeDesired")
            .field("node_name", &self.node_name)
            .field("generation", &self.generation)
            .field("pods", &self.pods.len())
            .field("config_maps", &self.config_maps.len())
            .field("secrets", &self.secrets.len())
            .field("services", &self.services.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn debug_output_never_holds_secret_values() {
        let desired = super::NodeDesired {
            secrets: vec![b"{\"data\":{\"password\":\"aHVudGVy\"}}".to_vec()],
            ..Default::default()
        };
        let shown = format!("{desired:?}");
        assert!(!shown.contains("aHVudGVy"), "{shown}");
        assert!(shown.contains("secrets: 1"), "{shown}");
    }
}
