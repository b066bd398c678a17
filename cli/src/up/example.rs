//! `example-repo/`, built into the binary, so `keel up` can start a new user's repository
//! from it wherever keel was installed.

use std::path::Path;

/// Every file of `example-repo/` (a test checks none is missing).
pub const FILES: &[(&str, &str)] = &[
    ("keel.yaml", include_str!("../../../example-repo/keel.yaml")),
    (
        "web/configmap.yaml",
        include_str!("../../../example-repo/web/configmap.yaml"),
    ),
    (
        "web/deployment.yaml",
        include_str!("../../../example-repo/web/deployment.yaml"),
    ),
    (
        "web/service.yaml",
        include_str!("../../../example-repo/web/service.yaml"),
    ),
    (
        "api/api.yaml",
        include_str!("../../../example-repo/api/api.yaml"),
    ),
    (
        "jobs/migrate.yaml",
        include_str!("../../../example-repo/jobs/migrate.yaml"),
    ),
];

/// Creates a git repository at `dir` holding the example, committed on `main`, with a local
/// identity so the user's first `git commit` works on a machine without one.
pub fn create(dir: &Path) -> anyhow::Result<()> {
    for (path, contents) in FILES {
        let at = dir.join(path);
        if let Some(parent) = at.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&at, contents)?;
    }
    let mut options = git2::RepositoryInitOptions::new();
    options.initial_head("main");
    let repo = git2::Repository::init_opts(dir, &options)?;
    {
        let mut config = repo.config()?;
        config.set_str("user.name", "keel demo")?;
        config.set_str("user.email", "demo@keel.invalid")?;
    }
    let mut index = repo.index()?;
    index.add_all(["*"].iter(), git2::IndexAddOption::DEFAULT, None)?;
    index.write()?;
    let tree = repo.find_tree(index.write_tree()?)?;
    let signature = repo.signature()?;
    repo.commit(
        Some("HEAD"),
        &signature,
        &signature,
        "The example app: web, api and a migration Job",
        &tree,
        &[],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_of_the_example_repo_is_built_in() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../example-repo");
        let mut on_disk = Vec::new();
        let mut stack = vec![root.clone()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).expect("example-repo") {
                let path = entry.expect("entry").path();
                if path.is_dir() {
                    stack.push(path);
                } else {
                    let rel = path.strip_prefix(&root).expect("under the root");
                    on_disk.push(rel.to_string_lossy().into_owned());
                }
            }
        }
        on_disk.sort();
        let mut built_in: Vec<String> = FILES.iter().map(|(p, _)| p.to_string()).collect();
        built_in.sort();
        assert_eq!(built_in, on_disk, "add new example-repo files to FILES");
    }

    #[test]
    fn the_created_repository_is_committed_and_valid() {
        let dir = tempfile::tempdir().expect("tempdir");
        create(dir.path()).expect("created");
        let repo = git2::Repository::open(dir.path()).expect("a repository");
        let head = repo.head().expect("HEAD");
        assert_eq!(head.shorthand().ok(), Some("main"));
        assert!(
            repo.statuses(None).expect("status").is_empty(),
            "all committed"
        );
        let files: Vec<keel_schema::SourceFile> = FILES
            .iter()
            .filter(|(p, _)| p.ends_with(".yaml") && *p != "keel.yaml")
            .map(|(p, c)| keel_schema::SourceFile {
                name: p.to_string(),
                bytes: c.as_bytes().to_vec(),
            })
            .collect();
        let revision = keel_schema::load_sources(&files, None);
        assert!(revision.is_valid(), "{:?}", revision.errors);
    }
}
