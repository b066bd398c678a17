//! What the sync loop keeps of each app of the repository (keel.yaml `apps:`; a repository
//! without apps is one app, the root): what it last read, how that went, what runs.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use keel_api::status::AppStatus;
use keel_schema::load::apps::AppSpec;
use keel_schema::{ObjectKey, Revision, SyncResult};

use crate::apply::Scope;
use crate::source::CommitInfo;

/// A revision of an app, loaded and applied, with the app's settings then (a resync keeps
/// them, whatever a newer, failed, keel.yaml says).
pub struct Loaded {
    pub commit: CommitInfo,
    pub spec: AppSpec,
    pub revision: Revision,
}

/// How the last try of an app ended.
#[derive(Clone)]
pub struct Outcome {
    pub commit: String,
    pub result: SyncResult,
    pub error: Option<String>,
    pub at: DateTime<Utc>,
}

/// One app, as the loop knows it.
pub struct AppState {
    pub spec: AppSpec,
    /// The fingerprint of the inputs last handled to an end (applied or failed): the app is
    /// read again only when it changes.
    pub fingerprint: Option<String>,
    /// The files outside its folder its kustomizations read then.
    pub inputs: Vec<String>,
    pub last: Option<Outcome>,
    /// What runs: resynced, and declared, while newer tries fail.
    pub applied: Option<Loaded>,
    /// The last try, while it failed (invalid, refused, or not Healthy in time): what it
    /// declares is not pruned by the other apps meanwhile.
    pub tried: Option<Revision>,
}

impl AppState {
    pub fn new(spec: AppSpec) -> AppState {
        AppState {
            spec,
            fingerprint: None,
            inputs: Vec::new(),
            last: None,
            applied: None,
            tried: None,
        }
    }

    /// The objects its applied revision declares.
    pub fn declared(&self) -> Vec<ObjectKey> {
        self.applied
            .as_ref()
            .map(|a| super::status::declared(&a.revision))
            .unwrap_or_default()
    }

    /// The file each object of its applied revision is declared in.
    pub fn sources(&self) -> impl Iterator<Item = (ObjectKey, Arc<str>)> + '_ {
        self.applied.iter().flat_map(|a| {
            a.revision
                .manifests
                .iter()
                .map(|m| (ObjectKey::of(&m.object), m.file.clone()))
        })
    }

    pub fn status(&self) -> AppStatus {
        AppStatus {
            name: self.spec.label().to_string(),
            path: self.spec.path.clone(),
            applied_commit: self.applied.as_ref().map(|a| a.commit.id.clone()),
            last_commit: self.last.as_ref().map(|l| l.commit.clone()),
            last_result: self.last.as_ref().map(|l| l.result),
            last_error: self.last.as_ref().and_then(|l| l.error.clone()),
            last_sync: self.last.as_ref().map(|l| l.at),
            declared: self.declared(),
        }
    }
}

/// Which apps declare each object: an app with a valid candidate (the revision about to be
/// applied) declares what it does; any other declares what it runs and what its last try
/// (or its invalid candidate) does, so no object of a failing app's try is pruned by
/// another app meanwhile.
pub fn declared_by(
    apps: &[AppState],
    candidates: &HashMap<Option<String>, &Revision>,
) -> HashMap<ObjectKey, Vec<Option<String>>> {
    let mut out: HashMap<ObjectKey, Vec<Option<String>>> = HashMap::new();
    for app in apps {
        let candidate = candidates.get(&app.spec.name).copied();
        let revisions: Vec<&Revision> = match candidate {
            Some(c) if c.is_valid() => vec![c],
            Some(c) => [
                Some(c),
                app.applied.as_ref().map(|a| &a.revision),
                app.tried.as_ref(),
            ]
            .into_iter()
            .flatten()
            .collect(),
            None => [
                app.applied.as_ref().map(|a| &a.revision),
                app.tried.as_ref(),
            ]
            .into_iter()
            .flatten()
            .collect(),
        };
        let manifests = revisions.into_iter().flat_map(|r| r.manifests.iter());
        for m in manifests.filter(|m| keel_schema::ordering::is_desired(&m.object)) {
            let apps = out.entry(ObjectKey::of(&m.object)).or_default();
            if !apps.contains(&app.spec.name) {
                apps.push(app.spec.name.clone());
            }
        }
    }
    out
}

/// The named apps.
pub fn names(apps: &[AppState]) -> Arc<BTreeSet<String>> {
    Arc::new(apps.iter().filter_map(|a| a.spec.name.clone()).collect())
}

/// The scope each app applies in, sharing what the apps declare: for a new tip (`tip`:
/// each app's settings as keel.yaml gives them now, and objects of apps keel.yaml no longer
/// lists pruned), or for a resync (each app as it runs).
pub fn scopes(
    apps: &[AppState],
    declared: HashMap<ObjectKey, Vec<Option<String>>>,
    tip: bool,
) -> HashMap<Option<String>, Scope> {
    let names = names(apps);
    let declared = Arc::new(declared);
    apps.iter()
        .map(|a| {
            let spec = match &a.applied {
                Some(running) if !tip => &running.spec,
                _ => &a.spec,
            };
            (
                a.spec.name.clone(),
                Scope {
                    app: a.spec.name.clone(),
                    apps: names.clone(),
                    declared: declared.clone(),
                    prune: spec.prune,
                    allow_empty: spec.allow_empty,
                    prune_retired: tip,
                },
            )
        })
        .collect()
}
