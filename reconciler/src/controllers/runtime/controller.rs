//! The contract between a controller and the runtime.

use std::fmt::Debug;
use std::future::Future;
use std::hash::Hash;
use std::time::Duration;

use keel_store::ObjectKey;

use super::ctx::Ctx;
use super::error::Result;
use crate::cache::{Cache, Change};

/// What a reconcile asks of the runner when it succeeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Nothing until something changes (or the periodic resync).
    Done,
    /// Look again after this long (a pod becoming available after minReadySeconds, say).
    RequeueAfter(Duration),
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

    /// How long `key`, queued for `change`, may wait for its pass, so that a burst of such
    /// changes is one pass (the status reports of a 100,000-pod ReplicaSet's pods, each
    /// pass of which writes the owner's status). None by default.
    fn settle(&self, _change: &Change, _key: &Self::Key, _cache: &Cache) -> Duration {
        Duration::ZERO
    }

    /// The object `key` stands for: where a permanent error is reported.
    fn subject(&self, key: &Self::Key) -> Option<ObjectKey>;

    /// Makes the world match the declared state of `key`, from the current state.
    fn reconcile(&self, key: &Self::Key, ctx: &Ctx) -> impl Future<Output = Result<Action>> + Send;
}
