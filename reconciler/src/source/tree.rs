//! Reading one revision's manifests out of a git repository with git2.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use git2::{ObjectType, Repository};
use keel_schema::encrypted::Decrypt;
use keel_schema::load::load_sources_with;
use keel_schema::load::{MAX_FOLDER_DEPTH, is_manifest_name, too_deep_message};
use keel_schema::repo_config::REPO_CONFIG_FILE;
use keel_schema::{Revision, SourceFile};

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{path} is not a git repository: {message}")]
    NotARepo { path: PathBuf, message: String },
    #[error("revision {rev:?} not found in {repo}: {message}")]
    NoSuchRevision {
        repo: PathBuf,
        rev: String,
        message: String,
    },
    #[error("--path {0:?} does not exist in revision {1}")]
    NoSuchPath(String, String),
    #[error("reading revision {rev}: {message}")]
    Read { rev: String, message: String },
    #[error("fetching {location}: {message}")]
    Fetch { location: String, message: String },
}

/// Who made a commit and why, for history and plans.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitInfo {
    pub id: String,
    pub short: String,
    pub author: String,
    pub summary: String,
    pub time: i64,
}

/// What a walk of a tree found.
#[derive(Default)]
pub(super) struct Walked {
    pub found: Vec<(String, Vec<u8>)>,
    pub problems: Vec<(String, String)>,
}

/// A repository opened for reading revisions.
pub struct RepoTree {
    pub(super) repo: Repository,
    path: PathBuf,
    /// Entries of the last tree read that keel cannot use (symlinks, submodules).
    problems: std::cell::RefCell<Vec<(String, String)>>,
    /// Opens SOPS-encrypted files (without it, they are errors of the revision).
    pub(super) decrypt: Option<Arc<dyn Decrypt>>,
}

impl RepoTree {
    /// Opens a working copy or a bare repository (a `file://` URL is a local path).
    pub fn open(location: &str) -> Result<Self, SourceError> {
        let path = PathBuf::from(location.strip_prefix("file://").unwrap_or(location));
        let repo = Repository::open(&path).map_err(|e| SourceError::NotARepo {
            path: path.clone(),
            message: e.message().to_string(),
        })?;
        Ok(Self {
            repo,
            path,
            problems: Default::default(),
            decrypt: None,
        })
    }

    /// Opens SOPS-encrypted files of the revisions read with `decrypt`.
    pub fn with_decrypt(mut self, decrypt: Option<Arc<dyn Decrypt>>) -> Self {
        self.decrypt = decrypt;
        self
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The commit a revision names (a branch, tag, sha or expression like `HEAD~1`).
    pub fn commit(&self, rev: &str) -> Result<CommitInfo, SourceError> {
        let commit = self.resolve(rev)?;
        Ok(info(&commit))
    }

    pub(super) fn resolve(&self, rev: &str) -> Result<git2::Commit<'_>, SourceError> {
        let not_found = |e: git2::Error| SourceError::NoSuchRevision {
            repo: self.path.clone(),
            rev: rev.to_string(),
            message: e.message().to_string(),
        };
        self.repo
            .revparse_single(rev)
            .and_then(|o| o.peel_to_commit())
            .map_err(not_found)
    }

    /// Every manifest file (`*.yaml`, `*.yml`) of the committed tree under `subdir`, and the
    /// repo config `keel.yaml` at its root. Hidden folders (`.github`, …), symbolic links
    /// and submodules are skipped. File names are paths from the repository root.
    pub fn files(
        &self,
        rev: &str,
        subdir: Option<&str>,
    ) -> Result<(CommitInfo, Vec<SourceFile>, Option<SourceFile>), SourceError> {
        let commit = self.resolve(rev)?;
        let info = info(&commit);
        let read_err = |e: git2::Error| SourceError::Read {
            rev: info.short.clone(),
            message: e.message().to_string(),
        };
        let root_tree = commit.tree().map_err(read_err)?;
        let prefix = subdir
            .map(|s| s.trim_start_matches("./").trim_matches('/'))
            .filter(|s| !s.is_empty() && *s != ".")
            .map(str::to_string);
        let tree = match &prefix {
            None => root_tree,
            Some(p) => root_tree
                .get_path(Path::new(p))
                .and_then(|entry| entry.to_object(&self.repo))
                .and_then(|o| o.peel_to_tree())
                .map_err(|_| SourceError::NoSuchPath(p.clone(), info.short.clone()))?,
        };
        let walked = self.walk(&tree, &|_| false).map_err(read_err)?;
        let shown = |rel: &str| match &prefix {
            Some(p) => format!("{p}/{rel}"),
            None => rel.to_string(),
        };
        self.problems.replace(
            walked
                .problems
                .into_iter()
                .map(|(rel, why)| (shown(&rel), why))
                .collect(),
        );
        let mut files = Vec::new();
        let mut config = None;
        for (rel, bytes) in walked.found {
            let source = SourceFile {
                name: shown(&rel),
                bytes,
            };
            if rel == REPO_CONFIG_FILE {
                config = Some(source);
            } else {
                files.push(source);
            }
        }
        files.sort_by(|a, b| a.name.cmp(&b.name));
        Ok((info, files, config))
    }

    /// The manifests in `tree` (path relative to it, bytes), and the entries that make the
    /// revision invalid instead of being silently skipped (their objects would be pruned).
    /// The walk keeps its own stack (libgit2's walk recurses, and a committed tree 20,000
    /// folders deep would overflow the server's stack on every restart) and goes no deeper
    /// than [`MAX_FOLDER_DEPTH`] folders, and not into folders `skip` names (paths relative
    /// to `tree`).
    pub(super) fn walk(
        &self,
        tree: &git2::Tree<'_>,
        skip: &dyn Fn(&str) -> bool,
    ) -> Result<Walked, git2::Error> {
        let mut walked = Walked::default();
        // (folder, its path with a trailing slash, its depth); popped in reverse so the
        // walk is pre-order by name, as the file list and its errors are shown.
        let mut folders = vec![(tree.clone(), String::new(), 0usize)];
        while let Some((tree, dir, depth)) = folders.pop() {
            let mut below = Vec::new();
            for entry in tree.iter() {
                let Ok(name) = entry.name() else {
                    let raw = String::from_utf8_lossy(entry.name_bytes()).to_string();
                    let why = "file name is not UTF-8; keel cannot read it";
                    walked.problems.push((format!("{dir}{raw}"), why.into()));
                    continue;
                };
                if name.starts_with('.') {
                    continue;
                }
                let path = format!("{dir}{name}");
                match entry.kind() {
                    Some(ObjectType::Commit) => {
                        let why =
                            "submodules are not read; commit the manifests into this repository";
                        walked.problems.push((path, why.into()));
                    }
                    Some(ObjectType::Tree) if skip(&path) => {}
                    Some(ObjectType::Tree) if depth + 1 > MAX_FOLDER_DEPTH => {
                        walked.problems.push((path, too_deep_message()));
                    }
                    Some(ObjectType::Tree) => {
                        let sub = entry.to_object(&self.repo)?.peel_to_tree()?;
                        below.push((sub, format!("{path}/"), depth + 1));
                    }
                    // 0o120000 is a symbolic link: its blob is a path, not a manifest.
                    _ if entry.filemode() == 0o120000 && is_manifest_name(name) => {
                        let why = "symbolic links are not followed in git trees; commit the file \
                                   itself";
                        walked.problems.push((path, why.into()));
                    }
                    _ if entry.filemode() == 0o120000 => {}
                    Some(ObjectType::Blob) if is_manifest_name(name) => {
                        let blob = entry.to_object(&self.repo)?.peel_to_blob()?;
                        walked.found.push((path, blob.content().to_vec()));
                    }
                    _ => {}
                }
            }
            folders.extend(below.into_iter().rev());
        }
        Ok(walked)
    }

    /// The paths of files that differ between two revisions (added, changed or deleted).
    pub fn changed_files(&self, from: &str, to: &str) -> Result<Vec<String>, SourceError> {
        let tree = |rev: &str| -> Result<git2::Tree<'_>, SourceError> {
            let commit = self.resolve(rev)?;
            commit.tree().map_err(|e| SourceError::Read {
                rev: rev.to_string(),
                message: e.message().to_string(),
            })
        };
        let (old, new) = (tree(from)?, tree(to)?);
        let diff = self
            .repo
            .diff_tree_to_tree(Some(&old), Some(&new), None)
            .map_err(|e| SourceError::Read {
                rev: to.to_string(),
                message: e.message().to_string(),
            })?;
        let mut paths: Vec<String> = diff
            .deltas()
            .flat_map(|d| [d.old_file().path(), d.new_file().path()])
            .flatten()
            .map(|p| p.to_string_lossy().to_string())
            .collect();
        paths.sort();
        paths.dedup();
        Ok(paths)
    }

    /// Loads and validates a whole revision (files keel cannot read are errors in it).
    pub fn load(
        &self,
        rev: &str,
        subdir: Option<&str>,
    ) -> Result<(CommitInfo, Revision), SourceError> {
        let (info, files, config) = self.files(rev, subdir)?;
        let commit = self.resolve(rev)?;
        let tree = commit.tree().map_err(|e| SourceError::Read {
            rev: info.short.clone(),
            message: e.message().to_string(),
        })?;
        let reader = super::tree_files::TreeFiles {
            repo: &self.repo,
            tree,
        };
        let mut revision =
            load_sources_with(&files, config.as_ref(), &reader, self.decrypt.as_deref());
        for (file, message) in self.problems.take() {
            revision
                .errors
                .push(keel_schema::ManifestError::file(file, message));
        }
        keel_schema::error::sort_errors(&mut revision.errors);
        Ok((info, revision))
    }
}

pub(super) fn info(commit: &git2::Commit<'_>) -> CommitInfo {
    let id = commit.id().to_string();
    CommitInfo {
        short: id.chars().take(7).collect(),
        id,
        author: commit.author().name().unwrap_or("").to_string(),
        summary: commit.summary().ok().flatten().unwrap_or("").to_string(),
        time: commit.time().seconds(),
    }
}
