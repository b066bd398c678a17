//! The node agent's integration tests: one binary, modules by subject.
// `&[pod.clone()]` reads as "a set of one pod" in the tests, which is what they mean.
#![allow(clippy::cloned_ref_to_slice_refs)]

mod docker;
mod fuzz;
mod harness;
mod protocol;
mod registry;
mod reporting;
