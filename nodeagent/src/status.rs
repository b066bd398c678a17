//! The latest status of every pod on the node, for the status stream to the control plane.
//!
//! Workers publish here whenever a pod's status changes; the reporter sends what changed since
//! it last looked, and everything again after a reconnect (the control plane may have missed
//! anything meanwhile). A removed pod leaves a tombstone that is sent like any other change.

use std::collections::HashMap;
use std::sync::Mutex;

use keel_agent_protocol::{PodEvent, PodStatusUpdate};
use tokio::sync::watch;

/// Tombstones kept for reconnecting reporters; the oldest go first beyond this.
const MAX_TOMBSTONES: usize = 4096;

#[derive(Default)]
struct Inner {
    seq: u64,
    /// uid → (sequence number of its last change, the update, whether the pod is Running).
    pods: HashMap<String, (u64, PodStatusUpdate, bool)>,
    /// Pod events not yet sent, oldest first (best effort: the oldest go beyond
    /// [`MAX_EVENTS`], as Kubernetes drops events under pressure).
    events: std::collections::VecDeque<PodEvent>,
    /// Released local volumes removed from the node, not yet reported.
    volumes_removed: std::collections::BTreeSet<String>,
}

/// Pod events kept while the control plane is not listening.
const MAX_EVENTS: usize = 1024;

pub struct StatusHub {
    inner: Mutex<Inner>,
    /// The sequence number of the latest change.
    changed: watch::Sender<u64>,
}

impl Default for StatusHub {
    fn default() -> Self {
        Self {
            inner: Mutex::default(),
            changed: watch::channel(0).0,
        }
    }
}

impl StatusHub {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn publish(&self, update: PodStatusUpdate, running: bool) {
        let seq = {
            let mut inner = self.lock();
            inner.seq += 1;
            let seq = inner.seq;
            inner
                .pods
                .insert(update.uid.clone(), (seq, update, running));
            seq
        };
        self.changed.send_replace(seq);
    }

    pub fn publish_deleted(&self, uid: &str, namespace: &str, name: &str) {
        self.publish(
            PodStatusUpdate {
                namespace: namespace.to_string(),
                name: name.to_string(),
                uid: uid.to_string(),
                status: Vec::new(),
                deleted: true,
            },
            false,
        );
        let mut inner = self.lock();
        let mut tombstones: Vec<(u64, String)> = inner
            .pods
            .iter()
            .filter(|(_, (_, u, _))| u.deleted)
            .map(|(uid, (seq, _, _))| (*seq, uid.clone()))
            .collect();
        if tombstones.len() > MAX_TOMBSTONES {
            tombstones.sort();
            let excess = tombstones.len() - MAX_TOMBSTONES;
            for (_, uid) in tombstones.into_iter().take(excess) {
                inner.pods.remove(&uid);
            }
        }
    }

    /// Updates after sequence number `since` (0: all), and the sequence number to ask from
    /// next time.
    pub fn changes_since(&self, since: u64) -> (Vec<PodStatusUpdate>, u64) {
        let inner = self.lock();
        let mut out: Vec<(u64, PodStatusUpdate)> = inner
            .pods
            .values()
            .filter(|(seq, _, _)| *seq > since)
            .map(|(seq, u, _)| (*seq, u.clone()))
            .collect();
        out.sort_by_key(|(seq, _)| *seq);
        (out.into_iter().map(|(_, u)| u).collect(), inner.seq)
    }

    /// The latest status of one pod (`None` once it is gone).
    pub fn get(&self, uid: &str) -> Option<PodStatusUpdate> {
        self.lock()
            .pods
            .get(uid)
            .filter(|(_, u, _)| !u.deleted)
            .map(|(_, u, _)| u.clone())
    }

    pub fn running_pods(&self) -> usize {
        self.lock().pods.values().filter(|(_, _, r)| *r).count()
    }

    /// Queues a pod event for the control plane.
    pub fn record_event(&self, event: PodEvent) {
        {
            let mut inner = self.lock();
            if inner.events.len() >= MAX_EVENTS {
                inner.events.pop_front();
            }
            inner.events.push_back(event);
        }
        self.changed.send_modify(|_| {});
    }

    /// The queued pod events, oldest first; they are the caller's to send now.
    pub fn take_events(&self) -> Vec<PodEvent> {
        self.lock().events.drain(..).collect()
    }

    /// Queues the report that a released local volume's directory is gone.
    pub fn record_volume_removed(&self, handle: &str) {
        self.lock().volumes_removed.insert(handle.to_string());
        self.changed.send_modify(|_| {});
    }

    /// The removed volumes to report now.
    pub fn take_volumes_removed(&self) -> Vec<String> {
        std::mem::take(&mut self.lock().volumes_removed)
            .into_iter()
            .collect()
    }

    /// Wakes on every change.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }
}
