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
