//! Runs one controller: waits for the cache, queues every key, then feeds the queue from the
//! cache's changes and a periodic resync, with a few workers reconciling.
//!
//! A reconcile whose writes the cache did not show in time leaves an expectation: its key
//! is not reconciled again until the cache shows them (or has moved past them), so a slow
//! cache never makes a controller act twice on the same missing pods. A reconcile that
//! panics is logged and retried with backoff; its key is released either way.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::FutureExt;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

use super::queue::WorkQueue;
use super::{Action, Controller, Ctx};
use crate::cache::{Change, Written};

/// How long a reconcile waits for the cache to show its writes before leaving an
/// expectation.
const SETTLE: Duration = Duration::from_secs(5);
/// How often a key with unmet expectations is looked at again.
const EXPECTATION_RECHECK: Duration = Duration::from_millis(200);

tokio::task_local! {
    /// The controller and key being reconciled in this task (for expectations).
    static CURRENT: String;
}

/// Writes the cache has not shown yet, by `controller/key`.
#[derive(Default)]
pub struct Expectations(Mutex<HashMap<String, Vec<Written>>>);

impl Expectations {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<Written>>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Runs `controller` until `stop`.
pub async fn run<C: Controller>(
    controller: Arc<C>,
    ctx: Arc<Ctx>,
    workers: usize,
    stop: CancellationToken,
) {
    let queue: WorkQueue<C::Key> = WorkQueue::new();
    // Subscribed before the cache is synced, so no change between the load and here is lost.
    let mut changes = ctx.cache.subscribe();
    tokio::select! {
        _ = ctx.cache.wait_synced() => {}
        _ = stop.cancelled() => return,
    }
    let mut keys = Vec::new();
    controller.keys_for(&Change::Relisted, &ctx, &mut keys);
    for key in keys.drain(..) {
        queue.add(key);
    }
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..workers.max(1) {
        let (controller, ctx, queue) = (controller.clone(), ctx.clone(), queue.clone());
        tasks.spawn(async move {
            loop {
                let key = queue.next().await;
                // After a relist the cache is not whole until it is synced again.
                ctx.cache.wait_synced().await;
                let label = format!("{}/{key:?}", C::NAME);
                let unmet = ctx.expectations.lock().get(&label).cloned();
                if let Some(writes) = unmet {
                    if !ctx.cache.shows(&writes) {
                        queue.add_after(key.clone(), EXPECTATION_RECHECK);
                        queue.done(&key);
                        continue;
                    }
                    ctx.expectations.lock().remove(&label);
                }
                let pass = AssertUnwindSafe(controller.reconcile(&key, &ctx)).catch_unwind();
                match CURRENT.scope(label, pass).await {
                    Ok(Ok(action)) => {
                        queue.forget(&key);
                        if let Action::RequeueAfter(delay) = action {
                            queue.add_after(key.clone(), delay);
                        }
                    }
                    Ok(Err(e)) => {
                        let delay = queue.backoff(&key);
                        tracing::warn!(controller = C::NAME, key = ?key, error = %e, retry_in = ?delay, "reconcile failed");
                        queue.add_after(key.clone(), delay);
                    }
                    Err(_) => {
                        let delay = queue.backoff(&key);
                        tracing::error!(controller = C::NAME, key = ?key, retry_in = ?delay, "reconcile panicked; this is a bug in keel");
                        queue.add_after(key.clone(), delay);
                    }
                }
                queue.done(&key);
            }
        });
    }
    let mut resync = tokio::time::interval(ctx.config.resync);
    resync.reset();
    loop {
        tokio::select! {
            change = changes.recv() => {
                match change {
                    Ok(change) => controller.keys_for(&change, &ctx, &mut keys),
                    // Missed changes: as good as a relist.
                    Err(RecvError::Lagged(_)) => controller.keys_for(&Change::Relisted, &ctx, &mut keys),
                    Err(RecvError::Closed) => break,
                }
                for key in keys.drain(..) {
                    queue.add(key);
                }
            }
            _ = resync.tick() => {
                for key in controller.all_keys(&ctx) {
                    queue.add(key);
                }
            }
            _ = stop.cancelled() => break,
        }
    }
    tasks.abort_all();
}

/// Waits a little for the cache to show a reconcile's writes, so its next pass reads them.
/// Not shown in time: the key waits until they are (see the module docs).
pub async fn settle(ctx: &Ctx, writes: &[Written]) {
    if writes.is_empty() || ctx.cache.wait_written(writes, SETTLE).await {
        return;
    }
    let _ = CURRENT.try_with(|label| {
        tracing::warn!(key = %label, "the controller cache is slow to show this controller's writes");
        ctx.expectations
            .lock()
            .entry(label.clone())
            .or_default()
            .extend_from_slice(writes);
    });
}
