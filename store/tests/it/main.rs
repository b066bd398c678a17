//! The store's integration tests, in one test binary: the conformance suite run against both
//! engines (a real etcd included), what only one engine does, and encryption at rest.

mod conformance;
mod encryption;
mod etcd_only;
mod etcd_server;
mod redb_only;
