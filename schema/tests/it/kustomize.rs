//! The kustomize oracle: every tree under `tests/fixtures/kustomize/cases` renders to exactly
//! the objects, in the order, that `kubectl kustomize` (kustomize v5) printed for it into
//! `expected/`. Where kubectl is installed, it renders each tree again, so an expected file
//! that has gone stale fails too.

use std::path::{Path, PathBuf};

use keel_schema::kustomize::{node::to_json, render_dir};
use keel_schema::load::DiskFiles;
use serde::Deserialize;
use serde_json::Value as Json;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/kustomize")
}

fn cases() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(fixtures().join("cases"))
        .expect("the kustomize cases")
        .map(|e| e.expect("a case").file_name().to_string_lossy().to_string())
        .collect();
    names.sort();
    names
}

/// A multi-document YAML stream as JSON values (what both renderers print).
fn documents(text: &str) -> Vec<Json> {
    serde_yaml::Deserializer::from_str(text)
        .map(|doc| Json::deserialize(doc).expect("rendered YAML"))
        .filter(|v| !v.is_null())
        .collect()
}

fn keel_render(case: &str) -> Result<Vec<Json>, String> {
    let files = DiskFiles::new(fixtures().join("cases").join(case));
    render_dir(&files, "", None)
        .map(|objects| objects.iter().map(|o| to_json(&o.root)).collect())
        .map_err(|errors| {
            errors
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        })
}

fn first_difference(ours: &[Json], theirs: &[Json]) -> String {
    for (i, (a, b)) in ours.iter().zip(theirs).enumerate() {
        if a != b {
            return format!(
                "object {i} ({}) differs at {}",
                name(a),
                diff(a, b, String::new())
            );
        }
    }
    let names = |v: &[Json]| -> Vec<String> { v.iter().map(name).collect() };
    format!(
        "keel made {:?}\nkustomize made {:?}",
        names(ours),
        names(theirs)
    )
}

fn name(o: &Json) -> String {
    format!(
        "{}/{}",
        o["kind"].as_str().unwrap_or("?"),
        o["metadata"]["name"].as_str().unwrap_or("?")
    )
}

/// Where two values first differ, and how.
fn diff(a: &Json, b: &Json, at: String) -> String {
    match (a, b) {
        (Json::Object(x), Json::Object(y)) => {
            for key in x.keys().chain(y.keys()) {
                let (p, q) = (
                    x.get(key).unwrap_or(&Json::Null),
                    y.get(key).unwrap_or(&Json::Null),
                );
                if p != q {
                    return diff(p, q, format!("{at}.{key}"));
                }
            }
            at
        }
        (Json::Array(x), Json::Array(y)) if x.len() == y.len() => {
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                if p != q {
                    return diff(p, q, format!("{at}[{i}]"));
                }
            }
            at
        }
        _ => format!("{at}: keel {a}, kustomize {b}"),
    }
}

#[test]
fn keel_renders_every_tree_as_kustomize_does() {
    let cases = cases();
    assert!(
        cases.len() >= 40,
        "the oracle needs at least 40 trees, found {}",
        cases.len()
    );
    let mut failures = Vec::new();
    for case in &cases {
        let expected_text =
            std::fs::read_to_string(fixtures().join("expected").join(format!("{case}.yaml")))
                .unwrap_or_else(|e| panic!("expected/{case}.yaml: {e}"));
        let expected = documents(&expected_text);
        match keel_render(case) {
            Err(e) => failures.push(format!("{case}: keel refused it:\n{e}")),
            Ok(ours) if ours != expected => {
                failures.push(format!("{case}: {}", first_difference(&ours, &expected)))
            }
            Ok(_) => {}
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} trees render differently:\n\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
}

#[test]
fn the_expected_outputs_are_what_kubectl_kustomize_prints_today() {
    let Ok(version) = std::process::Command::new("kubectl")
        .args(["version", "--client"])
        .output()
    else {
        eprintln!("kubectl is not installed: the committed expected outputs stand as the oracle");
        return;
    };
    assert!(version.status.success());
    for case in cases() {
        let out = std::process::Command::new("kubectl")
            .arg("kustomize")
            .arg(fixtures().join("cases").join(&case))
            .output()
            .expect("kubectl kustomize");
        assert!(
            out.status.success(),
            "{case}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let expected =
            std::fs::read_to_string(fixtures().join("expected").join(format!("{case}.yaml")))
                .unwrap_or_default();
        assert_eq!(
            documents(&String::from_utf8_lossy(&out.stdout)),
            documents(&expected),
            "{case}: expected/{case}.yaml is stale; run tests/fixtures/kustomize/regenerate.sh"
        );
    }
}

fn source(name: &str, text: &str) -> keel_schema::SourceFile {
    keel_schema::SourceFile {
        name: name.to_string(),
        bytes: text.as_bytes().to_vec(),
    }
}

const BASE_DEPLOYMENT: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: nginx:1.25
        envFrom:
        - configMapRef: {name: settings}
";

/// A repository as teams lay one out: a base, two overlays, and plain manifests beside them.
fn layered_repo(overlay_patch: &str) -> Vec<keel_schema::SourceFile> {
    vec![
        source(
            "apps/web/base/kustomization.yaml",
            "resources: [deployment.yaml]\nconfigMapGenerator:\n- name: settings\n  literals: [MODE=base]\n",
        ),
        source("apps/web/base/deployment.yaml", BASE_DEPLOYMENT),
        source(
            "apps/web/overlays/prod/kustomization.yaml",
            &format!(
                "namespace: prod\nnamePrefix: prod-\nresources: [../../base]\nimages:\n- name: nginx\n  newTag: '1.27'\npatches:\n- patch: |-\n{overlay_patch}"
            ),
        ),
        source(
            "apps/web/overlays/staging/kustomization.yaml",
            "namespace: staging\nresources: [../../base]\n",
        ),
        source(
            "apps/web/overlays/staging/unlisted.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: forgotten}\n",
        ),
        source(
            "namespaces.yaml",
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: prod}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: staging}\n",
        ),
    ]
}

const REPLICAS_PATCH: &str = "    apiVersion: apps/v1\n    kind: Deployment\n    metadata: {name: web}\n    spec: {replicas: 3}\n";

#[test]
fn a_revision_renders_each_top_kustomization_once_beside_its_plain_manifests() {
    let rev = keel_schema::load_sources(&layered_repo(REPLICAS_PATCH), None);
    assert!(rev.errors.is_empty(), "{:#?}", rev.errors);
    let mut names: Vec<String> = rev
        .manifests
        .iter()
        .map(|m| {
            format!(
                "{} {}/{} from {}",
                m.object.kind(),
                m.object.namespace(),
                m.object.name(),
                m.file
            )
        })
        .collect();
    names.sort();
    // The base is rendered through its overlays only; the overlay's unlisted file is not
    // read; the plain file at the root is.
    let hash = keel_schema::kustomize::content_hash(
        &keel_schema::yaml::parse_documents(
            "apiVersion: v1\nkind: ConfigMap\ndata: {MODE: base}\n",
        )
        .unwrap()[0]
            .root
            .clone()
            .unwrap(),
    );
    assert_eq!(
        names,
        vec![
            format!("ConfigMap prod/prod-settings-{hash} from apps/web/base/kustomization.yaml"),
            format!("ConfigMap staging/settings-{hash} from apps/web/base/kustomization.yaml"),
            "Deployment prod/prod-web from apps/web/base/deployment.yaml".to_string(),
            "Deployment staging/web from apps/web/base/deployment.yaml".to_string(),
            "Namespace /prod from namespaces.yaml".to_string(),
            "Namespace /staging from namespaces.yaml".to_string(),
        ]
    );
    let prod = rev
        .manifests
        .iter()
        .find(|m| m.object.name() == "prod-web")
        .unwrap();
    let json = serde_json::to_value(&prod.object).unwrap();
    assert_eq!(json["spec"]["replicas"], 3);
    assert_eq!(
        json["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:1.27"
    );
    assert_eq!(
        json["spec"]["template"]["spec"]["containers"][0]["envFrom"][0]["configMapRef"]["name"],
        format!("prod-settings-{hash}")
    );
}

#[test]
fn a_rendered_objects_errors_point_at_its_base_file_and_patch_errors_at_the_kustomization() {
    // A patch that breaks the object: the error names the object's field and the file the
    // object came from, not a line of another file.
    let bad = "    apiVersion: apps/v1\n    kind: Deployment\n    metadata: {name: web}\n    spec: {replicas: -1}\n";
    let rev = keel_schema::load_sources(&layered_repo(bad), None);
    let shown: Vec<String> = rev.errors.iter().map(|e| e.to_string()).collect();
    assert_eq!(shown.len(), 1, "{shown:#?}");
    assert!(
        shown[0].starts_with("apps/web/base/deployment.yaml:"),
        "{shown:#?}"
    );
    assert!(
        shown[0].contains("Deployment prod/prod-web: spec.replicas"),
        "{shown:#?}"
    );

    // A patch naming nothing is an error of the kustomization, located at the patch.
    let ghost = "    apiVersion: apps/v1\n    kind: Deployment\n    metadata: {name: ghost}\n    spec: {replicas: 2}\n";
    let rev = keel_schema::load_sources(&layered_repo(ghost), None);
    let shown: Vec<String> = rev.errors.iter().map(|e| e.to_string()).collect();
    assert_eq!(
        shown,
        vec![
            "apps/web/overlays/prod/kustomization.yaml:8:3: patches[0].patch: Not found: no Deployment named \"ghost\" to patch among the kustomization's objects"
        ]
    );
}

#[test]
fn kustomization_mistakes_are_each_located_and_nothing_renders() {
    let files = vec![
        source("base/kustomization.yaml", "resources: [d.yaml]\n"),
        source("base/d.yaml", BASE_DEPLOYMENT),
        source("base/secret.env", "TOKEN=abc\n"),
        source(
            "app/kustomization.yaml",
            "resources:\n- ../base\n- https://github.com/org/repo//deploy\n- missing.yaml\n- ../base/d.yaml\nnamePrefx: p-\npatches:\n- target: {kind: Deployment, name: 'web['}\n  patch: '[]'\n- target: {kind: Deployment}\n  patch: |-\n    - op: replace\n      path: /spec/nothing/here\n      value: 1\nconfigMapGenerator:\n- name: c\n  literals: [novalue]\nsecretGenerator:\n- name: s\n  envs: [../base/secret.env]\nhelmCharts: []\n",
        ),
    ];
    let rev = keel_schema::load_sources(&files, None);
    let shown: Vec<String> = rev.errors.iter().map(|e| e.to_string()).collect();
    let expected = [
        "app/kustomization.yaml:3:3: resources[1]: Unsupported value: \"https://github.com/org/repo//deploy\": remote resources are not fetched by keel; commit them into the repository",
        "app/kustomization.yaml:4:3: resources[2]: Not found: \"missing.yaml\": no such file or folder in the revision",
        "app/kustomization.yaml:5:3: resources[3]: Forbidden: file \"../base/d.yaml\" is not in or below \"app\" (kustomize's load restriction); list its folder's kustomization instead",
        "app/kustomization.yaml:6:1: namePrefx: unknown field \"namePrefx\" (did you mean \"namePrefix\"?)",
        "app/kustomization.yaml:8:3: patches[0].target: Invalid value: target.name \"web[\" is not a regular expression: unclosed character class",
        "app/kustomization.yaml:11:3: patches[1].patch: cannot patch Deployment web: operation 0: replace /spec/nothing/here: /spec/nothing does not exist",
        "app/kustomization.yaml:17:14: configMapGenerator[0].literals[0]: Invalid value: \"novalue\": a literal is KEY=VALUE",
        "app/kustomization.yaml:20:10: secretGenerator[0].envs[0]: Forbidden: file \"../base/secret.env\" is not in or below \"app\" (kustomize's load restriction)",
        "app/kustomization.yaml:21:1: helmCharts: Forbidden: Helm charts are not rendered by keel; commit the rendered chart",
    ];
    assert_eq!(shown, expected);
    assert!(rev.manifests.is_empty() || !rev.is_valid());
}

#[test]
fn kustomizations_that_include_each_other_are_a_located_error_not_a_hang() {
    let files = vec![
        source("a/kustomization.yaml", "resources: [../b]\n"),
        source("b/kustomization.yaml", "resources: [../a]\n"),
    ];
    let rev = keel_schema::load_sources(&files, None);
    let shown: Vec<String> = rev.errors.iter().map(|e| e.to_string()).collect();
    assert!(
        !shown.is_empty() && shown.iter().all(|e| e.contains("cycle")),
        "{shown:#?}"
    );
}

#[test]
fn what_kustomize_refuses_keel_refuses_with_a_located_reason() {
    let cases: [(&[(&str, &str)], &str); 5] = [
        (
            &[
                (
                    "kustomization.yaml",
                    "resources: [d.yaml]\nreplicas:\n- name: nope\n  count: 2\n",
                ),
                ("d.yaml", BASE_DEPLOYMENT),
            ],
            "kustomization.yaml:3:9: replicas[0].name: Not found: no Deployment, ReplicaSet, ReplicationController or StatefulSet named \"nope\" to scale",
        ),
        (
            &[
                (
                    "kustomization.yaml",
                    "resources: [d.yaml]\nreplacements:\n- source: {kind: Deployment, name: web}\n  targets:\n  - fieldPaths: [metadata.name]\n",
                ),
                ("d.yaml", BASE_DEPLOYMENT),
            ],
            "kustomization.yaml:3:3: replacements[0]: Required value: targets[0].select: a replacement target needs select",
        ),
        (
            &[
                ("kustomization.yaml", "resources: [d.yaml]\n"),
                ("Kustomization", "resources: [d.yaml]\n"),
                ("d.yaml", BASE_DEPLOYMENT),
            ],
            "kustomization.yaml:1:1: this folder has kustomization.yaml and Kustomization; kustomize reads one, so keep one",
        ),
        (
            &[
                (
                    "kustomization.yaml",
                    "resources: [d.yaml]\nsortOptions: {order: FIFO}\n",
                ),
                ("d.yaml", BASE_DEPLOYMENT),
            ],
            "kustomization.yaml:2:22: sortOptions.order: Unsupported value: \"FIFO\": supported values: \"legacy\", \"fifo\"",
        ),
        (
            // Each copy doubles the object: stopped before memory runs out.
            &[
                (
                    "kustomization.yaml",
                    &format!(
                        "resources: [d.yaml]\npatches:\n- target: {{kind: Deployment}}\n  patch: |-\n{}",
                        (0..30)
                            .map(|i| format!("    - {{op: copy, from: /spec, path: /spec/m{i}}}\n"))
                            .collect::<String>()
                    ),
                ),
                ("d.yaml", BASE_DEPLOYMENT),
            ],
            "the object grows past 200000 values",
        ),
    ];
    for (files, expected) in cases {
        let files: Vec<_> = files.iter().map(|(n, t)| source(n, t)).collect();
        let rev = keel_schema::load_sources(&files, None);
        let shown: Vec<String> = rev.errors.iter().map(|e| e.to_string()).collect();
        assert!(
            shown.iter().any(|e| e.contains(expected)),
            "expected {expected:?} in {shown:#?}"
        );
    }
}
