//! Paths inside a repository as kustomizations name them: relative to the kustomization's
//! folder, normalised to `/`-separated paths from the repository root, never above it.

/// `rel` from the folder `dir` (`""` is the root). `Err` when it climbs above the root or is
/// absolute.
pub fn join(dir: &str, rel: &str) -> Result<String, String> {
    if rel.starts_with('/') {
        return Err(format!(
            "{rel:?} is an absolute path; name files relative to the kustomization"
        ));
    }
    let mut parts: Vec<&str> = dir.split('/').filter(|p| !p.is_empty()).collect();
    for part in rel.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(format!("{rel:?} leads outside the repository"));
                }
            }
            other => parts.push(other),
        }
    }
    let joined = parts.join("/");
    // Files named on keel's command line may be absolute; their paths stay so.
    Ok(if dir.starts_with('/') {
        format!("/{joined}")
    } else {
        joined
    })
}

/// Whether `path` is `dir` or lies below it.
pub fn within(dir: &str, path: &str) -> bool {
    dir.is_empty() || path == dir || path.starts_with(&format!("{dir}/"))
}

/// The folder of a file path (`""` for a file at the root).
pub fn parent(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(dir, _)| dir)
}

/// The last part of a path.
pub fn base_name(path: &str) -> &str {
    path.rsplit_once('/').map_or(path, |(_, name)| name)
}

/// Whether an entry of `resources` names something remote (kustomize fetches these; keel
/// renders only what is committed).
pub fn is_remote(entry: &str) -> bool {
    entry.contains("://")
        || entry.starts_with("git@")
        || entry.starts_with("github.com/")
        || entry.starts_with("gitlab.com/")
        || entry.starts_with("bitbucket.org/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_relative_paths_and_refuses_to_leave_the_repository() {
        assert_eq!(join("overlays/prod", "../../base").unwrap(), "base");
        assert_eq!(join("", "./a/./b.yaml").unwrap(), "a/b.yaml");
        assert_eq!(join("a", "b/../c").unwrap(), "a/c");
        assert!(join("a", "../../x").unwrap_err().contains("outside"));
        assert!(join("a", "/etc/passwd").unwrap_err().contains("absolute"));
        assert!(within("a", "a/b") && within("", "x") && !within("a", "ab/c"));
        assert_eq!(join("/tmp/repo/app", "../base").unwrap(), "/tmp/repo/base");
    }
}
