//! `kubectl exec`, `attach` and `port-forward`: WebSocket sessions with Kubernetes' channel
//! protocol (`keel_api::channels`), each bridged to a bidirectional gRPC call on the agent
//! of the pod's node, which runs the process or makes the connection.
//!
//! Each needs the admin token: a shell in a container can do anything the container can.
//! Plain SPDY (kubectl before 1.30) is not served; the refusal says so.
//!
//! - [`upgrade`]: the WebSocket upgrade and its subprotocol, or a `Status` saying why not;
//! - [`exec`]: exec and attach; [`port_forward`]: port-forward with the channel protocol
//!   (kube-rs, `keel port-forward`), or [`tunnel`]: with SPDY streams inside the WebSocket
//!   (kubectl), which [`spdy`] reads and writes.

pub mod exec;
pub mod port_forward;
pub mod spdy;
pub mod tunnel;
pub mod upgrade;
