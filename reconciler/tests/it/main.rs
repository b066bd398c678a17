//! The reconciler's integration tests, in one test binary.

mod api;
mod controllers;
mod nodes;
mod source;
