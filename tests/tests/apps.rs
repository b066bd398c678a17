//! Several apps in one repository (keel.yaml `apps:`) through a real `keel server` and git
//! repository: each app validated and applied on its own (a broken app holds back only
//! itself), default namespaces, status, history and plan per app with their exit codes, an
//! app re-rendered only when what it reads changes, objects moving between apps taken over
//! (same uid), an object claimed by two apps refused, an app removed from keel.yaml pruned,
//! and a restart that records nothing twice.

use keel_e2e::{Server, commit, git, write};
use serde_json::Value;

const CONFIG: &str = "\
apps:
- name: web
  path: apps/web
  namespace: shop
- name: api
  path: apps/api
  namespace: backend
";

fn config_map(name: &str, data: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  {data}\n")
}

/// Writes the starting repository: two apps, the api's overlay built on a base outside its
/// folder, and the Namespaces at the root.
fn start_repo(repo: &std::path::Path) {
    git(repo, &["init", "-q"]);
    write(repo, "keel.yaml", CONFIG);
    write(
        repo,
        "namespaces.yaml",
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: backend}\n",
    );
    write(
        repo,
        "apps/web/config.yaml",
        &config_map("web", "color: blue"),
    );
    write(
        repo,
        "apps/web/extra.yaml",
        &config_map("moving", "owner: web"),
    );
    write(
        repo,
        "bases/api/config.yaml",
        &config_map("api", "level: info"),
    );
    write(
        repo,
        "bases/api/kustomization.yaml",
        "resources: [config.yaml]\n",
    );
    write(
        repo,
        "apps/api/overlay/kustomization.yaml",
        "resources: [../../../bases/api]\nnamePrefix: prod-\n",
    );
}

fn applied(server: &Server, kind: &str, namespace: &str, name: &str) -> Option<Value> {
    let list = server.get("/api/keel/applied")?;
    list["items"]
        .as_array()?
        .iter()
        .find(|o| {
            o["kind"] == kind
                && o["metadata"]["name"] == name
                && o["metadata"]["namespace"].as_str().unwrap_or("") == namespace
        })
        .cloned()
}

fn app<'a>(status: &'a Value, name: &str) -> &'a Value {
    status["apps"]
        .as_array()
        .and_then(|apps| apps.iter().find(|a| a["name"] == name))
        .unwrap_or(&Value::Null)
}

fn renders(server: &Server, app: &str) -> u64 {
    let metrics = server.text("/metrics");
    let line = format!("keel_app_renders_total{{app=\"{app}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&line))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

fn history(server: &Server) -> Vec<Value> {
    server
        .get("/api/keel/history?limit=200")
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default()
}

/// Runs `keel ARGS` against the server: (exit code, stdout).
fn keel(server: &Server, args: &[&str]) -> (i32, String) {
    let out = server
        .keel()
        .args(args)
        .args(["--server", &server.url])
        .output()
        .expect("keel runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn apps_of_one_repository_apply_fail_and_move_on_their_own() {
    let dir = tempfile::tempdir().expect("repo");
    let repo = dir.path();
    start_repo(repo);
    let first = commit(repo, "shop: web and api");
    // Resyncs every 2 s: a resync that moved or pruned anything by mistake would show (in
    // the objects, and as a record in the history).
    let mut server = Server::start(repo.to_str().expect("path"), &["--resync-interval", "2s"]);
    server.wait_commit("applied_commit", &first);

    // Each app's objects in its namespace, labelled with the app; the root's unlabelled.
    let web = applied(&server, "ConfigMap", "shop", "web").expect("web's ConfigMap in shop");
    assert_eq!(web["metadata"]["labels"]["keel.dev/app"], "web");
    let api = applied(&server, "ConfigMap", "backend", "prod-api").expect("api's overlay");
    assert_eq!(api["metadata"]["labels"]["keel.dev/app"], "api");
    let ns = applied(&server, "Namespace", "", "shop").expect("root's Namespace");
    assert!(ns["metadata"]["labels"].get("keel.dev/app").is_none());
    // The api's base is the api's, not built again on its own by the root app.
    assert!(applied(&server, "ConfigMap", "default", "api").is_none());
    let status = server.status();
    for name in ["web", "api", "(root)"] {
        assert_eq!(
            app(&status, name)["lastResult"],
            "applied",
            "{name}: {status}"
        );
    }
    let (code, _) = keel(&server, &["status"]);
    assert_eq!(code, 0);

    // web breaks while api changes: api applies, web keeps running its last good commit.
    let renders_web = renders(&server, "web");
    write(
        repo,
        "apps/web/config.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web\ndata:\n  color: [red\n",
    );
    write(
        repo,
        "bases/api/config.yaml",
        &config_map("api", "level: debug"),
    );
    let second = commit(repo, "break web, debug api");
    server.wait_commit("last_commit", &second);
    let status = server.status();
    assert_eq!(app(&status, "api")["appliedCommit"], second.as_str());
    assert_eq!(app(&status, "web")["appliedCommit"], first.as_str());
    assert_eq!(app(&status, "web")["lastResult"], "failed");
    let error = app(&status, "web")["lastError"].as_str().unwrap_or("");
    assert!(
        error.contains("apps/web/config.yaml:7:1: YAML syntax error"),
        "{error}"
    );
    assert_eq!(
        status["applied_commit"],
        first.as_str(),
        "the tip is not whole"
    );
    assert!(
        status["last_error"]
            .as_str()
            .unwrap_or("")
            .starts_with("app web: "),
        "{status}"
    );
    let api = applied(&server, "ConfigMap", "backend", "prod-api").expect("api");
    assert_eq!(api["data"]["level"], "debug");
    let web = applied(&server, "ConfigMap", "shop", "web").expect("web still runs");
    assert_eq!(web["data"]["color"], "blue");
    // Exit codes per app: the repository and web are not at their tip, api is.
    assert_eq!(keel(&server, &["status"]).0, 3);
    assert_eq!(keel(&server, &["status", "--app", "api"]).0, 0);
    let (code, text) = keel(&server, &["status", "--app", "web"]);
    assert_eq!(code, 3, "{text}");
    let (code, text) = keel(&server, &["status", "--app", "nope"]);
    assert_eq!(code, 2);
    assert!(text.contains("the apps are web, api"), "{text}");
    let (_, text) = keel(&server, &["history", "--app", "web"]);
    let rows: Vec<&str> = text.lines().skip(1).collect();
    assert_eq!(rows.len(), 2, "{text}");
    assert!(
        rows[0].contains("failed") && rows[0].contains("web"),
        "{text}"
    );
    assert!(rows[1].contains("applied"), "{text}");
    assert_eq!(renders(&server, "web"), renders_web + 1);

    // A commit touching only api's base renders api (it reads the base) and not web.
    let (renders_web, renders_api) = (renders(&server, "web"), renders(&server, "api"));
    write(
        repo,
        "bases/api/config.yaml",
        &config_map("api", "level: warn"),
    );
    let third = commit(repo, "warn api");
    server.wait_commit("last_commit", &third);
    assert_eq!(
        renders(&server, "web"),
        renders_web,
        "web was rendered again"
    );
    assert_eq!(renders(&server, "api"), renders_api + 1);
    // web is not tried again: its failure stays recorded once.
    let failures = history(&server)
        .iter()
        .filter(|r| r["app"] == "web" && r["result"] == "failed")
        .count();
    assert_eq!(failures, 1);

    // A plan per app, between revisions: web's invalid app is named, api's change shown.
    let (code, text) = plan(repo, &["--from", &first, "--to", &third]);
    assert_eq!(code, 1, "an invalid app fails the plan: {text}");
    assert!(text.contains("app web is invalid"), "{text}");
    assert!(text.contains("~ api: ConfigMap backend/prod-api"), "{text}");
    let (code, text) = plan(repo, &["--from", &first, "--to", &third, "--app", "api"]);
    assert_eq!(code, 2, "{text}");
    assert!(!text.contains("web"), "{text}");

    // web fixed, and one of its ConfigMaps moved to api: taken over, not made again.
    let moving_uid =
        applied(&server, "ConfigMap", "shop", "moving").expect("moving")["metadata"]["uid"].clone();
    write(
        repo,
        "apps/web/config.yaml",
        &config_map("web", "color: green"),
    );
    std::fs::remove_file(repo.join("apps/web/extra.yaml")).expect("rm");
    write(
        repo,
        "apps/api/plain/moving.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: moving\n  namespace: shop\ndata:\n  owner: api\n",
    );
    let fourth = commit(repo, "fix web; api takes the moving ConfigMap");
    server.wait_commit("applied_commit", &fourth);
    let moved = applied(&server, "ConfigMap", "shop", "moving").expect("moved");
    assert_eq!(moved["metadata"]["uid"], moving_uid, "made again: {moved}");
    assert_eq!(moved["metadata"]["labels"]["keel.dev/app"], "api");
    assert_eq!(moved["data"]["owner"], "api");
    assert_eq!(keel(&server, &["status"]).0, 0);

    // An object claimed by a second app: the app that has it keeps it, the other is refused.
    write(
        repo,
        "apps/web/claim.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: moving\ndata:\n  owner: web\n",
    );
    let fifth = commit(repo, "web claims moving too");
    server.wait_commit("last_commit", &fifth);
    let status = server.status();
    let error = app(&status, "web")["lastError"].as_str().unwrap_or("");
    assert!(
        error.contains("apps/web/claim.yaml:1:1")
            && error.contains("app api declares this object too"),
        "{error}"
    );
    let moved = applied(&server, "ConfigMap", "shop", "moving").expect("moving");
    assert_eq!(moved["data"]["owner"], "api");

    // web leaves keel.yaml with its folder: the root app prunes what it applied.
    std::fs::remove_dir_all(repo.join("apps/web")).expect("rm");
    write(
        repo,
        "keel.yaml",
        "apps:\n- name: api\n  path: apps/api\n  namespace: backend\n",
    );
    let sixth = commit(repo, "retire web");
    server.wait_commit("applied_commit", &sixth);
    assert!(applied(&server, "ConfigMap", "shop", "web").is_none());
    assert!(applied(&server, "ConfigMap", "shop", "moving").is_some());
    assert!(app(&server.status(), "web").is_null());
    // The plan says so: the root app deletes the retired app's objects, not refused.
    let (code, text) = plan(repo, &["--from", &fifth, "--to", &sixth]);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("- (root): ConfigMap shop/web:"), "{text}");

    // An object moved into a new app that is broken stays where it runs: the app it left
    // does not prune what another app's failed try declares.
    let moving_uid =
        applied(&server, "ConfigMap", "shop", "moving").expect("moving")["metadata"]["uid"].clone();
    std::fs::remove_file(repo.join("apps/api/plain/moving.yaml")).expect("rm");
    write(
        repo,
        "apps/db/moving.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: moving\n  namespace: shop\ndata:\n  owner: db\n",
    );
    write(
        repo,
        "apps/db/broken.yaml",
        "apiVersion: v1\nkind: ConfigMap\n",
    );
    write(
        repo,
        "keel.yaml",
        "apps:\n- name: api\n  path: apps/api\n  namespace: backend\n- name: db\n  path: apps/db\n",
    );
    let seventh = commit(repo, "db takes moving, but db is broken");
    server.wait_commit("last_commit", &seventh);
    let status = server.status();
    assert_eq!(app(&status, "db")["lastResult"], "failed", "{status}");
    assert_eq!(app(&status, "api")["appliedCommit"], seventh.as_str());
    let kept = applied(&server, "ConfigMap", "shop", "moving").expect("moving was deleted");
    assert_eq!(kept["metadata"]["uid"], moving_uid);
    assert_eq!(kept["metadata"]["labels"]["keel.dev/app"], "api");
    // So it stays through a restart (the failed try is read again from the history) and
    // the resyncs after it, with nothing recorded again.
    let recorded = history(&server).len();
    server.restart();
    server.wait_commit("last_commit", &seventh);
    std::thread::sleep(std::time::Duration::from_secs(5));
    let kept = applied(&server, "ConfigMap", "shop", "moving").expect("moving was deleted");
    assert_eq!(kept["metadata"]["uid"], moving_uid);
    assert_eq!(history(&server).len(), recorded, "{:#?}", history(&server));
    assert_eq!(app(&server.status(), "db")["lastResult"], "failed");
    // Fixed: db takes it over.
    write(
        repo,
        "apps/db/broken.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: fixed}\n",
    );
    let eighth = commit(repo, "db fixed");
    server.wait_commit("applied_commit", &eighth);
    let moved = applied(&server, "ConfigMap", "shop", "moving").expect("moving");
    assert_eq!(moved["metadata"]["uid"], moving_uid);
    assert_eq!(moved["metadata"]["labels"]["keel.dev/app"], "db");

    // A broken keel.yaml fails the commit whole, recorded once: no app runs it.
    write(repo, "keel.yaml", "apps:\n- name: api\n  path: [oops]\n");
    let ninth = commit(repo, "broken keel.yaml");
    server.wait_commit("last_commit", &ninth);
    assert_eq!(keel(&server, &["status", "--app", "api"]).0, 3);
    assert_eq!(keel(&server, &["status"]).0, 3);
    let whole: Vec<Value> = history(&server)
        .into_iter()
        .filter(|r| r["commit"] == ninth.as_str())
        .collect();
    assert_eq!(whole.len(), 1, "{whole:?}");
    assert!(whole[0].get("app").is_none(), "{whole:?}");
    write(
        repo,
        "keel.yaml",
        "apps:\n- name: api\n  path: apps/api\n  namespace: backend\n- name: db\n  path: apps/db\n",
    );
    let tenth = commit(repo, "keel.yaml fixed");
    server.wait_commit("applied_commit", &tenth);

    // A restart reads the history: nothing is applied or recorded again.
    let recorded = history(&server).len();
    server.restart();
    server.wait_commit("applied_commit", &tenth);
    std::thread::sleep(std::time::Duration::from_secs(5));
    assert_eq!(history(&server).len(), recorded, "{:#?}", history(&server));
    assert_eq!(keel(&server, &["status"]).0, 0);
}

fn plan(repo: &std::path::Path, args: &[&str]) -> (i32, String) {
    let out = std::process::Command::new(keel_e2e::binary("keel"))
        .arg("plan")
        .args(["--repo", repo.to_str().expect("path")])
        .args(args)
        .output()
        .expect("keel plan runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr),
    )
}
