//! The controllers' shared view of the store: every object (Events aside), kept current by
//! one watch, with the indexes controllers ask for (pods by node, dependents by owner uid,
//! pods without a controller by namespace) and each controller's [`PodTally`].
//!
//! # Guarantees
//! - [`Cache::wait_synced`] returns only while the cache holds a whole list (every kind at
//!   one store revision) followed by its watch: before that, and from a broken watch until
//!   the next list, nothing is "absent", it is "not loaded yet", and controllers do not act.
//! - Changes are applied in store order; [`Cache::wait_written`] returns once the cache
//!   shows given writes, so a controller reads its own writes on its next pass.
//! - A subscriber that falls behind gets [`Change::Relisted`] (reconcile everything) instead
//!   of a silent gap; so does everyone after the watch expired and the cache relisted.

mod pod_tally;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use keel_schema::Object;
use keel_schema::types::pod::Pod;
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;

use keel_schema::Kind;
use keel_store::{ObjectKey, Store, StoreError, Stored, WatchEventType};

use crate::controllers::pods;
pub use pod_tally::{LabelTally, PodTally};

/// A write a controller made and wants to read back.
#[derive(Debug, Clone)]
pub struct Written {
    pub key: ObjectKey,
    pub revision: u64,
    pub deleted: bool,
}

/// One change as subscribers see it.
#[derive(Debug, Clone)]
pub enum Change {
    /// An object was added (`old` none), modified, or deleted (`new` none).
    Object {
        old: Option<Arc<Stored>>,
        new: Option<Arc<Stored>>,
    },
    /// The whole cache was (re)loaded, or this subscriber missed changes: look at everything.
    Relisted,
}

impl Change {
    /// The changed object's kind (`None` for [`Change::Relisted`]).
    pub fn kind(&self) -> Option<Kind> {
        match self {
            Change::Object { old, new } => new.as_ref().or(old.as_ref()).map(|s| s.object.kind()),
            Change::Relisted => None,
        }
    }

    /// The object before and after (either may be absent).
    pub fn objects(&self) -> impl Iterator<Item = &Object> {
        let (old, new) = match self {
            Change::Object { old, new } => (old.as_ref(), new.as_ref()),
            Change::Relisted => (None, None),
        };
        old.into_iter().chain(new).map(|s| &s.object)
    }
}

#[derive(Default)]
struct State {
    objects: BTreeMap<ObjectKey, Arc<Stored>>,
    /// Pods by `spec.nodeName`.
    pods_by_node: HashMap<String, BTreeSet<ObjectKey>>,
    /// Objects by the uid of each owner they name.
    dependents: HashMap<String, BTreeSet<ObjectKey>>,
    /// Pods without a controller, by namespace: any owner there may adopt them.
    orphans: HashMap<String, BTreeSet<ObjectKey>>,
    /// Pods by namespace and the uid of their controller, tallied (kept in the same step as
    /// the objects, so a tally always agrees with the pods the cache holds). By namespace
    /// too: an owner controls pods of its own namespace only, as in Kubernetes.
    /// Namespace first, each map looked up by `&str`: a pod's every write updates its
    /// tally, and the common case allocates nothing.
    tallies: HashMap<String, HashMap<String, PodTally>>,
}

impl State {
    fn index(&mut self, stored: &Stored, add: bool) {
        let key = ObjectKey::of(&stored.object);
        let edit = |map: &mut HashMap<String, BTreeSet<ObjectKey>>, at: &str| {
            if add {
                map.entry(at.to_string()).or_default().insert(key.clone());
            } else if let Some(set) = map.get_mut(at) {
                set.remove(&key);
                if set.is_empty() {
                    map.remove(at);
                }
            }
        };
        if let Object::Pod(p) = &stored.object {
            if let Some(node) = p.spec.node_name.as_deref().filter(|n| !n.is_empty()) {
                edit(&mut self.pods_by_node, node);
            }
            match pods::controller_of(&p.metadata) {
                Some(controller) => self.tally(&controller.uid, p, add),
                None => edit(&mut self.orphans, p.metadata.namespace()),
            }
        }
        for owner in stored.object.meta().owner_references.iter().flatten() {
            edit(&mut self.dependents, &owner.uid);
        }
    }

    fn tally(&mut self, controller: &str, pod: &Pod, add: bool) {
        let namespace = pod.metadata.namespace();
        if add {
            if !self.tallies.contains_key(namespace) {
                self.tallies.insert(namespace.to_string(), HashMap::new());
            }
            let Some(owners) = self.tallies.get_mut(namespace) else {
                return;
            };
            if let Some(tally) = owners.get_mut(controller) {
                tally.add(pod);
            } else {
                owners.insert(controller.to_string(), PodTally::of([pod]));
            }
            return;
        }
        let Some(owners) = self.tallies.get_mut(namespace) else {
            return;
        };
        if let Some(tally) = owners.get_mut(controller) {
            tally.remove(pod);
            if tally.is_empty() {
                owners.remove(controller);
            }
        }
        if owners.is_empty() {
            self.tallies.remove(namespace);
        }
    }

    fn objects_at(&self, keys: Option<&BTreeSet<ObjectKey>>) -> Vec<Arc<Stored>> {
        keys.into_iter()
            .flatten()
            .filter_map(|k| self.objects.get(k).cloned())
            .collect()
    }

    fn put(&mut self, stored: Arc<Stored>) -> Option<Arc<Stored>> {
        let key = ObjectKey::of(&stored.object);
        let old = self.objects.insert(key, stored.clone());
        if let Some(old) = &old {
            self.index(old, false);
        }
        self.index(&stored, true);
        old
    }

    fn remove(&mut self, key: &ObjectKey) -> Option<Arc<Stored>> {
        let old = self.objects.remove(key)?;
        self.index(&old, false);
        Some(old)
    }
}

/// See [`Cache::controller_pods`].
#[derive(Debug, Default)]
pub struct ControllerPods {
    pub tally: PodTally,
    pub orphans: Vec<Arc<Stored>>,
}

/// The shared cache. Cheap to clone.
#[derive(Clone)]
pub struct Cache {
    state: Arc<RwLock<State>>,
    changes: broadcast::Sender<Change>,
    /// The newest store revision applied (0 until the first list).
    revision: watch::Sender<u64>,
    synced: watch::Sender<bool>,
}

/// How many changes a subscriber may fall behind before it is told to look at everything.
const CHANGE_BUFFER: usize = 1 << 16;

/// Kinds the cache does not hold: Events are written often and read by nobody here.
fn cached(kind: Kind) -> bool {
    kind != Kind::Event
}

impl Default for Cache {
    fn default() -> Self {
        Self::new()
    }
}

impl Cache {
    pub fn new() -> Self {
        Self {
            state: Arc::default(),
            changes: broadcast::channel(CHANGE_BUFFER).0,
            revision: watch::channel(0).0,
            synced: watch::channel(false).0,
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Changes from now on. Subscribe before [`Cache::wait_synced`] so nothing slips between.
    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.changes.subscribe()
    }

    /// Changes some subscriber has not read yet. Each holds its object's old and new
    /// versions, so a subscriber that falls behind keeps superseded objects alive.
    pub fn changes_unread(&self) -> usize {
        self.changes.len()
    }

    pub async fn wait_synced(&self) {
        let mut rx = self.synced.subscribe();
        let _ = rx.wait_for(|s| *s).await;
    }

    pub fn is_synced(&self) -> bool {
        *self.synced.borrow()
    }

    /// Waits (at most `limit`) until the cache shows each write: the object at (at least)
    /// the written revision, or gone for a delete. False on timeout.
    pub async fn wait_written(&self, writes: &[Written], limit: Duration) -> bool {
        let mut rx = self.revision.subscribe();
        tokio::time::timeout(limit, async {
            loop {
                if self.shows(writes) {
                    return true;
                }
                if rx.changed().await.is_err() {
                    return false;
                }
            }
        })
        .await
        .unwrap_or(false)
    }

    /// True when the cache shows each write, or has gone past its revision (a later change
    /// may have replaced or deleted the object since).
    pub fn shows(&self, writes: &[Written]) -> bool {
        let past = self.revision();
        let state = self.read();
        writes.iter().all(|w| {
            past > w.revision
                || match (state.objects.get(&w.key), w.deleted) {
                    (None, true) => true,
                    (Some(s), true) => s.resource_version > w.revision,
                    (Some(s), false) => s.resource_version >= w.revision,
                    (None, false) => false,
                }
        })
    }

    pub fn revision(&self) -> u64 {
        *self.revision.borrow()
    }

    pub fn get(&self, key: &ObjectKey) -> Option<Arc<Stored>> {
        self.read().objects.get(key).cloned()
    }

    /// Objects of `kind`, in one namespace or all, in key order.
    pub fn list(&self, kind: Kind, namespace: Option<&str>) -> Vec<Arc<Stored>> {
        let start = ObjectKey::new(kind, namespace.unwrap_or(""), "");
        self.read()
            .objects
            .range(start..)
            .take_while(|(k, _)| k.kind == kind && namespace.is_none_or(|ns| k.namespace == ns))
            .map(|(_, s)| s.clone())
            .collect()
    }

    /// Every object held, in key order (the web UI's tree).
    pub fn all(&self) -> Vec<Arc<Stored>> {
        self.read().objects.values().cloned().collect()
    }

    /// Pods bound to `node`, in key order.
    pub fn pods_on(&self, node: &str) -> Vec<Arc<Stored>> {
        let state = self.read();
        state.objects_at(state.pods_by_node.get(node))
    }

    /// The names of the nodes that pods are bound to, whether or not they exist.
    pub fn nodes_with_pods(&self) -> Vec<String> {
        self.read().pods_by_node.keys().cloned().collect()
    }

    /// Objects naming `uid` among their owners.
    pub fn dependents(&self, uid: &str) -> Vec<Arc<Stored>> {
        let state = self.read();
        state.objects_at(state.dependents.get(uid))
    }

    /// What a ReplicaSet counts and adopts, read at one moment: the tally of the pods of
    /// `namespace` that `controller` (a uid) controls, and the pods there without a
    /// controller.
    pub fn controller_pods(&self, controller: &str, namespace: &str) -> ControllerPods {
        let state = self.read();
        let tally = state.tallies.get(namespace).and_then(|t| t.get(controller));
        ControllerPods {
            tally: tally.cloned().unwrap_or_default(),
            orphans: state.objects_at(state.orphans.get(namespace)),
        }
    }

    /// The pods of `namespace` that `controller` (a uid) controls or that have no
    /// controller, in key order, read at one moment.
    pub fn controlled_or_orphan_pods(&self, controller: &str, namespace: &str) -> Vec<Arc<Stored>> {
        let state = self.read();
        let mut keys: Vec<&ObjectKey> = state
            .dependents
            .get(controller)
            .into_iter()
            .flatten()
            .filter(|k| {
                let controlled = |s: &Arc<Stored>| match &s.object {
                    Object::Pod(p) => pods::controlled_by(&p.metadata, controller),
                    _ => false,
                };
                k.namespace == namespace && state.objects.get(*k).is_some_and(controlled)
            })
            .chain(state.orphans.get(namespace).into_iter().flatten())
            .collect();
        keys.sort();
        keys.into_iter()
            .filter_map(|k| state.objects.get(k).cloned())
            .collect()
    }

    /// Replaces everything with a fresh, consistent list (one swap: a reconcile running
    /// meanwhile sees the old whole view or the new one), then tells everyone to look at
    /// everything.
    fn load(&self, objects: Vec<Arc<Stored>>, revision: u64) {
        let mut state = State::default();
        for s in objects {
            state.put(s);
        }
        *self.state.write().unwrap_or_else(|p| p.into_inner()) = state;
        self.revision.send_replace(revision);
        self.synced.send_replace(true);
        let _ = self.changes.send(Change::Relisted);
    }

    /// A synced cache holding `objects` (for tests of what reads one).
    #[cfg(test)]
    pub(crate) fn holding(objects: impl IntoIterator<Item = Object>) -> Self {
        let cache = Self::new();
        let stored = objects
            .into_iter()
            .map(|object| {
                Arc::new(Stored {
                    object,
                    resource_version: 1,
                })
            })
            .collect();
        cache.load(stored, 1);
        cache
    }

    /// Applies one watched change. The object is kept as the store's watch shares it: the
    /// embedded store's read cache holds the same copy.
    fn apply(&self, event_type: WatchEventType, stored: Arc<Stored>) {
        let key = ObjectKey::of(&stored.object);
        let change = {
            let mut state = self.state.write().unwrap_or_else(|p| p.into_inner());
            match event_type {
                WatchEventType::Deleted => state.remove(&key).map(|old| Change::Object {
                    old: Some(old),
                    new: None,
                }),
                WatchEventType::Added | WatchEventType::Modified => {
                    let new = stored;
                    let old = state.put(new.clone());
                    Some(Change::Object {
                        old,
                        new: Some(new),
                    })
                }
            }
        };
        if let Some(change) = change {
            let _ = self.changes.send(change);
        }
    }

    fn advance(&self, revision: u64) {
        self.revision.send_if_modified(|r| {
            let newer = revision > *r;
            if newer {
                *r = revision;
            }
            newer
        });
    }

    /// Lists and watches the store until `stop`; relists after an expired or broken watch.
    pub async fn run(&self, store: Store, stop: CancellationToken) {
        loop {
            let outcome = tokio::select! {
                outcome = self.follow(&store) => outcome,
                _ = stop.cancelled() => return,
            };
            // Changes may be missed from here on: nobody acts until the next list.
            self.synced.send_replace(false);
            if let Err(e) = outcome {
                tracing::warn!(error = %e, "controller cache: watch ended; listing again");
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                _ = stop.cancelled() => return,
            }
        }
    }

    /// One list of everything at one revision, then the watch from there.
    async fn follow(&self, store: &Store) -> Result<(), StoreError> {
        let list = store.list_all().await?;
        let objects: Vec<Arc<Stored>> = list
            .items
            .into_iter()
            .filter(|s| cached(s.object.kind()))
            .collect();
        let mut watcher = store.watch(None, list.revision).await?;
        self.load(objects, list.revision);
        loop {
            let Some(event) = watcher.next().await else {
                return Err(StoreError::Unavailable("the store's watch ended".into()));
            };
            let event = event?;
            if cached(event.object().kind()) {
                self.apply(event.event_type, event.stored);
            }
            self.advance(event.revision);
        }
    }
}

#[cfg(test)]
mod tests;
