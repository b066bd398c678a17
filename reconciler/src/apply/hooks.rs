//! Hooks: Jobs and Pods a revision marks `PreSync`, `PostSync` or `SyncFail`, run at those
//! points of a sync and waited for. They are not desired state: they carry no git marker
//! (so they are never pruned) and are made again for each sync that runs them, the earlier
//! one deleted first (`BeforeHookCreation`, the default), or deleted once they succeed or
//! fail as their delete policy says.

use std::collections::BTreeSet;
use std::time::Duration;

use keel_schema::ordering::{self, DeletePolicy, Phase};
use keel_schema::{ObjectKey, Revision};
use keel_store::{Store, StoreError};

use super::ApplyError;
use super::settle::wait_healthy;
use crate::source::CommitInfo;

/// Which sync made a hook.
pub const HOOK_COMMIT: &str = "keel.dev/hook-commit";

/// Runs the revision's hooks of `phase`, one after another in file order, each waited for.
/// `Ok(Err(why))` names the hook that failed.
pub async fn run(
    store: &Store,
    commit: &CommitInfo,
    revision: &Revision,
    phase: Phase,
    limit: Duration,
) -> Result<Result<(), String>, ApplyError> {
    for m in &revision.manifests {
        let Ok(Some(hook)) = ordering::hook(&m.object) else {
            continue;
        };
        if !hook.phases.contains(&phase) {
            continue;
        }
        let key = ObjectKey::of(&m.object);
        if let Some(old) = store.get(&key).await? {
            // BeforeHookCreation, and any hook object left over: the new run replaces it.
            match store.delete(&key, Some(old.resource_version)).await {
                Ok(_) | Err(StoreError::NotFound(_)) => {}
                Err(e) => return Err(e.into()),
            }
            wait_gone(store, &key).await?;
        }
        let mut object = m.object.clone();
        object
            .meta_mut()
            .annotations
            .get_or_insert_with(Default::default)
            .insert(HOOK_COMMIT.into(), commit.id.clone());
        tracing::info!(commit = %commit.short, hook = %key, phase = ?phase, "running a hook");
        store.create(object).await?;
        let outcome = wait_healthy(store, &BTreeSet::from([key.clone()]), limit).await?;
        let delete = match &outcome {
            Ok(()) => hook.delete.contains(&DeletePolicy::HookSucceeded),
            Err(_) => hook.delete.contains(&DeletePolicy::HookFailed),
        };
        if delete {
            let _ = store.delete(&key, None).await;
        }
        if let Err(why) = outcome {
            return Ok(Err(format!("{key} failed: {why}")));
        }
    }
    Ok(Ok(()))
}

/// Waits (briefly) for a deleted hook to be gone, its pods with it.
async fn wait_gone(store: &Store, key: &ObjectKey) -> Result<(), ApplyError> {
    for _ in 0..100 {
        if store.get(key).await?.is_none() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}
