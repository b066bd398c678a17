//! Helpers for the end-to-end suite in `tests/`: finding the real binaries.
#![forbid(unsafe_code)]

mod lan;
mod server;

pub use lan::TestLan;
pub use server::Server;

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// The path of a workspace binary (`keel`, `keel-agent`), built first if needed. The suite
/// runs the same binaries a user would, not library calls.
pub fn binary(name: &str) -> PathBuf {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    let built = BUILT.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        // Benches run from the release profile's directory, and find their binaries there.
        let release = target_dir().ends_with("release").then_some("--release");
        let status = Command::new(cargo)
            .args(["build", "--quiet", "--bin", "keel", "--bin", "keel-agent"])
            .args(["--bin", "udp-echo"])
            .args(release)
            .current_dir(workspace_root())
            .status()
            .map_err(|e| format!("cannot run cargo: {e}"))?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("cargo build failed: {status}"))
        }
    });
    if let Err(e) = built {
        panic!("{e}");
    }
    target_dir().join(name)
}

/// A join token for a new agent from the server at `url` (`keel token create`, an hour).
pub fn join_token(url: &str, admin_token: &str) -> String {
    let out = Command::new(binary("keel"))
        .args(["token", "create", "--ttl", "1h", "--server", url])
        .env("KEEL_TOKEN", admin_token)
        .output()
        .expect("keel token create runs");
    assert!(
        out.status.success(),
        "keel token create: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A loopback port that was free a moment ago, for a process the test starts.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// The workspace's root folder.
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default()
}

/// `target/debug` (or the profile the tests were built with): the test binary lives in its
/// `deps/` folder.
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    exe.parent()
        .and_then(|deps| deps.parent())
        .map(PathBuf::from)
        .unwrap_or_default()
}

/// Runs `git` in `dir` as a fixed test identity, on `main`; panics with git's message on
/// failure. Returns its trimmed output.
pub fn git(dir: &std::path::Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args([
            "-c",
            "user.name=Dev",
            "-c",
            "user.email=dev@example.com",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Writes `text` to `dir/file`, creating folders.
pub fn write(dir: &std::path::Path, file: &str, text: &str) {
    let path = dir.join(file);
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, text).expect("write");
}

/// Commits everything in `dir`; returns the new commit id.
pub fn commit(dir: &std::path::Path, message: &str) -> String {
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "--allow-empty", "-m", message]);
    git(dir, &["rev-parse", "HEAD"])
}

/// Docker is usable here: true, or false after saying why (the caller skips), or a panic when
/// `KEEL_REQUIRE_DOCKER=1` (as `scripts/test` and CI set) says it must be.
pub fn docker_available() -> bool {
    let ok = Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .output()
        .is_ok_and(|o| o.status.success());
    let required = std::env::var("KEEL_REQUIRE_DOCKER").is_ok_and(|v| v == "1");
    if !ok && required {
        panic!("KEEL_REQUIRE_DOCKER=1 but `docker info` fails: is dockerd running?");
    }
    if !ok {
        eprintln!("skipping: Docker is not usable; set KEEL_REQUIRE_DOCKER=1 to fail instead");
    }
    ok
}

/// Makes the image `reference` from Debian's busybox-static (no registry is reachable
/// here): busybox and its applets in `/bin`, plus `files` (path, contents).
pub fn import_busybox_image(reference: &str, files: &[(&str, &str)]) {
    import_image(reference, files, &[]);
}

/// As [`import_busybox_image`], plus host `programs` copied into `/bin` with the shared
/// libraries `ldd` lists for them, at their host paths.
pub fn import_image(reference: &str, files: &[(&str, &str)], programs: &[PathBuf]) {
    let mut rootfs = keel_rootfs::Rootfs::busybox();
    for (path, contents) in files {
        rootfs = rootfs.file(path, *contents, 0o644);
    }
    for program in programs {
        let name = program
            .file_name()
            .expect("a program file")
            .to_string_lossy();
        let binary = std::fs::read(program).expect("read the program");
        rootfs = rootfs.file(&format!("bin/{name}"), binary, 0o755);
        let ldd = Command::new("ldd").arg(program).output().expect("ldd");
        for lib in String::from_utf8_lossy(&ldd.stdout)
            .split_whitespace()
            .filter(|w| w.starts_with('/'))
        {
            let bytes = std::fs::read(lib).expect("read a shared library");
            rootfs = rootfs.file(lib, bytes, 0o755);
        }
    }
    let tar = rootfs.tar().expect("the image's filesystem");
    let mut child = Command::new("docker")
        .args(["import", "-", reference])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("docker import");
    std::io::Write::write_all(&mut child.stdin.take().expect("stdin"), &tar)
        .expect("write to docker import");
    let status = child.wait().expect("docker import");
    assert!(status.success(), "docker import {reference} failed");
}
