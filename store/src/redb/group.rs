//! Group commit of single writes: concurrent writers share one transaction and one fsync.

use std::sync::Arc;

use super::{Inner, RedbStore, backend};
use crate::{BatchOp, Result, StoreError, Stored};

/// Single writes waiting to be committed, and whether a committer is running.
#[derive(Default)]
pub(super) struct PendingWrites {
    ops: Vec<(BatchOp, Reply)>,
    committing: bool,
}

/// Where a single write's outcome goes: the object as written, shared with the cache.
type Reply = tokio::sync::oneshot::Sender<Result<Arc<Stored>>>;

/// The most single writes one group-commit transaction takes.
const MAX_GROUP: usize = 1024;

impl RedbStore {
    /// One op, returning what it wrote (a delete: the last state) as the cache and the
    /// watchers share it: the committer is one thread that every write waits on, so it
    /// copies nothing for the writer. Single writes are group-committed: while one
    /// transaction commits, the writes that arrive meanwhile queue up and the next
    /// transaction takes them all, each op checked on its own (one failing precondition
    /// fails only that op). Each caller still returns only after its write is durable; many
    /// concurrent writers then cost one fsync, not one each.
    pub(super) async fn write_one(&self, op: BatchOp) -> Result<Arc<Stored>> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let lead = {
            let mut queue = self.inner.pending.lock().unwrap_or_else(|p| p.into_inner());
            queue.ops.push((op, tx));
            !std::mem::replace(&mut queue.committing, true)
        };
        if lead {
            let inner = self.inner.clone();
            tokio::task::spawn_blocking(move || Self::commit_pending(&inner));
        }
        rx.await
            .map_err(|_| backend("the store's committer stopped"))?
    }

    /// Commits queued single writes, a group per transaction, until the queue is empty.
    fn commit_pending(inner: &Inner) {
        /// Should a commit panic, the next writer becomes the committer (and the writes
        /// queued now fail) rather than all writers waiting for ever.
        struct Release<'a>(&'a Inner);
        impl Drop for Release<'_> {
            fn drop(&mut self) {
                if std::thread::panicking() {
                    let mut queue = self.0.pending.lock().unwrap_or_else(|p| p.into_inner());
                    queue.committing = false;
                    for (_, reply) in queue.ops.drain(..) {
                        let _ = reply.send(Err(backend("the store's committer failed")));
                    }
                }
            }
        }
        let _release = Release(inner);
        loop {
            let group = {
                let mut queue = inner.pending.lock().unwrap_or_else(|p| p.into_inner());
                if queue.ops.is_empty() {
                    queue.committing = false;
                    return;
                }
                let take = queue.ops.len().min(MAX_GROUP);
                queue.ops.drain(..take).collect::<Vec<_>>()
            };
            let (ops, replies): (Vec<BatchOp>, Vec<Reply>) = group.into_iter().unzip();
            let outcome = Self::write(inner, |tx| {
                let mut results = Vec::with_capacity(ops.len());
                for op in ops {
                    match tx.apply(op).and_then(|()| tx.last_written()) {
                        // The engine itself failed: nothing of this group is committed.
                        Err(e @ StoreError::Backend(_)) => return Err(e),
                        result => results.push(result),
                    }
                }
                Ok(results)
            });
            match outcome {
                Ok((results, _)) => {
                    for (reply, result) in replies.into_iter().zip(results) {
                        let _ = reply.send(result);
                    }
                }
                Err(e) => {
                    let message = e.to_string();
                    for reply in replies {
                        let _ = reply.send(Err(match &e {
                            StoreError::Unavailable(m) => StoreError::Unavailable(m.clone()),
                            _ => StoreError::Backend(message.clone()),
                        }));
                    }
                }
            }
        }
    }
}
