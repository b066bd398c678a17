//! Events, Kubernetes style: what happened to an object, with a reason and a message
//! (`Scheduled`, `FailedScheduling`, `ScalingReplicaSet`, `NodeNotReady`, and from the agents
//! `Pulling`, `Started`, `Killing`, `BackOff`, `Unhealthy`, …).
//!
//! Recording never waits: [`Recorder::record`] queues the event and a writer task stores it,
//! so a controller is never slowed by its own events. As in Kubernetes, events are best
//! effort: when the queue is full they are dropped (and that is logged), repeats of one event
//! (same object, reason and message) are one Event object with a `count`, and Events are
//! deleted an hour after they last happened. Similar events with many messages (a
//! ReplicaSet's "Created pod: …") combine into one after ten ([`aggregate`]).

mod aggregate;

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::Utc;
use keel_schema::Object;
use keel_schema::types::core::{Event, EventSource, EventType};
use keel_schema::types::meta::ObjectReference;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use keel_schema::Kind;
use keel_store::{ObjectKey, Store, StoreError};

/// Events waiting to be written; beyond this they are dropped.
const QUEUE: usize = 8192;
/// Events written at once.
const BATCH: usize = 256;
/// How long an Event is kept after it last happened (Kubernetes' default `--event-ttl`).
pub const TTL: Duration = Duration::from_secs(3600);

/// One thing that happened.
#[derive(Debug, Clone)]
pub struct Record {
    pub involved: ObjectReference,
    pub type_: EventType,
    pub reason: String,
    pub message: String,
    pub component: &'static str,
    pub host: Option<String>,
}

/// Queues events for the writer. Cheap to clone.
#[derive(Clone)]
pub struct Recorder {
    tx: Option<mpsc::Sender<Record>>,
    dropping: Arc<AtomicBool>,
    /// The `source.host` of events that name none: the server writing them, so an event
    /// says which of several servers (the leader of the time) acted.
    instance: Option<Arc<str>>,
}

/// A reference to `object` for an event.
pub fn reference(object: &Object) -> ObjectReference {
    let meta = object.meta();
    ObjectReference {
        api_version: Some(object.info().api_version.to_string()),
        kind: Some(object.kind().to_string()),
        namespace: meta.namespace.clone(),
        name: meta.name.clone(),
        uid: meta.uid.clone(),
        resource_version: None,
        field_path: None,
    }
}

impl Recorder {
    /// A recorder that writes nothing (tests of parts that record events in passing).
    pub fn disabled() -> Self {
        Self {
            tx: None,
            dropping: Arc::default(),
            instance: None,
        }
    }

    /// Events without a host of their own name `instance` (this server) as their source.
    pub fn with_instance(mut self, instance: &str) -> Self {
        self.instance = Some(instance.into());
        self
    }

    /// A recorder, and the task to run (until `stop`) that writes its events and deletes
    /// expired ones.
    pub fn new(store: Store, stop: CancellationToken) -> (Self, impl Future<Output = ()>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let recorder = Self {
            tx: Some(tx),
            dropping: Arc::default(),
            instance: None,
        };
        let run = async move {
            // Side by side: a pass of the expiry never holds up the writing.
            tokio::join!(
                write_events(store.clone(), rx, stop.clone()),
                expire_every(store, EXPIRY_INTERVAL, EXPIRY_PAUSE, stop),
            );
        };
        (recorder, run)
    }

    pub fn record(&self, mut record: Record) {
        let Some(tx) = &self.tx else { return };
        if record.host.is_none() {
            record.host = self.instance.as_deref().map(str::to_string);
        }
        match tx.try_send(record) {
            Ok(()) => {
                self.dropping.store(false, Ordering::Relaxed);
            }
            Err(mpsc::error::TrySendError::Full(r)) => {
                if !self.dropping.swap(true, Ordering::Relaxed) {
                    tracing::warn!(reason = %r.reason, "too many events at once; dropping some");
                }
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }

    /// Records an event about `object`.
    pub fn object(
        &self,
        object: &Object,
        type_: EventType,
        reason: &str,
        message: String,
        component: &'static str,
    ) {
        self.record(Record {
            involved: reference(object),
            type_,
            reason: reason.to_string(),
            message,
            component,
            host: None,
        });
    }
}

/// Where an event about `involved` lives: its namespace, or `default` for cluster-scoped
/// objects (nodes), as Kubernetes does. Its name hashes what makes it the same event: its
/// message too, unless it is `combined` with similar ones (then its message is the latest).
fn event_key(r: &Record, combined: bool) -> ObjectKey {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    if combined {
        aggregate::similarity(r).hash(&mut h);
    } else {
        (
            &r.involved.uid,
            &r.involved.kind,
            &r.involved.name,
            &r.reason,
            &r.message,
            r.type_,
        )
            .hash(&mut h);
    }
    let namespace = r
        .involved
        .namespace
        .clone()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "default".into());
    let name: String = r
        .involved
        .name
        .clone()
        .unwrap_or_default()
        .chars()
        .take(200)
        .collect();
    ObjectKey::new(
        Kind::Event,
        &namespace,
        &format!("{name}.{:016x}", h.finish()),
    )
}

async fn write_one(store: &Store, key: ObjectKey, record: Record, times: i64) {
    let now = Utc::now();
    // Most events are new (a pod's Scheduled, Pulled, Started...): try to create first, so
    // those cost no read (Events are read from the store's file, not its cache).
    let mut known = false;
    for _ in 0..4 {
        let existing = if known {
            match store.get(&key).await {
                Ok(e) => e,
                Err(e) => {
                    tracing::debug!(error = %e, "cannot read an event");
                    return;
                }
            }
        } else {
            None
        };
        known = true;
        let written = match existing {
            Some(stored) => {
                let Object::Event(mut ev) = stored.object else {
                    return;
                };
                ev.count = Some(ev.count.unwrap_or(1).saturating_add(times));
                ev.last_timestamp = Some(now);
                // The same, or for combined events the latest of the similar ones.
                ev.message = Some(record.message.clone());
                // The last writer is who saw it last (after a leader change, the new one).
                if let (Some(source), Some(host)) = (ev.source.as_mut(), &record.host) {
                    source.host = Some(host.clone());
                }
                store
                    .update_shared(Object::Event(ev), stored.resource_version)
                    .await
            }
            None => {
                let mut ev = Event::default();
                ev.metadata.name = Some(key.name.clone());
                ev.metadata.namespace = Some(key.namespace.clone());
                ev.involved_object = record.involved.clone();
                ev.reason = Some(record.reason.clone());
                ev.message = Some(record.message.clone());
                ev.type_ = Some(record.type_);
                ev.count = Some(times);
                ev.first_timestamp = Some(now);
                ev.last_timestamp = Some(now);
                ev.source = Some(EventSource {
                    component: Some(record.component.to_string()),
                    host: record.host.clone(),
                });
                store.create_shared(Object::Event(ev)).await
            }
        };
        match written {
            Ok(_) => return,
            // NotFound: the expiry, which runs beside this writer, deleted the old one
            // between the read and the update; the next try creates it afresh.
            Err(
                StoreError::Conflict { .. }
                | StoreError::AlreadyExists(_)
                | StoreError::NotFound(_),
            ) => continue,
            Err(e) => {
                tracing::debug!(error = %e, "cannot write an event");
                return;
            }
        }
    }
}

async fn write_events(store: Store, mut rx: mpsc::Receiver<Record>, stop: CancellationToken) {
    let mut buffer = Vec::with_capacity(BATCH);
    let mut aggregator = aggregate::Aggregator::default();
    loop {
        tokio::select! {
            n = rx.recv_many(&mut buffer, BATCH) => {
                if n == 0 {
                    return;
                }
                // Repeats within the batch become one write with their count (and the
                // latest message, for combined ones).
                let mut batch: HashMap<ObjectKey, (Record, i64)> = HashMap::new();
                let now = std::time::Instant::now();
                for mut r in buffer.drain(..) {
                    let combined = aggregator.combine(&mut r, now);
                    let key = event_key(&r, combined);
                    let count = batch.get(&key).map_or(0, |(_, n)| *n);
                    batch.insert(key, (r, count + 1));
                }
                let writes = batch
                    .into_iter()
                    .map(|(key, (r, n))| write_one(&store, key, r, n));
                futures_util::future::join_all(writes).await;
            }
            () = stop.cancelled() => return,
        }
    }
}

/// How often Events past their [`TTL`] are looked for.
const EXPIRY_INTERVAL: Duration = Duration::from_secs(300);
/// Events read per page by [`expire_old`].
const EXPIRY_PAGE: usize = 500;
/// The rest between two pages of a pass. Events are not in the store's memory, so a pass
/// reads and decodes every one from disk: at 100,000 pods (some 400,000 Events) that is
/// about 7 s of CPU. Unpaced (and inside the writer's loop), more than a core was busy for
/// some 8 s every 5 minutes and events waited; paced, it takes about 50 s at a fifth of a core.
const EXPIRY_PAUSE: Duration = Duration::from_millis(50);

/// Runs [`expire_old`] now and then every `interval`, resting `pause` between pages, until
/// `stop`.
async fn expire_every(store: Store, interval: Duration, pause: Duration, stop: CancellationToken) {
    let mut expire = tokio::time::interval(interval);
    // A pass longer than the interval is followed by the next one, not by a burst of them.
    expire.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = expire.tick() => {}
            () = stop.cancelled() => return,
        }
        tokio::select! {
            () = expire_old(&store, pause) => {}
            () = stop.cancelled() => return,
        }
    }
}

/// Deletes Events that last happened more than [`TTL`] ago. It walks them a page at a time,
/// resting `pause` between pages: a cluster of 100,000 pods keeps some 400,000 Events, and
/// decoding them all at once took over 500 MiB for the few seconds of each pass.
async fn expire_old(store: &Store, pause: Duration) {
    let cutoff = Utc::now() - chrono::Duration::from_std(TTL).unwrap_or_default();
    let mut after: Option<String> = None;
    loop {
        let page = match store
            .list_page(Kind::Event, None, after.as_deref(), EXPIRY_PAGE)
            .await
        {
            Ok(page) => page,
            Err(e) => {
                tracing::debug!(error = %e, "cannot list events to expire them");
                return;
            }
        };
        for s in &page.items {
            if let Object::Event(ev) = &s.object
                && ev.last_timestamp.is_some_and(|t| t < cutoff)
            {
                let _ = store
                    .delete(&ObjectKey::of(&s.object), Some(s.resource_version))
                    .await;
            }
        }
        match page.next {
            Some(next) => after = Some(next),
            None => return,
        }
        tokio::time::sleep(pause).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An Event named `name` in `namespace` that last happened `age` ago.
    fn aged(namespace: &str, name: &str, age: chrono::Duration) -> Object {
        let mut ev = Event::default();
        ev.metadata.name = Some(name.into());
        ev.metadata.namespace = Some(namespace.into());
        ev.last_timestamp = Some(Utc::now() - age);
        let mut obj = Object::Event(ev);
        obj.set_type_meta();
        obj
    }

    /// A redb store in a temporary folder, which lives as long as the first half.
    async fn redb_store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(&keel_store::StoreSpec::Redb {
            data_dir: dir.path().to_path_buf(),
        })
        .await
        .expect("store");
        (dir, store)
    }

    /// The store's Events as `namespace/name`, sorted.
    async fn events_left(store: &Store) -> Vec<String> {
        let mut left: Vec<String> = store
            .list(Kind::Event, None, None)
            .await
            .expect("list")
            .items
            .iter()
            .map(|s| format!("{}/{}", s.object.namespace(), s.object.name()))
            .collect();
        left.sort();
        left
    }

    #[tokio::test]
    async fn expiry_deletes_old_events_across_pages_and_namespaces_and_keeps_the_rest() {
        let (_dir, store) = redb_store().await;
        // Three pages' worth, old and new interleaved in key order, in two namespaces.
        let old = chrono::Duration::hours(2);
        let new = chrono::Duration::minutes(5);
        let mut batch = keel_store::Batch {
            label: "events".into(),
            ..Default::default()
        };
        let mut kept = Vec::new();
        for i in 0..(EXPIRY_PAGE * 2 + 7) {
            let namespace = if i % 3 == 0 { "apps" } else { "default" };
            let name = format!("ev-{i:05}");
            let age = if i % 2 == 0 { old } else { new };
            if age == new {
                kept.push(format!("{namespace}/{name}"));
            }
            batch
                .ops
                .push(keel_store::BatchOp::Create(aged(namespace, &name, age)));
        }
        store.apply_batch(batch).await.expect("events written");

        expire_old(&store, Duration::ZERO).await;

        let left = events_left(&store).await;
        kept.sort();
        assert_eq!(left.len(), EXPIRY_PAGE + 3);
        assert_eq!(left, kept);
    }

    #[tokio::test]
    async fn old_events_go_while_the_expiry_runs_and_it_ends_when_stopped() {
        let (_dir, store) = redb_store().await;
        let stop = CancellationToken::new();
        let expiry = tokio::spawn(expire_every(
            store.clone(),
            Duration::from_millis(50),
            Duration::from_millis(1),
            stop.clone(),
        ));
        // Written after the first pass: only a later one finds them.
        tokio::time::sleep(Duration::from_millis(20)).await;
        for (name, age) in [
            ("old", chrono::Duration::hours(2)),
            ("new", chrono::Duration::minutes(1)),
        ] {
            store
                .create(aged("default", name, age))
                .await
                .expect("event");
        }
        let mut left = events_left(&store).await;
        for _ in 0..100 {
            if left == ["default/new"] {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            left = events_left(&store).await;
        }
        assert_eq!(
            left,
            ["default/new"],
            "the expired event is deleted, the recent one kept"
        );
        stop.cancel();
        tokio::time::timeout(Duration::from_secs(5), expiry)
            .await
            .expect("the expiry ends when stopped")
            .expect("it did not panic");
    }

    #[test]
    fn repeats_share_one_event_and_nodes_events_live_in_default() {
        let r = |message: &str| Record {
            involved: ObjectReference {
                kind: Some("Node".into()),
                name: Some("n1".into()),
                uid: Some("u1".into()),
                ..Default::default()
            },
            type_: EventType::Normal,
            reason: "NodeNotReady".into(),
            message: message.into(),
            component: "node-controller",
            host: None,
        };
        let a = event_key(&r("Node n1 status is now: NodeNotReady"), false);
        assert_eq!(
            a,
            event_key(&r("Node n1 status is now: NodeNotReady"), false)
        );
        assert_ne!(a, event_key(&r("something else"), false));
        // Combined events share one name whatever their message.
        let combined = event_key(&r("one"), true);
        assert_eq!(combined, event_key(&r("two"), true));
        assert_ne!(combined, a);
        assert_eq!(a.namespace, "default");
        assert!(a.name.starts_with("n1."));
    }
}
