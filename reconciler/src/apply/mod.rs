//! Whole-revision apply: one git revision, validated whole, turned into one store batch.
//!
//! Objects applied from git carry the label `keel.dev/managed-by: git` and the annotation
//! `keel.dev/revision: <commit>` (the revision that last changed them). Desired state (the
//! revision) is compared with applied state (the managed objects in the store)
//! semantically: defaults filled in on both sides, status and fields the store sets left
//! out, the revision annotation ignored; so an unchanged object is never rewritten.
//!
//! # Guarantees
//! - An invalid revision applies nothing (its located errors go to the sync history).
//! - All creates, updates and deletes of a revision are one store batch.
//! - A revision that would delete every applied object is refused unless the repo's
//!   `keel.yaml` says `allowEmpty: true`; an object annotated `keel.dev/prune: disabled`
//!   is never deleted.

mod allocate;
mod hooks;
pub mod live;
mod settle;
mod waves;

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

pub use allocate::{Assigned, ServiceNetwork, fill_assignments};

use crate::source::CommitInfo;
use chrono::Utc;
use keel_schema::{Kind, Object, Revision, SyncResult};
use keel_store::{Batch, BatchOp, ObjectKey, Store, StoreError, Stored, SyncRecord};

pub use keel_schema::validate::meta::{
    APP_LABEL as APP, MANAGED_BY_LABEL as MANAGED_BY, REVISION_ANNOTATION as REVISION,
};
pub const MANAGED_BY_GIT: &str = "git";
pub use crate::plan::rules::PRUNE;

/// Which app of the repository a revision is applied as (keel.yaml `apps:`), and what the
/// other apps declare. A repository without apps is one app, the root: [`Scope::whole`].
///
/// An object belongs to the app its `keel.dev/app` label names; without the label, or
/// naming an app keel.yaml no longer lists, to the root app. An app prunes only its own
/// objects, never one another app declares now; declaring an object another app applied
/// and no longer declares takes it over (relabelled, not deleted and made again).
#[derive(Debug, Clone, Default)]
pub struct Scope {
    /// `None`: the root app.
    pub app: Option<String>,
    /// The named apps keel.yaml lists.
    pub apps: Arc<BTreeSet<String>>,
    /// Every object the repository's apps declare now (in what they run, or in what they
    /// last tried, valid or not), and the apps that declare it.
    pub declared: Arc<HashMap<ObjectKey, Vec<Option<String>>>>,
    pub prune: bool,
    pub allow_empty: bool,
    /// Whether objects of apps keel.yaml no longer lists are pruned (by the root app):
    /// only when a new tip is applied, never by a resync of what ran before.
    pub prune_retired: bool,
}

impl Scope {
    /// The whole repository as one app, as `revision`'s keel.yaml allows.
    pub fn whole(revision: &Revision) -> Scope {
        Scope {
            prune: true,
            allow_empty: revision.config.allow_empty(),
            prune_retired: true,
            ..Scope::default()
        }
    }

    /// The app an applied object belongs to now.
    pub fn owner_of<'a>(&self, object: &'a Object) -> Option<&'a str> {
        object
            .meta()
            .labels()
            .get(APP)
            .map(String::as_str)
            .filter(|a| self.apps.contains(*a))
    }

    fn owns(&self, object: &Object) -> bool {
        self.owner_of(object) == self.app.as_deref()
    }

    /// Whether `key` is kept from pruning: another app declares it, or (in a repository of
    /// apps) this app's own failed try does (taken over from another app, say), or it is a
    /// retired app's and this is not a new tip.
    fn keeps(&self, key: &ObjectKey, object: &Object) -> bool {
        let retired = object.meta().labels().contains_key(APP) && self.owner_of(object).is_none();
        let tried_here = !self.apps.is_empty()
            && self
                .declared
                .get(key)
                .is_some_and(|apps| apps.contains(&self.app));
        self.declared_elsewhere(key) || tried_here || (retired && !self.prune_retired)
    }

    /// Another app declares `key` now: this one never prunes it.
    fn declared_elsewhere(&self, key: &ObjectKey) -> bool {
        self.declared
            .get(key)
            .is_some_and(|apps| apps.iter().any(|a| *a != self.app))
    }

    /// The app holding `current` (not this one) still declares it: this app does not take
    /// it over.
    fn held_elsewhere(&self, key: &ObjectKey, current: &Object) -> bool {
        let owner = self.owner_of(current);
        owner != self.app.as_deref()
            && self
                .declared
                .get(key)
                .is_some_and(|apps| apps.iter().any(|a| a.as_deref() == owner))
    }
}

/// A sync history record of `commit` for `app`.
pub fn record_of(
    commit: &CommitInfo,
    result: SyncResult,
    error: Option<String>,
    app: Option<&str>,
) -> SyncRecord {
    SyncRecord {
        commit: commit.id.clone(),
        time: Utc::now(),
        result,
        error,
        author: Some(commit.author.clone()),
        message: Some(commit.summary.clone()),
        app: app.map(str::to_string),
    }
}

/// What applying a revision did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    pub created: usize,
    pub updated: usize,
    pub deleted: usize,
    pub unchanged: usize,
    /// The store revision after the batch (unchanged when nothing was written).
    pub store_revision: u64,
}

impl Applied {
    /// Something was created, updated or deleted.
    pub fn changed(&self) -> bool {
        self.created + self.updated + self.deleted > 0
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(
        "revision {commit} is invalid; nothing was applied: {}",
        summarize_errors(errors)
    )]
    Invalid {
        commit: String,
        errors: Vec<keel_schema::ManifestError>,
    },
    #[error(
        "revision {commit} would delete every object {whose} applied from git ({count}); refused (set allowEmpty: true in keel.yaml to allow it)"
    )]
    RefusedEmpty {
        commit: String,
        count: usize,
        /// "the repository", or "app NAME".
        whose: String,
    },
    /// A wave that did not become Healthy in time, or a hook that failed: what was applied
    /// before stays until the last good revision is resynced.
    #[error("revision {commit} was not fully applied: {message}")]
    Ordered { commit: String, message: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn summarize_errors(errors: &[keel_schema::ManifestError]) -> String {
    match errors {
        [] => "no details".to_string(),
        [one] => one.to_string(),
        [first, rest @ ..] => format!("{first} (and {} more)", rest.len()),
    }
}

/// The managed objects in the store, by identity.
pub async fn applied_objects(store: &Store) -> Result<BTreeMap<ObjectKey, Stored>, StoreError> {
    let mut out = BTreeMap::new();
    let mut lists = Vec::new();
    // Only objects git wrote carry the label: the store copies out those, not every pod.
    let managed = keel_schema::selector::Selector::from_map(&keel_schema::StringMap::from([(
        MANAGED_BY.to_string(),
        MANAGED_BY_GIT.to_string(),
    )]));
    for kind in Kind::declarable() {
        lists.push(store.list(kind, None, Some(&managed)).await?);
    }
    lists.push(store.list_custom().await?);
    for list in lists {
        for item in list.items {
            let meta = item.object.meta();
            // Objects a controller made (they have owners) are never git's, whatever labels
            // they copied from their owner.
            let owned = meta
                .owner_references
                .as_ref()
                .is_some_and(|o| !o.is_empty());
            let managed = meta.labels().get(MANAGED_BY).map(String::as_str) == Some(MANAGED_BY_GIT);
            if managed && !owned {
                out.insert(ObjectKey::of(&item.object), item);
            }
        }
    }
    Ok(out)
}

/// `object` marked as applied from git at `commit`, by `app`.
fn mark(object: &Object, commit: &str, app: Option<&str>) -> Object {
    let mut o = object.clone();
    let meta = o.meta_mut();
    let labels = meta.labels.get_or_insert_with(Default::default);
    labels.insert(MANAGED_BY.into(), MANAGED_BY_GIT.into());
    match app {
        Some(app) => labels.insert(APP.into(), app.into()),
        None => labels.remove(APP),
    };
    meta.annotations
        .get_or_insert_with(Default::default)
        .insert(REVISION.into(), commit.into());
    o
}

/// A Service with the addresses the cluster assigned it filled in where git left them
/// empty.
fn with_assigned<'a>(
    object: Cow<'a, Object>,
    assigned: &HashMap<ObjectKey, Assigned>,
) -> Cow<'a, Object> {
    match assigned.get(&ObjectKey::of(&object)) {
        Some(a) if matches!(object.as_ref(), Object::Service(_)) => {
            let mut o = object.into_owned();
            if let Object::Service(s) = &mut o {
                a.fill(s);
            }
            Cow::Owned(o)
        }
        _ => object,
    }
}

/// The batch that makes the store match `revision`, and its counts.
pub fn plan_batch(
    commit: &CommitInfo,
    revision: &Revision,
    applied: &BTreeMap<ObjectKey, Stored>,
    network: &ServiceNetwork,
) -> Result<(Batch, Applied), ApplyError> {
    plan_stage(
        commit,
        revision,
        applied,
        network,
        None,
        &Scope::whole(revision),
    )
}

/// As [`plan_batch`]; with `only`, just those objects are created or updated, and nothing
/// is pruned (one wave of a revision applied in waves). Hooks and objects marked `Skip`
/// are never part of it.
pub fn plan_stage(
    commit: &CommitInfo,
    revision: &Revision,
    applied: &BTreeMap<ObjectKey, Stored>,
    network: &ServiceNetwork,
    only: Option<&std::collections::BTreeSet<ObjectKey>>,
    scope: &Scope,
) -> Result<(Batch, Applied), ApplyError> {
    let app = scope.app.as_deref();
    let assigned =
        allocate::allocate(revision, applied, network).map_err(|errors| ApplyError::Invalid {
            commit: commit.short.clone(),
            errors,
        })?;
    let mut ops = Vec::new();
    let mut counts = Applied::default();
    let mut desired_keys = std::collections::BTreeSet::new();
    let autoscaled = live::Autoscaled::of(revision.manifests.iter().map(|m| &m.object));
    for manifest in &revision.manifests {
        if !keel_schema::ordering::is_desired(&manifest.object) {
            continue;
        }
        let key = ObjectKey::of(&manifest.object);
        desired_keys.insert(key.clone());
        if only.is_some_and(|o| !o.contains(&key)) {
            continue;
        }
        match applied.get(&key) {
            None => {
                counts.created += 1;
                let wanted = with_assigned(Cow::Borrowed(&manifest.object), &assigned);
                ops.push(BatchOp::Create(mark(&wanted, &commit.id, app)));
            }
            // Held by another app that still declares it: left to that app (the revisions
            // that declare one object twice are refused before they get here).
            Some(current) if scope.held_elsewhere(&key, &current.object) => {
                counts.unchanged += 1;
            }
            Some(current) => {
                let wanted = with_assigned(
                    live::kept(&manifest.object, &current.object, &autoscaled),
                    &assigned,
                );
                // An object another app applied is taken over: relabelled as this app's (as
                // is one still labelled with an app keel.yaml no longer lists).
                let label = current.object.meta().labels().get(APP).map(String::as_str);
                if label == app
                    && current
                        .object
                        .same_declared(&wanted, &[MANAGED_BY, APP], &[REVISION])
                {
                    counts.unchanged += 1;
                    continue;
                }
                counts.updated += 1;
                ops.push(BatchOp::Update {
                    object: mark(&wanted, &commit.id, app),
                    expected: current.resource_version,
                });
            }
        }
    }
    let prunable: Vec<&Stored> = applied
        .iter()
        .filter(|_| only.is_none() && scope.prune)
        .filter(|(key, s)| {
            !desired_keys.contains(*key) && scope.owns(&s.object) && !scope.keeps(key, &s.object)
        })
        .map(|(_, s)| s)
        .filter(|s| s.object.meta().annotation(PRUNE) != Some("disabled"))
        .collect();
    // Every prunable applied object goes and none of them stays: an empty or wholly
    // replaced tree, far more often a mistake (a bad merge, a wrong --path) than a wish.
    // Objects kept by `keel.dev/prune: disabled` do not count as survivors, nor do objects
    // of apps keel.yaml no longer lists (the root app prunes those: removing an app and
    // its folder is a deliberate change).
    let survivors = applied
        .iter()
        .filter(|(key, s)| {
            desired_keys.contains(*key)
                && scope.owns(&s.object)
                && s.object.meta().annotation(PRUNE) != Some("disabled")
        })
        .count();
    let guarded = prunable
        .iter()
        .filter(|s| !s.object.meta().labels().contains_key(APP) || app.is_some())
        .count();
    if guarded > 0 && survivors == 0 && !scope.allow_empty {
        return Err(ApplyError::RefusedEmpty {
            commit: commit.short.clone(),
            count: guarded,
            whose: match app {
                Some(app) => format!("app {app}"),
                None if !scope.apps.is_empty() => "the root app".to_string(),
                None => "the repository".to_string(),
            },
        });
    }
    for stale in prunable {
        counts.deleted += 1;
        ops.push(BatchOp::Delete {
            key: ObjectKey::of(&stale.object),
            expected: Some(stale.resource_version),
        });
    }
    Ok((
        Batch {
            label: format!("revision {}", commit.short),
            ops,
            record: None,
        },
        counts,
    ))
}

/// Records an attempt that never reached applying (the revision could not be read, or
/// its keel.yaml is invalid).
pub async fn record_failure(store: &Store, commit: &CommitInfo, error: String) {
    let record = record_of(commit, SyncResult::Failed, Some(error), None);
    if let Err(e) = store.record_sync(record).await {
        tracing::warn!(error = %e, "could not record the sync attempt");
    }
}

/// Applies a loaded revision: validates, diffs against the store, writes one batch, and
/// records the attempt in the sync history. A resync of the same revision (`new_commit`
/// false) is recorded only when it had to correct something.
pub async fn apply_revision(
    store: &Store,
    commit: &CommitInfo,
    revision: &Revision,
    network: &ServiceNetwork,
    new_commit: bool,
    scope: &Scope,
) -> Result<Applied, ApplyError> {
    let outcome = attempt(store, commit, revision, network, new_commit, scope).await;
    let quiet_resync = !new_commit && matches!(&outcome, Ok(a) if !a.changed());
    // Store trouble is transient and retried: the history records what the revision
    // itself came to, once. A revision that changed objects was recorded with them, in
    // their batch.
    if quiet_resync
        || matches!(outcome, Err(ApplyError::Store(_)))
        || matches!(&outcome, Ok(a) if a.changed())
    {
        return outcome;
    }
    let (result, error) = match &outcome {
        Ok(a) if !a.changed() => (SyncResult::Unchanged, None),
        Ok(_) => (SyncResult::Applied, None),
        Err(ApplyError::Invalid { errors, .. }) => (
            SyncResult::Failed,
            Some(
                errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("\n"),
            ),
        ),
        Err(e @ ApplyError::RefusedEmpty { .. }) => (SyncResult::Refused, Some(e.to_string())),
        Err(ApplyError::Ordered { message, .. }) => (SyncResult::Failed, Some(message.clone())),
        Err(e) => (SyncResult::Failed, Some(e.to_string())),
    };
    let record = record_of(commit, result, error, scope.app.as_deref());
    if let Err(e) = store.record_sync(record).await {
        tracing::warn!(error = %e, "could not record the sync attempt");
    }
    outcome
}

async fn attempt(
    store: &Store,
    commit: &CommitInfo,
    revision: &Revision,
    network: &ServiceNetwork,
    ordered: bool,
    scope: &Scope,
) -> Result<Applied, ApplyError> {
    if !revision.is_valid() {
        return Err(ApplyError::Invalid {
            commit: commit.short.clone(),
            errors: revision.errors.clone(),
        });
    }
    if ordered && waves::is_ordered(revision) {
        return waves::apply_ordered(store, commit, revision, network, scope).await;
    }
    apply_stage(store, commit, revision, network, None, true, scope).await
}

/// Applies `revision` (or its objects in `only`) in one batch, recording the sync with it
/// when `record`.
async fn apply_stage(
    store: &Store,
    commit: &CommitInfo,
    revision: &Revision,
    network: &ServiceNetwork,
    only: Option<&std::collections::BTreeSet<ObjectKey>>,
    record: bool,
    scope: &Scope,
) -> Result<Applied, ApplyError> {
    // A conflict means something wrote in between: plan again from fresh state, a few times.
    let mut tries = 0;
    loop {
        tries += 1;
        let applied = applied_objects(store).await?;
        let (batch, mut counts) = plan_stage(commit, revision, &applied, network, only, scope)?;
        if batch.ops.is_empty() {
            counts.store_revision = store.revision().await?;
            return Ok(counts);
        }
        let batch = Batch {
            record: record
                .then(|| record_of(commit, SyncResult::Applied, None, scope.app.as_deref())),
            ..batch
        };
        match store.apply_batch(batch).await {
            Ok(rev) => {
                counts.store_revision = rev;
                return Ok(counts);
            }
            Err(
                StoreError::Conflict { .. }
                | StoreError::AlreadyExists(_)
                | StoreError::NotFound(_),
            ) if tries < 3 => {}
            Err(e) => return Err(e.into()),
        }
    }
}
