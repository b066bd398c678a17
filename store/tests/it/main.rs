//! The store's integration tests, in one test binary: the conformance suite run against both
//! engines (a real etcd included), and encryption at rest.

mod conformance;
mod encryption;
mod etcd_server;
