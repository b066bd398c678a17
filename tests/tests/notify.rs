//! Notifications from `keel server` to a local HTTP server that records what it is sent, as
//! GitHub, GitLab and a webhook receiver would see it: paths, headers and bodies as their
//! public API documentation gives them, signatures a receiver can check, retries of a flaky
//! target, and a dead target's failures in `keel status` and `/metrics`, never blocking an
//! apply.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use keel_e2e::{Server, commit, git, write};
use serde_json::Value;

/// One request the recorder received.
#[derive(Debug, Clone)]
struct Recorded {
    path: String,
    headers: HashMap<String, String>,
    body: String,
}

impl Recorded {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

/// An HTTP/1.1 server on loopback recording every request; `/flaky` answers 500 to its
/// first two.
struct Recorder {
    port: u16,
    seen: Arc<Mutex<Vec<Recorded>>>,
}

impl Recorder {
    fn start() -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let seen: Arc<Mutex<Vec<Recorded>>> = Arc::default();
        let log = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let mut reader = BufReader::new(stream);
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                let path = line
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or_default()
                    .to_string();
                let mut headers = HashMap::new();
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
                        break;
                    }
                    if let Some((k, v)) = h.split_once(':') {
                        headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
                    }
                }
                let len: usize = headers
                    .get("content-length")
                    .and_then(|l| l.parse().ok())
                    .unwrap_or(0);
                let mut body = vec![0; len];
                let _ = reader.read_exact(&mut body);
                let mut seen = log.lock().unwrap();
                let earlier = seen.iter().filter(|r| r.path == path).count();
                seen.push(Recorded {
                    path: path.clone(),
                    headers,
                    body: String::from_utf8_lossy(&body).to_string(),
                });
                drop(seen);
                let status = if path == "/flaky" && earlier < 2 {
                    "500 Internal Server Error"
                } else {
                    "201 Created"
                };
                let mut stream = reader.into_inner();
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
            }
        });
        Recorder { port, seen }
    }

    fn at(&self, path_prefix: &str) -> Vec<Recorded> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.path.starts_with(path_prefix))
            .cloned()
            .collect()
    }

    fn wait(&self, what: &str, ok: impl Fn(&Recorder) -> bool) {
        for _ in 0..300 {
            if ok(self) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "timed out waiting for {what}; received: {:#?}",
            self.seen.lock().unwrap()
        );
    }
}

fn events(r: &Recorder, path: &str) -> Vec<String> {
    r.at(path)
        .iter()
        .map(|x| x.json()["event"].as_str().unwrap_or_default().to_string())
        .collect()
}

fn states(r: &Recorder, path: &str) -> Vec<String> {
    r.at(path)
        .iter()
        .map(|x| x.json()["state"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn revisions_and_their_health_are_reported_to_webhooks_github_and_gitlab() {
    let hooks = Recorder::start();
    let port = hooks.port;
    let secrets = tempfile::tempdir().unwrap();
    std::fs::write(secrets.path().join("hook-key"), "shared-hmac-key\n").unwrap();
    // API tokens live under the host they are for.
    std::fs::create_dir(secrets.path().join("127.0.0.1")).unwrap();
    std::fs::write(secrets.path().join("127.0.0.1/gh-token"), "ghp_example\n").unwrap();
    std::fs::write(secrets.path().join("127.0.0.1/gl-token"), "glpat-example\n").unwrap();
    // A token put there for another host is not found for this one.
    std::fs::write(secrets.path().join("gh-token"), "for-no-host\n").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path();
    git(repo, &["init", "-q"]);
    write(
        repo,
        "keel.yaml",
        &format!(
            "notify:\n\
             - name: chat\n  webhook: {{url: 'http://127.0.0.1:{port}/hook', secret: hook-key}}\n\
             - github: {{url: 'http://127.0.0.1:{port}/gh', repository: org/shop, token: gh-token}}\n\
             - gitlab: {{url: 'http://127.0.0.1:{port}/gl', repository: group/shop, token: gl-token, context: keel/prod}}\n\
             - name: flaky\n  webhook: {{url: 'http://127.0.0.1:{port}/flaky'}}\n  events: [applied]\n\
             - name: down\n  webhook: {{url: 'http://127.0.0.1:1/nothing'}}\n  events: [applied]\n"
        ),
    );
    write(
        repo,
        "config.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: page}\ndata: {index.html: hello}\n",
    );
    let first = commit(repo, "the page");
    let server = Server::start(
        repo.to_str().unwrap(),
        &[
            "--notify-secrets-dir",
            secrets.path().to_str().unwrap(),
            "--notify-retry-delay",
            "50ms",
        ],
    );
    server.wait_commit("applied_commit", &first);

    // The webhook: started, applied, then healthy (a ConfigMap is Healthy once stored), in
    // order, each signed so that a receiver holding the key can check it.
    hooks.wait("the webhook's three events", |h| {
        events(h, "/hook").len() >= 3
    });
    assert_eq!(events(&hooks, "/hook"), ["started", "applied", "healthy"]);
    for r in hooks.at("/hook") {
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(b"shared-hmac-key").unwrap();
        mac.update(r.body.as_bytes());
        let want: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            r.headers.get("x-keel-signature"),
            Some(&format!("sha256={want}"))
        );
        assert_eq!(r.json()["commit"], first.as_str());
        assert_eq!(r.json()["message"], "the page");
        assert_eq!(
            r.headers.get("content-type").map(String::as_str),
            Some("application/json")
        );
    }

    // GitHub: POST /repos/{owner}/{repo}/statuses/{sha}, pending then success.
    hooks.wait("GitHub's statuses", |h| {
        states(h, "/gh").contains(&"success".to_string())
    });
    let gh = hooks.at("/gh");
    assert!(
        gh.iter()
            .all(|r| r.path == format!("/gh/repos/org/shop/statuses/{first}")),
        "{gh:#?}"
    );
    assert_eq!(
        gh[0].headers.get("authorization").map(String::as_str),
        Some("Bearer ghp_example")
    );
    assert_eq!(
        gh[0].headers.get("accept").map(String::as_str),
        Some("application/vnd.github+json")
    );
    assert_eq!(gh[0].json()["context"], "keel");
    assert_eq!(states(&hooks, "/gh"), ["pending", "pending", "success"]);

    // GitLab: POST /api/v4/projects/{id}/statuses/{sha}, the project path URL-encoded.
    hooks.wait("GitLab's statuses", |h| {
        states(h, "/gl").contains(&"success".to_string())
    });
    let gl = hooks.at("/gl");
    assert!(
        gl.iter()
            .all(|r| r.path == format!("/gl/api/v4/projects/group%2Fshop/statuses/{first}")),
        "{gl:#?}"
    );
    assert_eq!(
        gl[0].headers.get("private-token").map(String::as_str),
        Some("glpat-example")
    );
    assert_eq!(gl[0].json()["name"], "keel/prod");
    // GitLab refuses running → running, so `applied` sends nothing there.
    assert_eq!(states(&hooks, "/gl"), ["running", "success"]);

    // The flaky target answered 500 twice: the event was sent a third time, and delivered.
    hooks.wait("the flaky target's third try", |h| {
        h.at("/flaky").len() >= 3
    });
    // The dead one fails after its retries; that shows in status and metrics.
    let status_of = |name: &str| {
        server.status()["notifications"]
            .as_array()
            .and_then(|a| a.iter().find(|n| n["target"] == name).cloned())
            .unwrap_or(Value::Null)
    };
    server.wait_for("the dead target's failure", |_| {
        status_of("down")["failed"].as_u64() >= Some(1)
    });
    assert!(
        status_of("down")["lastError"]
            .as_str()
            .unwrap_or_default()
            .contains("cannot reach"),
        "{}",
        status_of("down")
    );
    server.wait_for("the flaky target's delivery", |_| {
        status_of("flaky")["sent"].as_u64() == Some(1)
    });
    assert_eq!(status_of("flaky")["failed"], 0);
    let metrics = server.text("/metrics");
    assert!(
        metrics.contains("keel_notifications{target=\"down\",result=\"failed\"} 1"),
        "{metrics}"
    );

    // A broken commit: failed, with the located error, and GitHub says failure.
    write(
        repo,
        "config.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: Bad_Name}\n",
    );
    let broken = commit(repo, "a bad name");
    server.wait_commit("last_commit", &broken);
    hooks.wait("the failure", |h| {
        events(h, "/hook").contains(&"failed".to_string())
    });
    let failed = hooks
        .at("/hook")
        .into_iter()
        .find(|r| r.json()["event"] == "failed")
        .unwrap();
    assert_eq!(failed.json()["commit"], broken.as_str());
    assert!(
        failed.json()["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("config.yaml:3:"),
        "{}",
        failed.body
    );
    hooks.wait("GitHub's failure", |h| {
        states(h, "/gh").contains(&"failure".to_string())
    });
    let gh_failed = hooks
        .at("/gh")
        .into_iter()
        .find(|r| r.json()["state"] == "failure")
        .unwrap();
    assert_eq!(
        gh_failed.path,
        format!("/gh/repos/org/shop/statuses/{broken}")
    );
    assert!(
        gh_failed.json()["description"]
            .as_str()
            .unwrap_or_default()
            .starts_with("not applied: ")
    );
}
