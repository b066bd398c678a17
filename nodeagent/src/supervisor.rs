//! Converges the node to its desired set: one worker per wanted pod, started, updated or told
//! to terminate as the sets arrive.
//!
//! At start it lists the containers an earlier agent process left (by this node's label) and
//! holds them until the first desired set arrives: wanted pods' workers adopt theirs, the rest
//! are stopped. Until that list succeeds no set is accepted, because "not listed yet" must
//! never be read as "nothing there" (which would start duplicates of running pods).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;

use crate::desired::{DesiredPod, DesiredSet};
use crate::pod::worker::{self, Command, PodContext};
use crate::runtime::{ContainerInfo, RuntimeEvent};

struct Worker {
    tx: mpsc::UnboundedSender<Command>,
    /// What the worker was last given (`None` for an orphan cleanup).
    given: Option<Arc<DesiredPod>>,
    terminating: bool,
    /// The pod's `namespace/name`: a pod of the same name does not start while this one
    /// stops (a StatefulSet's pod made again is never beside its predecessor).
    key: String,
}

/// Whether `new` asks anything of the node that `old` did not: another spec, or other
/// ConfigMap or Secret data (mounted files are refreshed).
fn changed_for_node(old: &DesiredPod, new: &DesiredPod) -> bool {
    old.hash != new.hash
        || (!Arc::ptr_eq(&old.config_maps, &new.config_maps) && old.config_maps != new.config_maps)
        || (!Arc::ptr_eq(&old.secrets, &new.secrets) && old.secrets != new.secrets)
        || (!Arc::ptr_eq(&old.claims, &new.claims) && old.claims != new.claims)
}

#[derive(Default)]
struct State {
    applied_generation: u64,
    /// Sets older than this are ignored: the applied generation, unless the control plane
    /// said on registration that its count starts lower.
    floor: u64,
    /// The latest desired set, by uid.
    desired: HashMap<String, Arc<DesiredPod>>,
    workers: HashMap<String, Worker>,
    /// Containers found at start, by pod uid, until the first set takes them.
    found: Option<HashMap<String, Vec<ContainerInfo>>>,
    /// Whether a set was applied since start.
    synced: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    #[error(
        "the agent is still listing the containers it already runs (container engine: {0}); retry shortly"
    )]
    NotReady(String),
}

#[derive(Clone)]
pub struct Supervisor {
    ctx: Arc<PodContext>,
    state: Arc<Mutex<State>>,
    exited: mpsc::UnboundedSender<String>,
    /// The last engine error while listing at start, for [`ApplyError::NotReady`].
    listing: Arc<Mutex<String>>,
}

impl Supervisor {
    /// Starts the supervisor: the initial listing (retried until the engine answers), the
    /// routing of runtime events to workers, and the bookkeeping of finished workers.
    pub fn start(ctx: Arc<PodContext>) -> Self {
        let (exited_tx, mut exited_rx) = mpsc::unbounded_channel::<String>();
        let sup = Supervisor {
            ctx: ctx.clone(),
            state: Arc::default(),
            exited: exited_tx,
            listing: Arc::new(Mutex::new("not listed yet".to_string())),
        };
        let s = sup.clone();
        tokio::spawn(async move {
            let mut delay = Duration::from_millis(200);
            loop {
                match s.ctx.runtime.list().await {
                    Ok(found) => {
                        let mut by_pod: HashMap<String, Vec<ContainerInfo>> = HashMap::new();
                        for c in found {
                            by_pod.entry(c.pod_uid.clone()).or_default().push(c);
                        }
                        tracing::info!(pods = by_pod.len(), "found this node's existing pods");
                        s.lock().found = Some(by_pod);
                        break;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot list this node's containers; retrying");
                        *s.listing.lock().unwrap_or_else(|p| p.into_inner()) = e.to_string();
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(Duration::from_secs(5));
                    }
                }
            }
        });
        let s = sup.clone();
        let mut events = ctx.runtime.events();
        tokio::spawn(async move {
            loop {
                match events.recv().await {
                    Ok(RuntimeEvent::Pod(uid)) => s.send(&uid, || Command::Look),
                    Ok(RuntimeEvent::Resync)
                    | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        s.send_all(|| Command::Look)
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                }
            }
        });
        let s = sup.clone();
        tokio::spawn(async move {
            while let Some(uid) = exited_rx.recv().await {
                let mut st = s.lock();
                st.workers.remove(&uid);
                // Wanted again meanwhile (a replaced pod with the same uid): start it anew.
                s.reconcile(&mut st);
            }
        });
        sup
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn send(&self, uid: &str, cmd: impl Fn() -> Command) {
        if let Some(w) = self.lock().workers.get(uid) {
            let _ = w.tx.send(cmd());
        }
    }

    fn send_all(&self, cmd: impl Fn() -> Command) {
        for w in self.lock().workers.values() {
            let _ = w.tx.send(cmd());
        }
    }

    /// Applies a desired set; returns the generation the node now converges to (the previous
    /// one when `set` is older, which is then ignored).
    pub fn apply(&self, set: DesiredSet) -> Result<u64, ApplyError> {
        let mut st = self.lock();
        if st.found.is_none() && !st.synced {
            return Err(ApplyError::NotReady(
                self.listing
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone(),
            ));
        }
        if st.synced && set.generation < st.floor {
            tracing::debug!(
                stale = set.generation,
                applied = st.applied_generation,
                "ignoring a desired set older than the one applied"
            );
            return Ok(st.applied_generation);
        }
        st.applied_generation = set.generation;
        st.floor = set.generation;
        let released = set.released_volumes;
        let (deleting, desired): (Vec<_>, Vec<_>) =
            set.pods.into_iter().partition(|p| p.is_deleting());
        st.desired = desired.into_iter().map(|p| (p.uid.clone(), p)).collect();
        let first = !st.synced;
        st.synced = true;
        if first && let Some(found) = st.found.take() {
            for (uid, containers) in found {
                if !st.desired.contains_key(&uid) {
                    let key = containers
                        .first()
                        .map(|c| format!("{}/{}", c.pod_namespace, c.pod_name))
                        .unwrap_or_default();
                    worker::spawn_orphan_cleanup(
                        self.ctx.clone(),
                        uid.clone(),
                        containers,
                        self.exited.clone(),
                    );
                    // Counted as a terminating worker until it reports back.
                    let (tx, _) = mpsc::unbounded_channel();
                    let w = Worker {
                        tx,
                        given: None,
                        terminating: true,
                        key,
                    };
                    st.workers.insert(uid, w);
                } else {
                    let desired = st.desired[&uid].clone();
                    let tx = worker::spawn(
                        self.ctx.clone(),
                        desired.clone(),
                        containers,
                        self.exited.clone(),
                    );
                    let w = Worker {
                        key: desired.key(),
                        tx,
                        given: Some(desired),
                        terminating: false,
                    };
                    st.workers.insert(uid, w);
                }
            }
        }
        self.reconcile(&mut st);
        // A pod being deleted gracefully is gone from the store once this node says it is
        // stopped: its worker says so when it ends; with no worker (it ended before, or the
        // agent restarted since) nothing of it runs here, so say it now.
        for pod in deleting {
            let running = st.workers.contains_key(&pod.uid)
                || st.found.as_ref().is_some_and(|f| f.contains_key(&pod.uid));
            if !running {
                self.ctx
                    .hub
                    .publish_deleted(&pod.uid, &pod.namespace, &pod.name);
            }
        }
        self.remove_released(&st, released);
        Ok(st.applied_generation)
    }

    /// Removes the released local volumes no pod here still uses, off the caller's thread,
    /// and reports each one gone.
    fn remove_released(&self, st: &State, released: Vec<String>) {
        let in_use = |handle: &String| {
            let uses = |p: &DesiredPod| p.claims.values().any(|h| h == handle);
            st.desired.values().any(|p| uses(p))
                || st
                    .workers
                    .values()
                    .any(|w| w.given.as_ref().is_some_and(|p| uses(p)))
        };
        let free: Vec<String> = released.into_iter().filter(|h| !in_use(h)).collect();
        if free.is_empty() {
            return;
        }
        let ctx = self.ctx.clone();
        tokio::task::spawn_blocking(move || {
            for handle in free {
                if crate::pod::local_volumes::remove(&ctx.data_dir, &handle) {
                    ctx.hub.record_volume_removed(&handle);
                }
            }
        });
    }

    fn reconcile(&self, st: &mut State) {
        if !st.synced {
            return;
        }
        let State {
            desired, workers, ..
        } = st;
        for (uid, w) in workers.iter_mut() {
            match desired.get(uid) {
                Some(d)
                    if !w.terminating
                        && w.given.as_ref().is_none_or(|g| changed_for_node(g, d)) =>
                {
                    w.given = Some(d.clone());
                    let _ = w.tx.send(Command::Update(d.clone()));
                }
                None if !w.terminating => {
                    w.terminating = true;
                    let _ = w.tx.send(Command::Terminate);
                }
                _ => {}
            }
        }
        for (uid, d) in desired.iter() {
            let key = d.key();
            // Its predecessor of the same name still stopping: it starts when that one has
            // ended (the exit reconciles again).
            let predecessor = workers.values().any(|w| w.terminating && w.key == key);
            if !workers.contains_key(uid) && !predecessor {
                let tx =
                    worker::spawn(self.ctx.clone(), d.clone(), Vec::new(), self.exited.clone());
                let w = Worker {
                    tx,
                    given: Some(d.clone()),
                    terminating: false,
                    key,
                };
                workers.insert(uid.clone(), w);
            }
        }
    }

    /// The control plane, on (re)registration, said which generation it sends next. If it
    /// restarted its count is lower than ours: sets from `next` on are accepted again, while
    /// anything older (a set delayed in flight) is still ignored.
    pub fn lower_generation_floor(&self, next: u64) {
        let mut st = self.lock();
        if next > 0 && next < st.floor {
            st.floor = next;
        }
    }

    pub fn applied_generation(&self) -> u64 {
        self.lock().applied_generation
    }

    /// The uid of the wanted pod `namespace/name`.
    pub fn pod_uid(&self, namespace: &str, name: &str) -> Option<String> {
        self.lock()
            .desired
            .values()
            .find(|p| p.namespace == namespace && p.name == name)
            .map(|p| p.uid.clone())
    }

    /// The container names of the wanted pod with `uid`: its app containers, and its init
    /// containers (whose logs are what a stuck pod is read by).
    pub fn container_names(&self, uid: &str) -> (Vec<String>, Vec<String>) {
        self.lock()
            .desired
            .get(uid)
            .map(|p| {
                let names = |field: &str| {
                    p.pod
                        .spec
                        .all_containers()
                        .filter(|(f, _, _)| *f == field)
                        .map(|(_, _, c)| c.name.clone())
                        .collect()
                };
                (names("containers"), names("initContainers"))
            })
            .unwrap_or_default()
    }
}
