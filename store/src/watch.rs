//! [`Watcher`]: the receiving end of a watch, shared by both engines.

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::{Result, WatchEvent};

/// How many events may wait for a slow consumer before the engine's feeder pauses.
pub const WATCH_BUFFER: usize = 1024;

/// Changes in order. Ends with `Some(Err(Expired))` when the watcher fell behind the
/// retained history, or `None` when the store shut down. Dropping it stops the watch.
pub struct Watcher {
    rx: mpsc::Receiver<Result<WatchEvent>>,
    task: JoinHandle<()>,
}

impl Watcher {
    pub(crate) fn new(rx: mpsc::Receiver<Result<WatchEvent>>, task: JoinHandle<()>) -> Self {
        Self { rx, task }
    }

    pub async fn next(&mut self) -> Option<Result<WatchEvent>> {
        self.rx.recv().await
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}
