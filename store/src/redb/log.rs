//! The change log: one record per transaction, which watchers replay from any retained
//! revision before following the live broadcast.

use ::redb::ReadableDatabase;
use keel_schema::Kind;
use tokio::sync::{broadcast, mpsc};

use super::{CHANGES, META, REPLAY_PAGE_EVENTS, RedbStore, backend, read_meta};
use crate::codec::{decode, kind_matches};
use crate::watch::{WATCH_BUFFER, Watcher};
use crate::{ObjectKey, Result, StoreError, WatchEvent, WatchEventType};

/// The changes of one committed transaction.
pub(super) struct ChangeSet {
    pub(super) revision: u64,
    pub(super) events: Vec<WatchEvent>,
}

pub(super) fn event_byte(t: WatchEventType) -> u8 {
    match t {
        WatchEventType::Added => 0,
        WatchEventType::Modified => 1,
        WatchEventType::Deleted => 2,
    }
}

fn byte_event(b: u8) -> WatchEventType {
    match b {
        0 => WatchEventType::Added,
        1 => WatchEventType::Modified,
        _ => WatchEventType::Deleted,
    }
}

impl RedbStore {
    pub async fn watch(&self, kind: Option<Kind>, from: u64) -> Result<Watcher> {
        // Subscribe before replaying the log, so nothing committed in between is missed;
        // revisions seen twice are skipped.
        let mut live = self.inner.events.subscribe();
        let (tx, rx) = mpsc::channel(WATCH_BUFFER);
        let store = self.clone();
        let compacted = self.blocking(|inner| read_meta(inner, "compacted")).await?;
        if from < compacted {
            return Err(StoreError::Expired {
                requested: from,
                compacted,
            });
        }
        let task = tokio::spawn(async move {
            let mut last = from;
            let mut replay = true;
            loop {
                while replay {
                    match store.replay(kind, last, from).await {
                        Ok((events, upto, current)) => {
                            for e in events {
                                if tx.send(Ok(e)).await.is_err() {
                                    return;
                                }
                            }
                            last = last.max(upto);
                            replay = upto < current;
                        }
                        Err(e) => {
                            let _ = tx.send(Err(e)).await;
                            return;
                        }
                    }
                }
                match live.recv().await {
                    Ok(set) if set.revision <= last => {}
                    Ok(set) => {
                        for e in &set.events {
                            if kind_matches(kind, &ObjectKey::of(e.object()))
                                && tx.send(Ok(e.clone())).await.is_err()
                            {
                                return;
                            }
                        }
                        last = set.revision;
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => replay = true,
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        });
        Ok(Watcher::new(rx, task))
    }

    /// One page of logged changes after `after`: the events, the revision they run up
    /// to, and the store's current revision.
    async fn replay(
        &self,
        kind: Option<Kind>,
        after: u64,
        requested: u64,
    ) -> Result<(Vec<WatchEvent>, u64, u64)> {
        self.blocking(move |inner| {
            let txn = inner.db.begin_read().map_err(backend)?;
            let meta = txn.open_table(META).map_err(backend)?;
            let get = |k: &str| -> Result<u64> {
                Ok(meta
                    .get(k)
                    .map_err(backend)?
                    .map(|v| v.value())
                    .unwrap_or(0))
            };
            let (revision, compacted) = (get("revision")?, get("compacted")?);
            if after < compacted {
                return Err(StoreError::Expired {
                    requested,
                    compacted,
                });
            }
            let changes = txn.open_table(CHANGES).map_err(backend)?;
            let mut events = Vec::new();
            let mut upto = revision;
            for entry in changes.range(after + 1..).map_err(backend)? {
                let (k, v) = entry.map_err(backend)?;
                let rev = k.value();
                // One page at a time: a far-behind watcher never holds the whole log.
                if events.len() >= REPLAY_PAGE_EVENTS {
                    upto = rev - 1;
                    break;
                }
                for (event_type, path, json) in ChangeRecord(v.value()) {
                    let Some(key) = ObjectKey::from_path(path) else {
                        continue;
                    };
                    if kind_matches(kind, &key) {
                        events.push(WatchEvent {
                            event_type,
                            stored: std::sync::Arc::new(decode(
                                path,
                                json,
                                rev,
                                inner.cipher.as_deref(),
                            )?),
                            revision: rev,
                        });
                    }
                }
            }
            Ok((events, upto, revision))
        })
        .await
    }
}

/// The entries of one change-log record. A malformed tail ends the iteration (records are
/// only ever written whole, inside the transaction that made them).
struct ChangeRecord<'a>(&'a [u8]);

impl<'a> Iterator for ChangeRecord<'a> {
    type Item = (WatchEventType, &'a str, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        fn take<'b>(bytes: &mut &'b [u8], n: usize) -> Option<&'b [u8]> {
            let (head, tail) = (bytes.get(..n)?, bytes.get(n..)?);
            *bytes = tail;
            Some(head)
        }
        fn len(bytes: &mut &[u8]) -> Option<usize> {
            let raw: [u8; 4] = take(bytes, 4)?.try_into().ok()?;
            usize::try_from(u32::from_le_bytes(raw)).ok()
        }
        let bytes = &mut self.0;
        let t = *take(bytes, 1)?.first()?;
        let path_len = len(bytes)?;
        let path = std::str::from_utf8(take(bytes, path_len)?).ok()?;
        let json_len = len(bytes)?;
        let json = take(bytes, json_len)?;
        Some((byte_event(t), path, json))
    }
}
