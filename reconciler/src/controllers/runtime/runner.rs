//! Runs one controller: waits for the cache, queues every key, then feeds the queue from the
//! cache's changes and a periodic resync, with a few workers reconciling (see the module
//! docs of [`super`] for the guarantees).

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::FutureExt;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::controller::{Action, Controller};
use super::ctx::{Ctx, Shared};
use super::error::ReconcileError;
use super::policy;
use super::queue::WorkQueue;
use crate::cache::{Change, Written};

/// How long the runtime waits for the cache to show a reconcile's writes before leaving an
/// expectation.
const SETTLE: Duration = Duration::from_secs(5);
/// How often a key with unmet expectations is looked at again.
const EXPECTATION_RECHECK: Duration = Duration::from_millis(200);

/// One controller, its queue, and what it last reported per key.
struct Runner<C: Controller> {
    controller: Arc<C>,
    shared: Arc<Shared>,
    queue: WorkQueue<C::Key>,
    /// The permanent error last reported per key, so a repeat is not reported again.
    reported: Mutex<HashMap<C::Key, String>>,
    stop: CancellationToken,
}

/// Runs `controller` with `workers` workers until `stop`; returns once every worker has
/// finished its pass.
pub async fn run<C: Controller>(
    controller: Arc<C>,
    shared: Arc<Shared>,
    workers: usize,
    stop: CancellationToken,
) {
    let timers = TaskTracker::new();
    let runner = Arc::new(Runner {
        controller,
        queue: WorkQueue::new(timers.clone(), stop.clone()),
        shared,
        reported: Mutex::default(),
        stop: stop.clone(),
    });
    // Subscribed before the cache is synced, so no change between the load and here is lost.
    let mut changes = runner.shared.cache.subscribe();
    tokio::select! {
        _ = runner.shared.cache.wait_synced() => {}
        _ = stop.cancelled() => return,
    }
    let mut keys = Vec::new();
    runner
        .controller
        .keys_for(&Change::Relisted, &runner.shared.cache, &mut keys);
    runner.add_all(&mut keys);
    let mut workers_set = tokio::task::JoinSet::new();
    for _ in 0..workers.max(1) {
        let runner = runner.clone();
        workers_set.spawn(async move { runner.work().await });
    }
    runner.feed(&mut changes).await;
    // Stopped: the workers finish the passes in flight; the timers end on the same token.
    while workers_set.join_next().await.is_some() {}
    timers.close();
    timers.wait().await;
}

impl<C: Controller> Runner<C> {
    fn add_all(&self, keys: &mut Vec<C::Key>) {
        for key in keys.drain(..) {
            self.queue.add(key);
        }
    }

    /// Queues keys from the cache's changes and the periodic resync, until stopped.
    async fn feed(&self, changes: &mut tokio::sync::broadcast::Receiver<Change>) {
        let cache = &self.shared.cache;
        let mut keys = Vec::new();
        let mut resync = tokio::time::interval(self.shared.config.resync);
        resync.reset();
        loop {
            tokio::select! {
                change = changes.recv() => {
                    match change {
                        Ok(change) => {
                            self.controller.keys_for(&change, cache, &mut keys);
                            for key in keys.drain(..) {
                                let wait = self.controller.settle(&change, &key, cache);
                                self.queue.add_after(key, wait);
                            }
                        }
                        // Missed changes: as good as a relist.
                        Err(RecvError::Lagged(_)) => self.controller.keys_for(&Change::Relisted, cache, &mut keys),
                        Err(RecvError::Closed) => return,
                    }
                    self.add_all(&mut keys);
                }
                _ = resync.tick() => {
                    keys = self.controller.all_keys(cache);
                    self.add_all(&mut keys);
                }
                _ = self.stop.cancelled() => return,
            }
        }
    }

    /// One worker: takes keys until stopped, one pass each.
    async fn work(&self) {
        loop {
            let key = tokio::select! {
                key = self.queue.next() => key,
                _ = self.stop.cancelled() => return,
            };
            // After a relist the cache is not whole until it is synced again.
            tokio::select! {
                _ = self.shared.cache.wait_synced() => {}
                _ = self.stop.cancelled() => return,
            }
            self.pass(&key).await;
            self.queue.done(&key);
        }
    }

    fn label(key: &C::Key) -> String {
        format!("{}/{key:?}", C::NAME)
    }

    /// Reconciles `key` once (unless writes of its last pass are still unseen), then waits
    /// for the cache to show this pass's writes and applies the policy to the outcome.
    async fn pass(&self, key: &C::Key) {
        let label = Self::label(key);
        let unmet = self.shared.expectations().get(&label).cloned();
        if let Some(writes) = unmet {
            if !self.shared.cache.shows(&writes) {
                self.queue.add_after(key.clone(), EXPECTATION_RECHECK);
                return;
            }
            self.shared.expectations().remove(&label);
        }
        let ctx = Ctx::new(self.shared.clone());
        let outcome = AssertUnwindSafe(self.controller.reconcile(key, &ctx))
            .catch_unwind()
            .await;
        // Settled even after an error, so a retry never acts on a view without these writes.
        self.settle(&label, &ctx.take_writes()).await;
        match outcome {
            Ok(Ok(action)) => self.succeeded(key, action).await,
            Ok(Err(e)) if e.is_permanent() => self.failed_for_good(key, &e).await,
            Ok(Err(e)) => {
                let delay = self.queue.backoff(key);
                tracing::warn!(controller = C::NAME, key = ?key, error = %e, retry_in = ?delay, "reconcile failed");
                self.queue.add_after(key.clone(), delay);
            }
            Err(_) => {
                let delay = self.queue.backoff(key);
                tracing::error!(controller = C::NAME, key = ?key, retry_in = ?delay, "reconcile panicked; this is a bug in keel");
                self.queue.add_after(key.clone(), delay);
            }
        }
    }

    async fn succeeded(&self, key: &C::Key, action: Action) {
        self.queue.forget(key);
        let was_failing = self.lock_reported().remove(key).is_some();
        if let Some(subject) = self.controller.subject(key) {
            // Also after a restart, when nothing here remembers the error.
            policy::clear(&self.shared, &subject).await;
        }
        if was_failing {
            tracing::info!(controller = C::NAME, key = ?key, "reconciles again");
        }
        if let Action::RequeueAfter(delay) = action {
            self.queue.add_after(key.clone(), delay);
        }
    }

    /// Reported once per distinct error; retried only when something changes (or at the
    /// periodic resync), never hot.
    async fn failed_for_good(&self, key: &C::Key, error: &ReconcileError) {
        self.queue.forget(key);
        let message = error.to_string();
        let repeat = self.lock_reported().insert(key.clone(), message.clone()) == Some(message);
        if repeat {
            tracing::debug!(controller = C::NAME, key = ?key, error = %error, "still cannot reconcile");
            return;
        }
        tracing::warn!(controller = C::NAME, key = ?key, error = %error, "cannot reconcile until it changes");
        if let Some(subject) = self.controller.subject(key) {
            policy::report(&self.shared, C::COMPONENT, &subject, error).await;
        }
    }

    fn lock_reported(&self) -> std::sync::MutexGuard<'_, HashMap<C::Key, String>> {
        self.reported.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits a little for the cache to show a pass's writes, so the next pass reads them.
    /// Not shown in time: the key waits until they are (see the module docs).
    async fn settle(&self, label: &str, writes: &[Written]) {
        if writes.is_empty() {
            return;
        }
        let shown = tokio::select! {
            shown = self.shared.cache.wait_written(writes, SETTLE) => shown,
            // Stopping: nobody reads them any more.
            _ = self.stop.cancelled() => return,
        };
        if shown {
            return;
        }
        tracing::warn!(key = %label, "the controller cache is slow to show this controller's writes");
        self.shared
            .expectations()
            .entry(label.to_string())
            .or_default()
            .extend_from_slice(writes);
    }
}
