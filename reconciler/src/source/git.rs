//! The repository keel follows: a local working copy or bare repo read in place, or a
//! remote (`file://`, `https://`, `ssh://`, `git@…`) mirrored into the data dir.
//!
//! Remotes are fetched with the `git` command, so transports, credentials and SSH keys
//! work as they do for the operator's own `git`; the mirror is then read with git2. A
//! mirror fetch takes every ref as the remote has it (`+refs/*:refs/*`, pruned), so a
//! force-push or rewritten history is simply the new tip.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

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
    /// Opens SOPS-encrypted files (`--sops-age-key-file`).
    decrypt: Option<std::sync::Arc<dyn keel_schema::encrypted::Decrypt>>,
}

/// How long one git fetch or clone may take before it is stopped.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(300);

/// Runs git without prompts (credentials come from helpers and keys, never a terminal),
/// giving up on a stalled transfer, and killing it after [`FETCH_TIMEOUT`].
fn run_git(args: &[&str], cwd: Option<&Path>) -> Result<(), String> {
    let mut cmd = Command::new("git");
    cmd.args([
        "-c",
        "http.lowSpeedLimit=1000",
        "-c",
        "http.lowSpeedTime=30",
    ])
    .args(args)
    .env("GIT_TERMINAL_PROMPT", "0")
    .env(
        "GIT_SSH_COMMAND",
        "ssh -oBatchMode=yes -oConnectTimeout=15 -oServerAliveInterval=15",
    )
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    if let Some(dir) = cwd {
        cmd.current_dir(dir);
    }
    let mut child = cmd.spawn().map_err(|e| format!("cannot run git: {e}"))?;
    let deadline = Instant::now() + FETCH_TIMEOUT;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                let mut stderr = String::new();
                if let Some(mut err) = child.stderr.take() {
                    let _ = err.read_to_string(&mut stderr);
                }
                return if status.success() {
                    Ok(())
                } else {
                    Err(stderr.trim().to_string())
                };
            }
            Ok(None) if Instant::now() > deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "git {} took longer than {FETCH_TIMEOUT:?}; stopped",
                    args.first().unwrap_or(&"")
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(format!("waiting for git: {e}")),
        }
    }
}

/// `scheme://user:password@host/…` → `scheme://***@host/…`.
pub fn redact_credentials(location: &str) -> String {
    let Some((scheme, rest)) = location.split_once("://") else {
        return location.to_string();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://***{}", &rest[at..]),
        None => location.to_string(),
    }
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
            decrypt: None,
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

    /// Opens SOPS-encrypted files of every revision with `decrypt`.
    pub fn set_decrypt(&mut self, decrypt: std::sync::Arc<dyn keel_schema::encrypted::Decrypt>) {
        self.decrypt = Some(decrypt);
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

    /// `--repo` as safe to show: a URL's user and password (`https://user:token@host/…`)
    /// replaced, so credentials never reach logs, status or errors.
    pub fn display(&self) -> String {
        redact_credentials(&self.location)
    }

    /// Brings the mirror up to date with the remote (a no-op for local repositories).
    /// Only branches are fetched (`+refs/heads/*`, pruned), so a force-push is simply the
    /// new tip; git runs without prompts and is stopped after [`FETCH_TIMEOUT`].
    pub fn fetch(&self) -> Result<(), SourceError> {
        if !self.remote {
            return Ok(());
        }
        let shown = self.display();
        let fail = |message: String| SourceError::Fetch {
            location: shown.clone(),
            // One line: log collectors read line by line.
            message: message
                .replace(&self.location, &shown)
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect::<Vec<_>>()
                .join("; "),
        };
        if self.dir.join("HEAD").exists() {
            run_git(
                &["remote", "set-url", "origin", &self.location],
                Some(&self.dir),
            )
            .map_err(&fail)?;
            run_git(
                &[
                    "fetch",
                    "--prune",
                    "--quiet",
                    "origin",
                    "+refs/heads/*:refs/heads/*",
                ],
                Some(&self.dir),
            )
            .map_err(&fail)
        } else {
            let partial = self.dir.with_extension("partial");
            let _ = std::fs::remove_dir_all(&partial);
            run_git(
                &[
                    "clone",
                    "--bare",
                    "--quiet",
                    &self.location,
                    &partial.to_string_lossy(),
                ],
                None,
            )
            .map_err(&fail)?;
            // Only a complete clone becomes the mirror.
            std::fs::rename(&partial, &self.dir)
                .map_err(|e| fail(format!("cannot move the mirror into place: {e}")))
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
        RepoTree::open(&self.dir.to_string_lossy())?
            .with_decrypt(self.decrypt.clone())
            .load(commit, self.path.as_deref())
    }
}

impl GitSource {
    /// The repository's tree reader, opening SOPS files as the sync does.
    pub fn tree(&self) -> Result<RepoTree, SourceError> {
        Ok(RepoTree::open(&self.dir.to_string_lossy())?.with_decrypt(self.decrypt.clone()))
    }

    /// `--path`: the folder of the repository the manifests are under.
    pub fn path(&self) -> Option<&str> {
        self.path.as_deref()
    }

    /// The repository's branches (the mirror's, for a remote), sorted.
    pub fn branches(&self) -> Vec<String> {
        let Ok(repo) = git2::Repository::open(&self.dir) else {
            return Vec::new();
        };
        let Ok(branches) = repo.branches(Some(git2::BranchType::Local)) else {
            return Vec::new();
        };
        let mut names: Vec<String> = branches
            .filter_map(|b| b.ok())
            .filter_map(|(b, _)| b.name().ok().flatten().map(str::to_string))
            .collect();
        names.sort();
        names
    }

    /// Revision `commit` app by app, as [`RepoTree::load_apps`] reads it.
    pub fn load_apps(
        &self,
        commit: &str,
        inputs_of: &dyn Fn(&keel_schema::load::apps::AppSpec) -> Vec<String>,
        render: &dyn Fn(&keel_schema::load::apps::AppSpec, &str) -> bool,
    ) -> Result<super::AppsLoad, SourceError> {
        RepoTree::open(&self.dir.to_string_lossy())?
            .with_decrypt(self.decrypt.clone())
            .load_apps(commit, self.path.as_deref(), inputs_of, render)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_never_shown() {
        assert_eq!(
            redact_credentials("https://user:tok3n@git.example.com/a/b.git"),
            "https://***@git.example.com/a/b.git"
        );
        assert_eq!(
            redact_credentials("https://git.example.com/a@b.git"),
            "https://git.example.com/a@b.git"
        );
        assert_eq!(
            redact_credentials("ssh://git@host:22/r.git"),
            "ssh://***@host:22/r.git"
        );
        assert_eq!(redact_credentials("/srv/repo"), "/srv/repo");
    }
}
