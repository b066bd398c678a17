//! The schema crate's integration tests, in one test binary.

mod fuzz;
mod json_schema;
mod kustomize;
mod manifests;
mod repo_config;
