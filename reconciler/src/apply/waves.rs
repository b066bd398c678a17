//! A revision applied in sync waves, as Argo CD applies them: PreSync hooks first, then
//! each wave (lowest first; within a wave, Namespaces and CustomResourceDefinitions before
//! the rest), each waiting until what it applied is Healthy, then PostSync hooks. A wave
//! that is not Healthy within [`WAVE_TIMEOUT`], or a hook that fails, fails the sync
//! visibly (and runs the SyncFail hooks); pruning happens only after the last wave.
//!
//! A revision with neither waves nor hooks is applied in one batch, as always.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use keel_schema::ordering::{self, Phase};
use keel_schema::{Kind, ObjectKey, Revision, SyncResult};
use keel_store::Store;

use super::settle::wait_healthy;
use super::{Applied, ApplyError, Scope, ServiceNetwork, apply_stage, hooks, record_of};
use crate::source::CommitInfo;

/// How long a wave (or a hook) may take to become Healthy (complete).
pub const WAVE_TIMEOUT: Duration = Duration::from_secs(300);

/// Whether `revision` asks for ordering: a wave other than 0, or a hook.
pub fn is_ordered(revision: &Revision) -> bool {
    revision.manifests.iter().any(|m| {
        matches!(ordering::wave(&m.object), Ok(w) if w != 0)
            || matches!(ordering::hook(&m.object), Ok(Some(_)))
    })
}

/// The stages: (wave, Namespaces and CRDs first) in order, each with its objects' keys.
fn stages(revision: &Revision) -> Vec<((i64, u8), BTreeSet<ObjectKey>)> {
    let mut by: BTreeMap<(i64, u8), BTreeSet<ObjectKey>> = BTreeMap::new();
    for m in revision
        .manifests
        .iter()
        .filter(|m| ordering::is_desired(&m.object))
    {
        let wave = ordering::wave(&m.object).unwrap_or(0);
        let first = matches!(
            m.object.kind(),
            Kind::Namespace | Kind::CustomResourceDefinition
        );
        by.entry((wave, u8::from(!first)))
            .or_default()
            .insert(ObjectKey::of(&m.object));
    }
    by.into_iter().collect()
}

pub async fn apply_ordered(
    store: &Store,
    commit: &CommitInfo,
    revision: &Revision,
    network: &ServiceNetwork,
    scope: &Scope,
) -> Result<Applied, ApplyError> {
    let failed = |message: String| ApplyError::Ordered {
        commit: commit.short.clone(),
        message,
    };
    if let Err(e) = hooks::run(store, commit, revision, Phase::PreSync, WAVE_TIMEOUT).await? {
        let _ = hooks::run(store, commit, revision, Phase::SyncFail, WAVE_TIMEOUT).await;
        return Err(failed(format!(
            "PreSync hook {e}; nothing else was applied"
        )));
    }
    let stages = stages(revision);
    let mut total = Applied::default();
    for (i, ((wave, _), keys)) in stages.iter().enumerate() {
        let last = i + 1 == stages.len();
        // The last stage applies the whole revision, so pruning happens there, once.
        let only = (!last).then_some(keys);
        let counts = apply_stage(store, commit, revision, network, only, false, scope).await?;
        total.created += counts.created;
        total.updated += counts.updated;
        total.deleted += counts.deleted;
        total.store_revision = counts.store_revision;
        tracing::info!(commit = %commit.short, wave, objects = keys.len(), "sync wave applied; waiting for it to be Healthy");
        if let Err(why) = wait_healthy(store, keys, WAVE_TIMEOUT).await? {
            let _ = hooks::run(store, commit, revision, Phase::SyncFail, WAVE_TIMEOUT).await;
            return Err(failed(format!(
                "sync wave {wave} was not Healthy within {}s: {why}; later waves were not applied",
                WAVE_TIMEOUT.as_secs()
            )));
        }
    }
    if let Err(e) = hooks::run(store, commit, revision, Phase::PostSync, WAVE_TIMEOUT).await? {
        let _ = hooks::run(store, commit, revision, Phase::SyncFail, WAVE_TIMEOUT).await;
        return Err(failed(format!("PostSync hook {e}")));
    }
    // The stages' batches carry no record; an unchanged revision is recorded by the caller,
    // as any other.
    if total.changed() {
        let record = record_of(commit, SyncResult::Applied, None, scope.app.as_deref());
        store.record_sync(record).await?;
    }
    Ok(total)
}
