//! The reconciler's integration tests, in one test binary.

mod etcd_server;
mod store;
