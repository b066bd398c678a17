//! Kubernetes clients against `keel server --tls-listen`, configured by `keel kubeconfig`:
//! a real kubectl (get in every shape, selectors, pages, watch, describe, explain, refused
//! writes) and kube-rs (discovery, pages, typed Secrets, a watcher following commits).
//!
//! No nodes: the pods stay Pending, which is all reads need.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use keel_e2e::{Server, commit, free_port, git, write};

const DEPLOYMENT: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, labels: {app: web}}\nspec:\n  replicas: 2\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec:\n      containers: [{name: web, image: \"nginx:1.27\"}]\n";

fn page(text: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: page, labels: {{app: web, tier: front}}}}\ndata: {{index.html: \"{text}\"}}\n"
    )
}

const SHOP: &str = "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings, namespace: shop}\ndata: {mode: blue}\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: db, namespace: shop}\nstringData: {password: hunter2}\n";

/// A repository, and a server following it that also serves HTTPS; its kubeconfig.
struct Cluster {
    repo: tempfile::TempDir,
    server: Server,
    kubeconfig: PathBuf,
}

fn cluster() -> Cluster {
    let repo = tempfile::tempdir().unwrap();
    git(repo.path(), &["init", "-q"]);
    write(repo.path(), "web/deployment.yaml", DEPLOYMENT);
    write(repo.path(), "web/page.yaml", &page("one"));
    write(repo.path(), "shop.yaml", SHOP);
    let first = commit(repo.path(), "web and shop");
    let https = format!("127.0.0.1:{}", free_port());
    let server = Server::start(repo.path().to_str().unwrap(), &["--tls-listen", &https]);
    server.wait_commit("applied_commit", &first);
    let out = server
        .keel()
        .args([
            "kubeconfig",
            "--server",
            &format!("https://{https}"),
            "--data-dir",
        ])
        .arg(server.data.path())
        // A bare file name, in the directory it runs in: readable by its owner alone.
        .args(["-o", "kubeconfig"])
        .current_dir(server.data.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let kubeconfig = server.data.path().join("kubeconfig");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&kubeconfig).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    Cluster {
        repo,
        server,
        kubeconfig,
    }
}

/// kubectl, which CI must have (the test script installs it); elsewhere its absence is said.
fn kubectl_installed() -> bool {
    let found = Command::new("kubectl")
        .args(["version", "--client"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "kubectl is not installed: scripts/install-deps installs it (kubernetes-client)"
        );
        eprintln!("kubectl is not installed; skipping the kubectl checks outside CI");
    }
    found
}

fn kubectl(config: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new("kubectl")
        .args(args)
        .env("KUBECONFIG", config)
        .env("KUBECACHEDIR", config.with_extension("cache"))
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn ok(config: &Path, args: &[&str]) -> String {
    let (success, out, err) = kubectl(config, args);
    assert!(success, "kubectl {args:?}: {err}{out}");
    out
}

fn refused(config: &Path, args: &[&str], file: &str) {
    let (success, out, err) = kubectl(config, args);
    assert!(!success, "kubectl {args:?} was not refused: {out}");
    assert!(
        err.contains("keel applies only what is committed to") && err.contains(file),
        "kubectl {args:?} says where to change it ({file}): {err}"
    );
}

#[test]
fn kubectl_reads_watches_explains_and_is_told_where_to_commit() {
    if !kubectl_installed() {
        return;
    }
    let c = cluster();
    let k = c.kubeconfig.as_path();
    let version = ok(k, &["version", "-o", "json"]);
    assert!(
        version.contains("\"gitVersion\": \"v1.32.0+keel"),
        "{version}"
    );
    let resources = ok(k, &["api-resources"]);
    assert!(
        resources
            .lines()
            .any(|l| l.starts_with("deployments") && l.contains("deploy") && l.contains("apps/v1")),
        "{resources}"
    );

    let pods = ok(k, &["get", "pods", "-A"]);
    assert!(pods.starts_with("NAMESPACE   NAME"), "{pods}");
    assert_eq!(
        pods.lines().filter(|l| l.contains("Pending")).count(),
        2,
        "{pods}"
    );
    let wide = ok(k, &["get", "deploy", "web", "-o", "wide"]);
    assert!(
        wide.lines().next().unwrap().contains("IMAGES") && wide.contains("nginx:1.27"),
        "{wide}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&ok(k, &["get", "configmaps", "-A", "-o", "json"])).unwrap();
    let names: Vec<&str> = json["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"page") && names.contains(&"settings"),
        "{names:?}"
    );
    let yaml = ok(k, &["get", "cm", "settings", "-n", "shop", "-o", "yaml"]);
    assert!(yaml.contains("mode: blue"), "{yaml}");
    assert_eq!(
        ok(k, &["get", "cm", "-A", "-l", "tier=front", "-o", "name"]),
        "configmap/page\n"
    );
    let pending = ok(
        k,
        &[
            "get",
            "pods",
            "--field-selector",
            "status.phase=Pending",
            "-o",
            "name",
        ],
    );
    assert_eq!(pending.lines().count(), 2, "{pending}");
    let (_, out, err) = kubectl(
        k,
        &["get", "pods", "--field-selector", "status.phase=Running"],
    );
    assert!(
        format!("{out}{err}").contains("No resources found"),
        "{out}{err}"
    );
    let (success, _, err) = kubectl(k, &["get", "pods", "--field-selector", "spec.replicas=1"]);
    assert!(
        !success && err.contains("field label not supported"),
        "{err}"
    );
    // One item per page: every pod still listed once.
    let paged = ok(k, &["get", "pods", "--chunk-size=1", "-o", "name"]);
    assert_eq!(paged, pending, "paged as unpaged");
    // Secret values never leave the server; typed clients still decode them.
    let secret = ok(k, &["describe", "secret", "db", "-n", "shop"]);
    assert!(
        secret.contains("password:") && !secret.contains("hunter2"),
        "{secret}"
    );
    let described = ok(k, &["describe", "deployment", "web"]);
    assert!(
        described.contains("Replicas:") && described.contains("nginx:1.27"),
        "{described}"
    );
    let explained = ok(k, &["explain", "deployment.spec.replicas"]);
    assert!(
        explained.contains("replicas") && explained.contains("<integer>"),
        "{explained}"
    );

    // Writes: refused, naming the file to change.
    let page_file = c.repo.path().join("web/page.yaml");
    refused(
        k,
        &["apply", "-f", page_file.to_str().unwrap()],
        "web/page.yaml",
    );
    refused(
        k,
        &["scale", "deployment", "web", "--replicas=5"],
        "web/deployment.yaml",
    );
    refused(k, &["delete", "configmap", "page"], "web/page.yaml");
    refused(k, &["label", "configmap", "page", "x=y"], "web/page.yaml");
    assert!(ok(k, &["get", "cm", "page", "-o", "name"]).contains("configmap/page"));

    // A watch sees a commit arrive.
    let out_file = c.server.data.path().join("watch.out");
    let mut watch = Command::new("kubectl")
        .args(["get", "configmaps", "--watch", "--output-watch-events"])
        .env("KUBECONFIG", k)
        .stdout(std::fs::File::create(&out_file).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let read = || std::fs::read_to_string(&out_file).unwrap_or_default();
    wait(
        || read().contains("page"),
        "the watch lists the current objects",
        &read,
    );
    write(c.repo.path(), "web/page.yaml", &page("two"));
    write(
        c.repo.path(),
        "web/extra.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: extra}\ndata: {a: b}\n",
    );
    let second = commit(c.repo.path(), "page two, and extra");
    c.server.wait_commit("applied_commit", &second);
    wait(
        || {
            read().contains("MODIFIED")
                && read()
                    .lines()
                    .any(|l| l.contains("ADDED") && l.contains("extra"))
        },
        "the watch shows the change and the new object",
        &read,
    );
    let _ = watch.kill();
    let _ = watch.wait();
}

fn wait(ok: impl Fn() -> bool, what: &str, show: &dyn Fn() -> String) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ok() {
        assert!(Instant::now() < deadline, "{what}: {}", show());
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn kube_rs_discovers_pages_decodes_and_watches() {
    use futures_util::StreamExt;
    use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
    use kube::api::{Api, ListParams, PostParams};
    use kube::runtime::watcher;

    let c = cluster();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let text = std::fs::read_to_string(&c.kubeconfig).unwrap();
        let kubeconfig = kube::config::Kubeconfig::from_yaml(&text).unwrap();
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .unwrap();
        let client = kube::Client::try_from(config).unwrap();

        let discovery = kube::Discovery::new(client.clone()).run().await.unwrap();
        let apps = discovery.get("apps").expect("apps is discovered");
        assert!(
            apps.recommended_resources()
                .iter()
                .any(|(r, _)| r.kind == "Deployment")
        );

        // Pages: limit 1, following continue tokens.
        let all: Api<ConfigMap> = Api::all(client.clone());
        let mut names = Vec::new();
        let mut params = ListParams::default().limit(1);
        loop {
            let list = all.list(&params).await.unwrap();
            assert!(list.items.len() <= 1);
            names.extend(list.items.iter().filter_map(|c| c.metadata.name.clone()));
            match list.metadata.continue_ {
                Some(token) if !token.is_empty() => params = params.continue_token(&token),
                _ => break,
            }
        }
        names.sort();
        assert_eq!(names, ["page", "settings"]);

        let pods: Api<Pod> = Api::default_namespaced(client.clone());
        let pending = pods
            .list(
                &ListParams::default()
                    .fields("status.phase=Pending")
                    .labels("app=web"),
            )
            .await
            .unwrap();
        assert_eq!(pending.items.len(), 2);

        let secrets: Api<Secret> = Api::namespaced(client.clone(), "shop");
        let db = secrets.get("db").await.unwrap();
        let value = &db.data.unwrap()["password"];
        assert_eq!(value.0, b"<redacted>", "the marker, never the value");

        let maps: Api<ConfigMap> = Api::default_namespaced(client.clone());
        let refusal = maps
            .create(
                &PostParams::default(),
                &serde_json::from_value(serde_json::json!({
                    "metadata": {"name": "made-by-hand"}, "data": {"a": "b"}
                }))
                .unwrap(),
            )
            .await
            .unwrap_err();
        match refusal {
            kube::Error::Api(status) => {
                assert_eq!(status.code, 405);
                assert!(
                    status
                        .message
                        .contains("keel applies only what is committed"),
                    "{status:?}"
                );
            }
            other => panic!("not a refusal: {other:?}"),
        }

        // A watcher (list, then watch) follows commits.
        let stream = watcher(maps, watcher::Config::default().labels("tier=front"));
        let mut stream = std::pin::pin!(stream);
        let mut initial_done = false;
        while !initial_done {
            match tokio::time::timeout(Duration::from_secs(20), stream.next()).await {
                Ok(Some(Ok(watcher::Event::InitDone))) => initial_done = true,
                Ok(Some(Ok(_))) => {}
                other => panic!("watcher start: {other:?}"),
            }
        }
        write(c.repo.path(), "web/page.yaml", &page("three"));
        let third = commit(c.repo.path(), "page three");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            match tokio::time::timeout_at(deadline, stream.next()).await {
                Ok(Some(Ok(watcher::Event::Apply(cm))))
                    if cm
                        .data
                        .as_ref()
                        .and_then(|d| d.get("index.html"))
                        .map(String::as_str)
                        == Some("three") =>
                {
                    break;
                }
                Ok(Some(Ok(_))) => {}
                other => panic!("watching for commit {third}: {other:?}"),
            }
        }
    });
}
