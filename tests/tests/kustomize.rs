//! Kustomizations in real git repositories: rendered by `keel render`, planned by `keel
//! plan` (a base change names every overlay it reaches), and applied by `keel server`, with
//! files the manifest walk never reads (a hidden `.env`, a file named `Kustomization`).

use std::path::Path;
use std::process::Command;

use keel_e2e::{Server, binary, commit, git, write};
use serde_json::Value;

const BASE: &str = "configMapGenerator:\n- name: settings\n  envs: [.env]\nsecretGenerator:\n- name: api-token\n  literals: [token=first-s3cret-value]\nresources: [deployment.yaml]\n";
const DEPLOYMENT: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  replicas: 1\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec:\n      containers:\n      - name: web\n        image: nginx:1.25\n        envFrom: [{configMapRef: {name: settings}}, {secretRef: {name: api-token}}]\n";
const PROD: &str = "namespace: prod\nnamePrefix: prod-\nresources: [../../base]\nimages:\n- name: nginx\n  newTag: '1.27'\nreplicas:\n- name: web\n  count: 3\n";
const STAGING: &str = "namespace: staging\nresources: [../../base]\n";
const NAMESPACES: &str = "apiVersion: v1\nkind: Namespace\nmetadata: {name: prod}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: staging}\n";

fn keel(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(binary("keel"))
        .args(args)
        .output()
        .expect("keel runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

fn layered_repo(repo: &Path) -> String {
    git(repo, &["init", "-q", "-b", "main"]);
    // `Kustomization` and `kustomization.yml` are names kustomize reads too.
    write(repo, "apps/web/base/Kustomization", BASE);
    write(
        repo,
        "apps/web/base/.env",
        "MODE=blue\n# a comment\nWORKERS=4\n",
    );
    write(repo, "apps/web/base/deployment.yaml", DEPLOYMENT);
    write(repo, "apps/web/overlays/prod/kustomization.yml", PROD);
    write(
        repo,
        "apps/web/overlays/staging/kustomization.yaml",
        STAGING,
    );
    write(repo, "namespaces.yaml", NAMESPACES);
    commit(repo, "web in prod and staging")
}

fn objects(list: &Value) -> Vec<&Value> {
    list["items"]
        .as_array()
        .map(|a| a.iter().collect())
        .unwrap_or_default()
}

fn named<'a>(items: &[&'a Value], kind: &str, namespace: &str, prefix: &str) -> &'a Value {
    items
        .iter()
        .find(|o| {
            o["kind"] == kind
                && o["metadata"]["namespace"] == namespace
                && o["metadata"]["name"]
                    .as_str()
                    .is_some_and(|n| n.starts_with(prefix))
        })
        .unwrap_or_else(|| panic!("no {kind} {namespace}/{prefix}* in {items:#?}"))
}

#[test]
fn a_repository_of_kustomizations_renders_plans_and_applies_as_kubectl_kustomize_builds_it() {
    let dir = tempfile::tempdir().expect("repo");
    let repo = dir.path();
    let first = layered_repo(repo);
    let path = repo.to_str().expect("utf-8 path");

    // `keel render` prints the objects keel would apply: both overlays, the plain file,
    // generated names with their hashes, references following them; Secret values hidden.
    let (code, out, err) = keel(&["render", "--repo", path, "-o", "json"]);
    assert_eq!(code, 0, "{err}");
    let list: Value = serde_json::from_str(&out).expect("a JSON List");
    let items = objects(&list);
    assert_eq!(
        items.len(),
        8,
        "2 namespaces, and per overlay a Deployment, a ConfigMap and a Secret: {items:#?}"
    );
    let prod_web = named(&items, "Deployment", "prod", "prod-web");
    assert_eq!(prod_web["spec"]["replicas"], 3);
    let container = &prod_web["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], "nginx:1.27");
    let settings = named(&items, "ConfigMap", "prod", "prod-settings-");
    assert_eq!(
        settings["data"]["MODE"], "blue",
        "read from the hidden .env file"
    );
    assert_eq!(
        container["envFrom"][0]["configMapRef"]["name"],
        settings["metadata"]["name"]
    );
    let token = named(&items, "Secret", "staging", "api-token-");
    assert_eq!(token["data"]["token"], "<redacted>");
    assert!(!out.contains("Zmlyc3Qtc"), "no Secret value in the output");
    let staging_web = named(&items, "Deployment", "staging", "web");
    assert_eq!(
        staging_web["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:1.25"
    );
    let (_, shown, _) = keel(&["render", "--repo", path, "--show-secrets"]);
    assert!(
        shown.contains("Zmlyc3QtczNjcmV0LXZhbHVl"),
        "base64 of the literal, asked for"
    );

    // The server applies the same objects.
    let server = Server::start(path, &["--resync-interval", "1h"]);
    server.wait_commit("applied_commit", &first);
    let applied = server
        .applied("Deployment", "prod-web")
        .expect("prod-web applied");
    assert_eq!(
        applied["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:1.27"
    );
    let first_settings = settings["metadata"]["name"]
        .as_str()
        .expect("name")
        .to_string();
    assert!(server.applied("ConfigMap", &first_settings).is_some());

    // A change in the base: the plan names both overlays it reaches and shows what changes
    // in each (a new ConfigMap name, and the Deployments pointing at it).
    write(repo, "apps/web/base/.env", "MODE=green\nWORKERS=4\n");
    let second = commit(repo, "green");
    let (code, out, err) = keel(&["plan", "--repo", path, "--from", &first, "--to", &second]);
    assert_eq!(code, 2, "changes: {out}{err}");
    assert!(
        out.contains("apps/web/base/.env reaches 2 kustomizations: apps/web/overlays/prod, apps/web/overlays/staging"),
        "{out}"
    );
    assert!(out.contains("Deployment prod/prod-web"), "{out}");
    assert!(out.contains("Deployment staging/web"), "{out}");
    server.wait_commit("applied_commit", &second);
    let applied = server.applied("Deployment", "prod-web").expect("prod-web");
    let now =
        applied["spec"]["template"]["spec"]["containers"][0]["envFrom"][0]["configMapRef"]["name"]
            .as_str()
            .expect("a ConfigMap name")
            .to_string();
    assert_ne!(now, first_settings, "a new hash for new content");
    assert!(server.applied("ConfigMap", &now).is_some());
    assert!(
        server.applied("ConfigMap", &first_settings).is_none(),
        "the old one is pruned"
    );

    // A broken overlay: the revision is refused whole, with the error located in the
    // kustomization, and nothing that runs changes.
    write(
        repo,
        "apps/web/overlays/prod/kustomization.yml",
        &PROD.replace(
            "resources: [../../base]",
            "resources: [../../base, ../../missing]",
        ),
    );
    let broken = commit(repo, "broken overlay");
    server.wait_commit("last_commit", &broken);
    assert_eq!(server.status()["last_result"], "failed");
    let history = server.get("/api/keel/history?limit=10").expect("history");
    let record = history
        .as_array()
        .and_then(|h| h.iter().find(|r| r["commit"] == broken.as_str()))
        .cloned()
        .expect("recorded");
    assert!(
        record["error"].as_str().unwrap_or("").contains(
            "apps/web/overlays/prod/kustomization.yml:3:25: resources[1]: Not found: \"../../missing\""
        ),
        "{record}"
    );
    assert!(
        server.applied("Deployment", "prod-web").is_some(),
        "nothing pruned"
    );
}
