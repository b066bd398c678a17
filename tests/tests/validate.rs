//! `keel validate` as a user runs it: the real binary on directories of manifests. Also the
//! command line as a whole: the CLI reference in docs/cli.md, and `keel up`'s refusals.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use keel_e2e::{binary, workspace_root};
use serde_json::Value;

fn keel(args: &[&str], dir: &Path) -> Output {
    Command::new(binary("keel"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("keel runs")
}

fn fixtures() -> PathBuf {
    workspace_root().join("tests/fixtures")
}

fn copy_dir(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).expect("fixture dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            std::fs::create_dir_all(&target).expect("mkdir");
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

#[test]
fn the_example_repo_and_the_guestbook_are_valid() {
    for dir in [
        workspace_root().join("example-repo"),
        fixtures().join("guestbook"),
    ] {
        let out = keel(&["validate", dir.to_str().unwrap()], &workspace_root());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{}: {stderr}", dir.display());
        assert!(String::from_utf8_lossy(&out.stdout).contains("are valid"));
    }
}

/// A real application's release manifest validates unchanged: the 11-service shop demo's
/// layout, with ServiceAccounts, pod securityContext, grpc probes, an init container and a
/// LoadBalancer frontend (the issue that asked for it counted 72 errors before).
#[test]
fn a_microservices_demo_validates_unchanged() {
    let dir = fixtures().join("microservices-demo");
    let out = keel(&["validate", dir.to_str().unwrap()], &workspace_root());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "35 objects in 1 file are valid"
    );
}

/// A broken variant: `# replaces: FILE`, `# expect: LINE FIELD` and optionally
/// `# expect-file: FILE` at the top of each file in `tests/fixtures/broken/`.
struct Broken {
    path: PathBuf,
    replaces: String,
    expect_file: String,
    line: u32,
    field: Option<String>,
}

fn broken_variants() -> Vec<Broken> {
    let mut out = Vec::new();
    let mut paths: Vec<PathBuf> = std::fs::read_dir(fixtures().join("broken"))
        .expect("broken fixtures")
        .map(|e| e.expect("entry").path())
        .collect();
    paths.sort();
    for path in paths {
        let text = std::fs::read_to_string(&path).expect("read");
        let header = |key: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("# {key}: ")))
                .map(|v| v.trim().to_string())
        };
        let replaces =
            header("replaces").unwrap_or_else(|| panic!("{}: no replaces", path.display()));
        let expect = header("expect").unwrap_or_else(|| panic!("{}: no expect", path.display()));
        let (line, field) = expect.split_once(' ').unwrap_or((&expect, "-"));
        out.push(Broken {
            expect_file: header("expect-file").unwrap_or_else(|| replaces.clone()),
            replaces,
            line: line
                .parse()
                .unwrap_or_else(|_| panic!("{}: bad line", path.display())),
            field: (field != "-").then(|| field.to_string()),
            path,
        });
    }
    out
}

#[test]
fn each_broken_variant_is_rejected_at_the_right_file_line_and_field() {
    let variants = broken_variants();
    assert!(
        variants.len() >= 20,
        "expected the broken fixtures, found {}",
        variants.len()
    );
    let mut failures = Vec::new();
    for v in &variants {
        let tmp = tempfile::tempdir().expect("tempdir");
        copy_dir(&fixtures().join("guestbook"), tmp.path());
        std::fs::copy(&v.path, tmp.path().join(&v.replaces)).expect("overlay");
        // Text output: the located line on stderr, exit 1.
        let out = keel(&["validate", "."], tmp.path());
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        let located = format!("{}:{}:", v.expect_file, v.line);
        let field_ok = v
            .field
            .as_ref()
            .is_none_or(|f| stderr.contains(&format!(" {f}: ")));
        if out.status.code() != Some(1)
            || !stderr.lines().any(|l| l.starts_with(&located))
            || !field_ok
        {
            failures.push(format!(
                "{}: want {located} {:?}, got exit {:?}:\n{stderr}",
                v.path.display(),
                v.field,
                out.status.code()
            ));
            continue;
        }
        // JSON output names the same place.
        let out = keel(&["validate", "--format", "json", "."], tmp.path());
        let errors: Vec<Value> = serde_json::from_slice(&out.stdout).expect("JSON array");
        let hit = errors.iter().any(|e| {
            e["file"] == v.expect_file.as_str()
                && e["line"] == v.line
                && v.field.as_ref().is_none_or(|f| e["field"] == f.as_str())
        });
        if out.status.code() != Some(1) || !hit {
            failures.push(format!(
                "{}: JSON lacks {located} {:?}: {errors:?}",
                v.path.display(),
                v.field
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} variants:\n{}",
        failures.len(),
        variants.len(),
        failures.join("\n")
    );
}

#[test]
fn usage_and_io_problems_exit_2() {
    let tmp = tempfile::tempdir().expect("tempdir");
    std::fs::write(tmp.path().join("README.md"), "not a manifest").expect("write");
    let empty = keel(&["validate", "."], tmp.path());
    assert_eq!(empty.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&empty.stderr).contains("no manifests"));
    let missing = keel(&["validate", "does-not-exist"], tmp.path());
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("does-not-exist"));
    let no_args = keel(&["validate"], tmp.path());
    assert_eq!(no_args.status.code(), Some(2));
    // Files that hold only comments are not "all valid": there is nothing to apply.
    std::fs::write(tmp.path().join("empty.yaml"), "# nothing yet\n---\n").expect("write");
    let only_comments = keel(&["validate", "."], tmp.path());
    assert_eq!(only_comments.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&only_comments.stderr).contains("no objects"));
}

#[test]
fn symlinked_manifests_are_reported_as_the_server_would() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let shared = tmp.path().join("shared.yaml");
    std::fs::write(
        &shared,
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: web}\n",
    )
    .expect("write");
    std::fs::create_dir(tmp.path().join("repo")).expect("mkdir");
    std::os::unix::fs::symlink(&shared, tmp.path().join("repo/web.yaml")).expect("symlink");
    let out = keel(&["validate", "repo"], tmp.path());
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("repo/web.yaml:1:1: symbolic links are not followed"),
        "{stderr}"
    );

    // A link committed as a manifest and pointing at a private key: neither the link named
    // on the command line, nor a folder reached through a link, is read or printed.
    let secret = "MC4CAQAwBQYDK2VwBCIEIEAZMgeXMPmvcXeFmgVicwFGPAX39fBiNq1XRjwbyeqq";
    let key = format!("-----BEGIN PRIVATE KEY-----\n{secret}\n-----END PRIVATE KEY-----\n");
    let outside = tempfile::tempdir().expect("tempdir");
    std::fs::write(outside.path().join("id.yaml"), &key).expect("write");
    std::os::unix::fs::symlink(
        outside.path().join("id.yaml"),
        tmp.path().join("repo/key.yaml"),
    )
    .expect("symlink");
    std::os::unix::fs::symlink(outside.path(), tmp.path().join("repo/keys")).expect("symlink");
    for (arg, shown) in [
        (
            "repo/key.yaml",
            "repo/key.yaml:1:1: symbolic links are not followed",
        ),
        (
            "repo/keys",
            "repo/keys:1:1: symbolic links are not followed",
        ),
        (
            "repo/keys/id.yaml",
            "repo/keys/id.yaml:1:1: symbolic links are not followed",
        ),
    ] {
        let out = keel(&["validate", arg], tmp.path());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{arg}: {stderr}");
        assert!(stderr.contains(shown), "{arg}: {stderr}");
        assert!(
            !stderr.contains("MC4CAQ"),
            "{arg} printed the key: {stderr}"
        );
    }
    // Named as itself, the key is not a manifest, and only a short excerpt of it is shown.
    let out = keel(
        &[
            "validate",
            &outside.path().join("id.yaml").to_string_lossy(),
        ],
        tmp.path(),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("-----BEGIN PRIVATE KEY--…"), "{stderr}");
    assert!(
        !stderr.contains("MC4CAQ"),
        "the key printed whole: {stderr}"
    );
}

/// A folder tree deeper than keel reads (64 levels) is a located error, as on the server.
#[test]
fn folders_nested_too_deep_are_a_located_error() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cm = |name: &str| format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}}}\n");
    std::fs::write(tmp.path().join("top.yaml"), cm("top")).expect("write");
    let mut deep = tmp.path().to_path_buf();
    for _ in 0..70 {
        deep.push("d");
    }
    std::fs::create_dir_all(&deep).expect("mkdir");
    std::fs::write(deep.join("deep.yaml"), cm("deep")).expect("write");
    let out = keel(&["validate", "."], tmp.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let at = format!(
        "{}d:1:1: folders nest deeper than 64 levels",
        "d/".repeat(64)
    );
    assert!(stderr.contains(&at), "{stderr}");
}

#[test]
fn json_output_has_the_documented_shape() {
    let tmp = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(tmp.path().join("apps")).expect("mkdir");
    std::fs::write(
        tmp.path().join("apps/web.yaml"),
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  namespace: shop\nspec:\n  ports:\n  - port: 0\n",
    )
    .expect("write");
    std::fs::write(tmp.path().join("apps/z.yml"), "kind: [\n").expect("write");
    let out = keel(&["validate", "--format", "json", "apps"], tmp.path());
    assert_eq!(out.status.code(), Some(1));
    let errors: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(
        errors[0],
        serde_json::json!({
            "file": "apps/web.yaml", "line": 8, "column": 11, "kind": "Service",
            "namespace": "shop", "name": "web", "field": "spec.ports[0].port",
            "message": "Invalid value: 0: must be between 1 and 65535, inclusive"
        })
    );
    assert_eq!(errors[1]["file"], "apps/z.yml");
    assert_eq!(errors[1]["kind"], Value::Null);
    assert!(
        errors[1]["message"]
            .as_str()
            .unwrap_or("")
            .starts_with("YAML syntax error")
    );
}

#[test]
fn keel_schema_prints_a_json_schema() {
    let out = keel(&["schema"], &workspace_root());
    assert_eq!(out.status.code(), Some(0));
    let schema: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(schema["$schema"], "http://json-schema.org/draft-07/schema#");
    let kinds = schema["properties"]["kind"]["enum"]
        .as_array()
        .expect("kinds");
    assert!(kinds.contains(&Value::from("Deployment")) && !kinds.contains(&Value::from("Node")));
}

/// `docs/cli.md` is every command's `--help`, so the reference cannot drift from the
/// binaries. `KEEL_UPDATE_DOCS=1` rewrites it after a flag changes.
#[test]
fn the_cli_reference_matches_the_binaries() {
    let help = |program: &str, args: &[&str]| -> String {
        let mut cmd = Command::new(binary(program));
        cmd.args(args).arg("--help");
        // Flags backed by environment variables show the variable's value when it is set.
        for (key, _) in std::env::vars() {
            if key.starts_with("KEEL_") {
                cmd.env_remove(&key);
            }
        }
        let out = cmd.output().expect("--help runs");
        assert!(out.status.success(), "{program} {args:?} --help failed");
        String::from_utf8_lossy(&out.stdout).trim_end().to_string()
    };
    let top = help("keel", &[]);
    let commands = |help: &str| -> Vec<String> {
        help.lines()
            .skip_while(|l| !l.starts_with("Commands:"))
            .skip(1)
            .take_while(|l| l.starts_with("  "))
            .filter_map(|l| l.split_whitespace().next().map(str::to_string))
            .filter(|v| v != "help")
            .collect()
    };
    let verbs = commands(&top);
    assert!(verbs.len() >= 10, "{top}");
    let mut doc = String::from(
        "# CLI reference\n\nEvery command's `--help`, generated from the binaries; a test \
         (`the_cli_reference_matches_the_binaries` in `tests/tests/validate.rs`) fails when it \
         drifts, and `KEEL_UPDATE_DOCS=1 cargo test -p keel-e2e --test validate cli_reference` \
         rewrites it.\n",
    );
    let mut section = |title: String, text: String| {
        doc.push_str(&format!("\n## `{title}`\n\n```text\n{text}\n```\n"));
    };
    section("keel".into(), top.clone());
    for verb in &verbs {
        let text = help("keel", &[verb]);
        // Verbs with their own subcommands (`keel token create`): each of those too.
        let subcommands = commands(&text);
        section(format!("keel {verb}"), text);
        for sub in &subcommands {
            section(format!("keel {verb} {sub}"), help("keel", &[verb, sub]));
        }
    }
    section("keel-agent".into(), help("keel-agent", &[]));
    let path = workspace_root().join("docs").join("cli.md");
    if std::env::var("KEEL_UPDATE_DOCS").is_ok_and(|v| v == "1") {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &doc).unwrap();
    }
    let current = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        current == doc,
        "docs/cli.md is out of date; run KEEL_UPDATE_DOCS=1 cargo test -p keel-e2e --test validate cli_reference"
    );
}

/// `keel up` on a bad day: no Docker engine, nonsense flags. Each is one clear message and
/// nothing started.
#[test]
fn keel_up_without_docker_or_with_bad_flags_says_what_to_do() {
    let data = tempfile::tempdir().unwrap();
    let run = |args: &[&str], path: Option<&str>| -> (Option<i32>, String) {
        let mut cmd = Command::new(binary("keel"));
        cmd.arg("up").args(args).arg("--data-dir").arg(data.path());
        if let Some(p) = path {
            cmd.env("PATH", p);
        }
        let out = cmd.output().expect("keel up runs");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    // No `docker` to be found: the commands that install and start it.
    let (code, text) = run(&[], Some("/nonexistent"));
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("apt-get install -y docker.io") && text.contains("dockerd"),
        "{text}"
    );
    for (args, expect) in [
        (&["--nodes", "0"][..], "--nodes"),
        (
            &["--service-cidr", "10.96.0.1/16"][..],
            "did you mean 10.96.0.0/16",
        ),
        (&["--wait", "soon"][..], "--wait"),
    ] {
        let (code, text) = run(args, None);
        assert_eq!(code, Some(2), "{args:?}: {text}");
        assert!(text.contains(expect), "{args:?}: {text}");
    }
    assert!(
        !data.path().join("repo").exists(),
        "nothing was created on the way to an error"
    );
}

/// Privileges over the node are refused, each at its own line, unless keel.yaml allows them in
/// the pod's namespace; keel.yaml's own mistakes are located too.
#[test]
fn pod_privileges_need_the_repository_to_allow_them_per_namespace() {
    let dir = tempfile::tempdir().unwrap();
    let pod = |ns: &str| {
        format!(
            "apiVersion: apps/v1
kind: Deployment
metadata: {{name: agent, namespace: {ns}}}
spec:
  selector: {{matchLabels: {{app: agent}}}}
  template:
    metadata: {{labels: {{app: agent}}}}
    spec:
      hostNetwork: true
      hostPID: true
      containers:
      - name: agent
        image: example/agent:1
        securityContext:
          privileged: true
          capabilities: {{add: [NET_ADMIN], drop: [ALL]}}
          runAsUser: 1000
          runAsGroup: 1000
        ports: [{{containerPort: 9100, hostPort: 9100}}]
"
        )
    };
    let ns = |name: &str| format!("apiVersion: v1\nkind: Namespace\nmetadata: {{name: {name}}}\n");
    std::fs::write(dir.path().join("default.yaml"), pod("default")).unwrap();
    std::fs::write(
        dir.path().join("ops.yaml"),
        format!("{}---\n{}", ns("ops"), pod("ops")),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("keel.yaml"),
        "podSecurity:\n  ops: [privileged, hostNetwork, hostPID, capabilities, hostPort]\n",
    )
    .unwrap();
    let out = keel(&["validate", "."], dir.path());
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    for (line, field, what) in [
        (9, "spec.template.spec.hostNetwork", "hostNetwork"),
        (10, "spec.template.spec.hostPID", "hostPID"),
        (
            15,
            "spec.template.spec.containers[0].securityContext.privileged",
            "privileged",
        ),
        (
            16,
            "spec.template.spec.containers[0].securityContext.capabilities.add",
            "capabilities",
        ),
        (
            19,
            "spec.template.spec.containers[0].ports[0].hostPort",
            "hostPort",
        ),
    ] {
        let want = format!("default.yaml:{line}:");
        let found = stderr.lines().any(|l| {
            l.contains(&want)
                && l.contains(field)
                && l.contains(&format!(
                    "Forbidden: {what} is not allowed in namespace \"default\""
                ))
        });
        assert!(found, "{want} {field}: {stderr}");
    }
    assert!(!stderr.contains("ops.yaml"), "allowed in ops: {stderr}");
    assert_eq!(stderr.matches("Forbidden").count(), 5, "{stderr}");

    // A privilege keel does not know, in keel.yaml.
    std::fs::write(
        dir.path().join("keel.yaml"),
        "podSecurity:\n  ops: [root]\n",
    )
    .unwrap();
    let out = keel(&["validate", "."], dir.path());
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(stderr.contains("keel.yaml:2"), "{stderr}");
    assert!(stderr.contains("root"), "{stderr}");

    // Nonsense in a securityContext is a located error whatever the policy.
    std::fs::write(
        dir.path().join("keel.yaml"),
        "podSecurity:\n  default: [capabilities]\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("default.yaml"),
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - name: c\n    image: x:1\n    securityContext:\n      runAsUser: -1\n      capabilities: {add: [net-admin]}\n",
    )
    .unwrap();
    std::fs::remove_file(dir.path().join("ops.yaml")).unwrap();
    let out = keel(&["validate", "."], dir.path());
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        stderr.contains("default.yaml:9") && stderr.contains("runAsUser"),
        "{stderr}"
    );
    assert!(
        stderr.contains("default.yaml:10") && stderr.contains("net-admin"),
        "{stderr}"
    );
}
