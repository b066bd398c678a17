//! The agent's two gRPC roles: serving `NodeAgent` to the control plane ([`server`]) and
//! calling the control plane's `ControlPlane` service ([`client`]), both over mutual TLS
//! with the node's certificate ([`identity`]).

pub mod client;
pub mod identity;
pub mod server;
