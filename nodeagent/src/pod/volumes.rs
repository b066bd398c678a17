//! A pod's volumes on the node, under `<data-dir>/pods/<uid>/volumes/<name>`, bind-mounted into
//! its containers: `emptyDir` is a directory shared by the pod's containers and removed with
//! the pod; `configMap` and `secret` are directories of files (one per key, or the `items`
//! asked for) mounted read-only and rewritten in place when the data changes; `hostPath` is
//! allowed only under the agent's `--allowed-host-path` prefixes.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use base64::Engine;
use keel_schema::types::pod::{
    ConfigMapVolumeSource, HostPathVolumeSource, KeyToPath, SecretVolumeSource,
};

use crate::desired::DesiredPod;
use crate::pod::fs_group;

/// One volume, ready to mount.
#[derive(Debug, Clone)]
pub struct HostVolume {
    /// Where it is on the node, symlinks resolved.
    pub path: PathBuf,
    /// ConfigMaps and Secrets are always read-only.
    pub read_only: bool,
    /// For a hostPath: the allowed prefix (resolved) it is under. Its mounts are pinned
    /// from there ([`crate::pod::pinned`]): a path outside the agent's own folder is never
    /// given to Docker as a string.
    pub host_root: Option<PathBuf>,
}

/// What a mount binds when its source is pinned: `rel` beneath `root`, opened without
/// following links.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinnedSource {
    pub root: PathBuf,
    pub rel: PathBuf,
    /// Missing folders are made (a writable volume's subPath).
    pub create: bool,
}

impl HostVolume {
    /// The pinned source of a mount of this volume with subPath `sub`, or `None` when the
    /// volume's own folder is mounted as it is (keel's own volumes without a subPath).
    ///
    /// `sub` is relative, without `..`, and must stay inside the volume once symlinks are
    /// resolved; this is checked here for a clear error, and again by the pinning, which
    /// refuses a link that appears in between.
    pub fn source(&self, sub: Option<&str>) -> Result<Option<PinnedSource>, String> {
        let root = canonical(self.host_root.as_ref().unwrap_or(&self.path))?;
        let in_root = |p: &Path| -> Result<PathBuf, String> {
            p.strip_prefix(&root)
                .map(Path::to_path_buf)
                .map_err(|_| format!("{} is outside {}", p.display(), root.display()))
        };
        let Some(sub) = sub else {
            if self.host_root.is_none() {
                return Ok(None);
            }
            let rel = in_root(&self.path)?;
            // An allowed prefix that is itself a file (a socket, say): pinned from its
            // folder, as walks start from a folder.
            if rel.as_os_str().is_empty()
                && !root.is_dir()
                && let (Some(parent), Some(name)) = (root.parent(), root.file_name())
            {
                return Ok(Some(PinnedSource {
                    root: parent.to_path_buf(),
                    rel: PathBuf::from(name),
                    create: false,
                }));
            }
            return Ok(Some(PinnedSource {
                rel,
                root: root.clone(),
                create: false,
            }));
        };
        let rel = Path::new(sub);
        if rel.is_absolute() || rel.components().any(|c| !matches!(c, Component::Normal(_))) {
            return Err(format!(
                "subPath {sub:?} must be a relative path without '..'"
            ));
        }
        let full = self.path.join(rel);
        let escapes = || format!("subPath {sub:?} resolves outside its volume (through a symlink)");
        // A container can put a symlink in its volume; resolved, the path must still be
        // inside the volume, or a subPath could mount any of the node's files.
        let existing = deepest_existing(&full);
        let resolved = inside(&existing, &self.path).map_err(|_| escapes())?;
        if existing != full && self.read_only {
            return Err(format!(
                "subPath {sub:?} does not exist in its read-only volume"
            ));
        }
        let missing = full.strip_prefix(&existing).unwrap_or(Path::new(""));
        Ok(Some(PinnedSource {
            rel: in_root(&resolved.join(missing)).map_err(|_| escapes())?,
            root,
            create: !self.read_only,
        }))
    }
}

fn canonical(path: &Path) -> Result<PathBuf, String> {
    std::fs::canonicalize(path).map_err(|e| format!("resolving {}: {e}", path.display()))
}

/// `path` with symlinks resolved, if that is inside `dir` (also resolved).
fn inside(path: &Path, dir: &Path) -> Result<PathBuf, String> {
    let resolved = canonical(path)?;
    if resolved.starts_with(canonical(dir)?) {
        Ok(resolved)
    } else {
        Err(format!(
            "{} is outside {}",
            resolved.display(),
            dir.display()
        ))
    }
}

/// The longest prefix of `path` that exists (at worst `/`).
fn deepest_existing(path: &Path) -> PathBuf {
    path.ancestors()
        .find(|p| p.exists())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("/"))
}

pub type PodVolumes = BTreeMap<String, HostVolume>;

/// Where a pod's files live on the node.
pub fn pod_dir(data_dir: &Path, uid: &str) -> PathBuf {
    // uids come from the wire: keep only characters that cannot form a path.
    let safe: String = uid
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    data_dir.join("pods").join(safe)
}

fn set_mode(path: &Path, mode: u32) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| format!("setting the mode of {}: {e}", path.display()))
}

fn file_mode(item: Option<&KeyToPath>, default_mode: Option<i64>) -> u32 {
    let mode = item.and_then(|i| i.mode).or(default_mode).unwrap_or(0o644);
    (mode & 0o777) as u32
}

/// Writes `files` (relative path → contents, mode) into `dir`, replacing each file atomically
/// (write then rename) so a container never reads half a file, and removing files no longer
/// listed.
fn write_files(dir: &Path, files: &BTreeMap<String, (Vec<u8>, u32)>) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    for (rel, (contents, mode)) in files {
        let target = dir.join(rel);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| format!("creating {}: {e}", parent.display()))?;
        }
        if std::fs::read(&target).ok().as_deref() == Some(contents.as_slice()) {
            continue;
        }
        let tmp = target.with_file_name(format!(
            ".{}.tmp",
            target
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("file")
        ));
        std::fs::write(&tmp, contents).map_err(|e| format!("writing {}: {e}", tmp.display()))?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(*mode))
            .map_err(|e| format!("setting the mode of {}: {e}", tmp.display()))?;
        std::fs::rename(&tmp, &target)
            .map_err(|e| format!("replacing {}: {e}", target.display()))?;
    }
    // Only top-level files are pruned; nested item paths are left for the pod's lifetime.
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if entry.path().is_file() && !files.contains_key(&name) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
    Ok(())
}

fn projected(
    data: BTreeMap<String, Vec<u8>>,
    items: Option<&Vec<KeyToPath>>,
    default_mode: Option<i64>,
    what: &str,
) -> Result<BTreeMap<String, (Vec<u8>, u32)>, String> {
    let mut files = BTreeMap::new();
    match items {
        Some(items) => {
            for item in items {
                let Some(contents) = data.get(&item.key) else {
                    return Err(format!(
                        "configmap references non-existent config key: {} ({what})",
                        item.key
                    ));
                };
                let rel = Path::new(&item.path);
                if rel.is_absolute() || rel.components().any(|c| !matches!(c, Component::Normal(_)))
                {
                    return Err(format!(
                        "{what}: item path {:?} must be relative without '..'",
                        item.path
                    ));
                }
                files.insert(
                    item.path.clone(),
                    (contents.clone(), file_mode(Some(item), default_mode)),
                );
            }
        }
        None => {
            for (k, v) in data {
                files.insert(k, (v, file_mode(None, default_mode)));
            }
        }
    }
    Ok(files)
}

fn under_allowed(path: &Path, allowed: &[PathBuf]) -> bool {
    path.is_absolute()
        && !path.components().any(|c| matches!(c, Component::ParentDir))
        && allowed.iter().any(|prefix| path.starts_with(prefix))
}

/// `under_allowed` for what the path really is once symlinks are followed (on both sides).
fn resolved_under_allowed(path: &Path, allowed: &[PathBuf]) -> bool {
    let Ok(resolved) = std::fs::canonicalize(path) else {
        return false;
    };
    let allowed: Vec<PathBuf> = allowed
        .iter()
        .filter_map(|p| std::fs::canonicalize(p).ok())
        .collect();
    under_allowed(&resolved, &allowed)
}

/// Prepares (or refreshes) every volume of `pod` under `pod_dir`.
pub fn prepare(
    pod_dir: &Path,
    pod: &DesiredPod,
    allowed_host_paths: &[PathBuf],
) -> Result<PodVolumes, String> {
    let mut out = PodVolumes::new();
    // Secrets and ConfigMaps live below: only root on the node may enter.
    if let Some(pods) = pod_dir.parent() {
        std::fs::create_dir_all(pods).map_err(|e| format!("creating {}: {e}", pods.display()))?;
        set_mode(pods, 0o700)?;
    }
    let sc = pod.pod.spec.security_context.as_ref();
    let fs_group = sc
        .and_then(|s| s.fs_group)
        .and_then(|g| u32::try_from(g).ok());
    // The kinds of volume fsGroup applies to, and how.
    enum Owned {
        /// Its own folder only: containers write in it.
        Folder,
        /// Every file: the agent writes it, containers only read it.
        Files,
        /// The node's (hostPath): left alone.
        No,
    }
    for v in pod.pod.spec.volumes.iter().flatten() {
        let dir = pod_dir.join("volumes").join(&v.name);
        let (volume, owned) = if let Some(empty) = &v.empty_dir {
            let volume = empty_dir(&v.name, empty.medium.as_deref(), dir)?;
            (volume, Owned::Folder)
        } else if let Some(src) = &v.config_map {
            (config_map(&v.name, src, pod, dir)?, Owned::Files)
        } else if let Some(src) = &v.secret {
            (secret(&v.name, src, pod, dir)?, Owned::Files)
        } else if let Some(src) = &v.host_path {
            (host_path(&v.name, src, allowed_host_paths)?, Owned::No)
        } else if let Some(src) = &v.persistent_volume_claim {
            (claim(&v.name, src, pod, pod_dir)?, Owned::Folder)
        } else {
            continue;
        };
        let applied = match (fs_group, owned) {
            (Some(gid), Owned::Folder) => fs_group::apply_root(&volume.path, gid),
            (Some(gid), Owned::Files) => fs_group::apply(
                &volume.path,
                gid,
                !volume.read_only,
                fs_group::Change::Always,
            ),
            _ => Ok(()),
        };
        applied.map_err(|e| format!("volume {:?}: {e}", v.name))?;
        out.insert(v.name.clone(), volume);
    }
    Ok(out)
}

/// A claim's local volume (`DATA_DIR/volumes/<handle>`; the pod dir is
/// `DATA_DIR/pods/<uid>`), once the control plane has bound it on this node.
fn claim(
    volume: &str,
    src: &keel_schema::types::pod::PersistentVolumeClaimVolumeSource,
    pod: &DesiredPod,
    pod_dir: &Path,
) -> Result<HostVolume, String> {
    let Some(handle) = pod.claims.get(&src.claim_name) else {
        return Err(format!(
            "volume {volume:?}: PersistentVolumeClaim {:?} is not bound to a volume on this node yet",
            src.claim_name
        ));
    };
    let data_dir = pod_dir
        .parent()
        .and_then(Path::parent)
        .ok_or_else(|| format!("volume {volume:?}: no data dir above {}", pod_dir.display()))?;
    Ok(HostVolume {
        path: super::local_volumes::ensure(data_dir, handle)?,
        read_only: src.read_only == Some(true),
        host_root: None,
    })
}

/// A directory on the node's disk, writable by any user a container runs as, as
/// Kubernetes' emptyDir is.
fn empty_dir(volume: &str, medium: Option<&str>, dir: PathBuf) -> Result<HostVolume, String> {
    if medium == Some("Memory") {
        return Err(format!(
            "volume {volume:?}: emptyDir medium \"Memory\" is not supported on keel nodes yet; \
             leave medium unset for a directory on the node's disk"
        ));
    }
    std::fs::create_dir_all(&dir)
        .map_err(|e| format!("creating emptyDir {}: {e}", dir.display()))?;
    set_mode(&dir, 0o777)?;
    Ok(HostVolume {
        path: dir,
        read_only: false,
        host_root: None,
    })
}

/// A ConfigMap's keys (`binaryData` decoded) as files, read-only.
fn config_map(
    volume: &str,
    src: &ConfigMapVolumeSource,
    pod: &DesiredPod,
    dir: PathBuf,
) -> Result<HostVolume, String> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let name = src.name.clone().unwrap_or_default();
    let data = match pod.config_maps.get(&name) {
        Some(c) => {
            let mut data: BTreeMap<String, Vec<u8>> = c
                .data
                .iter()
                .flatten()
                .map(|(k, v)| (k.clone(), v.clone().into_bytes()))
                .collect();
            for (k, v) in c.binary_data.iter().flatten() {
                data.insert(k.clone(), b64.decode(v.trim()).unwrap_or_default());
            }
            data
        }
        None if src.optional.unwrap_or(false) => BTreeMap::new(),
        None => return Err(format!("configmap \"{name}\" not found")),
    };
    let what = format!("volume {volume:?}");
    write_files(
        &dir,
        &projected(data, src.items.as_ref(), src.default_mode, &what)?,
    )?;
    Ok(HostVolume {
        path: dir,
        read_only: true,
        host_root: None,
    })
}

/// A Secret's keys, decoded, as files, read-only.
fn secret(
    volume: &str,
    src: &SecretVolumeSource,
    pod: &DesiredPod,
    dir: PathBuf,
) -> Result<HostVolume, String> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let name = src.secret_name.clone().unwrap_or_default();
    let data = match pod.secrets.get(&name) {
        Some(s) => s
            .data
            .iter()
            .flat_map(|d| d.0.iter())
            .map(|(k, v)| (k.clone(), b64.decode(v.trim()).unwrap_or_default()))
            .collect(),
        None if src.optional.unwrap_or(false) => BTreeMap::new(),
        None => return Err(format!("secret \"{name}\" not found")),
    };
    let what = format!("volume {volume:?}");
    write_files(
        &dir,
        &projected(data, src.items.as_ref(), src.default_mode, &what)?,
    )?;
    // Readable inside the container by its own user; the node's other users are kept out by
    // the pods directory itself (0700).
    set_mode(&dir, 0o755)?;
    Ok(HostVolume {
        path: dir,
        read_only: true,
        host_root: None,
    })
}

/// A path on the node, only under `--allowed-host-path`, checked again once symlinks are
/// resolved, and mounted as resolved and pinned: a symlink cannot lead the agent or Docker
/// elsewhere, not even one swapped in after the check.
fn host_path(
    volume: &str,
    src: &HostPathVolumeSource,
    allowed: &[PathBuf],
) -> Result<HostVolume, String> {
    let path = PathBuf::from(&src.path);
    if !under_allowed(&path, allowed) {
        let listed = if allowed.is_empty() {
            " (none are allowed)".to_string()
        } else {
            let paths: Vec<String> = allowed.iter().map(|p| p.display().to_string()).collect();
            format!(" ({})", paths.join(", "))
        };
        return Err(format!(
            "hostPath {:?} of volume {volume:?} is not under any --allowed-host-path of this node{listed}",
            src.path
        ));
    }
    let outside = || {
        format!(
            "hostPath {:?} of volume {volume:?} is outside the allowed host paths once symlinks are resolved",
            src.path
        )
    };
    // Resolved before anything is created there.
    if !resolved_under_allowed(&deepest_existing(&path), allowed) {
        return Err(outside());
    }
    check_host_path_type(&path, src.type_.as_deref().unwrap_or(""), allowed)?;
    // A link (dangling ones too) must lead somewhere allowed.
    let present = std::fs::symlink_metadata(&path).is_ok();
    if present && !resolved_under_allowed(&path, allowed) {
        return Err(outside());
    }
    let path = std::fs::canonicalize(&path).unwrap_or(path);
    let host_root = allowed
        .iter()
        .filter_map(|p| std::fs::canonicalize(p).ok())
        .filter(|p| path.starts_with(p))
        .max_by_key(|p| p.components().count())
        .ok_or_else(outside)?;
    Ok(HostVolume {
        path,
        read_only: false,
        host_root: Some(host_root),
    })
}

/// hostPath's `type`: made when it says `…OrCreate`, checked when it names a kind.
fn check_host_path_type(path: &Path, type_: &str, allowed: &[PathBuf]) -> Result<(), String> {
    let creating =
        |what: &str, e: String| format!("creating hostPath {} ({what}): {e}", path.display());
    match type_ {
        "DirectoryOrCreate" => create_beneath(path, allowed, Create::Directory)
            .map_err(|e| creating("directory", e))?,
        "Directory" if !path.is_dir() => {
            return Err(format!(
                "hostPath type check failed: {} is not a directory",
                path.display()
            ));
        }
        "File" if !path.is_file() => {
            return Err(format!(
                "hostPath type check failed: {} is not a file",
                path.display()
            ));
        }
        "FileOrCreate" => {
            create_beneath(path, allowed, Create::File).map_err(|e| creating("file", e))?
        }
        _ => {}
    }
    Ok(())
}

#[derive(Clone, Copy, PartialEq)]
enum Create {
    File,
    Directory,
}

/// Makes `path` (and its missing folders) under the allowed prefix it is in, without ever
/// following a symbolic link: each folder is opened relative to the one before with
/// O_NOFOLLOW, and the file is created with O_CREAT|O_EXCL|O_NOFOLLOW. A link anywhere
/// below the prefix (a dangling one too) stops it before anything is created on the other
/// side. What exists already is left as it is (its type and target are checked after).
fn create_beneath(path: &Path, allowed: &[PathBuf], kind: Create) -> Result<(), String> {
    use nix::errno::Errno;
    use nix::fcntl::{OFlag, openat};
    use nix::sys::stat::{Mode, mkdirat};
    use std::os::fd::OwnedFd;

    let root = allowed
        .iter()
        .filter(|p| path.starts_with(p))
        .max_by_key(|p| p.components().count())
        .ok_or("not under an allowed host path")?;
    let names: Vec<&std::ffi::OsStr> = path
        .strip_prefix(root)
        .map_err(|e| e.to_string())?
        .components()
        .map(|c| c.as_os_str())
        .collect();
    let dir_flags = OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_RDONLY;
    let refused = |name: &std::ffi::OsStr, e: Errno| match e {
        Errno::ELOOP | Errno::ENOTDIR => format!(
            "{:?} is a symbolic link or not a folder; keel does not follow links when it creates host paths",
            name
        ),
        e => format!("{name:?}: {e}"),
    };
    // The prefix itself is the admin's to choose, links included.
    let mut dir: OwnedFd = nix::fcntl::open(
        root.as_path(),
        OFlag::O_DIRECTORY | OFlag::O_CLOEXEC | OFlag::O_RDONLY,
        Mode::empty(),
    )
    .map_err(|e| format!("{}: {e}", root.display()))?;
    let Some((last, folders)) = names.split_last() else {
        return Ok(());
    };
    for name in folders {
        match mkdirat(&dir, *name, Mode::from_bits_truncate(0o755)) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => return Err(refused(name, e)),
        }
        dir = openat(&dir, *name, dir_flags, Mode::empty()).map_err(|e| refused(name, e))?;
    }
    match kind {
        Create::Directory => match mkdirat(&dir, *last, Mode::from_bits_truncate(0o755)) {
            Ok(()) | Err(Errno::EEXIST) => Ok(()),
            Err(e) => Err(refused(last, e)),
        },
        Create::File => {
            let flags = OFlag::O_CREAT
                | OFlag::O_EXCL
                | OFlag::O_NOFOLLOW
                | OFlag::O_WRONLY
                | OFlag::O_CLOEXEC;
            match openat(&dir, *last, flags, Mode::from_bits_truncate(0o644)) {
                Ok(_) | Err(Errno::EEXIST) => Ok(()),
                Err(e) => Err(refused(last, e)),
            }
        }
    }
}

#[cfg(test)]
mod tests;
