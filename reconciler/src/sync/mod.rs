//! The sync loop: level-triggered. Each pass reads the branch tip; a new tip is loaded,
//! validated and applied as one batch, and the applied revision is compared with the store
//! again every resync interval (correcting drift). Nudges (notify, webhook) only make a
//! pass come sooner; a periodic pass catches anything missed.
//!
//! # Guarantees
//! - A failed fetch or read never counts as "desired state is empty": the last good
//!   revision keeps running (and keeps being resynced) and the problem is reported in status.
//! - Each commit's outcome is recorded in the history once; an invalid, refused or
//!   unreadable commit is not retried until the tip moves.
//! - Stopping never leaves a revision half-applied: a pass abandoned at shutdown has written
//!   a whole batch or nothing. The exception is a revision that asks for sync waves: each
//!   wave is its own batch, so a stop between waves leaves the earlier ones applied (the
//!   revision is started again from its PreSync hooks by the next pass or leader).
//!
//! # Layout
//! - this file: the loop (when passes run); [`pass`]: what one pass does; [`restore`]: the
//!   loop's state read back from the history.
//! - [`status`]: what the loop reports; [`notify`]: a local repository's git folder, watched.

mod apps;
pub mod notify;
mod pass;
mod restore;
pub mod status;

use std::sync::Arc;
use std::time::{Duration, Instant};

use keel_store::Store;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::apply::ServiceNetwork;
use crate::metrics::Metrics;
use crate::source::GitSource;
pub use status::StatusHandle;

/// Shortest time between two fetches of a remote, whatever nudges arrive.
const MIN_FETCH_GAP: Duration = Duration::from_secs(1);

/// How the loop runs (from `keel server`'s flags).
#[derive(Debug, Clone)]
pub struct Settings {
    /// How often a remote is fetched.
    pub poll_interval: Duration,
    /// How often the applied revision is compared with the store again.
    pub resync_interval: Duration,
    pub service_network: ServiceNetwork,
}

/// What a pass works with.
pub struct Syncer {
    pub store: Store,
    pub source: Arc<GitSource>,
    pub status: StatusHandle,
    pub metrics: Arc<Metrics>,
    pub settings: Settings,
}

/// Runs passes until `stop`: after each, waits for a nudge or the interval.
pub async fn run(syncer: Syncer, triggers: &mut mpsc::Receiver<()>, stop: CancellationToken) {
    let Some(mut state) = pass::State::restore(&syncer, &stop).await else {
        return;
    };
    let mut failures: u32 = 0;
    loop {
        let started = Instant::now();
        // A pass may block on git; stopping does not wait for it (applies are batches, so
        // abandoning one mid-way leaves nothing half-done).
        let outcome = tokio::select! {
            r = state.pass(&syncer) => r,
            _ = stop.cancelled() => return,
        };
        let wait = match outcome {
            Ok(()) => {
                failures = 0;
                if syncer.source.is_remote() {
                    syncer.settings.poll_interval
                } else {
                    syncer.settings.resync_interval
                }
            }
            Err(e) => {
                failures += 1;
                tracing::warn!(error = %e, failures, "sync pass failed; the applied revision keeps running");
                // Retry with backoff, but never wait longer than the normal interval.
                let backoff = Duration::from_secs(1u64 << failures.min(5));
                backoff.min(syncer.settings.poll_interval.max(Duration::from_secs(1)))
            }
        };
        // While the applied revision has notification targets, its health is looked at
        // every few seconds in between passes (without fetching).
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let nap = if state.watches_health() {
                left.min(pass::HEALTH_EVERY)
            } else {
                left
            };
            tokio::select! {
                _ = triggers.recv() => {
                    // Coalesce a burst of nudges; a remote is never fetched more often than
                    // MIN_FETCH_GAP, whatever webhooks arrive (a local repo costs nothing to read).
                    let gap = if syncer.source.is_remote() {
                        MIN_FETCH_GAP.saturating_sub(started.elapsed())
                    } else {
                        Duration::ZERO
                    };
                    tokio::time::sleep(gap.max(Duration::from_millis(20))).await;
                    while triggers.try_recv().is_ok() {}
                    break;
                }
                _ = tokio::time::sleep(nap) => {
                    if Instant::now() >= deadline {
                        break;
                    }
                    tokio::select! {
                        _ = state.watch_health(&syncer) => {}
                        _ = stop.cancelled() => return,
                    }
                }
                _ = stop.cancelled() => return,
            }
        }
    }
}
