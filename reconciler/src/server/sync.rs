//! The sync loop: level-triggered. Each pass reads the branch tip and, when it changed (or
//! a resync is due), loads the whole revision, validates it, and applies it as one batch.
//! Nudges (notify, webhook) only make a pass come sooner; a periodic pass catches anything
//! missed. A failed fetch or read never counts as "desired state is empty": the last good
//! revision keeps running and the problem is reported in status.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use keel_schema::Revision;
use serde::Serialize;
use tokio::sync::{mpsc, watch};

use super::Config;
use super::metrics::Metrics;
use crate::apply::{ApplyError, apply_revision};
use crate::source::{CommitInfo, GitSource};
use crate::store::Store;

/// What `keel status` and `/api/keel/status` report about syncing.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SyncStatus {
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
}

/// A loaded revision, kept while the tip stays the same (a resync then only re-diffs).
struct Loaded {
    commit: CommitInfo,
    revision: Revision,
}

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
    let mut loaded: Option<Loaded> = None;
    let mut last_good: Option<Instant> = None;
    let mut failures: u32 = 0;
    loop {
        let wait = match pass(
            &store,
            &source,
            &status,
            &metrics,
            &mut loaded,
            &mut last_good,
            config,
        )
        .await
        {
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
                // Coalesce a burst of nudges (one commit touches several refs).
                tokio::time::sleep(Duration::from_millis(20)).await;
                while triggers.try_recv().is_ok() {}
            }
            _ = tokio::time::sleep(wait) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// One pass. `Err` for trouble worth retrying soon (fetch, read, store), after recording it.
async fn pass(
    store: &Store,
    source: &Arc<GitSource>,
    status: &Arc<Mutex<SyncStatus>>,
    metrics: &Metrics,
    loaded: &mut Option<Loaded>,
    last_good: &mut Option<Instant>,
    config: &Config,
) -> anyhow::Result<()> {
    let set = |f: &dyn Fn(&mut SyncStatus)| {
        if let Ok(mut s) = status.lock() {
            f(&mut s);
        }
    };
    let src = source.clone();
    let fetched = tokio::task::spawn_blocking(move || src.fetch().map(|_| src.tip())).await?;
    let tip = match fetched {
        Ok(Ok(tip)) => {
            set(&|s| s.fetch_error = None);
            metrics.fetch_failing.set(0);
            tip
        }
        Ok(Err(e)) | Err(e) => {
            metrics.fetch_failures.inc();
            metrics.fetch_failing.set(1);
            let msg = e.to_string();
            set(&|s| s.fetch_error = Some(msg.clone()));
            anyhow::bail!(e);
        }
    };
    let same = loaded.as_ref().is_some_and(|l| l.commit.id == tip.id);
    let resync_due = last_good.is_none_or(|t| t.elapsed() >= config.resync_interval);
    if same && !resync_due {
        return Ok(());
    }
    if same && loaded.as_ref().is_some_and(|l| !l.revision.is_valid()) {
        // An invalid revision stays invalid: no point re-reporting it every pass.
        return Ok(());
    }
    if !same {
        let src = source.clone();
        let id = tip.id.clone();
        let (commit, revision) = tokio::task::spawn_blocking(move || src.load(&id)).await??;
        *loaded = Some(Loaded { commit, revision });
    }
    let Some(current) = loaded.as_ref() else {
        return Ok(());
    };
    let started = Instant::now();
    let outcome = apply_revision(store, &current.commit, &current.revision, !same).await;
    let short = current.commit.short.clone();
    let now = Utc::now();
    metrics
        .sync_seconds
        .observe(started.elapsed().as_secs_f64());
    match outcome {
        Ok(applied) => {
            *last_good = Some(Instant::now());
            let result = if applied.created + applied.updated + applied.deleted == 0 {
                "unchanged"
            } else {
                "applied"
            };
            metrics.count_sync(result);
            metrics.last_success.set(now.timestamp());
            tracing::info!(
                commit = %short,
                result,
                created = applied.created,
                updated = applied.updated,
                deleted = applied.deleted,
                took_ms = started.elapsed().as_millis() as u64,
                "revision synced"
            );
            set(&|s| {
                s.applied_commit = Some(current.commit.id.clone());
                s.last_commit = Some(current.commit.id.clone());
                s.last_result = Some(result.to_string());
                s.last_error = None;
                s.last_sync = Some(now);
            });
            Ok(())
        }
        Err(e @ (ApplyError::Invalid { .. } | ApplyError::RefusedEmpty { .. })) => {
            let result = if matches!(e, ApplyError::Invalid { .. }) {
                "failed"
            } else {
                "refused"
            };
            metrics.count_sync(result);
            tracing::warn!(commit = %short, error = %e, "revision not applied; the last good revision keeps running");
            let msg = e.to_string();
            set(&|s| {
                s.last_commit = Some(current.commit.id.clone());
                s.last_result = Some(result.to_string());
                s.last_error = Some(msg.clone());
                s.last_sync = Some(now);
            });
            Ok(())
        }
        Err(e) => {
            metrics.count_sync("error");
            let msg = e.to_string();
            set(&|s| s.last_error = Some(msg.clone()));
            // Store trouble: retry the same revision soon.
            *last_good = None;
            Err(e.into())
        }
    }
}
