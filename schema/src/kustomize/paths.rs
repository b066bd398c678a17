//! Paths inside a repository as kustomizations name them: relative to the kustomization's
//! folder, normalised to `/`-separated paths from the repository root, never above it.

/// `rel` from the folder `dir` (`""` is the root). A path may climb above the root
/// (`../base` from `keel render .` in an overlay); a git tree has nothing there, so such a
/// path is simply not found in one. `Err` for an absolute `rel`, or one climbing above `/`.
pub fn join(dir: &str, rel: &str) -> Result<String, String> {
    if rel.starts_with('/') {
        return Err(format!(
            "{rel:?} is an absolute path; name files relative to the kustomization"
        ));
    }
    let absolute = dir.starts_with('/');
    let mut parts: Vec<&str> = dir
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    for part in rel.split('/') {
        match part {
            "" | "." => {}
            ".." if parts.last().is_some_and(|p| *p != "..") => {
                parts.pop();
            }
            ".." if absolute => return Err(format!("{rel:?} leads above the file system's root")),
            other => parts.push(other),
        }
    }
    let joined = parts.join("/");
    // Files named on keel's command line may be absolute; their paths stay so.
    Ok(if absolute {
        format!("/{joined}")
    } else {
        joined
    })
}

/// Whether `path` is `dir` or lies below it.
pub fn within(dir: &str, path: &str) -> bool {
    if dir.is_empty() {
        return path != ".." && !path.starts_with("../");
    }
    path == dir || path.starts_with(&format!("{dir}/"))
}

/// Whether a path lies above the root of what keel reads.
pub fn above_root(path: &str) -> bool {
    path == ".." || path.starts_with("../")
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
        assert_eq!(join("a", "../../x").unwrap(), "../x");
        assert_eq!(join("../prod", "../../base").unwrap(), "../../base");
        assert_eq!(join("", "../../base").unwrap(), "../../base");
        assert!(join("/a", "../../x").unwrap_err().contains("root"));
        assert!(!within("", "../x"));
        assert!(join("a", "/etc/passwd").unwrap_err().contains("absolute"));
        assert!(within("a", "a/b") && within("", "x") && !within("a", "ab/c"));
        assert_eq!(join("/tmp/repo/app", "../base").unwrap(), "/tmp/repo/base");
    }
}
