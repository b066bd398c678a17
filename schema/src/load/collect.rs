//! The files of paths on disk, for `keel validate`: what a git tree of the
//! same directory would hold.

use std::path::{Path, PathBuf};

use super::{MAX_FOLDER_DEPTH, SourceFile, is_manifest_name, too_deep_message};
use crate::error::ManifestError;
use crate::repo_config::REPO_CONFIG_FILE;

/// Why the files of some paths could not be gathered.
#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no manifests (*.yaml, *.yml) found under {0}")]
    NoManifests(PathBuf),
}

/// The files of `paths`: a file is read as given (whatever its extension); a directory is
/// walked for `*.yaml`/`*.yml` files, skipping hidden entries, with its root `keel.yaml` read
/// as the repo config. Files come sorted by path so errors come out in a stable order.
/// Symbolic links inside a directory are reported, not followed.
pub fn collect_paths(paths: &[PathBuf]) -> Result<Collected, CollectError> {
    let mut out = Collected::default();
    let cwd = std::env::current_dir()
        .and_then(std::fs::canonicalize)
        .map_err(|source| CollectError::Io {
            path: PathBuf::from("."),
            source,
        })?;
    for path in paths {
        let meta = std::fs::metadata(path).map_err(|source| CollectError::Io {
            path: path.clone(),
            source,
        })?;
        // A path named on the command line is not followed through a link either: a link
        // committed as `deploy.yaml` and pointing at a private key must not be read, nor
        // printed in an error.
        if through_symlink(&cwd, path) {
            out.problems
                .push(ManifestError::file(display(path), LINK_NOT_FOLLOWED));
            continue;
        }
        if !meta.is_dir() {
            out.files.push(read_source(path, display(path))?);
            continue;
        }
        let before = out.files.len() + out.problems.len();
        // Links are not followed: keel reads committed git trees, where a link is a link,
        // not its target; validating the target here would pass what the server rejects.
        let walker = walkdir::WalkDir::new(path)
            .sort_by_file_name()
            .max_depth(MAX_FOLDER_DEPTH + 1)
            .into_iter()
            .filter_entry(|e| e.depth() == 0 || !e.file_name().to_string_lossy().starts_with('.'));
        for entry in walker {
            let entry = entry.map_err(|e| CollectError::Io {
                path: e
                    .path()
                    .map(Path::to_path_buf)
                    .unwrap_or_else(|| path.clone()),
                source: e
                    .into_io_error()
                    .unwrap_or_else(|| std::io::Error::other("filesystem loop")),
            })?;
            let name = entry.file_name().to_string_lossy();
            if entry.file_type().is_dir() && entry.depth() > MAX_FOLDER_DEPTH {
                let at = display(entry.path());
                out.problems
                    .push(ManifestError::file(at, too_deep_message()));
                continue;
            }
            if entry.path_is_symlink() && is_manifest_name(&name) {
                out.problems.push(ManifestError::file(
                    display(entry.path()),
                    LINK_NOT_FOLLOWED,
                ));
                continue;
            }
            if !entry.file_type().is_file() || !is_manifest_name(&name) {
                continue;
            }
            let source = read_source(entry.path(), display(entry.path()))?;
            if entry.depth() == 1 && name == REPO_CONFIG_FILE {
                out.config = Some(source);
            } else {
                out.files.push(source);
            }
        }
        if out.files.len() + out.problems.len() == before {
            return Err(CollectError::NoManifests(path.clone()));
        }
    }
    Ok(out)
}

const LINK_NOT_FOLLOWED: &str =
    "symbolic links are not followed (in git a link is not its target); commit the file itself";

/// Whether `path` is a symbolic link, or is reached through one inside the tree `cwd` (the
/// repository, whose links a committer controls): its real path is not the one its name
/// spells. Folders above the tree are the user's own choice and may be links.
fn through_symlink(cwd: &Path, path: &Path) -> bool {
    if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
        return true;
    }
    use std::path::Component;
    let mut spelled = PathBuf::new();
    for part in cwd.join(path).components() {
        match part {
            Component::CurDir => {}
            Component::ParentDir => {
                spelled.pop();
            }
            other => spelled.push(other),
        }
    }
    spelled.starts_with(cwd) && std::fs::canonicalize(path).map_or(true, |real| real != spelled)
}

/// What [`collect_paths`] found: manifest files, the repo config, and entries that cannot
/// be read as manifests (reported as errors of the revision).
#[derive(Debug, Default)]
pub struct Collected {
    pub files: Vec<SourceFile>,
    pub config: Option<SourceFile>,
    pub problems: Vec<ManifestError>,
}

fn display(path: &Path) -> String {
    let s = path.to_string_lossy();
    s.strip_prefix("./").unwrap_or(&s).to_string()
}

fn read_source(path: &Path, name: String) -> Result<SourceFile, CollectError> {
    let bytes = std::fs::read(path).map_err(|source| CollectError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(SourceFile { name, bytes })
}
