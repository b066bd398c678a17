//! Ways kustomizations read a revision's files: a folder on disk (for `keel validate` and
//! `keel render`), symbolic links not followed (in git a link is not its target); and the
//! revision's manifest files alone, held in memory.

use std::path::{Path, PathBuf};

use crate::kustomize::Files;

pub struct DiskFiles {
    root: PathBuf,
}

impl DiskFiles {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    fn path(&self, rel: &str) -> PathBuf {
        if rel.is_empty() {
            self.root.clone()
        } else {
            self.root.join(rel)
        }
    }

    /// Whether any part of `rel` below the root is a symbolic link.
    fn through_link(&self, rel: &str) -> bool {
        let mut at = if rel.starts_with('/') {
            PathBuf::from("/")
        } else {
            self.root.clone()
        };
        rel.split('/').filter(|p| !p.is_empty()).any(|part| {
            at.push(part);
            std::fs::symlink_metadata(&at).is_ok_and(|m| m.file_type().is_symlink())
        })
    }
}

impl Files for DiskFiles {
    fn read(&self, rel: &str) -> Option<Vec<u8>> {
        let path = self.path(rel);
        if self.through_link(rel) || !Path::new(&path).is_file() {
            return None;
        }
        std::fs::read(path).ok()
    }

    fn is_dir(&self, rel: &str) -> bool {
        !self.through_link(rel) && self.path(rel).is_dir()
    }

    fn is_file(&self, rel: &str) -> bool {
        !self.through_link(rel) && self.path(rel).is_file()
    }
}

/// A revision's files held in memory (what `load_sources` has when it is given no other
/// way to read files): every folder above a file exists.
pub struct InMemory<'a> {
    files: std::collections::HashMap<&'a str, &'a [u8]>,
    dirs: std::collections::HashSet<&'a str>,
}

impl<'a> InMemory<'a> {
    /// Indexes the files by path, and every folder above them.
    pub fn new(files: &'a [super::SourceFile]) -> Self {
        let mut dirs = std::collections::HashSet::new();
        for f in files {
            let mut path = f.name.as_str();
            while let Some((dir, _)) = path.rsplit_once('/') {
                if !dirs.insert(dir) {
                    break;
                }
                path = dir;
            }
        }
        Self {
            files: files
                .iter()
                .map(|f| (f.name.as_str(), f.bytes.as_slice()))
                .collect(),
            dirs,
        }
    }
}

impl Files for InMemory<'_> {
    fn read(&self, path: &str) -> Option<Vec<u8>> {
        self.files.get(path).map(|b| b.to_vec())
    }

    fn is_dir(&self, path: &str) -> bool {
        path.is_empty() || self.dirs.contains(path)
    }

    fn is_file(&self, path: &str) -> bool {
        self.files.contains_key(path)
    }
}
