//! The leader's parts, run for each term this server leads and stopped when it ends: git
//! sync and apply (with address allocation), the controllers and scheduler, the node
//! registry and lifecycle, node sync and the event writer. Each term's parts write through
//! a store fenced with that term, so whatever of them still runs after the term ended (a
//! process paused past its lease) has its writes refused.

use std::sync::Arc;
use std::time::Duration;

use keel_store::Store;
use tokio::sync::{Mutex, mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::{Config, SHUTDOWN_GRACE, start_cluster_state, start_events, start_sync};
use crate::cache::Cache;
use crate::leader::{Leadership, Role};
use crate::metrics::Metrics;
use crate::nodes::NodeRegistry;
use crate::nodes::dial::AgentDialer;
use crate::nodes::grpc::Serving;
use crate::source::GitSource;
use crate::sync::{Settings, StatusHandle, Syncer};
use crate::tasks::Tasks;

/// What every term's parts are made from.
pub(super) struct LeaderParts {
    /// This server's name (its advertised HTTP address).
    pub me: String,
    /// Unfenced; each term fences its own handle.
    pub store: Store,
    pub cache: Cache,
    pub config: Config,
    pub metrics: Arc<Metrics>,
    pub dialer: AgentDialer,
    pub status: StatusHandle,
    pub source: Arc<GitSource>,
    /// The sync loop's nudges (webhook, repository watch); the term's loop holds the lock.
    pub triggers: Arc<Mutex<mpsc::Receiver<()>>>,
    /// What the agents' endpoint answers with.
    pub serving: watch::Sender<Serving>,
}

/// Runs a term's parts whenever this server leads, until `tasks` stop.
pub(super) async fn run(parts: LeaderParts, leadership: Leadership, tasks: Tasks) {
    let mut roles = leadership.subscribe();
    let stop = tasks.stop();
    loop {
        let role = loop {
            let role = roles.borrow_and_update().clone();
            if role.leads() {
                break role;
            }
            parts.serving.send_replace(Serving::Follower {
                leader: leadership.other_leader(),
            });
            tokio::select! {
                changed = roles.changed() => if changed.is_err() { return },
                _ = stop.cancelled() => return,
            }
        };
        let Some(fence) = role.fence() else { continue };
        let term = tasks.child();
        let store = parts.store.fenced(fence);
        let started = tokio::select! {
            r = start_term(&parts, &term, store) => r,
            _ = role_ends(&mut roles, &role) => false,
            _ = stop.cancelled() => false,
        };
        if started {
            tokio::select! {
                _ = role_ends(&mut roles, &role) => {}
                _ = stop.cancelled() => {}
            }
        }
        parts
            .serving
            .send_replace(Serving::Follower { leader: None });
        if matches!(role, Role::Leader { .. }) {
            tracing::info!("stopping the leader's parts");
        }
        term.shutdown(SHUTDOWN_GRACE).await;
        if stop.is_cancelled() {
            return;
        }
    }
}

/// Returns when the role is no longer `role`; never when it cannot change any more (the
/// sole server's role has no sender: it leads for good).
async fn role_ends(roles: &mut watch::Receiver<Role>, role: &Role) {
    loop {
        if *roles.borrow_and_update() != *role {
            return;
        }
        if roles.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Starts one term's parts on `term`, writing through `store` (waiting until the nodes can
/// be read); true once they run.
async fn start_term(parts: &LeaderParts, term: &Tasks, store: Store) -> bool {
    let registry = loop {
        match NodeRegistry::new(store.clone(), parts.config.node_grace).await {
            Ok(r) => break r,
            Err(e) => {
                tracing::warn!(error = %e, "leading, but cannot read the nodes from the store; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    };
    // Nodes that joined before certificate bindings existed get one now, before any of
    // them registers with this leader.
    match crate::auth::node_bindings::NodeBindings::new(store.clone())
        .adopt_existing()
        .await
    {
        Ok(0) => {}
        Ok(n) => tracing::info!(
            nodes = n,
            "bound nodes that joined before certificate bindings existed"
        ),
        Err(e) => {
            tracing::warn!(error = %e, "cannot bind the nodes that joined before certificate bindings existed")
        }
    }
    let events = start_events(term, &store, &parts.me);
    let registry = registry
        .with_events(events.clone())
        .with_heartbeat_counter(parts.metrics.heartbeats.clone())
        .with_pod_network(parts.config.pod_network);
    let stop: CancellationToken = term.stop();
    parts.serving.send_replace(Serving::Leader {
        registry: registry.clone(),
        term: stop.clone(),
    });
    term.spawn(crate::nodes::sync::run(
        parts.cache.clone(),
        parts.dialer.clone(),
        registry.clone(),
        stop.clone(),
    ));
    {
        let stop = stop.clone();
        term.spawn(async move { registry.run_lifecycle(stop).await });
    }
    start_cluster_state(
        term,
        &store,
        &parts.cache,
        &parts.config,
        &parts.metrics,
        events,
        parts.dialer.clone(),
    );
    let syncer = Syncer {
        store,
        source: parts.source.clone(),
        status: parts.status.clone(),
        metrics: parts.metrics.clone(),
        settings: Settings {
            poll_interval: parts.config.poll_interval,
            resync_interval: parts.config.resync_interval,
            service_network: parts.config.service_network.clone(),
        },
    };
    start_sync(
        term,
        syncer,
        parts.triggers.clone(),
        parts.cache.clone(),
        parts.config.wait_for_nodes,
    );
    true
}
