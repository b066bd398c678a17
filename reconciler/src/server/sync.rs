//! The sync loop: level-triggered. Each pass reads the branch tip; a new tip is loaded,
//! validated and applied as one batch, and the applied revision is compared with the store
//! again every resync interval (correcting drift). Nudges (notify, webhook) only make a
//! pass come sooner; a periodic pass catches anything missed.
//!
//! A failed fetch or read never counts as "desired state is empty": the last good revision
//! keeps running (and keeps being resynced) and the problem is reported in status. Each
//! commit's outcome is recorded in the history once; an invalid, refused or unreadable
//! commit is not retried until the tip moves.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use keel_schema::Revision;
use serde::Serialize;
use tokio::sync::{mpsc, watch};

use super::Config;
use super::metrics::Metrics;
use crate::apply::{ApplyError, apply_revision, record_failure};
use crate::source::{CommitInfo, GitSource};
use keel_store::Store;

/// What `/api/keel/status` reports about syncing.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SyncStatus {
    /// `--repo`, without any credentials it holds.
    pub repo: String,
    pub branch: String,
    /// The commit whose objects are applied now.
    pub applied_commit: Option<String>,
    /// The last commit tried, and how that went (`applied`, `unchanged`, `failed`, `refused`).
    pub last_commit: Option<String>,
    pub last_result: Option<String>,
    pub last_error: Option<String>,
    /// Set while fetching the remote fails (the applied revision keeps running).
    pub fetch_error: Option<String>,
    pub last_sync: Option<DateTime<Utc>>,
    /// The objects the applied commit declares (for `keel status`: one declared but absent
    /// from the store is Missing).
    pub declared: Vec<keel_store::ObjectKey>,
}

fn declared(revision: &keel_schema::load::Revision) -> Vec<keel_store::ObjectKey> {
    revision
        .manifests
        .iter()
        .map(|m| keel_store::ObjectKey::of(&m.object))
        .collect()
}

/// A loaded revision.
struct Loaded {
    commit: CommitInfo,
    revision: Revision,
}

/// What the loop remembers between passes.
struct State {
    /// The last tip handled to an end (applied, or found invalid/refused/unreadable).
    tip: Option<String>,
    /// The last revision applied: resynced even while a newer tip is invalid.
    applied: Option<Loaded>,
    last_resync: Option<Instant>,
}

/// Shortest time between two fetches of a remote, whatever nudges arrive.
const MIN_FETCH_GAP: Duration = Duration::from_secs(1);

pub async fn run(
    store: Store,
    source: GitSource,
    status: Arc<Mutex<SyncStatus>>,
    metrics: Arc<Metrics>,
    mut triggers: mpsc::Receiver<()>,
    config: &Config,
    mut stop: watch::Receiver<bool>,
) {
    let source = Arc::new(source);
    let mut state = State {
        tip: None,
        applied: restore_applied(&store, &source, &status).await,
        last_resync: None,
    };
    let mut failures: u32 = 0;
    loop {
        let started = Instant::now();
        // A pass may block on git; shutting down does not wait for it (applies are batches,
        // so abandoning one mid-way leaves nothing half-done).
        let outcome = tokio::select! {
            r = pass(&store, &source, &status, &metrics, &mut state, config) => r,
            _ = stop.wait_for(|s| *s) => return,
        };
        let wait = match outcome {
            Ok(()) => {
                failures = 0;
                if source.is_remote() {
                    config.poll_interval
                } else {
                    config.resync_interval
                }
            }
            Err(e) => {
                failures += 1;
                tracing::warn!(error = %e, failures, "sync pass failed; the applied revision keeps running");
                // Retry with backoff, but never wait longer than the normal interval.
                let backoff = Duration::from_secs(1u64 << failures.min(5));
                backoff.min(config.poll_interval.max(Duration::from_secs(1)))
            }
        };
        tokio::select! {
            _ = triggers.recv() => {
                // Coalesce a burst of nudges; a remote is never fetched more often than
                // MIN_FETCH_GAP, whatever webhooks arrive (a local repo costs nothing to read).
                let gap = if source.is_remote() { MIN_FETCH_GAP.saturating_sub(started.elapsed()) } else { Duration::ZERO };
                tokio::time::sleep(gap.max(Duration::from_millis(20))).await;
                while triggers.try_recv().is_ok() {}
            }
            _ = tokio::time::sleep(wait) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// After a restart: the revision last applied (from the history), so it keeps being
/// resynced even if the tip is broken.
async fn restore_applied(
    store: &Store,
    source: &Arc<GitSource>,
    status: &Arc<Mutex<SyncStatus>>,
) -> Option<Loaded> {
    let history = store.history(100).await.ok()?;
    let last = history.iter().find(|r| r.result.is_success())?;
    let src = source.clone();
    let commit = last.commit.clone();
    let (commit, revision) = tokio::task::spawn_blocking(move || src.load(&commit))
        .await
        .ok()?
        .ok()?;
    if !revision.is_valid() {
        return None;
    }
    if let Ok(mut s) = status.lock() {
        s.declared = declared(&revision);
        s.applied_commit = Some(commit.id.clone());
    }
    Some(Loaded { commit, revision })
}

/// One pass. `Err` for trouble worth retrying soon (fetch, store), after reporting it.
async fn pass(
    store: &Store,
    source: &Arc<GitSource>,
    status: &Arc<Mutex<SyncStatus>>,
    metrics: &Metrics,
    state: &mut State,
    config: &Config,
) -> anyhow::Result<()> {
    let set = |f: &dyn Fn(&mut SyncStatus)| {
        if let Ok(mut s) = status.lock() {
            f(&mut s);
        }
    };
    let src = source.clone();
    let fetched =
        tokio::task::spawn_blocking(move || src.fetch().map(|_| (src.branch(), src.tip()))).await?;
    let tip = match fetched {
        Ok((branch, Ok(tip))) => {
            set(&|s| {
                s.fetch_error = None;
                s.branch = branch.clone();
            });
            metrics.fetch_failing.set(0);
            tip
        }
        Ok((_, Err(e))) | Err(e) => {
            metrics.fetch_failures.inc();
            metrics.fetch_failing.set(1);
            let msg = e.to_string();
            set(&|s| s.fetch_error = Some(msg.clone()));
            anyhow::bail!(e);
        }
    };
    if state.tip.as_deref() != Some(tip.id.as_str()) {
        return new_tip(store, source, status, metrics, state, tip, config).await;
    }
    let resync_due = state
        .last_resync
        .is_none_or(|t| t.elapsed() >= config.resync_interval);
    let Some(applied) = state.applied.as_ref().filter(|_| resync_due) else {
        return Ok(());
    };
    state.last_resync = Some(Instant::now());
    match apply_revision(
        store,
        &applied.commit,
        &applied.revision,
        &config.service_network,
        false,
    )
    .await
    {
        Ok(a) if a.created + a.updated + a.deleted > 0 => {
            tracing::info!(commit = %applied.commit.short, created = a.created, updated = a.updated, deleted = a.deleted, "drift corrected");
            metrics.count_sync("applied");
            Ok(())
        }
        Ok(_) => Ok(()),
        Err(e) => {
            metrics.count_sync("error");
            let msg = e.to_string();
            set(&|s| s.last_error = Some(msg.clone()));
            state.last_resync = None;
            Err(e.into())
        }
    }
}

/// Loads, validates and applies a new tip; records its outcome once.
async fn new_tip(
    store: &Store,
    source: &Arc<GitSource>,
    status: &Arc<Mutex<SyncStatus>>,
    metrics: &Metrics,
    state: &mut State,
    tip: CommitInfo,
    config: &Config,
) -> anyhow::Result<()> {
    let set = |f: &dyn Fn(&mut SyncStatus)| {
        if let Ok(mut s) = status.lock() {
            f(&mut s);
        }
    };
    let now = Utc::now();
    let src = source.clone();
    let id = tip.id.clone();
    let loaded = tokio::task::spawn_blocking(move || src.load(&id)).await?;
    let (commit, revision) = match loaded {
        Ok(l) => l,
        Err(e) => {
            // A tree keel cannot read (a missing --path, say) is this commit's failure,
            // recorded once; the applied revision keeps running and being resynced.
            let msg = e.to_string();
            tracing::warn!(commit = %tip.short, error = %msg, "revision unreadable; the last good revision keeps running");
            record_failure(store, &tip, msg.clone()).await;
            metrics.count_sync("failed");
            set(&|s| {
                s.last_commit = Some(tip.id.clone());
                s.last_result = Some("failed".into());
                s.last_error = Some(msg.clone());
                s.last_sync = Some(now);
            });
            state.tip = Some(tip.id);
            return Ok(());
        }
    };
    let started = Instant::now();
    let outcome = apply_revision(store, &commit, &revision, &config.service_network, true).await;
    metrics
        .sync_seconds
        .observe(started.elapsed().as_secs_f64());
    match outcome {
        Ok(applied) => {
            let result = if applied.created + applied.updated + applied.deleted == 0 {
                "unchanged"
            } else {
                "applied"
            };
            metrics.count_sync(result);
            metrics.last_success.set(now.timestamp());
            tracing::info!(
                commit = %commit.short,
                result,
                created = applied.created,
                updated = applied.updated,
                deleted = applied.deleted,
                took_ms = started.elapsed().as_millis() as u64,
                "revision synced"
            );
            let objects = declared(&revision);
            set(&|s| {
                s.declared.clone_from(&objects);
                s.applied_commit = Some(commit.id.clone());
                s.last_commit = Some(commit.id.clone());
                s.last_result = Some(result.to_string());
                s.last_error = None;
                s.last_sync = Some(now);
            });
            state.tip = Some(commit.id.clone());
            state.last_resync = Some(Instant::now());
            state.applied = Some(Loaded { commit, revision });
            Ok(())
        }
        Err(e @ (ApplyError::Invalid { .. } | ApplyError::RefusedEmpty { .. })) => {
            let result = if matches!(e, ApplyError::Invalid { .. }) {
                "failed"
            } else {
                "refused"
            };
            metrics.count_sync(result);
            tracing::warn!(commit = %commit.short, error = %e, "revision not applied; the last good revision keeps running");
            let msg = e.to_string();
            set(&|s| {
                s.last_commit = Some(commit.id.clone());
                s.last_result = Some(result.to_string());
                s.last_error = Some(msg.clone());
                s.last_sync = Some(now);
            });
            state.tip = Some(commit.id.clone());
            Ok(())
        }
        Err(e) => {
            // Store trouble: the same tip is tried again after a backoff.
            metrics.count_sync("error");
            let msg = e.to_string();
            set(&|s| s.last_error = Some(msg.clone()));
            Err(e.into())
        }
    }
}
