//! The etcd engine's watch: etcd's own watch on the registry prefix, with `prev_kv` so a
//! deletion says what went, resumed from the last revision delivered after a broken stream,
//! and 410-style expiry when the history it needs was compacted.

use etcd_client::{EventType as EtcdEventType, WatchOptions, WatchResponse, WatchStream};
use keel_schema::Kind;
use tokio::sync::mpsc;

use super::{EtcdStore, backoff};
use crate::codec::decode;
use crate::watch::{WATCH_BUFFER, Watcher};
use crate::{Result, StoreError, WatchEvent, WatchEventType};

/// A broken stream is resumed at most this many times in a row before the watcher is told.
const MAX_RESUMES: u32 = 5;

fn options(after: u64) -> WatchOptions {
    let start = i64::try_from(after).unwrap_or(i64::MAX).saturating_add(1);
    WatchOptions::new()
        .with_prefix()
        .with_start_revision(start)
        .with_prev_key()
}

/// `Expired` for a watch from `requested` when etcd compacted up to `compact_revision`.
fn expired(requested: u64, compact_revision: i64) -> StoreError {
    StoreError::Expired {
        requested,
        compacted: u64::try_from(compact_revision.saturating_sub(1)).unwrap_or(0),
    }
}

impl EtcdStore {
    pub async fn watch(&self, kind: Option<Kind>, from: u64) -> Result<Watcher> {
        let prefix = match kind {
            Some(k) => format!("{}{}/", self.registry(), k.key_segment()),
            None => self.registry(),
        };
        let mut client = self.watch.clone();
        let mut stream = client
            .watch(prefix.clone(), Some(options(from)))
            .await
            .map_err(|e| self.err(e))?;
        // The first response confirms the watch or reports compaction.
        let first = stream.message().await.map_err(|e| self.err(e))?;
        if let Some(resp) = &first {
            if resp.compact_revision() > 0 {
                return Err(expired(from, resp.compact_revision()));
            }
            if resp.canceled() {
                return Err(StoreError::Unavailable(format!(
                    "etcd refused the watch: {}",
                    resp.cancel_reason()
                )));
            }
        }
        let (tx, rx) = mpsc::channel(WATCH_BUFFER);
        let follow = Follow {
            store: self.clone(),
            prefix,
            tx,
            last: from,
            failures: 0,
        };
        let task = tokio::spawn(follow.run(stream, first));
        Ok(Watcher::new(rx, task))
    }
}

/// One watch, as its task follows it.
struct Follow {
    store: EtcdStore,
    prefix: String,
    tx: mpsc::Sender<Result<WatchEvent>>,
    /// The last revision delivered: where a resumed stream starts.
    last: u64,
    failures: u32,
}

/// Whether to go on after a response.
enum Flow {
    Continue,
    Stop,
}

impl Follow {
    async fn run(mut self, mut stream: WatchStream, first: Option<WatchResponse>) {
        let mut pending = first;
        loop {
            let message = match pending.take() {
                Some(r) => Ok(Some(r)),
                None => stream.message().await,
            };
            let flow = match message {
                Ok(Some(resp)) if !resp.canceled() || resp.compact_revision() > 0 => {
                    self.deliver(&resp).await
                }
                // A broken stream, an end, or a cancel: resume from the last revision
                // delivered, with backoff, and give up loudly after a few tries.
                broken => {
                    let why = match broken {
                        Err(e) => e.to_string(),
                        Ok(Some(r)) => format!("canceled: {}", r.cancel_reason()),
                        Ok(None) => "stream ended".to_string(),
                    };
                    self.resume(&mut stream, why).await
                }
            };
            if let Flow::Stop = flow {
                return;
            }
        }
    }

    async fn resume(&mut self, stream: &mut WatchStream, why: String) -> Flow {
        self.failures += 1;
        if self.failures > MAX_RESUMES {
            let lost = StoreError::Unavailable(format!("etcd watch lost: {why}"));
            let _ = self.tx.send(Err(lost)).await;
            return Flow::Stop;
        }
        tracing::warn!(reason = %why, failures = self.failures, "etcd watch broke; resuming");
        tokio::time::sleep(backoff(self.failures)).await;
        let mut client = self.store.watch.clone();
        if let Ok(s) = client
            .watch(self.prefix.clone(), Some(options(self.last)))
            .await
        {
            *stream = s;
        }
        Flow::Continue
    }

    /// Sends a response's events in order; stops when the watcher is gone or must relist.
    async fn deliver(&mut self, resp: &WatchResponse) -> Flow {
        if resp.compact_revision() > 0 {
            let _ = self
                .tx
                .send(Err(expired(self.last, resp.compact_revision())))
                .await;
            return Flow::Stop;
        }
        if !resp.events().is_empty() {
            self.failures = 0;
        }
        for event in resp.events() {
            let Some(kv) = event.kv() else { continue };
            let revision = u64::try_from(kv.mod_revision()).unwrap_or(0);
            let (event_type, source) = match event.event_type() {
                EtcdEventType::Put if kv.create_revision() == kv.mod_revision() => {
                    (WatchEventType::Added, Some(kv))
                }
                EtcdEventType::Put => (WatchEventType::Modified, Some(kv)),
                EtcdEventType::Delete => (WatchEventType::Deleted, event.prev_kv()),
            };
            let Some(source) = source else {
                // A deletion whose previous state is compacted away: the watcher cannot
                // know what went; it must relist.
                let gone = StoreError::Expired {
                    requested: self.last,
                    compacted: revision,
                };
                let _ = self.tx.send(Err(gone)).await;
                return Flow::Stop;
            };
            let key = String::from_utf8_lossy(source.key()).to_string();
            let cipher = self.store.cipher.as_deref();
            let item = decode(&key, source.value(), revision, cipher).map(|s| WatchEvent {
                event_type,
                stored: std::sync::Arc::new(s),
                revision,
            });
            if self.tx.send(item).await.is_err() {
                return Flow::Stop;
            }
            self.last = self.last.max(revision);
        }
        Flow::Continue
    }
}
