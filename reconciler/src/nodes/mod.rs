//! Nodes: agents register here and report over a status stream; the registry keeps each
//! node's `Node` object in the store and its pods' statuses, and marks a node whose heartbeats
//! stopped as not ready.
//!
//! # Layout
//! - [`registry`]: [`NodeRegistry`] and registration; [`pod_cidrs`]: the pod network's
//!   plan, one range per node; [`lifecycle`]: heartbeats and
//!   readiness (Ready → Unknown after `--node-grace` without a heartbeat, back on the next
//!   one); [`reports`]: pod statuses and events from agents; [`readiness`]: the Ready
//!   condition.
//! - [`grpc`]: the `ControlPlane` gRPC service agents call, and `serve`, the one place its
//!   server is built (mutual TLS: callers are who their certificates say); [`dial`]: the one
//!   place channels to agents are built.
//! - [`sync`]: node sync, each node's desired set sent to its agent; [`handoff`]: where a
//!   set waits for an agent that asks for it.
//!
//! Heartbeats are kept in memory; the store is written only when something changes (a
//! registration, a readiness flip, a pod's status), so a thousand nodes beating every second
//! cost the store nothing.

pub mod dial;
pub mod grpc;
pub mod handoff;
pub mod lifecycle;
pub mod pod_cidrs;
pub mod readiness;
pub mod registry;
pub mod reports;
pub mod sync;
pub mod usage;

pub use pod_cidrs::PodNetwork;
pub use registry::{NodeRegistry, RegisterError, Registered};

/// Where the control plane reaches a node's agent (host:port), on its Node object.
pub const AGENT_ADDRESS: &str = "keel.dev/agent-address";
/// When the certificate the node's agent registered with expires (RFC 3339); absent when
/// the cluster runs `--insecure`.
pub const CERTIFICATE_EXPIRES: &str = "keel.dev/certificate-expires";

/// How many times a write that lost a race (a conflict) is tried again.
const CONFLICT_RETRIES: usize = 5;

/// The most nodes one control plane accepts (a join token, or `--insecure`, lets a caller
/// register nodes; this bounds what that costs).
pub const MAX_NODES: usize = 10_000;
