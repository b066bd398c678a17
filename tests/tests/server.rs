//! `keel server` following real git repositories: commits applied whole, bad commits
//! rejected with nothing applied, reverts, refused empty revisions, force-pushes, webhooks
//! and unreachable remotes.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use keel_e2e::{Server, binary, commit, free_port, git, write};
use serde_json::Value;

fn deployment(replicas: u32, image: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web}}\nspec:\n  replicas: {replicas}\n  selector: {{matchLabels: {{app: web}}}}\n  template:\n    metadata: {{labels: {{app: web}}}}\n    spec:\n      containers: [{{name: web, image: \"{image}\", ports: [{{name: http, containerPort: 8080}}]}}]\n"
    )
}

const SERVICE: &str = "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  selector: {app: web}\n  ports: [{port: 80, targetPort: http}]\n";

fn replicas(server: &Server) -> Option<u64> {
    server
        .applied("Deployment", "web")
        .and_then(|d| d["spec"]["replicas"].as_u64())
}

fn history(server: &Server) -> Vec<Value> {
    server
        .get("/api/keel/history?limit=50")
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default()
}

#[test]
fn commits_apply_whole_bad_commits_apply_nothing_and_revert_restores() {
    let dir = tempfile::tempdir().expect("repo");
    let repo = dir.path();
    git(repo, &["init", "-q"]);
    write(repo, "web/deployment.yaml", &deployment(3, "web:1"));
    write(repo, "web/service.yaml", SERVICE);
    let first = commit(repo, "web, three replicas");
    // No periodic pass for an hour: every pickup below comes from watching the repository.
    let server = Server::start(repo.to_str().expect("path"), &["--resync-interval", "1h"]);
    server.wait_commit("applied_commit", &first);
    assert_eq!(replicas(&server), Some(3));
    let applied = server.applied("Deployment", "web").expect("applied");
    assert_eq!(applied["metadata"]["labels"]["keel.dev/managed-by"], "git");
    assert_eq!(
        applied["metadata"]["annotations"]["keel.dev/revision"],
        first.as_str()
    );

    // A new commit is picked up without a restart.
    write(repo, "web/deployment.yaml", &deployment(5, "web:1"));
    let second = commit(repo, "five replicas");
    server.wait_commit("applied_commit", &second);
    assert_eq!(replicas(&server), Some(5));

    // A reviewer's branch, planned against what the server runs now.
    git(repo, &["checkout", "-q", "-b", "feature"]);
    write(repo, "web/deployment.yaml", &deployment(9, "web:1"));
    commit(repo, "nine replicas, for review");
    git(repo, &["checkout", "-q", "main"]);
    let out = server
        .keel()
        .args([
            "plan",
            "--repo",
            repo.to_str().expect("path"),
            "--to",
            "feature",
            "--server",
            &server.url,
            "--format",
            "json",
        ])
        .output()
        .expect("keel plan");
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plan: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(plan["from"], &second[..7]);
    assert_eq!(
        plan["changes"].as_array().map(Vec::len),
        Some(1),
        "{plan:#}"
    );
    assert_eq!(plan["changes"][0]["summary"], "replicas 5 → 9");
    let same = server
        .keel()
        .args([
            "plan",
            "--repo",
            repo.to_str().expect("path"),
            "--to",
            "main",
            "--server",
            &server.url,
        ])
        .output()
        .expect("keel plan");
    assert_eq!(
        same.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&same.stdout)
    );
    assert_eq!(
        server.status()["branch"],
        "main",
        "checking out a branch changes nothing"
    );

    // The Service has the address the server gave it; a branch that states it for another
    // Service plans as rejected, naming the holder.
    let web_ip = server
        .applied("Service", "web")
        .and_then(|s| s["spec"]["clusterIP"].as_str().map(str::to_string))
        .expect("an assigned ClusterIP");
    git(repo, &["checkout", "-q", "-b", "steal"]);
    write(
        repo,
        "web/other.yaml",
        &SERVICE
            .replace("name: web", "name: other")
            .replace("spec:\n", &format!("spec:\n  clusterIP: {web_ip}\n")),
    );
    commit(repo, "another service on web's address");
    git(repo, &["checkout", "-q", "main"]);
    let steal = server
        .keel()
        .args([
            "plan",
            "--repo",
            repo.to_str().expect("path"),
            "--to",
            "steal",
        ])
        .args(["--server", &server.url])
        .output()
        .expect("keel plan");
    let text = String::from_utf8_lossy(&steal.stdout).to_string()
        + &String::from_utf8_lossy(&steal.stderr);
    assert_eq!(steal.status.code(), Some(1), "{text}");
    assert!(
        text.contains(&format!(
            "spec.clusterIP: Invalid value: \"{web_ip}\": provided IP is already allocated (to Service default/web)"
        )),
        "{text}"
    );

    // A commit with one good change and one broken file applies nothing.
    write(repo, "web/deployment.yaml", &deployment(7, "web:1"));
    write(
        repo,
        "web/service.yaml",
        &SERVICE.replace("port: 80", "port: 80800"),
    );
    let broken = commit(repo, "broken service");
    server.wait_commit("last_commit", &broken);
    let status = server.status();
    assert_eq!(status["last_result"], "failed");
    assert_eq!(
        status["applied_commit"],
        second.as_str(),
        "the last good revision keeps running"
    );
    assert_eq!(
        replicas(&server),
        Some(5),
        "nothing of the broken revision was applied"
    );
    let record = history(&server)
        .into_iter()
        .find(|r| r["commit"] == broken.as_str())
        .expect("recorded");
    let error = record["error"].as_str().unwrap_or("");
    assert!(
        error.contains("web/service.yaml:6:") && error.contains("spec.ports[0].port"),
        "{error}"
    );
    // keel status says the tip does not run, in words and in its exit code.
    let keel_status = || {
        let out = server
            .keel()
            .args(["status", "--server", &server.url])
            .output()
            .expect("keel status");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
        )
    };
    let (code, text) = keel_status();
    assert_eq!(code, Some(3), "{text}");
    assert!(
        text.contains("Last try:") && text.contains("web/service.yaml:6:"),
        "{text}"
    );

    // Reverting the broken commit and then the second brings three replicas back.
    git(repo, &["revert", "--no-edit", "HEAD"]);
    git(repo, &["revert", "--no-edit", &second]);
    let reverted = git(repo, &["rev-parse", "HEAD"]);
    server.wait_commit("applied_commit", &reverted);
    assert_eq!(replicas(&server), Some(3));
    // The tip runs again; with no node to run its pods, it is not yet Healthy.
    let (code, text) = keel_status();
    assert_eq!(code, Some(1), "{text}");
    let results: Vec<String> = history(&server)
        .iter()
        .map(|r| r["result"].as_str().unwrap_or("").to_string())
        .collect();
    assert!(results.len() >= 4, "{results:?}");
    let table = server
        .keel()
        .args(["history", "--server", &server.url])
        .output()
        .expect("keel history");
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(table.starts_with("COMMIT"), "{table}");
    assert!(
        table.contains(&broken[..7])
            && table.contains("failed")
            && table.contains("broken service"),
        "{table}"
    );
    let metrics = server.text("/metrics");
    assert!(
        metrics.contains("keel_sync_total{result=\"failed\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("keel_sync_total{result=\"applied\"}"),
        "{metrics}"
    );
}

#[test]
fn a_revision_that_deletes_everything_is_refused_unless_allowed_and_prune_can_be_disabled() {
    let dir = tempfile::tempdir().expect("repo");
    let repo = dir.path();
    git(repo, &["init", "-q"]);
    write(repo, "web/deployment.yaml", &deployment(2, "web:1"));
    write(
        repo,
        "keep/config.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: keep\n  annotations: {keel.dev/prune: disabled}\ndata: {a: b}\n",
    );
    let first = commit(repo, "first");
    let server = Server::start(repo.to_str().expect("path"), &[]);
    server.wait_commit("applied_commit", &first);
    std::fs::remove_dir_all(repo.join("web")).expect("rm");
    std::fs::remove_dir_all(repo.join("keep")).expect("rm");
    let empty = commit(repo, "oops, everything deleted");
    server.wait_commit("last_commit", &empty);
    assert_eq!(server.status()["last_result"], "refused");
    assert_eq!(replicas(&server), Some(2), "nothing deleted");
    // Several resync intervals later the refusal is still recorded once, and the last good
    // revision is still what runs.
    std::thread::sleep(Duration::from_secs(5));
    let refusals = history(&server)
        .iter()
        .filter(|r| r["commit"] == empty.as_str())
        .count();
    assert_eq!(refusals, 1, "{:#?}", history(&server));
    assert_eq!(server.status()["applied_commit"], first.as_str());
    // With allowEmpty the same tree applies: web goes, but `keep` is never pruned.
    write(repo, "keel.yaml", "allowEmpty: true\n");
    let allowed = commit(repo, "really empty");
    server.wait_commit("applied_commit", &allowed);
    assert_eq!(replicas(&server), None);
    assert!(
        server.applied("ConfigMap", "keep").is_some(),
        "prune: disabled is never deleted"
    );
}

fn bare_remote() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().expect("dirs");
    let bare = dir.path().join("remote.git");
    let work = dir.path().join("work");
    std::fs::create_dir_all(&bare).expect("mkdir");
    git(&bare, &["init", "-q", "--bare"]);
    std::fs::create_dir_all(&work).expect("mkdir");
    git(&work, &["init", "-q"]);
    git(
        &work,
        &["remote", "add", "origin", bare.to_str().expect("path")],
    );
    (dir, bare, work)
}

#[test]
fn a_remote_is_mirrored_force_pushes_are_followed_and_an_unreachable_remote_deletes_nothing() {
    let (_dir, bare, work) = bare_remote();
    write(&work, "app.yaml", &deployment(1, "web:1"));
    commit(&work, "one");
    git(&work, &["push", "-q", "origin", "main"]);
    let url = format!("file://{}", bare.display());
    let server = Server::start(&url, &[]);
    server.wait_for("the first revision", |s| replicas(s) == Some(1));
    // History rewritten: a force-push of an unrelated commit.
    git(&work, &["checkout", "-q", "--orphan", "rewrite"]);
    write(&work, "app.yaml", &deployment(4, "web:2"));
    let rewritten = commit(&work, "rewritten history");
    git(&work, &["push", "-q", "--force", "origin", "rewrite:main"]);
    server.wait_commit("applied_commit", &rewritten);
    assert_eq!(replicas(&server), Some(4));
    // The remote disappears: fetch errors are reported, nothing is deleted.
    std::fs::rename(&bare, bare.with_extension("gone")).expect("rename");
    server.wait_for("a fetch error", |s| s.status()["fetch_error"].is_string());
    server.wait_for("the fetch-failing metric", |s| {
        s.text("/metrics").contains("keel_fetch_failing 1")
    });
    assert_eq!(server.status()["applied_commit"], rewritten.as_str());
    assert_eq!(replicas(&server), Some(4));
}

fn post(url: &str, body: &[u8], headers: &[(&str, &str)]) -> u16 {
    let mut cmd = Command::new("curl");
    cmd.args([
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "-X",
        "POST",
        "--data-binary",
        "@-",
        url,
    ]);
    for (k, v) in headers {
        cmd.args(["-H", &format!("{k}: {v}")]);
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("curl");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        let _ = stdin.write_all(body);
    }
    let out = child.wait_with_output().expect("curl runs");
    String::from_utf8_lossy(&out.stdout).parse().unwrap_or(0)
}

#[test]
fn webhooks_need_a_valid_signature_and_a_small_body() {
    let (_dir, bare, work) = bare_remote();
    write(&work, "app.yaml", &deployment(1, "web:1"));
    commit(&work, "one");
    git(&work, &["push", "-q", "origin", "main"]);
    let url = format!("file://{}", bare.display());
    // A long poll interval: only the webhook makes the server fetch in time.
    let server = Server::start(
        &url,
        &["--webhook-secret", "s3cret", "--poll-interval", "1h"],
    );
    server.wait_for("the first revision", |s| replicas(s) == Some(1));
    write(&work, "app.yaml", &deployment(6, "web:1"));
    let second = commit(&work, "six");
    git(&work, &["push", "-q", "origin", "main"]);
    let hook = format!("{}/api/webhook", server.url);
    let body = br#"{"ref":"refs/heads/main","after":"x"}"#;
    assert_eq!(post(&hook, body, &[]), 401, "missing signature");
    assert_eq!(
        post(&hook, body, &[("X-Hub-Signature-256", "sha256=0000")]),
        401,
        "forged signature"
    );
    let wrong_key = keel_reconciler_sign(b"not-the-secret", body);
    assert_eq!(
        post(&hook, body, &[("X-Hub-Signature-256", &wrong_key)]),
        401
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        replicas(&server),
        Some(1),
        "refused webhooks trigger nothing"
    );
    let big = vec![b' '; 2 * 1024 * 1024];
    assert_eq!(post(&hook, &big, &[]), 413);
    // GitHub's form content type: the JSON URL-encoded in `payload`, the signature over
    // the form body as sent.
    let form = b"payload=%7B%22ref%22%3A%22refs%2Fheads%2Fother%22%7D";
    let signed = keel_reconciler_sign(b"s3cret", form);
    assert_eq!(
        post(
            &hook,
            form,
            &[
                ("X-Hub-Signature-256", &signed),
                ("Content-Type", "application/x-www-form-urlencoded")
            ]
        ),
        202,
        "a push to another branch is accepted and ignored"
    );
    let good = keel_reconciler_sign(b"s3cret", body);
    assert_eq!(
        post(
            &hook,
            body,
            &[
                ("X-Hub-Signature-256", &good),
                ("Content-Type", "application/json")
            ]
        ),
        202
    );
    server.wait_commit("applied_commit", &second);
    assert_eq!(replicas(&server), Some(6));
}

/// GitHub's signature: `sha256=` + hex HMAC-SHA256, computed with openssl as a sender would.
fn keel_reconciler_sign(secret: &[u8], body: &[u8]) -> String {
    let mut child = Command::new("openssl")
        .args([
            "dgst",
            "-sha256",
            "-hmac",
            std::str::from_utf8(secret).expect("utf-8"),
            "-hex",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("openssl");
    {
        use std::io::Write;
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(body)
            .expect("write");
    }
    let out = child.wait_with_output().expect("openssl runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let hex = text.rsplit(' ').next().unwrap_or("").trim();
    format!("sha256={hex}")
}

#[test]
fn a_symlinked_manifest_makes_the_revision_invalid_instead_of_pruning_it() {
    let dir = tempfile::tempdir().expect("repo");
    let repo = dir.path();
    git(repo, &["init", "-q"]);
    write(repo, "web/deployment.yaml", &deployment(2, "web:1"));
    write(repo, "web/service.yaml", SERVICE);
    let first = commit(repo, "first");
    let server = Server::start(repo.to_str().expect("path"), &[]);
    server.wait_commit("applied_commit", &first);
    // The Deployment moves to shared/ and web/ keeps only a symlink to it.
    std::fs::create_dir_all(repo.join("shared")).expect("mkdir");
    std::fs::rename(
        repo.join("web/deployment.yaml"),
        repo.join("shared/web.txt"),
    )
    .expect("mv");
    std::os::unix::fs::symlink("../shared/web.txt", repo.join("web/deployment.yaml"))
        .expect("symlink");
    let linked = commit(repo, "symlink the deployment");
    server.wait_commit("last_commit", &linked);
    assert_eq!(server.status()["last_result"], "failed");
    let error = server.status()["last_error"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(error.contains("invalid"), "{error}");
    let record = history(&server)
        .into_iter()
        .find(|r| r["commit"] == linked.as_str())
        .expect("recorded");
    assert!(
        record["error"]
            .as_str()
            .unwrap_or("")
            .contains("web/deployment.yaml:1:1: symbolic links are not followed"),
        "{record}"
    );
    assert_eq!(replicas(&server), Some(2), "the Deployment was not pruned");
}

/// The Ready condition's status of node `name` in the read API, if the node exists.
fn node_ready(server: &Server, name: &str) -> Option<String> {
    let node = server.get(&format!("/api/v1/nodes/{name}"))?;
    node["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Ready")
        .and_then(|c| c["status"].as_str())
        .map(str::to_string)
}

#[test]
fn agents_register_and_a_silent_node_becomes_not_ready() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    git(dir.path(), &["init", "-q", repo.to_str().unwrap()]);
    write(&repo, "web.yaml", &deployment(1, "nginx:1.27"));
    commit(&repo, "web");
    let server = Server::start(repo.to_str().unwrap(), &["--node-grace", "2s"]);
    let agent_data = tempfile::tempdir().unwrap();
    let mut agent = Command::new(binary("keel-agent"))
        .args([
            "--name",
            "worker-1",
            "--runtime",
            "hollow",
            "--labels",
            "zone=a",
        ])
        .args(["--listen", &format!("127.0.0.1:{}", free_port())])
        .args(["--server", &server.agents])
        .env("KEEL_JOIN_TOKEN", server.join_token())
        .arg("--data-dir")
        .arg(agent_data.path())
        .stderr(Stdio::null())
        .spawn()
        .expect("keel-agent starts");
    server.wait_for("the node to register", |s| {
        node_ready(s, "worker-1").as_deref() == Some("True")
    });
    let list = server.get("/api/v1/nodes").expect("node list");
    assert_eq!(list["kind"], "NodeList");
    let node = &list["items"][0];
    assert_eq!(node["metadata"]["labels"]["zone"], "a");
    assert_eq!(
        node["status"]["nodeInfo"]["containerRuntimeVersion"],
        "hollow"
    );
    // The same API serves the other kinds at their Kubernetes paths.
    let deployments = server
        .get("/apis/apps/v1/namespaces/default/deployments")
        .expect("deployments");
    server.wait_for("the deployment in the read API", |s| {
        s.get("/apis/apps/v1/namespaces/default/deployments/web")
            .is_some()
    });
    assert_eq!(deployments["kind"], "DeploymentList");
    assert!(
        server.get("/api/v1/nodes/nope").is_none(),
        "404 for a missing node"
    );
    assert!(
        server.get("/api/v1/widgets").is_none(),
        "404 for an unknown resource"
    );
    // Both keep their memory on small pages (see keel's `main`).
    for (who, pid) in [
        ("keel server", server.pid().unwrap()),
        ("keel-agent", agent.id()),
    ] {
        assert_eq!(
            transparent_huge_pages(pid).as_deref(),
            Some("0"),
            "{who} turns transparent huge pages off"
        );
    }

    agent.kill().unwrap();
    let _ = agent.wait();
    server.wait_for("the silent node to be not ready", |s| {
        node_ready(s, "worker-1").as_deref() == Some("Unknown")
    });
}

/// The `THP_enabled` line of a process's status: "0" once it has turned them off.
fn transparent_huge_pages(pid: u32) -> Option<String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("THP_enabled:"))
        .map(|v| v.trim().to_string())
}

/// A CLI call without the right token says so, and where the token it sent came from.
#[test]
fn a_refused_token_is_explained() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    git(dir.path(), &["init", "-q", repo.to_str().unwrap()]);
    write(&repo, "web.yaml", &deployment(1, "web:1"));
    commit(&repo, "web");
    let server = Server::start(repo.to_str().unwrap(), &[]);
    let elsewhere = tempfile::tempdir().unwrap();
    std::fs::write(elsewhere.path().join("admin-token"), "x".repeat(40)).unwrap();
    for (args, env, want) in [
        (
            vec!["get", "pods"],
            ("KEEL_TOKEN", "y".repeat(40)),
            "the token sent is --token/KEEL_TOKEN",
        ),
        (
            vec!["history"],
            (
                "KEEL_DATA_DIR",
                elsewhere.path().to_string_lossy().into_owned(),
            ),
            "could not prove it holds the admin token of any local data dir",
        ),
        (
            vec!["logs", "web-1"],
            ("KEEL_TOKEN", "z".repeat(40)),
            "the bearer token is wrong",
        ),
    ] {
        let out = Command::new(binary("keel"))
            .args(&args)
            .args(["--server", &server.url])
            .env(env.0, &env.1)
            .output()
            .expect("keel runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(
            stderr.contains("Unauthorized") && stderr.contains(want),
            "{args:?}: {stderr}"
        );
    }
    // The server's own data dir: it proves it holds that token, and gets it.
    let out = Command::new(binary("keel"))
        .args(["history", "--server", &server.url])
        .env("KEEL_DATA_DIR", server.data.path())
        .output()
        .expect("keel runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Another program listening on a loopback port never gets a local admin token: the CLI
/// sends one only to a server that proves it holds it.
#[test]
fn a_local_admin_token_goes_only_to_the_server_that_holds_it() {
    use std::io::{Read, Write};
    // A real server, whose data dir the CLI is pointed at, and impostors on other loopback
    // ports: one guesses a proof, one relays the question to the real server, one
    // redirects it there.
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    git(dir.path(), &["init", "-q", repo.to_str().unwrap()]);
    write(&repo, "web.yaml", &deployment(1, "web:1"));
    commit(&repo, "web");
    let server = Server::start(repo.to_str().unwrap(), &[]);
    let token = server.token();
    let real = server.url.trim_start_matches("http://").to_string();
    let heard = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let mut impostors = Vec::new();
    for mode in ["guess", "relay", "redirect"] {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        impostors.push((mode, format!("http://{}", listener.local_addr().unwrap())));
        let (heard, real) = (heard.clone(), real.clone());
        std::thread::spawn(move || {
            for mut conn in listener.incoming().flatten() {
                let _ = conn.set_read_timeout(Some(Duration::from_millis(500)));
                let mut buf = [0u8; 8192];
                let n = conn.read(&mut buf).unwrap_or(0);
                let request = String::from_utf8_lossy(&buf[..n]).to_string();
                heard.lock().unwrap().push_str(&request);
                let asks_proof = request.contains("token-proof");
                let answer = match mode {
                    "relay" if asks_proof => {
                        let mut upstream = std::net::TcpStream::connect(&real).unwrap();
                        upstream.write_all(&buf[..n]).unwrap();
                        let mut answer = Vec::new();
                        let _ = upstream.read_to_end(&mut answer);
                        answer
                    }
                    "redirect" if asks_proof => format!(
                        "HTTP/1.1 307 Temporary Redirect\r\nlocation: http://{real}/api/keel/token-proof\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                    )
                    .into_bytes(),
                    _ => {
                        let body = r#"{"proof":"00","items":[]}"#;
                        format!(
                            "HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                            body.len()
                        )
                        .into_bytes()
                    }
                };
                let _ = conn.write_all(&answer);
            }
        });
    }
    for (mode, url) in &impostors {
        for verb in [vec!["get", "pods"], vec!["history"]] {
            let out = Command::new(binary("keel"))
                .args(&verb)
                .args(["--server", url])
                .env("KEEL_DATA_DIR", server.data.path())
                .env_remove("KEEL_TOKEN")
                .output()
                .expect("keel runs");
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_ne!(out.status.code(), Some(0), "{mode} {verb:?}: {stderr}");
        }
    }
    let heard = heard.lock().unwrap().clone();
    assert!(
        heard.contains("token-proof"),
        "the CLI asked for a proof: {heard}"
    );
    assert!(
        !heard.contains(&token),
        "the token reached an impostor: {heard}"
    );
    assert!(!heard.to_lowercase().contains("authorization"), "{heard}");
    // The real server, asked directly, proves itself and gets the token.
    let out = Command::new(binary("keel"))
        .args(["history", "--server", &server.url])
        .env("KEEL_DATA_DIR", server.data.path())
        .env_remove("KEEL_TOKEN")
        .output()
        .expect("keel runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CronJob on a one-minute schedule: at the next minute its Job is made, named for that
/// minute and controlled by the CronJob, runs to completion on a (hollow) node, and the
/// CronJob records when it last ran. The schedule logic itself is tested with a clock of
/// the test's own in the controller's unit tests.
#[test]
fn a_cronjob_runs_its_job_at_the_next_minute() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    git(dir.path(), &["init", "-q", repo.to_str().unwrap()]);
    write(
        &repo,
        "tick.yaml",
        "apiVersion: batch/v1
kind: CronJob
metadata: {name: tick}
spec:
  schedule: \"* * * * *\"
  timeZone: Europe/Berlin
  successfulJobsHistoryLimit: 1
  jobTemplate:
    metadata: {labels: {team: ops}}
    spec:
      template:
        metadata:
          annotations: {hollow.keel.dev/exit-after: 1s}
        spec:
          restartPolicy: Never
          containers: [{name: tick, image: \"busybox:1.36\"}]
",
    );
    commit(&repo, "tick every minute");
    let server = Server::start(repo.to_str().unwrap(), &[]);
    let agent_data = tempfile::tempdir().unwrap();
    let mut agent = Command::new(binary("keel-agent"))
        .args(["--name", "worker-1", "--runtime", "hollow"])
        .args(["--listen", &format!("127.0.0.1:{}", free_port())])
        .args(["--server", &server.agents])
        .env("KEEL_JOIN_TOKEN", server.join_token())
        .arg("--data-dir")
        .arg(agent_data.path())
        .stderr(Stdio::null())
        .spawn()
        .expect("keel-agent starts");
    let jobs = |s: &Server| {
        s.get("/apis/batch/v1/namespaces/default/jobs")
            .and_then(|l| l["items"].as_array().cloned())
            .unwrap_or_default()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let done = loop {
        let complete = jobs(&server).into_iter().find(|j| {
            j["status"]["conditions"].as_array().is_some_and(|cs| {
                cs.iter()
                    .any(|c| c["type"] == "Complete" && c["status"] == "True")
            })
        });
        if let Some(job) = complete {
            break job;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no completed Job within 2 minutes: {:?}",
            jobs(&server)
        );
        std::thread::sleep(std::time::Duration::from_millis(500));
    };
    let name = done["metadata"]["name"].as_str().unwrap_or("");
    let minute: i64 = name
        .strip_prefix("tick-")
        .and_then(|m| m.parse().ok())
        .unwrap_or_else(|| panic!("a Job named for its minute: {name}"));
    // The scheduled time, as RFC 3339 in UTC: the minute the name says.
    let scheduled =
        done["metadata"]["annotations"]["batch.kubernetes.io/cronjob-scheduled-timestamp"]
            .as_str()
            .unwrap_or("");
    let (h, m) = ((minute / 60) % 24, minute % 60);
    assert!(
        scheduled.ends_with(&format!("T{h:02}:{m:02}:00Z")),
        "{scheduled} for minute {minute}"
    );
    assert_eq!(done["metadata"]["labels"]["team"], "ops");
    assert_eq!(done["metadata"]["ownerReferences"][0]["kind"], "CronJob");
    server.wait_for("the CronJob to record its run", |s| {
        s.get("/apis/batch/v1/namespaces/default/cronjobs/tick")
            .is_some_and(|c| c["status"]["lastScheduleTime"].is_string())
    });
    let listed = server
        .keel()
        .args(["get", "cronjobs", "--server", &server.url])
        .output()
        .expect("keel get cronjobs");
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(
        listed.contains("tick") && listed.contains("* * * * *") && listed.contains("Europe/Berlin"),
        "{listed}"
    );
    let _ = agent.kill();
    let _ = agent.wait();
}

/// Admission of the pods controllers make: a namespace's LimitRange gives them the defaults
/// their containers leave unsaid, and their ServiceAccount its `imagePullSecrets`, as
/// Kubernetes' admission does; the declared template stays as written (a changed range
/// does not roll the Deployment).
#[test]
fn limit_range_defaults_and_account_pull_secrets_reach_the_pods_controllers_make() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    git(dir.path(), &["init", "-q", repo.to_str().unwrap()]);
    write(
        &repo,
        "app.yaml",
        "apiVersion: v1
kind: LimitRange
metadata: {name: defaults}
spec:
  limits:
  - {type: Container, default: {cpu: 500m, memory: 128Mi}, defaultRequest: {cpu: 50m}}
---
apiVersion: v1
kind: Secret
metadata: {name: regcred}
type: kubernetes.io/dockerconfigjson
stringData: {.dockerconfigjson: '{\"auths\": {\"registry.example.com\": {\"auth\": \"dXNlcjpwYXNz\"}}}'}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: builder}
imagePullSecrets: [{name: regcred}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      serviceAccountName: builder
      containers:
      - {name: web, image: \"busybox:1.36\"}
      - {name: side, image: \"busybox:1.36\", resources: {limits: {memory: 1Gi}}}
",
    );
    commit(&repo, "web with defaults");
    let server = Server::start(repo.to_str().unwrap(), &[]);
    let pods = |s: &Server| {
        s.get("/api/v1/namespaces/default/pods")
            .and_then(|l| l["items"].as_array().cloned())
            .unwrap_or_default()
    };
    server.wait_for("the Deployment's 2 pods", |s| pods(s).len() == 2);
    for pod in pods(&server) {
        let c = &pod["spec"]["containers"];
        assert_eq!(
            c[0]["resources"],
            serde_json::json!({"limits": {"cpu": "500m", "memory": "128Mi"},
                               "requests": {"cpu": "50m", "memory": "128Mi"}}),
            "{pod}"
        );
        assert_eq!(
            c[1]["resources"],
            serde_json::json!({"limits": {"cpu": "500m", "memory": "1Gi"},
                               "requests": {"cpu": "50m", "memory": "1Gi"}}),
            "its own limit stays, and is its request"
        );
        assert_eq!(
            pod["spec"]["imagePullSecrets"],
            serde_json::json!([{"name": "regcred"}]),
            "the ServiceAccount's registry login"
        );
    }
    let deployment = server
        .get("/apis/apps/v1/namespaces/default/deployments/web")
        .unwrap();
    let template = &deployment["spec"]["template"]["spec"];
    assert!(
        template["containers"][0]["resources"].is_null() && template["imagePullSecrets"].is_null(),
        "{deployment}"
    );
}

/// A CustomResourceDefinition in git, and objects of its kinds in any file, are stored and
/// served where Kubernetes serves them; `keel get` lists them by the names the definition
/// gives, `keel status` reports their health, and removing one from git removes it.
#[test]
fn custom_resources_are_stored_served_listed_and_pruned() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    git(dir.path(), &["init", "-q", repo.to_str().unwrap()]);
    let big_widget = |size: i32| {
        format!(
            "apiVersion: example.com/v1\nkind: Widget\nmetadata: {{name: big}}\nspec: {{size: {size}}}\n"
        )
    };
    // The objects come first in the tree (a/ before z/): order does not matter.
    write(
        &repo,
        "a/widgets.yaml",
        &(big_widget(3)
            + "---
apiVersion: example.com/v1
kind: Widget
metadata: {name: small, namespace: tools}
spec: {size: 1}
---
apiVersion: example.com/v1
kind: Gadget
metadata: {name: g1}
spec: {size: 1}
"),
    );
    write(
        &repo,
        "z/crds.yaml",
        "apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
spec:
  group: example.com
  names: {kind: Widget, plural: widgets, shortNames: [wd]}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    additionalPrinterColumns:
    - {name: Size, type: integer, jsonPath: .spec.size}
    - {name: Age, type: date, jsonPath: .metadata.creationTimestamp}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec: {type: object, properties: {size: {type: integer, minimum: 1}}}
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: gadgets.example.com}
spec:
  group: example.com
  names: {kind: Gadget, plural: gadgets}
  scope: Cluster
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
---
apiVersion: v1
kind: Namespace
metadata: {name: tools}
",
    );
    commit(&repo, "widgets, a gadget and their definitions");
    let server = Server::start(repo.to_str().unwrap(), &[]);
    let crd = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.example.com";
    let big = "/apis/example.com/v1/namespaces/default/widgets/big";
    server.wait_for("the widget served", |s| s.get(big).is_some());
    assert_eq!(
        server.get(crd).unwrap()["spec"]["names"]["shortNames"],
        serde_json::json!(["wd"])
    );
    let widget = server.get(big).unwrap();
    assert_eq!(widget["apiVersion"], "example.com/v1");
    assert_eq!(widget["kind"], "Widget");
    assert_eq!(widget["spec"]["size"], 3);
    assert_eq!(widget["metadata"]["labels"]["keel.dev/managed-by"], "git");
    // Lists, in one namespace and in all; a cluster-scoped kind has no namespace.
    let all = server.get("/apis/example.com/v1/widgets").unwrap();
    assert_eq!(all["kind"], "WidgetList");
    assert_eq!(all["items"].as_array().map(Vec::len), Some(2), "{all}");
    let tools = server
        .get("/apis/example.com/v1/namespaces/tools/widgets")
        .unwrap();
    assert_eq!(tools["items"][0]["metadata"]["name"], "small");
    assert!(server.get("/apis/example.com/v1/gadgets/g1").is_some());
    assert!(
        server
            .get("/apis/example.com/v1/namespaces/default/gadgets/g1")
            .is_none()
    );
    assert!(
        server
            .get("/apis/example.com/v2/namespaces/default/widgets/big")
            .is_none()
    );
    let keel = |args: &[&str]| {
        let out = server
            .keel()
            .args(args)
            .args(["--server", &server.url])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
    };
    let listed = keel(&["get", "crd"]);
    assert!(
        listed.starts_with("NAME") && listed.contains("widgets.example.com"),
        "{listed}"
    );
    for typed in ["widgets", "wd", "Widget", "widgets.example.com"] {
        let listed = keel(&["get", typed, "-A"]);
        assert!(
            listed.starts_with("NAMESPACE") && listed.contains("big") && listed.contains("small"),
            "keel get {typed}: {listed}"
        );
    }
    // The definition's printer columns, as kubectl shows them.
    let listed = keel(&["get", "widgets"]);
    let rows: Vec<Vec<&str>> = listed
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows[0], ["NAME", "SIZE", "AGE"], "{listed}");
    assert_eq!(rows[1][..2], ["big", "3"], "{listed}");
    // Nothing reports on a widget: its health is Unknown, which is no trouble.
    let status = keel(&["status", "-o", "json"]);
    let report: serde_json::Value = serde_json::from_str(&status).expect(&status);
    let health = report
        .as_array()
        .and_then(|r| r.iter().find(|o| o["name"] == "big"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(health["kind"], "Widget.example.com", "{status}");
    assert_eq!(health["health"], "Unknown", "{status}");

    // A change is applied; a widget removed from git goes.
    write(&repo, "a/widgets.yaml", &big_widget(5));
    commit(&repo, "only the big widget, bigger");
    server.wait_for("the change applied", |s| {
        s.get(big).is_some_and(|w| w["spec"]["size"] == 5)
    });
    assert!(
        server
            .get("/apis/example.com/v1/namespaces/tools/widgets/small")
            .is_none()
    );
    assert!(server.get("/apis/example.com/v1/gadgets/g1").is_none());
    // A widget that breaks its schema is refused with the revision, at its line.
    write(&repo, "a/widgets.yaml", &big_widget(0));
    let bad = commit(&repo, "a widget too small");
    server.wait_commit("last_commit", &bad);
    assert_eq!(server.status()["last_result"], "failed");
    let error = server.status()["last_error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        error.contains("a/widgets.yaml:4:") && error.contains("spec.size"),
        "{error}"
    );
    assert_eq!(
        server.get(big).unwrap()["spec"]["size"],
        5,
        "nothing applied"
    );
}
