//! A plan between two revisions of a repository of apps (keel.yaml `apps:`), as the server
//! would apply the second: each app on its own. An invalid app changes nothing (it keeps
//! running what it runs) while the others apply; each app's prune and allowEmpty rules
//! are its own; an object moving between apps is taken over, not deleted and made again.

use std::collections::HashMap;

use keel_schema::load::apps::{AppSpec, duplicates};
use keel_schema::{Object, ObjectKey, Revision};

use super::diff::{Action, Change, diff};
use super::render::{Row, rows};
use super::rules::apply_rules;
use crate::source::AppsLoad;

/// What a plan of a repository of apps found.
#[derive(Debug, Default)]
pub struct AppsPlan {
    pub changes: Vec<Row>,
    pub notes: Vec<String>,
    /// Some app is invalid (it would not be applied).
    pub invalid: bool,
    /// Some app would be refused (it would delete all it applied).
    pub refused: bool,
}

/// Each app's desired objects, with the app's name.
fn objects(load: &AppsLoad, revisions: &[&Revision]) -> Vec<(Option<String>, Object)> {
    load.apps
        .iter()
        .zip(revisions)
        .flat_map(|(app, revision)| {
            revision
                .manifests
                .iter()
                .filter(|m| keel_schema::ordering::is_desired(&m.object))
                .map(|m| (app.spec.name.clone(), m.object.clone()))
        })
        .collect()
}

/// Plans `to` against `from` (both read with every app rendered), for every app or `only`
/// the one named so (`(root)` for the root app).
pub fn plan_apps(from: &AppsLoad, to: &AppsLoad, only: Option<&str>) -> AppsPlan {
    let mut plan = AppsPlan::default();
    static EMPTY: std::sync::LazyLock<Revision> = std::sync::LazyLock::new(Revision::default);
    fn revision(load: &AppsLoad, i: usize) -> &Revision {
        load.apps[i].revision.as_ref().unwrap_or(&EMPTY)
    }
    let from_revisions: Vec<&Revision> = (0..from.apps.len()).map(|i| revision(from, i)).collect();
    let old = objects(from, &from_revisions);
    let owner_before: HashMap<ObjectKey, Option<String>> = old
        .iter()
        .map(|(app, o)| (ObjectKey::of(o), app.clone()))
        .collect();
    // An object two apps declare stays with the app that had it.
    let pairs: Vec<(&AppSpec, &Revision)> = to
        .apps
        .iter()
        .enumerate()
        .map(|(i, a)| (&a.spec, revision(to, i)))
        .collect();
    let found = duplicates(&pairs, |key| {
        let name = owner_before.get(key)?;
        to.apps.iter().position(|a| a.spec.name == *name)
    });
    // An invalid app keeps what it runs: its objects from `from`; and what its try declares
    // is not pruned by another app meanwhile.
    let mut new: Vec<(Option<String>, Object)> = Vec::new();
    let mut tried: HashMap<ObjectKey, String> = HashMap::new();
    for (i, app) in to.apps.iter().enumerate() {
        let mut errors = revision(to, i).errors.clone();
        errors.extend(
            found
                .iter()
                .filter(|(a, _)| *a == i)
                .map(|(_, e)| e.clone()),
        );
        if errors.is_empty() {
            let desired = revision(to, i)
                .manifests
                .iter()
                .filter(|m| keel_schema::ordering::is_desired(&m.object));
            new.extend(desired.map(|m| (app.spec.name.clone(), m.object.clone())));
            continue;
        }
        for m in &revision(to, i).manifests {
            tried.insert(ObjectKey::of(&m.object), app.spec.label().to_string());
        }
        if only.is_none_or(|o| o == app.spec.label()) {
            plan.invalid = true;
            plan.notes.push(format!(
                "app {} is invalid and would not be applied ({} error{}); it keeps running what it runs:\n    {}",
                app.spec.label(),
                errors.len(),
                if errors.len() == 1 { "" } else { "s" },
                errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("\n    ")
            ));
        }
        new.extend(
            old.iter()
                .filter(|(name, _)| *name == app.spec.name)
                .cloned(),
        );
    }
    let app_of_new: HashMap<ObjectKey, Option<String>> = new
        .iter()
        .map(|(app, o)| (ObjectKey::of(o), app.clone()))
        .collect();
    let listed = |name: &str| to.apps.iter().any(|a| a.spec.name.as_deref() == Some(name));
    let old_objects: Vec<Object> = old.iter().map(|(_, o)| o.clone()).collect();
    let mut new_objects: Vec<Object> = new.iter().map(|(_, o)| o.clone()).collect();
    let left_to_autoscalers =
        super::autoscaled::leave_to_autoscalers(&old_objects, &mut new_objects);
    // Each change goes to the app that will hold the object (a deletion: the app that held
    // it, or the root app when that app is gone from keel.yaml).
    let mut by_app: HashMap<Option<String>, Vec<Change>> = HashMap::new();
    // Deletions of a removed app's objects: the root app's, outside its empty-revision
    // check (removing an app with its folder is deliberate), as the server applies them.
    let mut retired: Vec<Change> = Vec::new();
    let mut retired_keys: std::collections::HashSet<ObjectKey> = Default::default();
    for change in diff(&old_objects, &new_objects) {
        let key = ObjectKey::of(change.object());
        let app = match change.action {
            Action::Delete => owner_before
                .get(&key)
                .cloned()
                .flatten()
                .filter(|n| listed(n)),
            _ => app_of_new.get(&key).cloned().flatten(),
        };
        let gone = change.action == Action::Delete
            && owner_before
                .get(&key)
                .is_some_and(|a| a.as_deref().is_some_and(|n| !listed(n)));
        let kept_for = tried.get(&key).filter(|holder| {
            change.action == Action::Delete && Some(holder.as_str()) != app.as_deref()
        });
        if let Some(holder) = kept_for {
            plan.notes.push(format!(
                "{key} stays: app {holder}, which is invalid, declares it now"
            ));
        } else if gone {
            retired_keys.insert(key.clone());
            retired.push(change);
        } else {
            by_app.entry(app).or_default().push(change);
        }
    }
    for app in &to.apps {
        let label = app.spec.label();
        let mut changes = by_app.remove(&app.spec.name).unwrap_or_default();
        if app.spec.name.is_none() {
            changes.extend(std::mem::take(&mut retired));
        }
        if changes.is_empty() {
            continue;
        }
        if only.is_some_and(|o| o != label) {
            continue;
        }
        if !app.spec.prune {
            changes.retain(|c| {
                if c.action != Action::Delete {
                    return true;
                }
                plan.notes.push(format!(
                    "{} stays: app {label} does not prune (prune: false in keel.yaml)",
                    ObjectKey::of(c.object())
                ));
                false
            });
        }
        let held: Vec<Object> = old
            .iter()
            .filter(|(name, _)| *name == app.spec.name)
            .map(|(_, o)| o.clone())
            .collect();
        // A removed app's objects go with the root app, outside its empty-revision check.
        let (mut gone, mut own): (Vec<Change>, Vec<Change>) = changes.into_iter().partition(|c| {
            c.action == Action::Delete && retired_keys.contains(&ObjectKey::of(c.object()))
        });
        let verdict = apply_rules(&held, &mut own, app.spec.allow_empty);
        own.append(&mut gone);
        let changes = own;
        plan.refused |= verdict.refused;
        plan.notes.extend(
            verdict
                .notes
                .into_iter()
                .map(|n| format!("app {label}: {n}")),
        );
        let mut shown = rows(&changes);
        for row in &mut shown {
            row.app = Some(label.to_string());
        }
        plan.changes.extend(shown);
    }
    plan.notes.extend(left_to_autoscalers);
    plan
}
