//! `imagePullSecrets` against a real private registry (Debian's `docker-registry`, Docker's
//! distribution) that asks for a login: without the pod's Secret the pull is refused; with
//! it the image is pulled and runs.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::json;

use crate::harness::{Harness, IMAGE, container_state, pod, running};

/// `keel:s3cret`, as `htpasswd -Bbn keel s3cret` writes it (the registry reads bcrypt).
const HTPASSWD: &str = "keel:$2y$05$9ncMxwIM8I2LxsFr6yysaODhq7Mq4RoUFRVXjVOyX3thkyf5Cgcsy\n";

/// A registry on a loopback port, stopped when dropped.
struct Registry {
    child: Child,
    address: String,
    _dir: tempfile::TempDir,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Registry {
    fn start() -> Option<Registry> {
        let required = std::env::var("KEEL_REQUIRE_DOCKER").is_ok_and(|v| v == "1");
        if Command::new("docker-registry")
            .arg("--version")
            .output()
            .is_err()
        {
            assert!(
                !required,
                "docker-registry is not installed (scripts/install-deps installs it)"
            );
            eprintln!("skipped: docker-registry is not installed");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let address = format!("127.0.0.1:{port}");
        std::fs::write(dir.path().join("htpasswd"), HTPASSWD).unwrap();
        let config = format!(
            "version: 0.1\nlog: {{level: warn}}\nstorage: {{filesystem: {{rootdirectory: {}}}}}\nhttp: {{addr: \"{address}\"}}\nauth: {{htpasswd: {{realm: keel-test, path: {}}}}}\n",
            dir.path().join("data").display(),
            dir.path().join("htpasswd").display()
        );
        std::fs::write(dir.path().join("config.yml"), config).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(dir.path().join("config.yml"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker-registry starts");
        let registry = Registry {
            child,
            address,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(&registry.address).is_err() {
            assert!(Instant::now() < deadline, "the registry never listened");
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(registry)
    }

    /// The login as the `auths` of a Docker config.
    fn auths(&self, password: &str) -> serde_json::Value {
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("keel:{password}"));
        json!({"auths": {self.address.clone(): {"auth": basic}}})
    }

    /// Pushes the test image as `private/app:1` with the docker CLI, logged in through a
    /// config of its own (root's is left alone); then removes the local tag, so the agent
    /// must pull.
    fn push_test_image(&self) -> String {
        let image = format!("{}/private/app:1", self.address);
        let config = tempfile::tempdir().unwrap();
        std::fs::write(
            config.path().join("config.json"),
            self.auths("s3cret").to_string(),
        )
        .unwrap();
        docker(config.path(), &["tag", IMAGE, &image]);
        docker(config.path(), &["push", &image]);
        docker(config.path(), &["rmi", &image]);
        image
    }
}

fn docker(config: &Path, args: &[&str]) {
    let out = Command::new("docker")
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .expect("docker runs");
    assert!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn registry_secret(name: &str, config: &serde_json::Value) -> serde_json::Value {
    let encoded = base64::engine::general_purpose::STANDARD.encode(config.to_string());
    json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name, "namespace": "default"},
        "type": "kubernetes.io/dockerconfigjson",
        "data": {".dockerconfigjson": encoded}
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_image_is_pulled_with_the_pods_registry_login_only() {
    let Some(mut h) = Harness::docker().await else {
        return;
    };
    let Some(registry) = Registry::start() else {
        return;
    };
    let image = registry.push_test_image();
    let container = |name: &str| {
        json!({"name": name, "image": image, "imagePullPolicy": "Always",
               "command": ["sleep", "3600"]})
    };
    let (anonymous, anonymous_uid) = pod("anonymous", json!({"containers": [container("app")]}));
    let (wrong, wrong_uid) = pod(
        "wrong-password",
        json!({"imagePullSecrets": [{"name": "wrong"}], "containers": [container("app")]}),
    );
    let (logged_in, logged_in_uid) = pod(
        "logged-in",
        json!({"imagePullSecrets": [{"name": "absent"}, {"name": "regcred"}],
               "containers": [container("app")]}),
    );
    let secrets = [
        registry_secret("regcred", &registry.auths("s3cret")),
        registry_secret("wrong", &registry.auths("guess")),
    ];
    h.sync(&[anonymous, wrong, logged_in], &secrets)
        .await
        .unwrap();
    h.wait_for(&logged_in_uid, 60, "the logged-in pod running", |s| {
        running(s, "app")
    })
    .await;
    for uid in [&anonymous_uid, &wrong_uid] {
        let s = h
            .wait_for(uid, 60, "a refused pull", |s| {
                let waiting = container_state(s, "app")
                    .state
                    .as_ref()
                    .and_then(|st| st.waiting.clone());
                waiting.is_some_and(|w| {
                    matches!(
                        w.reason.as_deref(),
                        Some("ErrImagePull" | "ImagePullBackOff")
                    )
                })
            })
            .await;
        let message = container_state(&s, "app")
            .state
            .clone()
            .and_then(|st| st.waiting)
            .and_then(|w| w.message)
            .unwrap_or_default();
        assert!(
            message.contains("no basic auth credentials")
                || message.contains("unauthorized")
                || message.contains("authentication required"),
            "{message}"
        );
    }
}
