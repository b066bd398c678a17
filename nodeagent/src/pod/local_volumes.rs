//! Local volumes (StorageClass `local-path`): a claim's data is the directory
//! `DATA_DIR/volumes/<handle>`, kept across pods and agent restarts, removed only when the
//! control plane releases it (reclaim policy Delete) and no pod here uses it.

use std::path::{Path, PathBuf};

/// Whether `handle` is a volume name keel makes (`pvc-<uid>`): one plain path element.
pub fn valid_handle(handle: &str) -> bool {
    !handle.is_empty()
        && handle.len() <= 253
        && handle.starts_with("pvc-")
        && handle
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Where a volume's data lives (the handle is checked when the desired set is read).
pub fn dir(data_dir: &Path, handle: &str) -> PathBuf {
    data_dir.join("volumes").join(handle)
}

/// The volume's directory, made on first use, writable by any user a container runs as
/// (as k3s' local-path provisioner makes it).
pub fn ensure(data_dir: &Path, handle: &str) -> Result<PathBuf, String> {
    let root = data_dir.join("volumes");
    std::fs::create_dir_all(&root).map_err(|e| format!("creating {}: {e}", root.display()))?;
    let path = dir(data_dir, handle);
    match std::fs::symlink_metadata(&path) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => {
            return Err(format!(
                "{} is not a directory; the volume's data cannot be there",
                path.display()
            ));
        }
        Err(_) => {
            std::fs::create_dir(&path)
                .map_err(|e| format!("creating volume {}: {e}", path.display()))?;
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o777))
                .map_err(|e| format!("setting the mode of {}: {e}", path.display()))?;
        }
    }
    Ok(path)
}

/// Removes a released volume's data; true once it is gone (or never was).
pub fn remove(data_dir: &Path, handle: &str) -> bool {
    let path = dir(data_dir, handle);
    match std::fs::symlink_metadata(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
        Err(_) => false,
        Ok(_) => match std::fs::remove_dir_all(&path) {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(volume = handle, error = %e, "cannot remove a released volume's data; retrying with the next desired set");
                false
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_keels_own_volume_names_are_paths() {
        assert!(valid_handle("pvc-0b9e5d1c-2f64-4c1e-9a1e-3f1f2b0c9d7a"));
        for bad in [
            "", "pvc-..", "../pvc-x", "pvc-a/b", "pvc-A", "data", "pvc-a\0",
        ] {
            assert!(!valid_handle(bad), "{bad:?}");
        }
    }

    #[test]
    fn a_volume_is_made_once_kept_and_removed_on_release() {
        let data = tempfile::tempdir().unwrap();
        let path = ensure(data.path(), "pvc-1").unwrap();
        std::fs::write(path.join("kept"), "x").unwrap();
        assert_eq!(ensure(data.path(), "pvc-1").unwrap(), path);
        assert!(path.join("kept").exists(), "a second use keeps the data");
        assert!(remove(data.path(), "pvc-1"));
        assert!(!path.exists());
        assert!(remove(data.path(), "pvc-1"), "gone already is gone");
    }
}
