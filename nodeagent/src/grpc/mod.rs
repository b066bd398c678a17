//! The agent's two gRPC roles: serving `NodeAgent` to the control plane ([`server`]) and
//! calling the control plane's `ControlPlane` service ([`client`]), both over mutual TLS
//! with the node's certificate ([`identity`]); [`endpoint`]: the channel to the control
//! plane; [`service`]: what the calls share; [`exec`] and [`port_forward`]: the
//! interactive calls; [`usage_report`]: a usage sample as the `Metrics` call answers it;
//! [`set_change`]: a `Sync`'s nodes and pods as a change to the last applied set.

pub mod client;
pub mod endpoint;
pub mod exec;
pub mod identity;
pub mod port_forward;
pub mod server;
pub mod service;
pub mod set_change;
pub mod usage_report;
