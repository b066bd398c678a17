//! The reconciler's integration tests, in one test binary.

mod api;
mod controllers;
mod fuzz;
mod kube_api;
mod kube_operations;
mod node_sync;
mod nodes;
mod pod_reports;
mod source;
mod web_ui;
