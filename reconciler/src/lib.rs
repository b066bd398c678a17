//! keel's control plane as a library.
//!
//! # Layout
//! - [`source`]: manifests read from the committed tree of a git revision.
//! - [`plan`]: semantic diffs between revisions, with summaries, for `keel plan`.
//! - [`apply`]: whole-revision apply; [`server`]: `keel server` (sync loop, HTTP API).
//! - [`nodes`]: agents' registration and status reports (`ControlPlane` gRPC), node readiness.
//! - [`controllers`]: level-triggered controllers over a shared cache (ReplicaSet, Deployment,
//!   Endpoints, garbage collection, eviction, scheduling); [`nodes::sync`] pushes pods to agents.
#![forbid(unsafe_code)]

pub mod apply;
pub mod auth;
pub mod controllers;
pub mod events;
pub mod nodes;
pub mod plan;
pub mod server;
pub mod source;
