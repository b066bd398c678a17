//! The files of paths on disk, for `keel validate`: what a git tree of the
//! same directory would hold.

use std::path::{Path, PathBuf};

use super::{SourceFile, is_manifest_name};
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
    for path in paths {
        let meta = std::fs::metadata(path).map_err(|source| CollectError::Io {
            path: path.clone(),
            source,
        })?;
        if !meta.is_dir() {
            out.files.push(read_source(path, display(path))?);
            continue;
        }
        let before = out.files.len() + out.problems.len();
        // Links are not followed: keel reads committed git trees, where a link is a link,
        // not its target; validating the target here would pass what the server rejects.
        let walker = walkdir::WalkDir::new(path)
            .sort_by_file_name()
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
            if entry.path_is_symlink() && is_manifest_name(&name) {
                out.problems.push(ManifestError::file(
                    display(entry.path()),
                    "symbolic links are not followed (in git a link is not its target); commit the file itself",
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
