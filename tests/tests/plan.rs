//! `keel plan` against real git repositories, as a reviewer runs it on a pull request.

use std::path::Path;
use std::process::{Command, Output};

use keel_e2e::{binary, commit, git, write};
use serde_json::Value;

fn plan(repo: &Path, extra: &[&str]) -> Output {
    Command::new(binary("keel"))
        .args(["plan", "--repo", repo.to_str().expect("utf-8 path")])
        .args(extra)
        .output()
        .expect("keel runs")
}

const WEB_V1: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  replicas: 3\n  selector: {matchLabels: {app: web}}\n  strategy: {rollingUpdate: {maxSurge: 1, maxUnavailable: 0}}\n  template:\n    metadata: {labels: {app: web}}\n    spec:\n      containers: [{name: web, image: \"web:1\", ports: [{name: http, containerPort: 8080}]}]\n";
const SVC_V1: &str = "apiVersion: v1\nkind: Service\nmetadata: {name: api}\nspec:\n  selector: {app: web}\n  ports: [{port: 80, targetPort: http}]\n";
const SECRET_V1: &str = "apiVersion: v1\nkind: Secret\nmetadata: {name: token}\nstringData: {token: first-s3cret-value, other: unchanged-s3cret}\n";
const WORKER: &str = "apiVersion: v1\nkind: ReplicationController\nmetadata: {name: worker}\nspec:\n  replicas: 4\n  template:\n    metadata: {labels: {app: worker}}\n    spec:\n      containers: [{name: worker, image: \"worker:1\"}]\n";

/// A repo with two revisions: the second changes an image, a port and a secret, deletes a
/// controller and adds a ConfigMap.
fn two_revisions() -> (tempfile::TempDir, String, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = dir.path();
    git(repo, &["init", "-q"]);
    write(repo, "apps/web.yaml", WEB_V1);
    write(repo, "apps/api.yaml", SVC_V1);
    write(repo, "apps/secret.yaml", SECRET_V1);
    write(repo, "apps/worker.yaml", WORKER);
    write(repo, "README.md", "not a manifest");
    let first = commit(repo, "first");
    write(repo, "apps/web.yaml", &WEB_V1.replace("web:1", "web:2"));
    write(
        repo,
        "apps/api.yaml",
        &SVC_V1.replace("port: 80,", "port: 8080,"),
    );
    write(
        repo,
        "apps/secret.yaml",
        &SECRET_V1.replace("first-s3cret-value", "second-s3cret-value"),
    );
    std::fs::remove_file(repo.join("apps/worker.yaml")).expect("rm");
    write(
        repo,
        "apps/config.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: page}\ndata: {index.html: hello}\n",
    );
    write(
        repo,
        "apps/rbac.yaml",
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {name: reader}\nrules: [{apiGroups: [\"\"], resources: [pods], verbs: [get]}]\n",
    );
    let second = commit(repo, "second");
    (dir, first, second)
}

#[test]
fn plan_json_lists_every_change_with_summaries_and_exit_2() {
    let (dir, first, second) = two_revisions();
    let out = plan(
        dir.path(),
        &["--from", &first, "--to", &second, "--format", "json"],
    );
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plan: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(plan["from"], &first[..7]);
    assert_eq!(plan["errors"], serde_json::json!([]));
    let changes = plan["changes"].as_array().expect("changes");
    let find = |kind: &str, name: &str| {
        changes
            .iter()
            .find(|c| c["kind"] == kind && c["name"] == name)
            .unwrap_or_else(|| panic!("{kind} {name} in {changes:#?}"))
    };
    let web = find("Deployment", "web");
    assert_eq!(web["action"], "update");
    let summary = web["summary"].as_str().unwrap_or("");
    assert!(summary.contains("image web:1 → web:2"), "{summary}");
    assert!(
        summary.contains("rolling update of 3 pods, maxSurge 1, maxUnavailable 0"),
        "{summary}"
    );
    assert!(
        web["diff"]
            .as_str()
            .unwrap_or("")
            .contains("+      - image: web:2"),
        "{}",
        web["diff"]
    );
    assert!(
        find("Service", "api")["summary"]
            .as_str()
            .unwrap_or("")
            .contains("port 80/TCP→http → 8080/TCP→http")
    );
    assert_eq!(find("ReplicationController", "worker")["action"], "delete");
    assert_eq!(
        find("ReplicationController", "worker")["summary"],
        "4 pods stop"
    );
    assert_eq!(find("ConfigMap", "page")["action"], "create");
    let secret = find("Secret", "token");
    assert_eq!(secret["summary"], "keys changed: token");
    assert!(
        secret["diff"]
            .as_str()
            .unwrap_or("")
            .contains("<redacted, changed>")
    );
    // A reviewer is told an RBAC change takes no effect on keel.
    let role = find("Role", "reader");
    assert_eq!(role["action"], "create");
    assert_eq!(role["summary"], "created (stored, not enforced by keel)");
    assert_eq!(changes.len(), 6, "nothing else changed");
    // Secret values appear nowhere: neither plain nor base64.
    let all = String::from_utf8_lossy(&out.stdout);
    for needle in ["s3cret", "czNjcmV0", "Zmlyc3Qt", "c2Vjb25kLX"] {
        assert!(
            !all.contains(needle),
            "secret value leaked ({needle}):\n{all}"
        );
    }
}

#[test]
fn plan_text_and_markdown_are_readable() {
    let (dir, first, second) = two_revisions();
    let text = plan(dir.path(), &["--from", &first, "--to", &second]);
    let text = String::from_utf8_lossy(&text.stdout).to_string();
    assert!(
        text.contains("2 to create, 3 to update, 1 to delete"),
        "{text}"
    );
    assert!(
        text.contains("Role default/reader: created (stored, not enforced by keel)"),
        "{text}"
    );
    assert!(
        text.contains("  - ReplicationController default/worker: 4 pods stop"),
        "{text}"
    );
    let md = plan(
        dir.path(),
        &["--from", &first, "--to", &second, "--format", "markdown"],
    );
    let md = String::from_utf8_lossy(&md.stdout).to_string();
    assert!(
        md.contains("| Action | Kind | Namespace | Name | Effect |"),
        "{md}"
    );
    assert!(
        md.contains("<details><summary>Deployment default/web (update)</summary>"),
        "{md}"
    );
    assert!(md.contains("```diff"), "{md}");
}

#[test]
fn no_changes_exit_0_and_formatting_is_not_a_change() {
    let (dir, _, second) = two_revisions();
    let same = plan(dir.path(), &["--from", &second, "--to", &second]);
    assert_eq!(same.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&same.stdout).contains("no changes"));
    // Reordering keys, reformatting and spelling out defaults change nothing.
    let repo = dir.path();
    write(
        repo,
        "apps/web.yaml",
        "# same Deployment, written differently\nkind: Deployment\napiVersion: apps/v1\nmetadata:\n  namespace: default\n  name: web\nspec:\n  revisionHistoryLimit: 10\n  replicas: 3\n  selector:\n    matchLabels:\n      app: web\n  strategy:\n    type: RollingUpdate\n    rollingUpdate: {maxUnavailable: 0, maxSurge: 1}\n  template:\n    metadata: {labels: {app: web}}\n    spec:\n      restartPolicy: Always\n      containers:\n      - image: \"web:2\"\n        name: web\n        imagePullPolicy: IfNotPresent\n        ports: [{containerPort: 8080, name: http, protocol: TCP}]\n",
    );
    let reformatted = commit(repo, "reformat");
    let out = plan(repo, &["--from", &second, "--to", &reformatted]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn an_invalid_revision_prints_located_errors_and_exit_1() {
    let (dir, _, second) = two_revisions();
    let repo = dir.path();
    write(
        repo,
        "apps/web.yaml",
        &WEB_V1.replace("containerPort: 8080", "containerPort: 80800"),
    );
    let broken = commit(repo, "broken");
    let out = plan(repo, &["--from", &second, "--to", &broken]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("apps/web.yaml:11:"), "{text}");
    assert!(
        text.contains("spec.template.spec.containers[0].ports[0].containerPort"),
        "{text}"
    );
    let json = plan(
        repo,
        &["--from", &second, "--to", &broken, "--format", "json"],
    );
    let v: Value = serde_json::from_slice(&json.stdout).expect("JSON");
    assert_eq!(v["changes"], serde_json::json!([]));
    assert_eq!(v["errors"][0]["file"], "apps/web.yaml");
}

#[test]
fn path_limits_the_plan_and_uncommitted_files_are_ignored() {
    let (dir, first, second) = two_revisions();
    let repo = dir.path();
    // An uncommitted, half-written file never counts: plans read committed trees.
    write(
        repo,
        "apps/half.yaml",
        "apiVersion: v1\nkind: Service\nmetadata: {name: half\n",
    );
    let out = plan(
        repo,
        &[
            "--from", &first, "--to", &second, "--path", "apps", "--format", "json",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v["changes"].as_array().map(Vec::len), Some(6));
    let missing = plan(repo, &["--from", &first, "--to", &second, "--path", "nope"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("--path \"nope\" does not exist"));
    let bad_rev = plan(repo, &["--from", "no-such-branch", "--to", &second]);
    assert_eq!(bad_rev.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad_rev.stderr).contains("no-such-branch"));
}

#[test]
fn plans_follow_the_servers_prune_rules() {
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = dir.path();
    git(repo, &["init", "-q"]);
    write(repo, "web.yaml", WEB_V1);
    write(
        repo,
        "keep.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: keep\n  annotations: {keel.dev/prune: disabled}\ndata: {a: b}\n",
    );
    let first = commit(repo, "first");
    std::fs::remove_file(repo.join("web.yaml")).expect("rm");
    std::fs::remove_file(repo.join("keep.yaml")).expect("rm");
    let empty = commit(repo, "everything deleted");
    let out = plan(repo, &["--from", &first, "--to", &empty]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a revision the server would refuse"
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("keel server would refuse this revision"),
        "{text}"
    );
    assert!(
        text.contains("ConfigMap default/keep stays: it is annotated keel.dev/prune: disabled"),
        "{text}"
    );
    write(repo, "keel.yaml", "allowEmpty: true\n");
    let allowed = commit(repo, "allowed");
    let out = plan(
        repo,
        &["--from", &first, "--to", &allowed, "--format", "json"],
    );
    assert_eq!(out.status.code(), Some(2));
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let changes = v["changes"].as_array().expect("changes");
    assert_eq!(changes.len(), 1, "only the Deployment goes: {changes:#?}");
    assert_eq!(changes[0]["kind"], "Deployment");
    assert!(v["notes"][0].as_str().unwrap_or("").contains("keep stays"));
}
