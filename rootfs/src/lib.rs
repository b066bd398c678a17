//! Root filesystems for images made without a registry (none is reachable where keel is
//! tried): Debian's static busybox with every applet linked under `/bin`, the directories a
//! container expects, and any files given, packed as one tar for `docker import`.
//!
//! The node agent makes its pod sandbox image this way, `keel up` the example app's images,
//! and the tests their images; one builder, so they all get the same filesystem.

#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// Where Debian's busybox-static puts busybox (the same file on merged-/usr systems).
const BUSYBOX_PATHS: [&str; 2] = ["/bin/busybox", "/usr/bin/busybox"];

/// Directories every image has, with their modes: mount points and scratch space.
const DIRECTORIES: [(&str, u32); 9] = [
    ("bin", 0o755),
    ("dev", 0o755),
    ("etc", 0o755),
    ("proc", 0o755),
    ("root", 0o755),
    ("sys", 0o755),
    ("tmp", 0o1777),
    ("var", 0o755),
    ("var/www", 0o755),
];

#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    #[error("busybox is not installed (looked for {}); install it with: apt-get install -y busybox-static", BUSYBOX_PATHS.join(", "))]
    NoBusybox,
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{0} is dynamically linked; an image without libc needs the static build: apt-get install -y busybox-static"
    )]
    NotStatic(PathBuf),
    #[error("{path} cannot list its applets: {message}")]
    Applets { path: PathBuf, message: String },
    #[error("file {path:?} in an image must be a path inside it, without '..'")]
    BadPath { path: String },
    #[error("packing the image's filesystem: {0}")]
    Tar(#[from] std::io::Error),
}

/// A root filesystem being put together; [`Rootfs::tar`] packs it.
#[derive(Debug, Clone, Default)]
pub struct Rootfs {
    dirs: Vec<(String, u32)>,
    files: Vec<(String, Vec<u8>, u32)>,
}

impl Rootfs {
    /// Busybox and the usual directories, nothing else yet.
    pub fn busybox() -> Rootfs {
        Rootfs::default()
    }

    /// Adds a directory (`srv/cgi-bin`, say) with `mode`.
    pub fn dir(mut self, path: &str, mode: u32) -> Rootfs {
        self.dirs
            .push((path.trim_start_matches('/').to_string(), mode));
        self
    }

    /// Adds a file at `path` (absolute or relative to the root) with `mode`.
    pub fn file(mut self, path: &str, contents: impl Into<Vec<u8>>, mode: u32) -> Rootfs {
        self.files.push((
            path.trim_start_matches('/').to_string(),
            contents.into(),
            mode,
        ));
        self
    }

    /// The filesystem as a tar: directories, then busybox and its applet links, then the
    /// files given (a file given at an applet's path replaces the link).
    pub fn tar(&self) -> Result<Vec<u8>, RootfsError> {
        for (path, _, _) in &self.files {
            if path.is_empty() || path.split('/').any(|part| part == "..") {
                return Err(RootfsError::BadPath { path: path.clone() });
            }
        }
        // Read afresh each time rather than kept: the agent makes one image at start and
        // should not hold busybox's megabytes for the rest of its life.
        let busybox = find_busybox()?;
        let binary = std::fs::read(&busybox).map_err(|source| RootfsError::Read {
            path: busybox.clone(),
            source,
        })?;
        if is_dynamically_linked(&binary) {
            return Err(RootfsError::NotStatic(busybox));
        }
        let applets = applets(&busybox)?;
        let mut tar = tar::Builder::new(Vec::new());
        let dirs = DIRECTORIES
            .iter()
            .map(|(p, m)| (*p, *m))
            .chain(self.dirs.iter().map(|(p, m)| (p.as_str(), *m)));
        for (path, mode) in dirs {
            let mut h = header(tar::EntryType::Directory, mode, 0);
            tar.append_data(&mut h, path, std::io::empty())?;
        }
        let mut h = header(tar::EntryType::Regular, 0o755, binary.len());
        tar.append_data(&mut h, "bin/busybox", binary.as_slice())?;
        let given = |link: &str| self.files.iter().any(|(p, _, _)| p == link);
        for applet in applets {
            let link = format!("bin/{applet}");
            if !given(&link) {
                let mut h = header(tar::EntryType::Symlink, 0o777, 0);
                tar.append_link(&mut h, link, "busybox")?;
            }
        }
        for (path, contents, mode) in &self.files {
            let mut h = header(tar::EntryType::Regular, *mode, contents.len());
            tar.append_data(&mut h, path, contents.as_slice())?;
        }
        Ok(tar.into_inner()?)
    }
}

fn header(kind: tar::EntryType, mode: u32, size: usize) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size as u64);
    h
}

fn find_busybox() -> Result<PathBuf, RootfsError> {
    BUSYBOX_PATHS
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .ok_or(RootfsError::NoBusybox)
}

/// A dynamically linked program names its loader near the start of the file; in an image
/// without libc it would not even start.
fn is_dynamically_linked(binary: &[u8]) -> bool {
    let head = &binary[..binary.len().min(8192)];
    head.windows(7).any(|w| w == b"ld-linu")
}

/// The applet names busybox lists, leaving out itself and anything that is not a plain name.
fn applets(busybox: &Path) -> Result<Vec<String>, RootfsError> {
    let out = Command::new(busybox)
        .arg("--list")
        .output()
        .map_err(|e| RootfsError::Applets {
            path: busybox.to_path_buf(),
            message: e.to_string(),
        })?;
    if !out.status.success() {
        return Err(RootfsError::Applets {
            path: busybox.to_path_buf(),
            message: format!("busybox --list: {}", out.status),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::trim)
        .filter(|a| !a.is_empty() && *a != "busybox" && !a.contains('/'))
        .map(str::to_string)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The test script installs busybox-static and sets KEEL_REQUIRE_DOCKER (images need
    /// both), so there a missing busybox fails; a bare `cargo test` skips, saying so.
    fn busybox_installed() -> bool {
        let found = find_busybox().is_ok();
        if !found && std::env::var_os("KEEL_REQUIRE_DOCKER").is_some_and(|v| v == "1") {
            panic!("busybox-static is not installed and KEEL_REQUIRE_DOCKER=1");
        }
        if !found {
            eprintln!("skipping: busybox-static is not installed");
        }
        found
    }

    fn entries(tar: &[u8]) -> Vec<(String, tar::EntryType, u32, Vec<u8>)> {
        let mut archive = tar::Archive::new(tar);
        archive
            .entries()
            .expect("a tar")
            .map(|e| {
                let mut e = e.expect("an entry");
                let path = e.path().expect("a path").display().to_string();
                let kind = e.header().entry_type();
                let mode = e.header().mode().expect("a mode");
                let mut body = Vec::new();
                std::io::Read::read_to_end(&mut e, &mut body).expect("a body");
                (path, kind, mode, body)
            })
            .collect()
    }

    #[test]
    fn holds_busybox_its_applets_the_usual_directories_and_the_files_given() {
        if !busybox_installed() {
            return;
        }
        let tar = Rootfs::busybox()
            .dir("srv/cgi-bin", 0o755)
            .file("/srv/cgi-bin/index.cgi", "#!/bin/sh\necho hi\n", 0o755)
            .file("bin/sh", "not a shell", 0o700)
            .tar()
            .expect("packs");
        let all = entries(&tar);
        let find = |p: &str| all.iter().find(|(path, ..)| path == p);
        let tmp = find("tmp").expect("tmp");
        assert_eq!((tmp.1, tmp.2), (tar::EntryType::Directory, 0o1777));
        assert_eq!(
            find("srv/cgi-bin").map(|e| e.1),
            Some(tar::EntryType::Directory)
        );
        let busybox = find("bin/busybox").expect("busybox");
        assert!(!is_dynamically_linked(&busybox.3) && busybox.3.len() > 100_000);
        assert_eq!(find("bin/ls").map(|e| e.1), Some(tar::EntryType::Symlink));
        let script = find("srv/cgi-bin/index.cgi").expect("the file given");
        assert_eq!(
            (script.2, script.3.as_slice()),
            (0o755, &b"#!/bin/sh\necho hi\n"[..])
        );
        // A file given at an applet's path is that file, not a link beside it.
        let shells: Vec<_> = all.iter().filter(|(p, ..)| p == "bin/sh").collect();
        assert_eq!(shells.len(), 1);
        assert_eq!(shells[0].3, b"not a shell");
    }

    #[test]
    fn a_path_outside_the_image_is_refused() {
        // Refused before busybox is looked for.
        let err = Rootfs::busybox()
            .file("../etc/passwd", "x", 0o644)
            .tar()
            .expect_err("refused");
        assert!(err.to_string().contains("../etc/passwd"), "{err}");
    }

    #[test]
    fn a_dynamic_busybox_is_named_as_such() {
        assert!(is_dynamically_linked(
            b"\x7fELF....../lib64/ld-linux-x86-64.so.2"
        ));
        assert!(!is_dynamically_linked(b"\x7fELF static"));
    }
}
