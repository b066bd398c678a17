//! A pod's life on the node: its states ([`state`]), the worker that drives them
//! ([`worker`]), and what that worker needs: container specs ([`spec`]), volumes
//! ([`volumes`]) and their pinned mount sources ([`pinned`]), probes ([`probe`]) and restart backoff ([`backoff`]).

pub mod backoff;
pub mod fs_group;
pub mod grpc_probe;
pub mod local_volumes;
pub mod pinned;
pub mod probe;
pub mod pull_secrets;
pub mod spec;
pub mod state;
pub mod termination;
pub mod volumes;
pub mod worker;
