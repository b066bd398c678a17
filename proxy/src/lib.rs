//! The per-node service proxy: ClusterIP and NodePort listeners balancing over ready endpoints.
//!
//! Nothing is here yet: the proxy is built in step F (issue 7). The crate exists so the
//! workspace has its final shape and the dependency direction `schema ← proxy ← nodeagent`
//! is fixed from the start.
#![forbid(unsafe_code)]
