//! The git source: manifests read from the committed tree of a revision, never from a
//! working directory (an uncommitted or half-written file is never deployed).
//!
//! Watching a branch (notify, polling, webhook) lands with `keel server` (issue 4); this
//! module reads trees, which `keel plan` needs today.

pub mod tree;

pub use tree::{CommitInfo, RepoTree, SourceError};
