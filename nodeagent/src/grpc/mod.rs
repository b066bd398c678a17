//! The agent's two gRPC roles: serving `NodeAgent` to the control plane ([`server`]) and
//! calling the control plane's `ControlPlane` service ([`client`]).

pub mod client;
pub mod server;
