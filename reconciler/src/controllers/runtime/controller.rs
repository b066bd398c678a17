//! The contract between a controller and the runtime.

use std::fmt::Debug;
use std::future::Future;
use std::hash::Hash;
use std::time::Duration;

use keel_store::{ObjectKey, StoreError};

use super::Ctx;
use crate::cache::{Cache, Change};

/// What a reconcile asks of the runner when it succeeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Nothing until something changes (or the periodic resync).
    Done,
    /// Look again after this long (a pod becoming available after minReadySeconds, say).
    RequeueAfter(Duration),
}

/// Why a reconcile failed; the runtime's policy follows from which.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// The object cannot be reconciled as it is (a spec validation did not catch, a name
    /// another object holds): retrying changes nothing until it, or what it names, changes.
    /// `reason` is the Event's and the condition's reason (`InvalidSpec`, `NameConflict`).
    #[error("{message}")]
    Invalid {
        reason: &'static str,
        message: String,
    },
    /// The store failed or refused: retried with backoff (a store refusal of the object
    /// itself, `StoreError::Invalid`, is permanent).
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ReconcileError {
    pub fn invalid(reason: &'static str, message: impl Into<String>) -> ReconcileError {
        ReconcileError::Invalid {
            reason,
            message: message.into(),
        }
    }

    /// Retrying will not help until something changes.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            ReconcileError::Invalid { .. } | ReconcileError::Store(StoreError::Invalid(_))
        )
    }

    /// The reason reported with a permanent error.
    pub fn reason(&self) -> &'static str {
        match self {
            ReconcileError::Invalid { reason, .. } => reason,
            ReconcileError::Store(_) => "StoreError",
        }
    }
}

pub type Result<T, E = ReconcileError> = std::result::Result<T, E>;

/// A write's outcome where losing a race is fine: the object changed, appeared or went
/// meanwhile, and that change queues this key again.
pub trait Raced<T> {
    /// `Some` when written, `None` when the race was lost.
    fn or_raced(self) -> Result<Option<T>>;
}

impl<T> Raced<T> for Result<T> {
    fn or_raced(self) -> Result<Option<T>> {
        match self {
            Ok(v) => Ok(Some(v)),
            Err(ReconcileError::Store(
                StoreError::Conflict { .. }
                | StoreError::NotFound(_)
                | StoreError::AlreadyExists(_),
            )) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

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

/// A level-triggered controller.
pub trait Controller: Send + Sync + 'static {
    type Key: Clone + Eq + Hash + Debug + Send + Sync + 'static;
    /// For logs: `replicaset`, `deployment`, …
    const NAME: &'static str;
    /// Who its Events say they are from, as Kubernetes names its controllers.
    const COMPONENT: &'static str;

    /// Every key there is to reconcile (at start, on resync, after missed changes).
    fn all_keys(&self, cache: &Cache) -> Vec<Self::Key>;

    /// The keys whose state `change` may affect.
    fn keys_for(&self, change: &Change, cache: &Cache, out: &mut Vec<Self::Key>);

    /// The object `key` stands for: where a permanent error is reported.
    fn subject(&self, key: &Self::Key) -> Option<ObjectKey>;

    /// Makes the world match the declared state of `key`, from the current state.
    fn reconcile(&self, key: &Self::Key, ctx: &Ctx) -> impl Future<Output = Result<Action>> + Send;
}
