//! The reconciler's integration tests, in one test binary.

mod api;
mod controllers;
mod encryption;
mod etcd_server;
mod nodes;
mod store;
