//! The web UI in a real browser: `tests/browser/ui.mjs` drives Debian's chromium with
//! playwright-core against the running `keel up` (sign-in, overview, a live commit, a broken
//! one, the tree, logs, the terminal, plans, history, nodes, a phone's width, CSRF, no
//! Secret value in any page). Screenshots go to `target/ui-screenshots/`.

use std::path::{Path, PathBuf};
use std::process::Command;

use keel_e2e::binary;

/// Where the script and its node_modules are (`scripts/install-deps` runs `npm ci` there).
fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("browser")
}

/// Runs the browser checks against `server` (keel up's, data dir `data`), committing to
/// `repo`; `branch` changes web's image.
pub fn check(data: &Path, server: &str, repo: &Path, branch: &str) {
    let dir = browser_dir();
    assert!(
        dir.join("node_modules/playwright-core").is_dir(),
        "playwright-core is not installed in {}: run bash scripts/install-deps (it runs npm ci there)",
        dir.display()
    );
    assert!(
        Path::new("/usr/bin/chromium").exists(),
        "Debian's chromium is not installed: run bash scripts/install-deps"
    );
    let server_dir = data.join("server");
    let token = std::fs::read_to_string(server_dir.join("admin-token"))
        .expect("keel up's admin token")
        .trim()
        .to_string();
    let link = Command::new(binary("keel"))
        .env("KEEL_DATA_DIR", &server_dir)
        .args(["ui", "--no-browser", "--server", server])
        .output()
        .expect("keel ui");
    let link_text = String::from_utf8_lossy(&link.stdout).trim().to_string();
    assert!(
        link.status.success() && link_text.starts_with(&format!("{server}/ui/login?code=")),
        "keel ui prints a one-time link: {link_text} {}",
        String::from_utf8_lossy(&link.stderr)
    );
    let artifacts = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/ui-screenshots");
    let run = Command::new("node")
        .arg(dir.join("ui.mjs"))
        .current_dir(&dir)
        .env("KEEL_URL", server)
        .env("KEEL_TOKEN", token)
        .env("KEEL_LOGIN_URL", &link_text)
        .env("KEEL_REPO", repo)
        .env("KEEL_BRANCH", branch)
        .env("KEEL_SECRETS", "change-me")
        .env("KEEL_ARTIFACTS", &artifacts)
        .output()
        .expect("node runs the browser checks");
    let out = String::from_utf8_lossy(&run.stdout);
    let err = String::from_utf8_lossy(&run.stderr);
    eprintln!("{out}");
    assert!(
        run.status.success(),
        "the browser checks failed:\n{out}\n{err}\nscreenshots: {}",
        artifacts.display()
    );
}
