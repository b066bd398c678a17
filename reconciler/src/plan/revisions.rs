//! A plan between two revisions of a repository, as `keel plan --from A --to B` prints it
//! and the web UI's diff and branch pages show it: app by app for a repository of apps,
//! else object by object, with the rules a sync applies (refusals, kept objects) and notes
//! on what a reviewer should know.

use std::collections::{BTreeMap, BTreeSet};

use keel_schema::Object;
use keel_schema::kustomize::Root;
use keel_schema::load::apps::AppSpec;

use super::render::{self, Plan};
use super::rules::apply_rules;
use super::{autoscaled, diff};
use crate::source::{AppsLoad, RepoTree};

/// A plan, and whether applying its `to` would be refused or fail.
pub struct Planned {
    pub plan: Plan,
    pub invalid: bool,
}

/// The plan from revision `from` to `to` (branches, tags or commits), of the manifests
/// under `path`, of one app when `app` names one.
pub fn between(
    repo: &RepoTree,
    from: &str,
    to: &str,
    path: Option<&str>,
    app: Option<&str>,
) -> anyhow::Result<Planned> {
    let everything = |_: &AppSpec, _: &str| true;
    let to_apps = repo.load_apps(to, path, &|_| Vec::new(), &everything)?;
    let named = to_apps.apps.iter().any(|a| a.spec.name.is_some());
    if let Some(app) = app
        && !to_apps.apps.iter().any(|a| a.spec.label() == app)
    {
        let names: Vec<&str> = to_apps.apps.iter().map(|a| a.spec.label()).collect();
        anyhow::bail!(
            "no app {app:?} in {}; the apps are {}",
            to_apps.commit.short,
            names.join(", ")
        );
    }
    if named && to_apps.config_errors.is_empty() {
        return apps(repo, from, to, path, &to_apps, app);
    }
    let (to_info, to_rev) = repo.load(to, path)?;
    let errors = to_rev.errors.clone();
    if !errors.is_empty() {
        return Ok(Planned {
            plan: Plan {
                from: from.to_string(),
                to: to_info.short,
                changes: Vec::new(),
                errors,
                notes: Vec::new(),
            },
            invalid: true,
        });
    }
    // Hooks and objects marked Skip are not desired state: they are neither created nor kept.
    let desired = |o: &Object| keel_schema::ordering::is_desired(o);
    let kustomizations = to_rev.kustomizations.clone();
    let allow_empty = to_rev.config.allow_empty();
    let mut new: Vec<_> = to_rev
        .manifests
        .into_iter()
        .map(|m| m.object)
        .filter(desired)
        .collect();
    let mut notes = Vec::new();
    let (from_info, from_rev) = repo.load(from, path)?;
    if !from_rev.is_valid() {
        notes.push(format!(
            "the base revision {} is itself invalid ({} errors): objects in its broken files are not counted",
            from_info.short,
            from_rev.errors.len()
        ));
    }
    let changed = repo.changed_files(from, to)?;
    notes.extend(reached_notes(
        &from_rev.kustomizations,
        &kustomizations,
        &changed,
    ));
    let old: Vec<_> = from_rev
        .manifests
        .into_iter()
        .map(|m| m.object)
        .filter(desired)
        .collect();
    notes.extend(autoscaled::leave_to_autoscalers(&old, &mut new));
    let mut changes = diff(&old, &new);
    let verdict = apply_rules(&old, &mut changes, allow_empty);
    notes.extend(verdict.notes);
    Ok(Planned {
        plan: Plan {
            from: from_info.short,
            to: to_info.short,
            changes: render::rows(&changes),
            errors,
            notes,
        },
        invalid: verdict.refused,
    })
}

/// A plan between two revisions of a repository of apps: app by app, as the server applies.
fn apps(
    repo: &RepoTree,
    from_rev: &str,
    to_rev: &str,
    path: Option<&str>,
    to: &AppsLoad,
    only: Option<&str>,
) -> anyhow::Result<Planned> {
    let everything = |_: &AppSpec, _: &str| true;
    let from = repo.load_apps(from_rev, path, &|_| Vec::new(), &everything)?;
    let mut notes = Vec::new();
    if !from.config_errors.is_empty() {
        notes.push(format!(
            "the base revision {}'s keel.yaml is itself invalid: its objects are not counted, so everything shows as created",
            from.commit.short
        ));
    }
    let changed = repo.changed_files(from_rev, to_rev)?;
    let roots = |load: &AppsLoad| -> Vec<Root> {
        load.apps
            .iter()
            .filter_map(|a| a.revision.as_ref())
            .flat_map(|r| r.kustomizations.iter().cloned())
            .collect()
    };
    notes.extend(reached_notes(&roots(&from), &roots(to), &changed));
    let planned = super::apps::plan_apps(&from, to, only);
    notes.extend(planned.notes);
    Ok(Planned {
        plan: Plan {
            from: from.commit.short.clone(),
            to: to.commit.short.clone(),
            changes: planned.changes,
            errors: Vec::new(),
            notes,
        },
        invalid: planned.invalid || planned.refused,
    })
}

/// For each kustomization a change reaches through a file it shares with others (a base, a
/// component), a note naming it: a reviewer of a base change sees every overlay it lands in.
pub fn reached_notes(before: &[Root], after: &[Root], changed: &[String]) -> Vec<String> {
    // A changed file, and the kustomizations that read it (before or after the change).
    let mut readers: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for roots in [before, after] {
        for (dir, files) in keel_schema::kustomize::reached(roots, changed) {
            for f in files {
                readers.entry(f).or_default().insert(dir);
            }
        }
    }
    // Files read by one kustomization of their own folder are no news; shared ones are.
    readers.retain(|file, dirs| {
        dirs.len() > 1
            || dirs
                .iter()
                .any(|d| !(d.is_empty() || file.starts_with(&format!("{d}/"))))
    });
    // One note per set of kustomizations reached, naming the files that reach them.
    let mut by_dirs: BTreeMap<Vec<&str>, Vec<&str>> = BTreeMap::new();
    for (file, dirs) in readers {
        by_dirs
            .entry(dirs.into_iter().collect())
            .or_default()
            .push(file);
    }
    by_dirs
        .into_iter()
        .map(|(dirs, files)| {
            let shown: Vec<String> = dirs
                .iter()
                .map(|d| {
                    if d.is_empty() {
                        ".".to_string()
                    } else {
                        d.to_string()
                    }
                })
                .collect();
            format!(
                "{} reaches {} kustomization{}: {}",
                files.join(", "),
                dirs.len(),
                if dirs.len() == 1 { "" } else { "s" },
                shown.join(", ")
            )
        })
        .collect()
}
