//! A committed tree read as a revision's files, for kustomizations: any file by path (env
//! files and hidden files too, which the manifest walk skips), symbolic links and
//! submodules never followed.

use std::path::Path;

use git2::{ObjectType, Repository, Tree};
use keel_schema::kustomize::Files;

pub struct TreeFiles<'r> {
    pub repo: &'r Repository,
    pub tree: Tree<'r>,
}

impl TreeFiles<'_> {
    fn entry(&self, path: &str) -> Option<git2::TreeEntry<'static>> {
        if path.is_empty() {
            return None;
        }
        self.tree.get_path(Path::new(path)).ok()
    }
}

impl Files for TreeFiles<'_> {
    fn read(&self, path: &str) -> Option<Vec<u8>> {
        let entry = self.entry(path)?;
        // 0o120000 is a symbolic link: its blob is a path, not the file.
        if entry.kind() != Some(ObjectType::Blob) || entry.filemode() == 0o120000 {
            return None;
        }
        let blob = entry.to_object(self.repo).ok()?.peel_to_blob().ok()?;
        Some(blob.content().to_vec())
    }

    fn is_file(&self, path: &str) -> bool {
        self.entry(path)
            .is_some_and(|e| e.kind() == Some(ObjectType::Blob) && e.filemode() != 0o120000)
    }

    fn is_dir(&self, path: &str) -> bool {
        path.is_empty()
            || self
                .entry(path)
                .is_some_and(|e| e.kind() == Some(ObjectType::Tree))
    }
}
