//! Runs one controller: waits for the cache, queues every key, then feeds the queue from the
//! cache's changes and a periodic resync, with a few workers reconciling.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;
use tokio::sync::watch;

use super::queue::WorkQueue;
use super::{Action, Controller, Ctx};

/// Runs `controller` until `stop`.
pub async fn run<C: Controller>(
    controller: Arc<C>,
    ctx: Arc<Ctx>,
    workers: usize,
    mut stop: watch::Receiver<bool>,
) {
    let queue: WorkQueue<C::Key> = WorkQueue::new();
    // Subscribed before the cache is synced, so no change between the load and here is lost.
    let mut changes = ctx.cache.subscribe();
    tokio::select! {
        _ = ctx.cache.wait_synced() => {}
        _ = stop.wait_for(|s| *s) => return,
    }
    for key in controller.all_keys(&ctx) {
        queue.add(key);
    }
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..workers.max(1) {
        let (controller, ctx, queue) = (controller.clone(), ctx.clone(), queue.clone());
        tasks.spawn(async move {
            loop {
                let key = queue.next().await;
                // After a relist the cache is not whole until its watch catches up.
                ctx.cache.wait_synced().await;
                match controller.reconcile(&key, &ctx).await {
                    Ok(action) => {
                        queue.forget(&key);
                        if let Action::RequeueAfter(delay) = action {
                            queue.add_after(key.clone(), delay);
                        }
                    }
                    Err(e) => {
                        let delay = queue.backoff(&key);
                        tracing::warn!(controller = C::NAME, key = ?key, error = %e, retry_in = ?delay, "reconcile failed");
                        queue.add_after(key.clone(), delay);
                    }
                }
                queue.done(&key);
            }
        });
    }
    let mut resync = tokio::time::interval(ctx.config.resync);
    resync.reset();
    let mut keys = Vec::new();
    loop {
        tokio::select! {
            change = changes.recv() => match change {
                Ok(change) => {
                    controller.keys_for(&change, &ctx, &mut keys);
                    for key in keys.drain(..) {
                        queue.add(key);
                    }
                }
                Err(RecvError::Lagged(_)) => {
                    for key in controller.all_keys(&ctx) {
                        queue.add(key);
                    }
                }
                Err(RecvError::Closed) => break,
            },
            _ = resync.tick() => {
                for key in controller.all_keys(&ctx) {
                    queue.add(key);
                }
            }
            _ = stop.wait_for(|s| *s) => break,
        }
    }
    tasks.abort_all();
}

/// Waits a little for the cache to show a controller's writes; the next pass then reads
/// them. A timeout is not an error: the change will arrive and queue the key again.
pub async fn settle(ctx: &Ctx, writes: &[super::cache::Written]) {
    if !writes.is_empty() {
        ctx.cache.wait_written(writes, Duration::from_secs(5)).await;
    }
}
