//! The repository keel follows: a local working copy or bare repo read in place, or a
//! remote (`file://`, `https://`, `ssh://`, `git@…`) mirrored into the data dir.
//!
//! Remotes are fetched with the `git` command, so transports, credentials and SSH keys
//! work as they do for the operator's own `git`; the mirror is then read with git2. A
//! mirror fetch takes every ref as the remote has it (`+refs/*:refs/*`, pruned), so a
//! force-push or rewritten history is simply the new tip.

use std::path::{Path, PathBuf};
use std::process::Command;

use keel_schema::Revision;

use super::tree::{CommitInfo, RepoTree, SourceError};

pub struct GitSource {
    /// What the user gave (`--repo`).
    pub location: String,
    /// Where keel reads from: the local repo itself, or the mirror in the data dir.
    dir: PathBuf,
    remote: bool,
    branch: Option<String>,
    path: Option<String>,
}

/// True for a `--repo` that names a remote to mirror rather than a local path.
pub fn is_remote(location: &str) -> bool {
    ["http://", "https://", "ssh://", "git://", "file://"]
        .iter()
        .any(|p| location.starts_with(p))
        || (location.contains('@') && location.contains(':') && !Path::new(location).exists())
}

impl GitSource {
    pub fn new(
        location: &str,
        data_dir: &Path,
        branch: Option<String>,
        path: Option<String>,
    ) -> Result<Self, SourceError> {
        let remote = is_remote(location);
        let dir = if remote {
            data_dir.join("repo.git")
        } else {
            PathBuf::from(location)
        };
        let mut source = Self {
            location: location.to_string(),
            dir,
            remote,
            branch,
            path,
        };
        if !remote {
            // Fail early and clearly on a path that is not a repository.
            RepoTree::open(location)?;
            // Fixed at start: checking out another branch in a working copy must not
            // change what the cluster runs.
            if source.branch.is_none() {
                source.branch = Some(source.branch());
            }
        }
        Ok(source)
    }

    pub fn is_remote(&self) -> bool {
        self.remote
    }

    /// The folder to watch for new commits (local repositories only).
    pub fn git_dir(&self) -> Option<PathBuf> {
        if self.remote {
            return None;
        }
        git2::Repository::open(&self.dir)
            .ok()
            .map(|r| r.path().to_path_buf())
    }

    /// Brings the mirror up to date with the remote (a no-op for local repositories).
    pub fn fetch(&self) -> Result<(), SourceError> {
        if !self.remote {
            return Ok(());
        }
        let run = |args: &[&str], cwd: Option<&Path>| -> Result<(), SourceError> {
            let mut cmd = Command::new("git");
            cmd.args(args).env("GIT_TERMINAL_PROMPT", "0");
            if let Some(dir) = cwd {
                cmd.current_dir(dir);
            }
            let out = cmd.output().map_err(|e| SourceError::Fetch {
                location: self.location.clone(),
                message: format!("cannot run git: {e}"),
            })?;
            if out.status.success() {
                Ok(())
            } else {
                Err(SourceError::Fetch {
                    location: self.location.clone(),
                    message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
                })
            }
        };
        if self.dir.join("HEAD").exists() {
            run(
                &["remote", "set-url", "origin", &self.location],
                Some(&self.dir),
            )?;
            run(
                &["fetch", "--prune", "--quiet", "origin", "+refs/*:refs/*"],
                Some(&self.dir),
            )
        } else {
            let target = self.dir.to_string_lossy().to_string();
            let partial = self.dir.with_extension("partial");
            let _ = std::fs::remove_dir_all(&partial);
            run(
                &[
                    "clone",
                    "--mirror",
                    "--quiet",
                    &self.location,
                    &partial.to_string_lossy(),
                ],
                None,
            )?;
            // Only a complete clone becomes the mirror.
            std::fs::rename(&partial, &self.dir).map_err(|e| SourceError::Fetch {
                location: self.location.clone(),
                message: format!("cannot move the mirror into {target}: {e}"),
            })
        }
    }

    /// The branch followed: `--branch`, else the repository's HEAD branch, else `main`.
    pub fn branch(&self) -> String {
        if let Some(b) = &self.branch {
            return b.clone();
        }
        git2::Repository::open(&self.dir)
            .ok()
            .and_then(|r| {
                r.find_reference("HEAD")
                    .ok()
                    .and_then(|h| h.symbolic_target().ok().flatten().map(str::to_string))
            })
            .and_then(|t| t.strip_prefix("refs/heads/").map(str::to_string))
            .unwrap_or_else(|| "main".to_string())
    }

    /// The tip of the followed branch.
    pub fn tip(&self) -> Result<CommitInfo, SourceError> {
        let tree = RepoTree::open(&self.dir.to_string_lossy())?;
        tree.commit(&format!("refs/heads/{}", self.branch()))
    }

    /// A whole revision, read from its committed tree.
    pub fn load(&self, commit: &str) -> Result<(CommitInfo, Revision), SourceError> {
        RepoTree::open(&self.dir.to_string_lossy())?.load(commit, self.path.as_deref())
    }
}
