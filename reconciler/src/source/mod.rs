//! The git source: manifests read from the committed tree of a revision, never from a
//! working directory (an uncommitted or half-written file is never deployed).
//!
//! [`git::GitSource`] follows a branch of a local or remote repository; [`tree`] reads a
//! revision's files. Watching for new commits (notify, polling, webhook) is the server's.

mod apps;
pub mod git;
pub mod tree;
mod tree_files;

pub use apps::{AppLoad, AppsLoad};
pub use git::GitSource;
pub use tree::{CommitInfo, RepoTree, SourceError};
