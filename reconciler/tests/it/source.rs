//! Reading revisions out of hostile git trees: the walk is bounded and never recurses.

use keel_reconciler::source::RepoTree;
use keel_schema::load::MAX_FOLDER_DEPTH;

/// Commits a tree `depth` folders deep (`d/d/…/d/cm.yaml`) plus a top-level manifest, built
/// bottom-up with git2 (a working copy that deep would exceed PATH_MAX).
fn deep_repo(dir: &std::path::Path, depth: usize) -> git2::Oid {
    let repo = git2::Repository::init_bare(dir).unwrap();
    let manifest = |name: &str| {
        let yaml = format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}}}\n");
        repo.blob(yaml.as_bytes()).unwrap()
    };
    let mut builder = repo.treebuilder(None).unwrap();
    builder
        .insert("cm.yaml", manifest("deepest"), 0o100644)
        .unwrap();
    let mut tree = builder.write().unwrap();
    for _ in 0..depth {
        let mut builder = repo.treebuilder(None).unwrap();
        builder.insert("d", tree, 0o040000).unwrap();
        tree = builder.write().unwrap();
    }
    let mut builder = repo
        .treebuilder(Some(&repo.find_tree(tree).unwrap()))
        .unwrap();
    builder
        .insert("top.yaml", manifest("top"), 0o100644)
        .unwrap();
    let tree = repo.find_tree(builder.write().unwrap()).unwrap();
    let who = git2::Signature::now("t", "t@example.com").unwrap();
    repo.commit(Some("HEAD"), &who, &who, "deep", &tree, &[])
        .unwrap()
}

#[test]
fn a_tree_twenty_thousand_folders_deep_is_a_located_error_not_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    deep_repo(dir.path(), 20_000);
    // A small stack, as a busy server thread might have: the walk must not grow with depth.
    let path = dir.path().to_string_lossy().to_string();
    let (_, revision) = std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(move || RepoTree::open(&path).unwrap().load("HEAD", None).unwrap())
        .unwrap()
        .join()
        .expect("the walk did not overflow its stack");
    let shown: Vec<String> = revision.errors.iter().map(|e| e.to_string()).collect();
    let too_deep = format!("{}d", "d/".repeat(MAX_FOLDER_DEPTH));
    assert_eq!(shown.len(), 1, "{shown:?}");
    assert!(shown[0].starts_with(&too_deep), "{shown:?}");
    assert!(shown[0].contains("deeper than 64 levels"), "{shown:?}");
}

#[test]
fn manifests_up_to_the_depth_bound_are_read() {
    let dir = tempfile::tempdir().unwrap();
    deep_repo(dir.path(), MAX_FOLDER_DEPTH);
    let tree = RepoTree::open(&dir.path().to_string_lossy()).unwrap();
    let (_, revision) = tree.load("HEAD", None).unwrap();
    assert!(revision.errors.is_empty(), "{:?}", revision.errors);
    let names: Vec<&str> = revision.manifests.iter().map(|m| m.object.name()).collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(
        names.contains(&"deepest") && names.contains(&"top"),
        "{names:?}"
    );
}

/// Writes `files` into the working copy `dir` and commits them all (deleting what is gone
/// from `files` is the caller's).
fn commit_files(dir: &std::path::Path, files: &[(&str, &str)]) -> String {
    for (name, text) in files {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    let run = |args: &[&str]| {
        let out = std::process::Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    run(&["add", "-A"]);
    run(&["commit", "-q", "--allow-empty", "-m", "next"]);
    run(&["rev-parse", "HEAD"])
}

#[test]
fn an_app_is_rendered_again_only_when_what_it_reads_changes() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path();
    std::process::Command::new("git")
        .args(["init", "-q", "-b", "main"])
        .current_dir(repo)
        .status()
        .unwrap();
    let cm = |name: &str, v: &str| {
        format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}}}\ndata: {{v: '{v}'}}\n")
    };
    let first = commit_files(
        repo,
        &[
            (
                "keel.yaml",
                "apps:\n- {name: web, path: apps/web}\n- {name: api, path: apps/api}\n",
            ),
            ("apps/web/cm.yaml", &cm("web", "1")),
            ("apps/api/kustomization.yaml", "resources: [../../base]\n"),
            ("base/kustomization.yaml", "resources: [cm.yaml]\n"),
            ("base/cm.yaml", &cm("api", "1")),
            ("root.yaml", &cm("root", "1")),
            ("README.md", "shop\n"),
        ],
    );
    let tree = RepoTree::open(&repo.to_string_lossy()).unwrap();
    let all = |_: &keel_schema::load::apps::AppSpec, _: &str| true;
    let load = tree.load_apps(&first, None, &|_| Vec::new(), &all).unwrap();
    let names: Vec<&str> = load.apps.iter().map(|a| a.spec.label()).collect();
    assert_eq!(names, ["web", "api", "(root)"]);
    let objects = |name: Option<&str>| -> Vec<String> {
        let app = load.app(name).unwrap();
        let revision = app.revision.as_ref().unwrap();
        assert!(revision.is_valid(), "{:?}", revision.errors);
        revision
            .manifests
            .iter()
            .map(|m| m.object.name().to_string())
            .collect()
    };
    assert_eq!(objects(Some("web")), ["web"]);
    assert_eq!(objects(Some("api")), ["api"]);
    // The base the api reads is the api's: the root app leaves it alone.
    assert_eq!(objects(None), ["root"]);
    assert_eq!(
        load.app(Some("api")).unwrap().inputs,
        ["base/cm.yaml", "base/kustomization.yaml"]
    );

    // Which apps a commit changes from the one before, by fingerprint, each app's inputs
    // as last time.
    type Known = std::collections::HashMap<Option<String>, (String, Vec<String>)>;
    let known: std::cell::RefCell<Known> = std::cell::RefCell::new(
        load.apps
            .iter()
            .map(|a| {
                (
                    a.spec.name.clone(),
                    (a.fingerprint.clone(), a.inputs.clone()),
                )
            })
            .collect(),
    );
    let changed = |rev: &str| -> Vec<String> {
        let before = known.borrow().clone();
        let inputs = |s: &keel_schema::load::apps::AppSpec| before[&s.name].1.clone();
        let none = |_: &keel_schema::load::apps::AppSpec, _: &str| false;
        let next = tree.load_apps(rev, None, &inputs, &none).unwrap();
        assert!(next.apps.iter().all(|a| a.revision.is_none()));
        for a in &next.apps {
            let fingerprint = (a.fingerprint.clone(), a.inputs.clone());
            known.borrow_mut().insert(a.spec.name.clone(), fingerprint);
        }
        next.apps
            .iter()
            .filter(|a| before[&a.spec.name].0 != a.fingerprint)
            .map(|a| a.spec.label().to_string())
            .collect()
    };
    assert!(
        changed(&commit_files(repo, &[])).is_empty(),
        "an empty commit"
    );
    assert_eq!(
        changed(&commit_files(
            repo,
            &[("apps/web/cm.yaml", &cm("web", "2"))]
        )),
        ["web"]
    );
    // The shared base is outside every app's folder: the api reads it, and the root holds it.
    assert_eq!(
        changed(&commit_files(repo, &[("base/cm.yaml", &cm("api", "2"))])),
        ["api", "(root)"]
    );
    assert_eq!(
        changed(&commit_files(repo, &[("README.md", "shop!\n")])),
        ["(root)"]
    );
    // keel.yaml is every app's.
    assert_eq!(
        changed(&commit_files(
            repo,
            &[(
                "keel.yaml",
                "apps:\n- {name: web, path: apps/web}\n- {name: api, path: apps/api, prune: false}\n"
            )]
        )),
        ["web", "api", "(root)"]
    );
}
