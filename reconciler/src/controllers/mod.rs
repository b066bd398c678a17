//! Controllers: level-triggered loops that make derived state follow declared state.
//!
//! Each controller is `reconcile(key, ctx) -> Result<Action>` over the current state in the
//! shared [`cache::Cache`], never over the event that queued the key. The [`runner`] feeds a
//! [`queue::WorkQueue`] from cache changes and a periodic resync and never reconciles one key
//! twice at once. Writes go to the store with the resourceVersion read (a conflict is a retry,
//! never a blind overwrite); a controller then waits for the cache to show its writes, so its
//! next pass never acts on a state older than its own last one (no duplicate pods).
//!
//! # Layout
//! - [`cache`]: the shared view of the store; [`queue`], [`runner`]: the machinery.
//! - [`replicas`]: ReplicaSet and ReplicationController; [`deployment`]: Deployments;
//!   [`daemonset`]: DaemonSets; [`job`]: Jobs.
//! - [`endpoints`]: Endpoints for Services with selectors.
//! - [`scheduling`]: binds pending pods with [`keel_scheduler`].
//! - [`gc`]: deletes objects whose owners are gone.
//! - [`eviction`]: deletes the pods of nodes that stayed not ready.
//! - [`pods`]: what several controllers ask of a pod (active, ready, available, owner).

pub mod daemonset;
pub mod deployment;
pub mod endpoints;
pub mod eviction;
pub mod gc;
pub mod job;
pub mod pods;
pub mod queue;
pub mod replicas;
pub mod runner;
pub mod scheduling;

use std::fmt::Debug;
use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use keel_schema::{Kind, Object};

use crate::cache::{Cache, Change, Written};
use keel_store::{ObjectKey, Store, StoreError, Stored};

/// What a reconcile asks of the runner when it succeeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Nothing until something changes (or the periodic resync).
    Done,
    /// Look again after this long (a pod becoming available after minReadySeconds, say).
    RequeueAfter(Duration),
}

#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Invalid(String),
}

pub type Result<T, E = ControllerError> = std::result::Result<T, E>;

/// Settings shared by the controllers (from `keel server`'s flags).
#[derive(Debug, Clone)]
pub struct Config {
    /// How often every key is reconciled even without a change.
    pub resync: Duration,
    /// How long a node may stay not ready before its pods are deleted.
    pub pod_eviction_timeout: Duration,
    /// Where the scheduler records creation-to-binding times (`/metrics`).
    pub scheduling_seconds: Option<prometheus_client::metrics::histogram::Histogram>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            resync: Duration::from_secs(30),
            pod_eviction_timeout: Duration::from_secs(20),
            scheduling_seconds: None,
        }
    }
}

/// What every reconcile gets: the store to write, the cache to read, the settings.
pub struct Ctx {
    pub store: Store,
    pub cache: Cache,
    pub config: Config,
    /// Writes the cache has not shown yet (see [`runner`]).
    pub expectations: runner::Expectations,
    pub events: crate::events::Recorder,
}

impl Ctx {
    /// Creates `object`; the write to wait for.
    pub async fn create(&self, object: Object) -> Result<Written> {
        let stored = self.store.create(object).await?;
        Ok(written(&stored, false))
    }

    /// Writes `object` over the version read.
    pub async fn update(&self, object: Object, read: u64) -> Result<Written> {
        let stored = self.store.update(object, read).await?;
        Ok(written(&stored, false))
    }

    /// Deletes what was read at `read`; already gone is fine.
    pub async fn delete(&self, key: &ObjectKey, read: u64) -> Result<Option<Written>> {
        match self.store.delete(key, Some(read)).await {
            Ok(stored) => Ok(Some(written(&stored, true))),
            Err(StoreError::NotFound(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

fn written(stored: &Stored, deleted: bool) -> Written {
    Written {
        key: ObjectKey::of(&stored.object),
        revision: stored.resource_version,
        deleted,
    }
}

/// A level-triggered controller.
pub trait Controller: Send + Sync + 'static {
    type Key: Clone + Eq + Hash + Debug + Send + Sync + 'static;
    /// For logs: `replicaset`, `deployment`, …
    const NAME: &'static str;

    /// Every key there is to reconcile (at start, on resync, after missed changes).
    fn all_keys(&self, ctx: &Ctx) -> Vec<Self::Key>;

    /// The keys whose state `change` may affect.
    fn keys_for(&self, change: &Change, ctx: &Ctx, out: &mut Vec<Self::Key>);

    /// Makes the world match the declared state of `key`, from the current state.
    fn reconcile(&self, key: &Self::Key, ctx: &Ctx) -> impl Future<Output = Result<Action>> + Send;
}

/// The keys of a controller of `kind` whose dependents are `dependent`s: a changed `kind`
/// object itself, the controller a changed dependent names, and everything after a relist.
pub fn owner_keys(
    change: &Change,
    kind: Kind,
    dependent: Kind,
    ctx: &Ctx,
    out: &mut Vec<ObjectKey>,
) {
    match change.kind() {
        Some(k) if k == kind => out.extend(change.objects().map(ObjectKey::of).take(1)),
        Some(k) if k == dependent => {
            for o in change.objects() {
                if let Some(r) = pods::controller_of(o.meta())
                    && kind == r.kind.as_str()
                {
                    out.push(ObjectKey::new(kind, o.namespace(), &r.name));
                }
            }
        }
        Some(_) => {}
        None => out.extend(keys_of_kind(ctx, kind)),
    }
}

/// Every object key of `kind` in the cache.
pub fn keys_of_kind(ctx: &Ctx, kind: Kind) -> Vec<ObjectKey> {
    ctx.cache
        .list(kind, None)
        .iter()
        .map(|s| ObjectKey::of(&s.object))
        .collect()
}

/// Starts every controller on `tasks`; they run until the tasks' stop.
pub fn start(
    tasks: &crate::tasks::Tasks,
    store: Store,
    cache: Cache,
    config: Config,
    events: crate::events::Recorder,
) {
    let ctx = Arc::new(Ctx {
        store,
        cache,
        config,
        expectations: Default::default(),
        events,
    });
    let stop = tasks.stop();
    tasks.spawn(runner::run(
        Arc::new(replicas::ReplicaController),
        ctx.clone(),
        4,
        stop.clone(),
    ));
    tasks.spawn(runner::run(
        Arc::new(deployment::DeploymentController),
        ctx.clone(),
        2,
        stop.clone(),
    ));
    tasks.spawn(runner::run(
        Arc::new(daemonset::DaemonSetController),
        ctx.clone(),
        1,
        stop.clone(),
    ));
    tasks.spawn(runner::run(
        Arc::new(job::JobController),
        ctx.clone(),
        2,
        stop.clone(),
    ));
    tasks.spawn(runner::run(
        Arc::new(endpoints::EndpointsController),
        ctx.clone(),
        2,
        stop.clone(),
    ));
    tasks.spawn(runner::run(
        Arc::new(gc::GarbageCollector),
        ctx.clone(),
        2,
        stop.clone(),
    ));
    tasks.spawn(runner::run(
        Arc::new(eviction::EvictionController),
        ctx.clone(),
        1,
        stop.clone(),
    ));
    tasks.spawn(runner::run(
        Arc::new(scheduling::SchedulingController::default()),
        ctx,
        scheduling::WORKERS,
        stop,
    ));
}
