//! A revision read app by app (keel.yaml `apps:`). Each app's inputs are fingerprinted
//! from git's own object ids: keel.yaml, the app's folder (one tree id), and the files
//! outside it that its kustomizations read. An app whose fingerprint is what it was is
//! neither read nor rendered again, so a commit to one app of a hundred costs one render.

use std::path::Path;

use git2::{ObjectType, Oid, Tree};
use keel_schema::load::apps::{AppSpec, app_specs, owner_of};
use keel_schema::load::{load_app, read_config};
use keel_schema::repo_config::{REPO_CONFIG_FILE, RepoConfig};
use keel_schema::{ManifestError, Revision, SourceFile};

use super::tree::{CommitInfo, RepoTree, SourceError};

/// A revision's keel.yaml and its apps.
pub struct AppsLoad {
    pub commit: CommitInfo,
    pub config: RepoConfig,
    /// keel.yaml's problems: with any, the revision fails whole and no app is read.
    pub config_errors: Vec<ManifestError>,
    /// The named apps in keel.yaml's order, then the root app.
    pub apps: Vec<AppLoad>,
}

/// One app of a revision.
pub struct AppLoad {
    pub spec: AppSpec,
    /// Its inputs at this revision: equal fingerprints, equal objects.
    pub fingerprint: String,
    /// The files outside its folder its kustomizations read (when not rendered: as given).
    pub inputs: Vec<String>,
    /// Its objects, loaded whole; `None` when its inputs were found unchanged.
    pub revision: Option<Revision>,
}

impl AppsLoad {
    /// The app named `name` (`None`: the root app).
    pub fn app(&self, name: Option<&str>) -> Option<&AppLoad> {
        self.apps.iter().find(|a| a.spec.name.as_deref() == name)
    }
}

impl RepoTree {
    /// keel.yaml and each app of revision `rev` (under `subdir`). `inputs_of` gives the
    /// files outside an app that its kustomizations read when it was last rendered (part of
    /// its fingerprint); an app is read and rendered only when `render(app, fingerprint)`.
    pub fn load_apps(
        &self,
        rev: &str,
        subdir: Option<&str>,
        inputs_of: &dyn Fn(&AppSpec) -> Vec<String>,
        render: &dyn Fn(&AppSpec, &str) -> bool,
    ) -> Result<AppsLoad, SourceError> {
        let commit = self.resolve(rev)?;
        let info = super::tree::info(&commit);
        let read_err = |e: git2::Error| SourceError::Read {
            rev: info.short.clone(),
            message: e.message().to_string(),
        };
        let root_tree = commit.tree().map_err(read_err)?;
        let base = subdir
            .map(|s| s.trim_start_matches("./").trim_matches('/'))
            .filter(|s| !s.is_empty() && *s != ".")
            .unwrap_or("")
            .to_string();
        let base_tree = if base.is_empty() {
            root_tree.clone()
        } else {
            self.tree_at(&root_tree, &base)
                .ok_or_else(|| SourceError::NoSuchPath(base.clone(), info.short.clone()))?
        };
        let shown = |rel: &str| join(&base, rel);
        let config_entry = base_tree
            .get_name(REPO_CONFIG_FILE)
            .filter(|e| e.kind() == Some(ObjectType::Blob) && e.filemode() != 0o120000);
        let config_id = config_entry
            .as_ref()
            .map_or("none".to_string(), |e| e.id().to_string());
        let config_file = match config_entry {
            Some(entry) => {
                let blob = entry
                    .to_object(&self.repo)
                    .and_then(|o| o.peel_to_blob())
                    .map_err(read_err)?;
                Some(SourceFile {
                    name: shown(REPO_CONFIG_FILE),
                    bytes: blob.content().to_vec(),
                })
            }
            None => None,
        };
        let (config, config_errors) = read_config(config_file.as_ref());
        let mut load = AppsLoad {
            commit: info.clone(),
            config,
            config_errors,
            apps: Vec::new(),
        };
        if !load.config_errors.is_empty() {
            return Ok(load);
        }
        let specs = app_specs(&load.config, &base);
        let named: Vec<&str> = specs
            .iter()
            .filter(|s| s.name.is_some())
            .map(|s| s.path.as_str())
            .collect();
        let reader = super::tree_files::TreeFiles {
            repo: &self.repo,
            tree: root_tree.clone(),
        };
        // `left`: the files the root app leaves to the apps that read them.
        let fingerprint = |spec: &AppSpec,
                           inputs: &[String],
                           left: &std::collections::BTreeSet<String>|
         -> Result<String, git2::Error> {
            let mut text = format!("{REPO_CONFIG_FILE} {config_id}\n");
            for f in left {
                text.push_str(&format!("left {f}\n"));
            }
            if spec.name.is_some() {
                let id = root_tree
                    .get_path(Path::new(&spec.path))
                    .map_or("missing".to_string(), |e| e.id().to_string());
                text.push_str(&format!("tree {id}\n"));
            } else {
                self.outside_apps(&base_tree, &base, &named, &mut text)?;
            }
            for input in inputs {
                let id = root_tree
                    .get_path(Path::new(input))
                    .map_or("missing".to_string(), |e| e.id().to_string());
                text.push_str(&format!("input {input} {id}\n"));
            }
            Ok(Oid::hash_object(ObjectType::Blob, text.as_bytes())?.to_string())
        };
        // What the named apps read outside their folders (their own loads', or as given
        // when not rendered): the root app leaves those files to them.
        let mut read_by_apps: std::collections::BTreeSet<String> = Default::default();
        let root_index = specs.len() - 1;
        for (index, spec) in specs.iter().enumerate() {
            let inputs = inputs_of(spec);
            // Which files the root app leaves to others is part of what it is.
            let none = Default::default();
            let left = if index == root_index {
                &read_by_apps
            } else {
                &none
            };
            let before = fingerprint(spec, &inputs, left).map_err(read_err)?;
            // What a named app reads under the root app's files is left to it.
            let read_from_root = |inputs: &[String]| -> Vec<String> {
                let held = inputs.iter().filter(|f| owner_of(&specs, f) == root_index);
                held.filter(|_| index != root_index).cloned().collect()
            };
            if !render(spec, &before) {
                read_by_apps.extend(read_from_root(&inputs));
                load.apps.push(AppLoad {
                    spec: spec.clone(),
                    fingerprint: before,
                    inputs,
                    revision: None,
                });
                continue;
            }
            let leave = (index == root_index)
                .then(|| keel_schema::load::apps::LeftToApps::new(read_by_apps.clone()));
            let files = if spec.name.is_some() {
                let found = self
                    .tree_at(&root_tree, &spec.path)
                    .map(|tree| self.walk(&tree, &|_| false).map(|w| (w, spec.path.clone())))
                    .transpose()
                    .map_err(read_err)?;
                // git keeps no empty folders: an app allowed to be empty may have none.
                found.or_else(|| {
                    spec.allow_empty
                        .then(|| (Default::default(), spec.path.clone()))
                })
            } else {
                let skip = |rel: &str| named.contains(&shown(rel).as_str());
                Some((
                    self.walk(&base_tree, &skip).map_err(read_err)?,
                    base.clone(),
                ))
            };
            let mut revision = match files {
                None => Revision {
                    errors: vec![ManifestError::file(
                        shown(REPO_CONFIG_FILE),
                        keel_schema::load::apps::missing_folder(spec),
                    )],
                    config: load.config.clone(),
                    ..Default::default()
                },
                Some((walked, dir)) => {
                    let mut sources: Vec<SourceFile> = walked
                        .found
                        .into_iter()
                        .filter(|(rel, _)| spec.name.is_some() || rel != REPO_CONFIG_FILE)
                        .filter(|(rel, _)| {
                            leave.as_ref().is_none_or(|l| !l.contains(&join(&dir, rel)))
                        })
                        .map(|(rel, bytes)| SourceFile {
                            name: join(&dir, &rel),
                            bytes,
                        })
                        .collect();
                    sources.sort_by(|a, b| a.name.cmp(&b.name));
                    let refs: Vec<&SourceFile> = sources.iter().collect();
                    let mut revision =
                        load_app(&refs, &load.config, &reader, self.decrypt.as_deref(), spec);
                    if spec.name.is_some() && sources.is_empty() && !spec.allow_empty {
                        let at = shown(REPO_CONFIG_FILE);
                        let why = keel_schema::load::apps::missing_folder(spec);
                        revision.errors.push(ManifestError::file(at, why));
                    }
                    for (rel, why) in walked.problems {
                        revision
                            .errors
                            .push(ManifestError::file(join(&dir, &rel), why));
                    }
                    keel_schema::error::sort_errors(&mut revision.errors);
                    revision
                }
            };
            // Files its kustomizations read (or looked for) outside what its fingerprint
            // covers already (its folder; for the root app, what is under keel.yaml's folder
            // outside the apps'): a change to them is a change to this app.
            let covered =
                |f: &str| owner_of(&specs, f) == index && (index != root_index || under(&base, f));
            let mut inputs: Vec<String> = revision
                .kustomizations
                .iter()
                .flat_map(|k| k.files.iter().chain(k.missing.iter()))
                .filter(|f| !covered(f))
                .cloned()
                .collect();
            // A render that failed may not have reached what it reads: what it read before
            // still counts (so the root app does not take a base over meanwhile).
            if !revision.is_valid() {
                inputs.extend(inputs_of(spec));
            }
            inputs.sort();
            inputs.dedup();
            let fingerprint = fingerprint(spec, &inputs, left).map_err(read_err)?;
            read_by_apps.extend(read_from_root(&inputs));
            revision.config = load.config.clone();
            load.apps.push(AppLoad {
                spec: spec.clone(),
                fingerprint,
                inputs,
                revision: Some(revision),
            });
        }
        Ok(load)
    }

    /// The folder at `path` of `root`, when there is one.
    fn tree_at<'r>(&'r self, root: &Tree<'r>, path: &str) -> Option<Tree<'r>> {
        root.get_path(Path::new(path))
            .ok()
            .filter(|e| e.kind() == Some(ObjectType::Tree))
            .and_then(|e| e.to_object(&self.repo).ok())
            .and_then(|o| o.peel_to_tree().ok())
    }

    /// The ids of everything under `tree` (the folder `dir`) outside the apps' folders:
    /// whole subtrees by their one id, descending only into folders that hold an app.
    fn outside_apps(
        &self,
        tree: &Tree<'_>,
        dir: &str,
        apps: &[&str],
        out: &mut String,
    ) -> Result<(), git2::Error> {
        for entry in tree.iter() {
            let name = String::from_utf8_lossy(entry.name_bytes());
            let path = join(dir, &name);
            if apps.contains(&path.as_str()) {
                continue;
            }
            let holds_app = apps.iter().any(|a| a.starts_with(&format!("{path}/")));
            if holds_app && entry.kind() == Some(ObjectType::Tree) {
                let sub = entry.to_object(&self.repo)?.peel_to_tree()?;
                self.outside_apps(&sub, &path, apps, out)?;
            } else {
                out.push_str(&format!("{path} {}\n", entry.id()));
            }
        }
        Ok(())
    }
}

/// Whether `path` is in folder `dir` (`""`: the repository root).
fn under(dir: &str, path: &str) -> bool {
    dir.is_empty()
        || path
            .strip_prefix(dir)
            .is_some_and(|rest| rest.starts_with('/'))
}

fn join(dir: &str, rel: &str) -> String {
    if dir.is_empty() {
        rel.to_string()
    } else {
        format!("{dir}/{rel}")
    }
}
