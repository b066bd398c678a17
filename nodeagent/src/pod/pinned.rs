//! Mount sources pinned before Docker sees them (the kubelet's answer to CVE-2017-1002101).
//!
//! A subPath, or a hostPath, is checked by the agent and then mounted by runc, which
//! resolves the path again. A container sharing the volume can swap a folder on that path
//! for a symbolic link in between and have runc mount any of the node's files. So the agent
//! never gives Docker such a path: it opens the path one component at a time beneath a
//! folder it trusts, never following a link (`O_PATH|O_NOFOLLOW`), bind-mounts the opened
//! file itself (`/proc/thread-self/fd/N`) onto a staging path in the pod's own folder,
//! `<pod dir>/pinned/<container>/<mount index>`, and gives Docker that. What the
//! container gets is what was checked, whatever happens to the path later.
//!
//! The mounts are made in the Docker engine's own mount namespace, where it looks for bind
//! sources (the runtime names it: [`HostBinds`]). An agent started under `ip netns exec`
//! has a private one, whose mounts the engine would never see. A thread of its own joins
//! the engine's (after unsharing its filesystem context, which the kernel requires) and
//! ends with the work.
//!
//! Before a pod's folder is removed, every staging mount is unmounted and its mount point
//! removed without recursion, so a removal can never reach into a volume's contents.

use std::ffi::OsStr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{OFlag, open, openat};
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sys::stat::{Mode, SFlag, fstat, mkdirat};

use crate::runtime::{HostBinds, Runtime};

/// A mount source to pin: `rel` beneath the trusted folder `root`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pin {
    /// Opened following links: the agent's own volume folder, or an allowed host prefix
    /// (the admin's to choose, links included).
    pub root: PathBuf,
    /// Plain names only; none of them may be a link when the path is opened.
    pub rel: PathBuf,
    /// Missing folders on `rel` are made (a writable volume's subPath, as the kubelet does).
    pub create: bool,
    /// Where the opened path is bound: what the runtime mounts.
    pub staging: PathBuf,
}

/// The staging folder of a pod.
fn pinned_dir(pod_dir: &Path) -> PathBuf {
    pod_dir.join("pinned")
}

/// The staging path of mount `index` of `container`.
pub fn staging(pod_dir: &Path, container: &str, index: usize) -> PathBuf {
    // Container names are DNS labels (validated on the control plane); anything else
    // still cannot form a path.
    let safe: String = container
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    pinned_dir(pod_dir).join(safe).join(index.to_string())
}

/// Pins every source in `pins` (those of one container, made again at each of its starts)
/// where `runtime`'s engine resolves bind sources.
pub async fn pin_all(runtime: &dyn Runtime, pins: Vec<Pin>) -> Result<(), String> {
    let binds = runtime.host_binds()?;
    if pins.is_empty() || binds == HostBinds::Nothing {
        return Ok(());
    }
    in_mount_namespace(binds, move || pins.iter().try_for_each(pin)).await
}

/// Unmounts and removes every staging path of the pod at `pod_dir`; an error when one is
/// left (the pod's folder must then not be removed).
pub async fn release(runtime: &dyn Runtime, pod_dir: &Path) -> Result<(), String> {
    let dir = pinned_dir(pod_dir);
    if std::fs::symlink_metadata(&dir).is_err() {
        return Ok(());
    }
    let binds = match runtime.host_binds()? {
        // Nothing was mounted: the folders are removed all the same.
        HostBinds::Nothing => HostBinds::Here,
        binds => binds,
    };
    in_mount_namespace(binds, move || release_dir(&dir)).await
}

/// Runs `work` on a thread of its own in the mount namespace `binds` names.
async fn in_mount_namespace<T: Send + 'static>(
    binds: HostBinds,
    work: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("keel-pin".into())
        .spawn(move || {
            let entered = match &binds {
                HostBinds::In(namespace) => enter_mount_namespace(namespace),
                HostBinds::Here | HostBinds::Nothing => Ok(()),
            };
            let _ = tx.send(entered.and_then(|()| work()));
        })
        .map_err(|e| format!("cannot start a thread to mount volumes: {e}"))?;
    rx.await
        .map_err(|_| "the volume mount thread stopped without an answer".to_string())?
}

/// Moves the calling thread (only it) into mount namespace `namespace`, when that is not
/// its own already.
fn enter_mount_namespace(namespace: &Path) -> Result<(), String> {
    let failed = |what: &str, e: &dyn std::fmt::Display| {
        format!(
            "cannot {what} the Docker engine's mount namespace {}, where volume paths are \
             mounted for it: {e}",
            namespace.display()
        )
    };
    let id = |p: &Path| std::fs::metadata(p).map(|m| (m.dev(), m.ino()));
    let theirs = id(namespace).map_err(|e| failed("read", &e))?;
    if id(Path::new("/proc/thread-self/ns/mnt")).ok() == Some(theirs) {
        return Ok(());
    }
    use nix::sched::{CloneFlags, setns, unshare};
    // A thread that shares its filesystem context cannot change mount namespace.
    unshare(CloneFlags::CLONE_FS).map_err(|e| failed("prepare to enter", &e))?;
    let file = std::fs::File::open(namespace).map_err(|e| failed("open", &e))?;
    setns(&file, CloneFlags::CLONE_NEWNS).map_err(|e| failed("enter", &e))
}

/// Opens `pin.rel` beneath `pin.root` without following links and binds it on
/// `pin.staging`.
fn pin(pin: &Pin) -> Result<(), String> {
    let shown = pin.root.join(&pin.rel);
    let opened = open_beneath(&pin.root, &pin.rel, pin.create)
        .map_err(|e| format!("{}: {e}", shown.display()))?;
    let stat = fstat(&opened).map_err(|e| format!("{}: {e}", shown.display()))?;
    let is_dir = SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR;
    let target = &pin.staging;
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| format!("creating {}: {e}", parent.display()))?;
    }
    unmount_all(target)?;
    make_mount_point(target, is_dir)?;
    let source = format!("/proc/thread-self/fd/{}", opened.as_raw_fd());
    mount(
        Some(source.as_str()),
        target,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(|e| {
        format!(
            "cannot bind {} on {}: {e}",
            shown.display(),
            target.display()
        )
    })?;
    // A bind of a shared mount (a hostPath of `/`, say) would be its peer, and every later
    // mount anywhere would propagate into it: the staging mount is kept private.
    mount(
        None::<&str>,
        target,
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(|e| format!("cannot make {} private: {e}", target.display()))
}

/// `rel` beneath `root`, each name opened relative to the one before it with O_NOFOLLOW;
/// a link anywhere (the last name too) is refused.
fn open_beneath(root: &Path, rel: &Path, create: bool) -> Result<OwnedFd, String> {
    let path_flags = OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let mut at = open(
        root,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| format!("opening {}: {e}", root.display()))?;
    let names: Vec<&OsStr> = rel
        .components()
        .map(|c| match c {
            Component::Normal(name) => Ok(name),
            other => Err(format!(
                "{:?} is not a plain name",
                other.as_os_str().to_string_lossy()
            )),
        })
        .collect::<Result<_, _>>()?;
    for name in names {
        if create {
            match mkdirat(&at, name, Mode::from_bits_truncate(0o755)) {
                Ok(()) | Err(Errno::EEXIST) => {}
                Err(e) => return Err(format!("creating {name:?}: {e}")),
            }
        }
        let next = openat(&at, name, path_flags, Mode::empty())
            .map_err(|e| format!("opening {name:?}: {e}"))?;
        let stat = fstat(&next).map_err(|e| format!("{name:?}: {e}"))?;
        if SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT == SFlag::S_IFLNK {
            return Err(format!(
                "{name:?} is a symbolic link: it changed after it was checked, or leads \
                 elsewhere; keel mounts no path through a link"
            ));
        }
        at = next;
    }
    Ok(at)
}

/// Unmounts whatever is mounted on `target` (stacked mounts too).
fn unmount_all(target: &Path) -> Result<(), String> {
    for _ in 0..64 {
        match umount2(target, MntFlags::MNT_DETACH) {
            Ok(()) => continue,
            // Not a mount point (any more), or not there at all.
            Err(Errno::EINVAL | Errno::ENOENT) => return Ok(()),
            Err(e) => return Err(format!("cannot unmount {}: {e}", target.display())),
        }
    }
    Err(format!(
        "{} still has mounts after 64 unmounts",
        target.display()
    ))
}

/// An empty folder (for a folder) or empty file (for anything else) at `target`.
fn make_mount_point(target: &Path, is_dir: bool) -> Result<(), String> {
    let made = |e: std::io::Error| format!("making mount point {}: {e}", target.display());
    match std::fs::symlink_metadata(target) {
        Ok(m) if m.is_dir() == is_dir && !m.file_type().is_symlink() => return Ok(()),
        Ok(m) if m.is_dir() => std::fs::remove_dir(target).map_err(made)?,
        Ok(_) => std::fs::remove_file(target).map_err(made)?,
        Err(_) => {}
    }
    if is_dir {
        std::fs::create_dir(target).map_err(made)
    } else {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(target)
            .map(drop)
            .map_err(made)
    }
}

/// Unmounts and removes `<pinned>/<container>/<index>`, then the folders above; never
/// recursive, so nothing still mounted is ever emptied.
fn release_dir(pinned: &Path) -> Result<(), String> {
    let list = |dir: &Path| -> Result<Vec<PathBuf>, String> {
        std::fs::read_dir(dir)
            .map_err(|e| format!("reading {}: {e}", dir.display()))?
            .map(|e| e.map(|e| e.path()).map_err(|e| e.to_string()))
            .collect()
    };
    let removed = |path: &Path, e: std::io::Error| format!("removing {}: {e}", path.display());
    for container in list(pinned)? {
        for target in list(&container)? {
            unmount_all(&target)?;
            match std::fs::symlink_metadata(&target) {
                Ok(m) if m.is_dir() => {
                    std::fs::remove_dir(&target).map_err(|e| removed(&target, e))?
                }
                Ok(_) => std::fs::remove_file(&target).map_err(|e| removed(&target, e))?,
                Err(_) => {}
            }
        }
        std::fs::remove_dir(&container).map_err(|e| removed(&container, e))?;
    }
    std::fs::remove_dir(pinned).map_err(|e| removed(pinned, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staging_paths_stay_in_the_pod_folder() {
        let p = staging(Path::new("/d/pods/u"), "../x", 3);
        assert_eq!(p, Path::new("/d/pods/u/pinned/___x/3"));
    }

    #[test]
    fn opening_beneath_refuses_links_and_names_that_climb() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("a/b")).unwrap();
        std::os::unix::fs::symlink("/", root.path().join("a/up")).unwrap();
        assert!(open_beneath(root.path(), Path::new("a/b"), false).is_ok());
        for rel in ["a/up", "a/up/etc", "a/../a"] {
            let err = open_beneath(root.path(), Path::new(rel), false).unwrap_err();
            assert!(
                err.contains("symbolic link") || err.contains("plain name"),
                "{rel}: {err}"
            );
        }
        // Made when asked, never through a link.
        assert!(open_beneath(root.path(), Path::new("a/new/deeper"), true).is_ok());
        assert!(root.path().join("a/new/deeper").is_dir());
        let marker = format!("keel-must-not-exist-{}", std::process::id());
        assert!(open_beneath(root.path(), &Path::new("a/up").join(&marker), true).is_err());
        assert!(!Path::new("/").join(marker).exists());
    }
}
