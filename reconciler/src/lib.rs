//! keel's control plane as a library, with one entry point: [`ControlPlane::start`], its
//! handle, and [`ControlPlane::shutdown`].
//!
//! # Layout
//! - [`control_plane`]: starting and stopping every part; [`tasks`]: where they run;
//!   [`leader`]: which of several servers on one etcd runs the leader's parts.
//! - [`source`]: manifests read from the committed tree of a git revision.
//! - [`sync`]: the git sync loop; [`apply`]: whole-revision apply (with Service address
//!   allocation); [`plan`]: semantic diffs between revisions, for `keel plan`.
//! - [`cache`]: the shared view of the store every controller reads.
//! - [`controllers`]: level-triggered controllers (ReplicaSet, Deployment, DaemonSet, Job,
//!   Endpoints, garbage collection, eviction, scheduling) on one controller runtime.
//! - [`nodes`]: agents' registration and status reports (`ControlPlane` gRPC), node
//!   readiness, and node sync (each node's desired set pushed to its agent).
//! - [`events`]: the event recorder; [`metrics`]: `/metrics`.
//! - [`http`]: the HTTP API; [`auth`]: the cluster PKI, join tokens, the API's token.
#![forbid(unsafe_code)]

pub mod apply;
pub mod auth;
pub mod cache;
pub mod control_plane;
pub mod controllers;
pub mod events;
pub mod http;
pub mod leader;
pub mod metrics;
pub mod nodes;
pub mod notify;
pub mod plan;
pub mod source;
pub mod sync;
pub mod tasks;

pub use control_plane::{Config, ControlPlane};
