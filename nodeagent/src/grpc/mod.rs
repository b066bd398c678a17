//! The agent's two gRPC roles: serving `NodeAgent` to the control plane ([`server`]) and
//! calling the control plane's `ControlPlane` service ([`client`]), both over mutual TLS
//! with the node's certificate ([`identity`]); [`endpoint`]: the channel to the control
//! plane; [`usage_report`]: a usage sample as the `Metrics` call answers it.

pub mod client;
pub mod endpoint;
pub mod identity;
pub mod server;
pub mod usage_report;
