//! Every task the control plane runs, spawned in one place, stopped together and waited for.
//!
//! # Guarantees
//! - [`Tasks::shutdown`] cancels the shared stop token, then waits for every task spawned
//!   here to end: in-flight reconciles and writes finish, nothing is aborted half-way, up
//!   to a grace period (after it, what still runs is reported and dropped with the runtime).
//! - A critical task that ends with an error, or ends at all before shutdown (a listener
//!   that died), is reported through [`Tasks::failed`], so the process stops instead of
//!   running without it.

use std::future::Future;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The control plane's tasks. Cheap to clone.
#[derive(Clone)]
pub struct Tasks {
    tracker: TaskTracker,
    stop: CancellationToken,
    failures: mpsc::UnboundedSender<String>,
}

/// Where critical tasks' failures arrive.
pub struct Failures(mpsc::UnboundedReceiver<String>);

impl Failures {
    /// The first failure of a critical task (pending for ever when none fails).
    pub async fn next(&mut self) -> String {
        match self.0.recv().await {
            Some(failure) => failure,
            None => std::future::pending().await,
        }
    }
}

impl Tasks {
    pub fn new() -> (Tasks, Failures) {
        let (failures, rx) = mpsc::unbounded_channel();
        let tasks = Tasks {
            tracker: TaskTracker::new(),
            stop: CancellationToken::new(),
            failures,
        };
        (tasks, Failures(rx))
    }

    /// A group of its own (one leader term's parts): stopped by its own
    /// [`Tasks::shutdown`] or with this group, its critical failures reported with this
    /// group's.
    pub fn child(&self) -> Tasks {
        Tasks {
            tracker: TaskTracker::new(),
            stop: self.stop.child_token(),
            failures: self.failures.clone(),
        }
    }

    /// The token every task watches; cancelled once, at shutdown.
    pub fn stop(&self) -> CancellationToken {
        self.stop.clone()
    }

    /// Runs `task` until it ends; shutdown waits for it.
    pub fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        self.tracker.spawn(task);
    }

    /// Runs `task`, which must run as long as the control plane does: an error, or an end
    /// before shutdown, is a failure of the whole (`name` says which part).
    pub fn spawn_critical<E: std::fmt::Display>(
        &self,
        name: &'static str,
        task: impl Future<Output = Result<(), E>> + Send + 'static,
    ) {
        let (stop, failures) = (self.stop.clone(), self.failures.clone());
        self.tracker.spawn(async move {
            let outcome = task.await;
            let failure = match outcome {
                Err(e) => format!("{name}: {e}"),
                Ok(()) if !stop.is_cancelled() => format!("{name} stopped on its own"),
                Ok(()) => return,
            };
            tracing::error!(part = name, error = %failure, "a part of the control plane failed");
            let _ = failures.send(failure);
        });
    }

    /// Cancels every task and waits for them, at most `grace`; false when some were still
    /// running then.
    pub async fn shutdown(&self, grace: Duration) -> bool {
        self.stop.cancel();
        self.tracker.close();
        match tokio::time::timeout(grace, self.tracker.wait()).await {
            Ok(()) => true,
            Err(_) => {
                tracing::warn!(
                    still_running = self.tracker.len(),
                    grace = ?grace,
                    "tasks still running after the grace period are dropped"
                );
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn shutdown_waits_for_running_work_and_reports_failures() {
        let (tasks, mut failures) = Tasks::new();
        let (done_tx, mut done_rx) = mpsc::unbounded_channel();
        let stop = tasks.stop();
        tasks.spawn(async move {
            stop.cancelled().await;
            // Work that finishes after the stop is asked for is still waited for.
            tokio::time::sleep(Duration::from_millis(50)).await;
            let _ = done_tx.send(());
        });
        tasks.spawn_critical("listener", async { Err::<(), _>("address in use") });
        assert_eq!(failures.next().await, "listener: address in use");
        assert!(tasks.shutdown(Duration::from_secs(5)).await);
        assert!(
            done_rx.try_recv().is_ok(),
            "the task finished before shutdown returned"
        );
    }
}
