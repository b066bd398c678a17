//! No Secret value appears in anything keel prints or logs, at debug level, with Secrets
//! encrypted at rest.

use std::path::Path;
use std::time::{Duration, SystemTime};

use base64::Engine;
use keel_e2e::{Server, TestLan, commit, docker_available, git, import_busybox_image, write};

use super::agent::Agent;

/// The Secret as committed: encrypted with SOPS for `recipient` (only its values).
fn encrypted_secret(value: &str, recipient: &str) -> String {
    let plain = format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: db}}\nstringData: {{password: \"{value}\"}}\n"
    );
    let rules = keel_sops::testing::Rules {
        encrypted_regex: Some("^(data|stringData)$"),
        ..Default::default()
    };
    keel_sops::testing::encrypt(&plain, recipient, &rules)
}

/// The app reading the Secret.
const SECRET_APP: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata: {name: reader}
spec:
  replicas: 1
  selector: {matchLabels: {app: reader}}
  template:
    metadata: {labels: {app: reader}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: reader
        image: keel-e2e/secret-reader:1
        imagePullPolicy: Never
        command: ["sh", "-c", "echo password length ${#PASSWORD} $(wc -c < /etc/db/password); exec sleep 3600"]
        env:
        - name: PASSWORD
          valueFrom: {secretKeyRef: {name: db, key: password}}
        volumeMounts: [{name: db, mountPath: /etc/db}]
      volumes:
      - name: db
        secret: {secretName: db}
"#;

#[test]
fn no_secret_value_appears_in_anything_keel_prints_or_logs() {
    if !docker_available() {
        return;
    }
    import_busybox_image("keel-e2e/secret-reader:1", &[]);
    let stamp = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let first = format!("first-{stamp:x}-value");
    let second = format!("second-{stamp:x}-value");
    // The repository, and the age key beside it (where `keel` below finds it).
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("repo");
    std::fs::create_dir(&repo).unwrap();
    let dir = repo.as_path();
    git(dir, &["init", "-q"]);
    // The Secret is committed encrypted with SOPS; the server opens it with its age key.
    let (age_key, recipient) = keel_sops::testing::identity();
    let age_file = work.path().join("age.txt");
    std::fs::write(&age_file, age_key).unwrap();
    write(dir, "app.yaml", SECRET_APP);
    write(dir, "secret.yaml", &encrypted_secret(&first, &recipient));
    commit(dir, "the app and its secret");
    // Encrypted at rest too.
    let key_dir = tempfile::tempdir().unwrap();
    let key_file = key_dir.path().join("key");
    std::fs::write(
        &key_file,
        base64::engine::general_purpose::STANDARD.encode([42u8; 32]),
    )
    .unwrap();
    let lan = TestLan::new(6, 1);
    let server = Server::start_with_env(
        dir.to_str().unwrap(),
        &[
            "--encryption-key-file",
            key_file.to_str().unwrap(),
            "--sops-age-key-file",
            age_file.to_str().unwrap(),
            "--agent-listen",
            &lan.agents_at(),
        ],
        &[("RUST_LOG", "debug")],
    );
    let name = format!("secrets-{}", std::process::id());
    let agent = Agent::start(&name, &server, &lan.hosts[0]);
    let running = |s: &Server| {
        s.get("/api/v1/namespaces/default/pods")
            .and_then(|l| l["items"].as_array().cloned())
            .is_some_and(|ps| ps.iter().any(|p| p["status"]["phase"] == "Running"))
    };
    server.wait_up_to(Duration::from_secs(60), "the reader pod to run", running);

    let url = server.url.clone();
    let mut printed = Vec::new();
    let pod =
        server.get("/api/v1/namespaces/default/pods").unwrap()["items"][0]["metadata"]["name"]
            .as_str()
            .unwrap()
            .to_string();
    // The pod used the value (its length shows in its log), so the value went everywhere.
    let mut logs = String::new();
    for _ in 0..50 {
        logs = keel(&server, &["logs", &pod, "--server", &url], dir);
        if logs.contains("password length") {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        logs.contains(&format!("password length {} {}", first.len(), first.len())),
        "{logs}"
    );
    printed.push(logs);

    // A new value, reviewed, then applied.
    git(dir, &["checkout", "-q", "-b", "rotate"]);
    write(dir, "secret.yaml", &encrypted_secret(&second, &recipient));
    commit(dir, "rotate the password");
    let plan = keel(
        &server,
        &["plan", "--repo", ".", "--from", "main", "--to", "rotate"],
        dir,
    );
    assert!(plan.contains("<redacted, changed>"), "{plan}");
    printed.push(plan);
    printed.push(keel(
        &server,
        &["plan", "--repo", ".", "--to", "rotate", "--server", &url],
        dir,
    ));
    git(dir, &["checkout", "-q", "main"]);
    git(dir, &["merge", "-q", "rotate"]);
    let second_commit = git(dir, &["rev-parse", "HEAD"]);
    server.wait_commit("applied_commit", second_commit.trim());
    let yaml = keel(
        &server,
        &["get", "secret", "db", "-o", "yaml", "--server", &url],
        dir,
    );
    assert!(
        yaml.contains("password: <redacted>"),
        "the key is shown, not the value: {yaml}"
    );
    printed.push(yaml);
    for args in [
        vec!["get", "secret", "db", "-o", "json"],
        vec!["get", "secrets"],
        vec!["describe", "secret", "db"],
        vec!["describe", "pod", &pod],
        vec!["get", "events"],
        vec!["history"],
        vec!["status"],
    ] {
        let mut args = args.clone();
        args.extend(["--server", &url]);
        printed.push(keel(&server, &args, dir));
    }
    printed.push(keel(&server, &["validate", "."], dir));
    printed.push(server.text("/api/keel/applied"));
    printed.push(server.text("/api/v1/namespaces/default/secrets/db"));
    printed.push(server.text("/metrics"));

    let mut everything = printed.join("\n");
    everything.push_str(&std::fs::read_to_string(server.log_path()).unwrap_or_default());
    everything.push_str(&agent.log());
    let encode = |v: &str| base64::engine::general_purpose::STANDARD.encode(v);
    for value in [&first, &second] {
        for form in [value.to_string(), encode(value)] {
            assert!(
                !everything.contains(&form),
                "a Secret value ({form}) was printed or logged; in:\n{}",
                context(&everything, &form)
            );
        }
    }
    assert!(everything.len() > 10_000, "the logs were captured");
    let stored = std::fs::read(server.data.path().join("keel.redb")).unwrap();
    for value in [&first, &second] {
        for form in [value.to_string(), encode(value)] {
            assert!(
                !stored.windows(form.len()).any(|w| w == form.as_bytes()),
                "{form} is in the store file in the clear"
            );
        }
    }
}

/// Runs `keel` with the server's token and the age key beside the repository (as
/// `SOPS_AGE_KEY_FILE`); stdout and stderr together.
fn keel(server: &Server, args: &[&str], dir: &Path) -> String {
    let out = server
        .keel()
        .args(args)
        .env("SOPS_AGE_KEY_FILE", dir.join("../age.txt"))
        .current_dir(dir)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr)
}

/// The lines around the first occurrence of `needle`.
fn context(haystack: &str, needle: &str) -> String {
    let at = haystack.find(needle).unwrap_or(0);
    let start = haystack[..at].rfind('\n').unwrap_or(0);
    let end = haystack[at..].find('\n').map_or(haystack.len(), |e| at + e);
    haystack[start..end].to_string()
}
