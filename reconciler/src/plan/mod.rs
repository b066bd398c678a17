//! Plans: what a change to the repository will do, object by object, before it is applied.
//!
//! - [`diff`]: desired objects against other objects (another revision, or later the
//!   store), compared semantically: both sides defaulted, cluster-set fields left out.
//! - [`display`]: the YAML shown for an object, with Secret values replaced by markers.
//! - [`summary`]: one line per change saying what it does to running workloads.
//! - [`render`]: text, markdown (for a pull request comment) and JSON.
//! - [`fit`]: the pods a revision would start, through the scheduler against live nodes.
//! - [`apps`]: a plan of a repository of apps (keel.yaml `apps:`), app by app.
//! - [`autoscaled`]: an autoscaled workload's replicas are not git's to change.
//! - [`revisions`]: the plan between two revisions (`keel plan`, the web UI's diffs).

pub mod apps;
pub mod autoscaled;
pub mod diff;
pub mod display;
pub mod fit;
pub mod render;
pub mod revisions;
pub mod rules;
pub mod summary;

pub use diff::{Action, Change, diff};
