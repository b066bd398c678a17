//! The example app's images, made on this machine: no registry is reachable here, so each
//! image is Debian's static busybox with its applets, plus the app's scripts, packed as a
//! tar and loaded with `docker import`. `web:1` and `web:2` differ only in the version their
//! page shows, so changing the tag in a commit shows a rolling update.

use std::io::Write;
use std::process::{Command, Stdio};

use keel_rootfs::Rootfs;

/// `web`'s page: the ConfigMap's HTML, which pod answered, and what `api` said; a log line
/// for each page served.
const WEB_PAGE: &str = r#"#!/bin/sh
# The page of keel's example app (a CGI script run by busybox httpd for "/").
echo "Content-Type: text/html"
echo ""
cat /config/index.html 2>/dev/null || echo "<p>(no page: the web-page ConfigMap is missing)</p>"
echo "<p>Served by pod <b>$(hostname)</b>, image keel-example/web:@VERSION@.</p>"
answer=$(printf 'GET / HTTP/1.0\r\n\r\n' | nc -w 2 "$API_SERVICE_HOST" "$API_SERVICE_PORT" 2>/dev/null | tail -n 1)
echo "<p>api answered: ${answer:-(no answer)}</p>"
# One log line per page served (httpd passes a CGI's stderr on to the container's log).
echo "served / to ${REMOTE_ADDR:-?} with image web:@VERSION@" >&2
"#;

/// `api`'s answer: who answered, and that the Secret's token arrived (its length only).
const API_ANSWER: &str = r#"#!/bin/sh
echo "Content-Type: text/plain"
echo ""
echo "hello from $(hostname), holding a token of ${#API_TOKEN} characters"
"#;

/// One image: its reference and its filesystem.
pub struct Image {
    pub reference: String,
    rootfs: Rootfs,
}

/// An example app's filesystem: busybox, its CGI answer and a health page under `/srv`, and
/// `/config` for the ConfigMap it mounts.
fn app_rootfs(answer: String) -> Rootfs {
    Rootfs::busybox()
        .dir("config", 0o755)
        .dir("srv", 0o755)
        .dir("srv/cgi-bin", 0o755)
        .file("srv/cgi-bin/index.cgi", answer, 0o755)
        .file("srv/healthz", "ok\n", 0o644)
}

/// The images the example repository uses.
pub fn example_images() -> Vec<Image> {
    let web = |version: &str| Image {
        reference: format!("keel-example/web:{version}"),
        rootfs: app_rootfs(WEB_PAGE.replace("@VERSION@", version)),
    };
    vec![
        web("1"),
        web("2"),
        Image {
            reference: "keel-example/api:1".into(),
            rootfs: app_rootfs(API_ANSWER.to_string()),
        },
    ]
}

/// Makes the example's images that are missing; without them the example cannot run, but
/// another repository (`has_repo`) may not need them.
pub fn ensure_example_images(has_repo: bool, step: fn(&str)) -> anyhow::Result<()> {
    let mut missing = Vec::new();
    for image in example_images() {
        if !present(&image.reference)
            && let Err(e) = import(&image)
        {
            missing.push(format!("{}: {e:#}", image.reference));
        }
    }
    match (missing.is_empty(), has_repo) {
        (true, _) => {
            step("images ready: keel-example/web:1, keel-example/web:2, keel-example/api:1")
        }
        (false, false) => anyhow::bail!("cannot make the example's images: {}", missing.join("; ")),
        (false, true) => step(&format!(
            "the example's images could not be made ({}); going on with your repository",
            missing.join("; ")
        )),
    }
    Ok(())
}

/// Whether the engine already has `reference`.
pub fn present(reference: &str) -> bool {
    Command::new("docker")
        .args(["image", "inspect", "--format", "{{.Id}}", reference])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Makes `image` with `docker import`.
pub fn import(image: &Image) -> anyhow::Result<()> {
    let tar = image.rootfs.tar()?;
    let mut child = Command::new("docker")
        .args(["import", "-", &image.reference])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| anyhow::anyhow!("cannot run docker: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(&tar)?;
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        anyhow::bail!(
            "docker import {} failed: {}",
            image.reference,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}
