//! keel's node agent: runs the pods the control plane assigns to this node on the node's
//! container runtime, and reports their status.
//!
//! # Layout
//! - [`agent`]: puts the pieces together ([`agent::start`]).
//! - [`grpc`]: the `NodeAgent` server and the control-plane client.
//! - [`desired`]: a `Sync` message decoded and checked.
//! - [`network`]: the pod network: CNI attachments, the overlay between nodes, masquerade.
//! - [`supervisor`]: one worker per wanted pod; adoption of containers after a restart.
//! - [`pod`]: a pod's life: states, worker, container specs, volumes, probes, backoff.
//! - [`runtime`]: the runtime trait, Docker (bollard) and hollow (simulated) implementations.
//! - [`status`]: the latest pod statuses, for the status stream.
//! - [`capacity`]: CPU and memory of the machine.
#![forbid(unsafe_code)]

pub mod agent;
pub mod capacity;
pub mod desired;
pub mod dns;
pub mod grpc;
pub mod network;
pub mod pod;
pub mod runtime;
pub mod status;
pub mod supervisor;
pub mod usage;
