//! `securityContext.fsGroup` on a pod's volumes, as the kubelet applies it: files and
//! folders get the group, readable by it (and writable, where the volume is), and folders
//! get the set-group-id bit, so what the containers make there later has the group too.
//! hostPath volumes are the node's and are left alone, as in Kubernetes.
//!
//! Only what containers cannot change is walked: configMap and secret volumes, written by
//! the agent and mounted read-only. A writable emptyDir gets the group on its own folder
//! only ([`apply_root`]): it starts empty, everything made in it inherits the group, and a
//! walk there could be led through a link a container swapped in, or take away the tight
//! modes a database keeps on its own files.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Which files of a volume `fsGroup` is applied to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Every file, every time (configMap and secret files are rewritten on refresh).
    Always,
    /// Only when the volume's folder does not have the group yet (`OnRootMismatch`); what
    /// is made later inherits it from the set-group-id folders.
    OnRootMismatch,
}

/// Gives the folder `dir` group `gid`, group read, write and search permission, and the
/// set-group-id bit (the folder is the agent's own: a container sees inside it, never it).
pub fn apply_root(dir: &Path, gid: u32) -> Result<(), String> {
    let failed = |e: std::io::Error| format!("fsGroup {gid} on {}: {e}", dir.display());
    let meta = std::fs::symlink_metadata(dir).map_err(failed)?;
    if !meta.is_dir() {
        return Err(format!("fsGroup {gid}: {} is not a folder", dir.display()));
    }
    std::os::unix::fs::lchown(dir, None, Some(gid)).map_err(failed)?;
    let mode = (meta.mode() & 0o7777) | 0o2070;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode)).map_err(failed)
}

/// Gives `dir` and everything below it group `gid`, group read (and write when
/// `writable`) permission, and set-group-id folders. Links are given the group, never
/// followed. Only for folders no container can write (see the module's note).
pub fn apply(dir: &Path, gid: u32, writable: bool, change: Change) -> Result<(), String> {
    let failed =
        |path: &Path, e: std::io::Error| format!("fsGroup {gid} on {}: {e}", path.display());
    let root = std::fs::symlink_metadata(dir).map_err(|e| failed(dir, e))?;
    if change == Change::OnRootMismatch && root.gid() == gid && root.mode() & 0o2000 != 0 {
        return Ok(());
    }
    let mut pending: Vec<PathBuf> = vec![dir.to_path_buf()];
    while let Some(path) = pending.pop() {
        let meta = std::fs::symlink_metadata(&path).map_err(|e| failed(&path, e))?;
        std::os::unix::fs::lchown(&path, None, Some(gid)).map_err(|e| failed(&path, e))?;
        if meta.file_type().is_symlink() {
            continue;
        }
        let mut mode = meta.mode() & 0o7777;
        mode |= if writable { 0o060 } else { 0o040 };
        if meta.is_dir() {
            mode |= 0o2010;
            for entry in std::fs::read_dir(&path).map_err(|e| failed(&path, e))? {
                pending.push(entry.map_err(|e| failed(&path, e))?.path());
            }
        }
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
            .map_err(|e| failed(&path, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_and_folders_get_the_group_and_links_are_not_followed() {
        let root = tempfile::tempdir().unwrap();
        let vol = root.path().join("vol");
        std::fs::create_dir_all(vol.join("sub")).unwrap();
        std::fs::write(vol.join("sub/file"), "x").unwrap();
        std::fs::set_permissions(vol.join("sub/file"), std::fs::Permissions::from_mode(0o600))
            .unwrap();
        let outside = root.path().join("outside");
        std::fs::write(&outside, "y").unwrap();
        std::os::unix::fs::symlink(&outside, vol.join("link")).unwrap();
        let before = std::fs::metadata(&outside).unwrap();
        // The test's own group: any process may give its files a group it is in.
        let gid = std::fs::metadata(root.path()).unwrap().gid();
        apply(&vol, gid, true, Change::OnRootMismatch).unwrap();
        let file = std::fs::metadata(vol.join("sub/file")).unwrap();
        assert_eq!(file.mode() & 0o777, 0o660);
        assert_eq!(file.gid(), gid);
        let sub = std::fs::metadata(vol.join("sub")).unwrap();
        assert_eq!(sub.mode() & 0o2070, 0o2070);
        let after = std::fs::metadata(&outside).unwrap();
        assert_eq!(
            after.mode(),
            before.mode(),
            "the link's target is untouched"
        );
        // Read-only volumes get group read only.
        std::fs::set_permissions(vol.join("sub/file"), std::fs::Permissions::from_mode(0o600))
            .unwrap();
        apply(&vol, gid, false, Change::Always).unwrap();
        let file = std::fs::metadata(vol.join("sub/file")).unwrap();
        assert_eq!(file.mode() & 0o777, 0o640);
        // A root that has the group already is left as it is under OnRootMismatch.
        std::fs::set_permissions(vol.join("sub/file"), std::fs::Permissions::from_mode(0o600))
            .unwrap();
        apply(&vol, gid, true, Change::OnRootMismatch).unwrap();
        let file = std::fs::metadata(vol.join("sub/file")).unwrap();
        assert_eq!(file.mode() & 0o777, 0o600);
    }
}
