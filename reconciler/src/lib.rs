//! keel's control plane and the `keel` command.
//!
//! # Layout
//! - [`cli`]: the `keel` command's verbs, one file each (`validate`, `schema`).
//! - [`logging`]: tracing setup shared by every verb (`RUST_LOG`, `--log-format`).
//! - [`store`]: all live state, on redb (embedded) or etcd.
//! - [`source`]: manifests read from the committed tree of a git revision.
//! - [`plan`]: semantic diffs between revisions, with summaries, for `keel plan`.
//! - [`apply`]: whole-revision apply; [`server`]: `keel server` (sync loop, HTTP API).
//! - [`scheduler`]: places pending pods on nodes (filter, score), pure and in memory.
//! - [`nodes`]: agents' registration and status reports (`ControlPlane` gRPC), node readiness.
//! - [`controllers`]: level-triggered controllers over a shared cache (ReplicaSet, Deployment,
//!   Endpoints, garbage collection, eviction, scheduling); [`nodes::sync`] pushes pods to agents.
#![forbid(unsafe_code)]

pub mod apply;
pub mod auth;
pub mod cli;
pub mod controllers;
pub mod events;
pub mod logging;
pub mod nodes;
pub mod plan;
pub mod server;
pub mod source;
pub mod up;
