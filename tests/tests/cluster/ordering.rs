//! Sync waves and hooks on a real node: a PreSync Job runs to completion before anything
//! else, each wave waits until the previous one is Healthy, a PostSync Pod runs last; a
//! failing PreSync hook fails the sync visibly, applies nothing more, and runs the SyncFail
//! hook.

use std::time::Duration;

use keel_e2e::{Server, commit, docker_available, git, import_busybox_image, write};
use serde_json::Value;

use super::support::{Agent, TestLan};

const IMAGE: &str = "keel-e2e/order:1";

fn job(name: &str, hook: &str, script: &str) -> String {
    format!(
        "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: {name}\n  annotations: {{keel.dev/hook: {hook}}}\nspec:\n  backoffLimit: 0\n  template:\n    spec:\n      restartPolicy: Never\n      terminationGracePeriodSeconds: 1\n      containers:\n      - {{name: run, image: \"{IMAGE}\", imagePullPolicy: Never, command: [sh, -c, \"{script}\"]}}\n"
    )
}

fn deployment(name: &str, wave: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\n  annotations: {{keel.dev/sync-wave: \"{wave}\"}}\nspec:\n  replicas: 1\n  selector: {{matchLabels: {{app: {name}}}}}\n  template:\n    metadata: {{labels: {{app: {name}}}}}\n    spec:\n      terminationGracePeriodSeconds: 1\n      containers:\n      - {{name: run, image: \"{IMAGE}\", imagePullPolicy: Never, command: [sh, -c, \"sleep 3600\"]}}\n"
    )
}

/// A time field of an object, as RFC 3339 text (compared as text: same format, UTC).
fn time(object: &Value, pointer: &str) -> String {
    object
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn available_since(deployment: &Value) -> String {
    deployment["status"]["conditions"]
        .as_array()
        .and_then(|cs| {
            cs.iter()
                .find(|c| c["type"] == "Available" && c["status"] == "True")
        })
        .map(|c| time(c, "/lastTransitionTime"))
        .unwrap_or_default()
}

#[test]
fn waves_wait_for_health_and_hooks_run_before_and_after() {
    if !docker_available() {
        return;
    }
    import_busybox_image(IMAGE, &[]);
    let repo = tempfile::tempdir().unwrap();
    let dir = repo.path();
    git(dir, &["init", "-q"]);
    write(
        dir,
        "migrate.yaml",
        &job("migrate", "PreSync", "sleep 1; echo migrated"),
    );
    write(dir, "db.yaml", &deployment("db", "1"));
    write(dir, "web.yaml", &deployment("web", "2"));
    write(
        dir,
        "notes.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes\n  annotations: {argocd.argoproj.io/sync-wave: \"-1\"}\n",
    );
    write(
        dir,
        "smoke.yaml",
        &job("smoke", "PostSync", "echo smoke test passed"),
    );
    let first = commit(dir, "waves and hooks");
    let lan = TestLan::new(7, 1);
    let server = Server::start(dir.to_str().unwrap(), &["--agent-listen", &lan.agents_at()]);
    let data = tempfile::tempdir().unwrap();
    let _agent = Agent::start(
        &format!("order-{}", std::process::id()),
        &server,
        data.path(),
        &lan.hosts[0],
        &[],
    );
    server.wait_up_to(Duration::from_secs(120), "the ordered sync", |s| {
        s.status()["applied_commit"] == first.as_str()
    });

    let get = |path: &str| server.get(path).unwrap_or(Value::Null);
    let migrate = get("/apis/batch/v1/namespaces/default/jobs/migrate");
    let db = get("/apis/apps/v1/namespaces/default/deployments/db");
    let web = get("/apis/apps/v1/namespaces/default/deployments/web");
    let smoke = get("/apis/batch/v1/namespaces/default/jobs/smoke");
    let notes = get("/api/v1/namespaces/default/configmaps/notes");
    assert_eq!(migrate["status"]["succeeded"], 1, "{migrate:#}");
    // Each step began only once the one before was done.
    let migrated = time(&migrate, "/status/completionTime");
    assert!(
        !migrated.is_empty() && time(&notes, "/metadata/creationTimestamp") >= migrated,
        "{notes:#}\n{migrate:#}"
    );
    assert!(time(&db, "/metadata/creationTimestamp") >= migrated);
    let db_up = available_since(&db);
    assert!(
        !db_up.is_empty() && time(&web, "/metadata/creationTimestamp") >= db_up,
        "{web:#}\n{db:#}"
    );
    let web_up = available_since(&web);
    assert!(
        !web_up.is_empty() && time(&smoke, "/metadata/creationTimestamp") >= web_up,
        "{smoke:#}"
    );
    server.wait_for("the PostSync hook to finish", |s| {
        s.get("/apis/batch/v1/namespaces/default/jobs/smoke")
            .is_some_and(|j| j["status"]["succeeded"] == 1)
    });
    // Hooks are not desired state: they are not pruned, and not listed as applied.
    assert!(server.applied("Job", "migrate").is_none());

    // A failing PreSync hook: the sync fails, names the hook, applies nothing more, and the
    // SyncFail hook runs.
    write(
        dir,
        "migrate.yaml",
        &job("migrate", "PreSync", "echo cannot migrate; exit 3"),
    );
    write(
        dir,
        "after.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: after}\n",
    );
    write(
        dir,
        "on-fail.yaml",
        &job("on-fail", "SyncFail", "echo cleaning up"),
    );
    let broken = commit(dir, "a migration that fails");
    server.wait_up_to(Duration::from_secs(120), "the failed sync", |s| {
        s.status()["last_commit"] == broken.as_str()
    });
    assert_eq!(server.status()["last_result"], "failed");
    let error = server.status()["last_error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        error.contains("PreSync hook Job default/migrate failed"),
        "{error}"
    );
    assert!(
        server
            .get("/api/v1/namespaces/default/configmaps/after")
            .is_none(),
        "nothing else applied"
    );
    server.wait_for("the SyncFail hook", |s| {
        s.get("/apis/batch/v1/namespaces/default/jobs/on-fail")
            .is_some()
    });
    assert_eq!(
        server.status()["applied_commit"],
        first.as_str(),
        "the last good revision still runs"
    );
}
