//! Several apps in one repository (keel.yaml `apps:`): which app each file belongs to, and
//! the checks that span apps.
//!
//! Each app is loaded on its own ([`super::load_app`]): its own files, its own default
//! namespace, its own cross-object rules. Files under no app's path belong to the
//! repository's own app (the root), so a repository without `apps:` is one app, as always.

use std::collections::BTreeMap;

use crate::error::ManifestError;
use crate::key::ObjectKey;
use crate::repo_config::RepoConfig;

use super::Revision;

/// How `keel status`, `history` and `plan` show the root app.
pub const ROOT_APP: &str = "(root)";

/// One app of a revision, with its settings resolved.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AppSpec {
    /// `None` for the root app: files under no other app's path.
    pub name: Option<String>,
    /// Its folder from the repository root (`""`: the root itself). The root app owns the
    /// files below this folder that no named app owns.
    pub path: String,
    /// The namespace given to its namespaced objects that name none.
    pub namespace: Option<String>,
    /// Whether objects it no longer declares are deleted.
    pub prune: bool,
    /// Whether a revision that deletes all it applied (keeping nothing) may apply.
    pub allow_empty: bool,
}

impl AppSpec {
    /// The root app of a repository configured by `config` at folder `base`.
    pub fn root(config: &RepoConfig, base: &str) -> AppSpec {
        AppSpec {
            name: None,
            path: base.to_string(),
            namespace: None,
            prune: true,
            allow_empty: config.allow_empty(),
        }
    }

    /// The name as people read it (the root app is `(root)`).
    pub fn label(&self) -> &str {
        self.name.as_deref().unwrap_or(ROOT_APP)
    }

    /// Whether the file `name` (a path from the repository root) is under this app's folder.
    fn holds(&self, name: &str) -> bool {
        self.path.is_empty()
            || name
                .strip_prefix(self.path.as_str())
                .is_some_and(|rest| rest.starts_with('/'))
    }
}

/// An app's folder as keel.yaml gives it, normalised: no `./`, no trailing or doubled `/`.
/// `None` when it leaves the repository (`..`), is absolute, or is empty.
pub fn normalize_path(path: &str) -> Option<String> {
    if path.starts_with('/') || path.contains('\\') {
        return None;
    }
    let parts: Vec<&str> = path
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    if parts.is_empty() || parts.contains(&"..") {
        return None;
    }
    Some(parts.join("/"))
}

/// `dir/rel`, or `rel` when `dir` is the repository root.
fn join(dir: &str, rel: &str) -> String {
    if dir.is_empty() {
        rel.to_string()
    } else {
        format!("{dir}/{rel}")
    }
}

/// The apps of a revision whose keel.yaml (`config`) is in folder `base`: the named apps in
/// keel.yaml's order, then the root app. Entries keel.yaml's checks refuse are left out.
pub fn app_specs(config: &RepoConfig, base: &str) -> Vec<AppSpec> {
    let mut specs: Vec<AppSpec> = Vec::new();
    for app in config.apps.iter().flatten() {
        let Some(path) = normalize_path(&app.path) else {
            continue;
        };
        if specs.iter().any(|s| s.name.as_deref() == Some(&app.name)) {
            continue;
        }
        specs.push(AppSpec {
            name: Some(app.name.clone()),
            path: join(base, &path),
            namespace: app.namespace.clone().filter(|n| !n.is_empty()),
            prune: app.prune.unwrap_or(true),
            allow_empty: app.allow_empty.unwrap_or_else(|| config.allow_empty()),
        });
    }
    specs.push(AppSpec::root(config, base));
    specs
}

/// The folder a keel.yaml at `config_name` configures (`""`: the repository root).
pub fn base_of(config_name: &str) -> &str {
    config_name.rsplit_once('/').map_or("", |(dir, _)| dir)
}

/// The index in `specs` of the app the file `name` belongs to: the named app whose folder
/// holds it, else the root app (the last).
pub fn owner_of(specs: &[AppSpec], name: &str) -> usize {
    let root = specs.len().saturating_sub(1);
    specs[..root]
        .iter()
        .position(|s| s.holds(name))
        .unwrap_or(root)
}

/// Why an app without files is refused: a folder named wrong in keel.yaml, most often
/// (git keeps no empty folders, so an app meant to run nothing says `allowEmpty`).
pub fn missing_folder(app: &AppSpec) -> String {
    format!(
        "app {}: no files in its folder {}; to run nothing in it, give it allowEmpty: true",
        app.label(),
        app.path
    )
}

/// The files outside their own folders that the named apps' kustomizations read (`loaded`:
/// the named apps' revisions, in `specs` order): a base shared by overlays of several apps
/// is theirs, not the root app's.
pub fn read_elsewhere(
    specs: &[AppSpec],
    loaded: &[Revision],
) -> std::collections::BTreeSet<String> {
    let root = specs.len().saturating_sub(1);
    loaded
        .iter()
        .flat_map(|r| r.kustomizations.iter())
        .flat_map(|k| k.files.iter())
        .filter(|f| owner_of(specs, f) == root)
        .cloned()
        .collect()
}

/// What the root app leaves to the named apps: the files their kustomizations read outside
/// their folders, and everything in the folders of the kustomizations among them (a
/// kustomization owns its folder, whatever it lists).
pub struct LeftToApps {
    files: std::collections::BTreeSet<String>,
    dirs: std::collections::BTreeSet<String>,
}

impl LeftToApps {
    pub fn new(files: std::collections::BTreeSet<String>) -> LeftToApps {
        let dirs = files
            .iter()
            .filter(|f| crate::kustomize::is_kustomization(f))
            .filter_map(|f| f.rsplit_once('/').map(|(dir, _)| dir.to_string()))
            .collect();
        LeftToApps { files, dirs }
    }

    pub fn contains(&self, name: &str) -> bool {
        if self.files.contains(name) {
            return true;
        }
        let mut at = name;
        while let Some((dir, _)) = at.rsplit_once('/') {
            if self.dirs.contains(dir) {
                return true;
            }
            at = dir;
        }
        false
    }
}

/// Objects declared by more than one app: each app after the one that keeps the object gets
/// a located error. `keeps` says which app holds an object now (in the cluster); without
/// one, the first app in order keeps it. Returns (app index, error).
pub fn duplicates(
    apps: &[(&AppSpec, &Revision)],
    keeps: impl Fn(&ObjectKey) -> Option<usize>,
) -> Vec<(usize, ManifestError)> {
    let mut declared: BTreeMap<ObjectKey, Vec<(usize, usize)>> = BTreeMap::new();
    for (a, (_, revision)) in apps.iter().enumerate() {
        for (m, manifest) in revision.manifests.iter().enumerate() {
            if crate::ordering::is_desired(&manifest.object) {
                declared
                    .entry(ObjectKey::of(&manifest.object))
                    .or_default()
                    .push((a, m));
            }
        }
    }
    let mut out = Vec::new();
    for (key, places) in declared {
        if places.iter().all(|(a, _)| *a == places[0].0) {
            continue;
        }
        let keeper = keeps(&key)
            .filter(|k| places.iter().any(|(a, _)| a == k))
            .unwrap_or(places[0].0);
        let (kept_app, kept_at) = places
            .iter()
            .find(|(a, _)| *a == keeper)
            .map(|(a, m)| (*a, &apps[*a].1.manifests[*m]))
            .unwrap_or((places[0].0, &apps[places[0].0].1.manifests[places[0].1]));
        for (a, m) in places.iter().filter(|(a, _)| *a != kept_app) {
            let manifest = &apps[*a].1.manifests[*m];
            let message = format!(
                "Duplicate value: app {} declares this object too ({}:{}); an object belongs to one app",
                apps[kept_app].0.label(),
                kept_at.file,
                kept_at.line
            );
            out.push((
                *a,
                manifest.error_at(&crate::path::FieldPath::default(), message),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo_config::AppConfig;

    fn config(apps: &[(&str, &str)]) -> RepoConfig {
        RepoConfig {
            apps: Some(
                apps.iter()
                    .map(|(name, path)| AppConfig {
                        name: name.to_string(),
                        path: path.to_string(),
                        ..Default::default()
                    })
                    .collect(),
            ),
            ..Default::default()
        }
    }

    #[test]
    fn files_belong_to_the_app_whose_folder_holds_them_else_the_root() {
        let specs = app_specs(&config(&[("web", "./apps/web/"), ("api", "apps/api")]), "");
        assert_eq!(specs.len(), 3);
        assert_eq!(specs[0].path, "apps/web");
        assert_eq!(owner_of(&specs, "apps/web/deploy.yaml"), 0);
        assert_eq!(owner_of(&specs, "apps/web/sub/x.yaml"), 0);
        assert_eq!(owner_of(&specs, "apps/api/svc.yaml"), 1);
        // A folder whose name merely starts like an app's is not that app's.
        assert_eq!(owner_of(&specs, "apps/webby/x.yaml"), 2);
        assert_eq!(owner_of(&specs, "namespaces.yaml"), 2);
        assert_eq!(specs[2].label(), ROOT_APP);
    }

    #[test]
    fn apps_are_relative_to_keel_yaml_folder() {
        let specs = app_specs(&config(&[("web", "web")]), "deploy");
        assert_eq!(specs[0].path, "deploy/web");
        assert_eq!(specs[1].path, "deploy");
        assert_eq!(owner_of(&specs, "deploy/web/a.yaml"), 0);
        assert_eq!(base_of("deploy/keel.yaml"), "deploy");
        assert_eq!(base_of("keel.yaml"), "");
    }

    #[test]
    fn a_base_an_app_reads_is_left_to_it_whole() {
        let read = [
            "bases/api/kustomization.yaml",
            "bases/api/cm.yaml",
            "shared/env",
        ]
        .map(String::from)
        .into_iter()
        .collect();
        let left = LeftToApps::new(read);
        assert!(left.contains("bases/api/cm.yaml"));
        // Not listed by the base, but in its folder: the kustomization owns it.
        assert!(left.contains("bases/api/notes/old.yaml"));
        assert!(left.contains("shared/env"));
        assert!(!left.contains("shared/other.yaml"));
        assert!(!left.contains("bases/web/cm.yaml"));
    }

    #[test]
    fn paths_leaving_the_repository_are_not_paths() {
        for bad in ["", ".", "./", "/etc", "a/../b", "..", "a\\b"] {
            assert_eq!(normalize_path(bad), None, "{bad:?}");
        }
        assert_eq!(normalize_path("a//b/./c/").as_deref(), Some("a/b/c"));
    }
}
