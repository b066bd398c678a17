//! The per-node Service data path keel-agent runs: ClusterIP and NodePort traffic balanced
//! over each Service's ready endpoints, by the kernel (nftables, the default) or by a
//! userspace proxy (the fallback).
//!
//! # Layout
//! - [`model`]: a Service and its Endpoints reduced to frontends and ready endpoints.
//! - [`mode`]: [`ServiceProxy`], whichever of the two runs.
//! - [`nftables`]: the kernel path, one nftables table converged from the Service set.
//! - [`ingress`]: the HTTP(S) ingress proxy for Ingresses.
//! - [`proxy`]: [`Proxy`], the userspace path, which keeps the node's frontends (listening
//!   sockets) matching the full Service set.
//! - `balancer`: round-robin and ClientIP affinity; hands out an order of endpoints to try.
//! - `tcp`, `udp`: one frontend's serving loop per protocol.
//! - `splice`: TCP bytes moved socket to socket inside the kernel, and the TCP timeouts.
//! - `limits`: connection budgets per node, per frontend and per client address.
//! - `socket`: listening sockets (`SO_REUSEPORT`, and `IP_FREEBIND` for ClusterIPs).
//! - [`addresses`]: ClusterIPs as /32 host addresses, through iproute2.
//! - [`links`]: the `NAME_SERVICE_HOST`/`_PORT` environment variables for containers.
//!
//! # Guarantees (userspace path; the nftables path's are in [`nftables`])
//! - New connections use the endpoint set of the latest update; open connections are never
//!   cut by an update.
//! - A connection refused by one endpoint is retried on the next; a frontend with no ready
//!   endpoint does not listen, so clients are refused at once.
//! - No client can starve others: TCP connections past a budget (node, frontend, client
//!   address) are reset at once, while every frontend keeps accepting; silent connections
//!   are closed, and a client that closes takes its upstream connection with it.
#![forbid(unsafe_code)]

pub mod addresses;
mod balancer;
pub mod ingress;
mod limits;
pub mod links;
pub mod mode;
pub mod model;
pub mod nftables;
pub mod proxy;
mod socket;
mod splice;
mod tcp;
mod udp;

pub use addresses::HostAddresses;
pub use links::service_links;
pub use mode::ServiceProxy;
pub use model::{DEFAULT_AFFINITY_TIMEOUT, Protocol, ProxiedPort, ProxiedService};
pub use proxy::{FrontendStatus, Proxy, ProxyConfig, ProxyStatus};
