//! The control plane as one value: [`ControlPlane::start`] opens what it needs and starts
//! every part; [`ControlPlane::failed`] says when a part it cannot run without stopped;
//! [`ControlPlane::shutdown`] stops them all and waits for them.
//!
//! The parts every server runs: the HTTP API, the agents' gRPC API, the controllers' cache,
//! certificate renewal and the leader election. The parts only the leader runs, one set per
//! term ([`leading`]): the controllers and scheduler, node sync, the node lifecycle, the event
//! writer, and the git sync loop (held back until enough nodes are ready, when asked).
//!
//! # Layout
//! - this file: starting and stopping the parts; [`config`]: what it is told;
//!   [`open`]: what it opens first (store, repository, identity, listeners).

mod config;
mod leading;
mod open;

pub use config::Config;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::auth::pki::ControlPlanePki;
use crate::auth::stored_tokens::StoredTokens;
use crate::cache::Cache;
use crate::events::Recorder;
use crate::leader::{Leadership, Role};
use crate::metrics::Metrics;
use crate::nodes::dial::AgentDialer;
use crate::nodes::grpc::Serving;
use crate::sync::{StatusHandle, Syncer};
use crate::tasks::{Failures, Tasks};

/// How long a shutdown waits for in-flight work (reconciles, applies, requests).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// A running control plane.
pub struct ControlPlane {
    tasks: Tasks,
    failures: Failures,
    /// Where the HTTP API and the agents' API listen (the ports a `:0` chose).
    pub http_address: SocketAddr,
    /// Where the API listens over HTTPS (`--tls-listen`).
    pub https_address: Option<SocketAddr>,
    pub agent_address: SocketAddr,
    /// Kept for the control plane's life: dropping it stops watching the repository.
    _watcher: Option<notify::RecommendedWatcher>,
}

impl ControlPlane {
    /// Opens the store, the repository and the listeners, and starts every part.
    pub async fn start(config: Config) -> anyhow::Result<ControlPlane> {
        config.leader.check().map_err(|e| anyhow::anyhow!(e))?;
        let opened = open::open(&config).await?;
        let (tasks, failures) = Tasks::new();
        let http_address = opened.http.local_addr()?;
        let agent_address = opened.agents.local_addr()?;
        let me = config
            .advertise_address
            .clone()
            .unwrap_or_else(|| advertised(http_address));
        let source = Arc::new(opened.source);
        let status = StatusHandle::new(source.display().to_string(), source.branch())
            .with_notifier(crate::notify::Notifier::with_retry_delay(
                config.notify_secrets_dir.clone(),
                config.notify_retry_delay,
            ));
        let (trigger, triggers) = mpsc::channel(16);
        let watcher = match source.git_dir() {
            Some(dir) => Some(
                crate::sync::notify::watch_git_dir(&dir, trigger.clone())
                    .map_err(|e| anyhow::anyhow!("cannot watch the repository: {e}"))?,
            ),
            None => None,
        };
        let metrics = Arc::new(Metrics::default());
        let leadership = start_election(&tasks, &opened.store, &me, &config, &metrics);
        let cache = Cache::new();
        let dialer = AgentDialer::new(opened.pki.clone());
        let state = crate::http::AppState {
            store: opened.store.clone(),
            status: status.clone(),
            metrics: metrics.clone(),
            cache: cache.clone(),
            trigger,
            webhook_secret: config.webhook_secret.clone().map(Arc::new),
            service_network: config.service_network.clone(),
            dialer: dialer.clone(),
            api_token: opened.api_token.clone(),
            anonymous_read: config.anonymous_read,
            join_tokens: opened.join_tokens.clone(),
            pki: opened.pki.clone(),
            view_tokens: Arc::new(crate::auth::stored_tokens::StoredTokens::view(
                opened.store.clone(),
            )),
            events: start_events(&tasks, &opened.store, &me),
            pages: Default::default(),
            leadership: leadership.clone(),
            source: Some(source.clone()),
            ui: Arc::default(),
        };
        let https = match opened.https {
            Some(listener) => {
                let Some(pki) = &opened.pki else {
                    anyhow::bail!("--tls-listen needs the cluster CA, which --insecure turns off");
                };
                let names = tls_names(&config, &listener.local_addr()?, &me);
                let tls = pki.api_server_config(&names)?;
                tracing::info!(listen = %listener.local_addr()?, names = ?names, "serving the API over HTTPS");
                Some((listener, tls))
            }
            None => None,
        };
        let https_address = match &https {
            Some((listener, _)) => Some(listener.local_addr()?),
            None => None,
        };
        start_http(&tasks, opened.http, https, state);
        let (serving, serving_rx) = watch::channel(Serving::Follower { leader: None });
        let pki = (opened.pki.clone(), opened.join_tokens.clone());
        start_agents_api(&tasks, opened.agents, serving_rx, pki);
        {
            let (cache, store, stop) = (cache.clone(), opened.store.clone(), tasks.stop());
            tasks.spawn(async move { cache.run(store, stop).await });
        }
        let branch = if source.is_remote() && config.branch.is_none() {
            "the remote's HEAD branch".to_string()
        } else {
            source.branch()
        };
        tracing::info!(listen = %http_address, server = %me, repo = %source.display(), branch = %branch, "keel server started");
        let parts = leading::LeaderParts {
            me,
            store: opened.store,
            cache,
            config,
            metrics,
            dialer,
            status,
            source,
            triggers: Arc::new(tokio::sync::Mutex::new(triggers)),
            serving,
        };
        tasks.spawn(leading::run(parts, leadership, tasks.clone()));
        Ok(ControlPlane {
            tasks,
            failures,
            http_address,
            https_address,
            agent_address,
            _watcher: watcher,
        })
    }

    /// Waits until a part the control plane cannot run without stopped, and says which and
    /// why; never returns while all is well.
    pub async fn failed(&mut self) -> String {
        self.failures.next().await
    }

    /// Stops every part: no new work starts, in-flight reconciles and applies finish, open
    /// API streams end; waits for all of them (at most 30 s).
    pub async fn shutdown(self) {
        tracing::info!("shutting down");
        if self.tasks.shutdown(SHUTDOWN_GRACE).await {
            tracing::info!("stopped");
        }
    }
}

/// The names the API's HTTPS certificate holds: loopback, this machine's name, the address
/// listened at (when not a wildcard), the advertised host, and `--tls-san`.
fn tls_names(config: &Config, listening: &SocketAddr, me: &str) -> Vec<String> {
    let mut names: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
    if let Ok(host) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
        names.push(host.trim().to_string());
    }
    if !listening.ip().is_unspecified() {
        names.push(listening.ip().to_string());
    }
    let advertised = me.rsplit_once(':').map_or(me, |(host, _)| host);
    names.push(advertised.trim_matches(['[', ']']).to_string());
    names.extend(config.tls_names.iter().cloned());
    names.retain(|n| !n.is_empty());
    let mut seen = std::collections::HashSet::new();
    names.retain(|n| seen.insert(n.clone()));
    names
}

/// The event recorder, and its writer task.
fn start_events(tasks: &Tasks, store: &keel_store::Store, me: &str) -> Recorder {
    let (events, writer) = Recorder::new(store.clone(), tasks.stop());
    tasks.spawn(writer);
    events.with_instance(me)
}

/// The HTTP API, and the same API over HTTPS when `--tls-listen` gave a listener.
fn start_http(
    tasks: &Tasks,
    listener: tokio::net::TcpListener,
    https: Option<(tokio::net::TcpListener, Arc<rustls::ServerConfig>)>,
    state: crate::http::AppState,
) {
    let router = crate::http::router(state);
    if let Some((listener, tls)) = https {
        let (stop, router) = (tasks.stop(), router.clone());
        tasks.spawn_critical("the HTTPS API", async move {
            crate::http::serve::serve(listener, router, Some(tls), stop).await;
            Ok::<(), std::io::Error>(())
        });
    }
    let stop = tasks.stop();
    tasks.spawn_critical("the HTTP API", async move {
        crate::http::serve::serve(listener, router, None, stop).await;
        Ok::<(), std::io::Error>(())
    });
}

/// The agents' gRPC API (every server serves it; only the leader answers registrations and
/// status streams) and the renewal of the certificate it serves with.
fn start_agents_api(
    tasks: &Tasks,
    agents: tokio::net::TcpListener,
    serving: watch::Receiver<Serving>,
    (pki, join_tokens): (Option<Arc<ControlPlanePki>>, Arc<StoredTokens>),
) {
    let stop = tasks.stop();
    tasks.spawn_critical(
        "the agents' API",
        crate::nodes::grpc::serve(agents, serving, pki.clone(), join_tokens, stop.clone()),
    );
    if let Some(pki) = pki {
        tasks.spawn(pki.renew_loop(stop));
    }
}

/// This server's role: elected among the servers sharing an etcd, or the sole server of an
/// embedded store.
fn start_election(
    tasks: &Tasks,
    store: &keel_store::Store,
    me: &str,
    config: &Config,
    metrics: &Arc<Metrics>,
) -> Leadership {
    let Some(election) = store.election("control-plane") else {
        return Leadership::sole(me.to_string(), metrics.clone());
    };
    let (tx, role) = watch::channel(Role::Follower {
        leader: None,
        error: None,
    });
    tasks.spawn(crate::leader::run(
        election,
        me.to_string(),
        config.leader,
        tx,
        metrics.clone(),
        tasks.stop(),
    ));
    Leadership::new(me.to_string(), role, metrics.clone())
}

/// The address others reach this server's HTTP API at, when `--advertise-address` is not
/// given: the listen address, or for a wildcard one, this machine's name and the port.
fn advertised(listen: SocketAddr) -> String {
    if !listen.ip().is_unspecified() {
        return listen.to_string();
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into());
    format!("{host}:{}", listen.port())
}

/// The cache every controller reads, and the controllers.
fn start_cluster_state(
    tasks: &Tasks,
    store: &keel_store::Store,
    cache: &Cache,
    config: &Config,
    metrics: &Metrics,
    events: Recorder,
    agents: crate::nodes::dial::AgentDialer,
) {
    let settings = crate::controllers::Config {
        pod_eviction_timeout: config.pod_eviction_timeout,
        scheduling_seconds: Some(metrics.scheduling_seconds.clone()),
        load_balancer_pool: config.load_balancer_pool,
        ..Default::default()
    };
    crate::controllers::start(
        tasks,
        store.clone(),
        cache.clone(),
        settings,
        events,
        agents,
    );
}

/// The sync loop, after `wait_for_nodes` nodes are ready (when asked).
fn start_sync(
    tasks: &Tasks,
    syncer: Syncer,
    triggers: Arc<tokio::sync::Mutex<mpsc::Receiver<()>>>,
    cache: Cache,
    wait_for_nodes: usize,
) {
    let stop = tasks.stop();
    tasks.spawn(async move {
        if wait_for_nodes > 0 && !wait_for_ready_nodes(&cache, wait_for_nodes, &stop).await {
            return;
        }
        let mut triggers = triggers.lock().await;
        crate::sync::run(syncer, &mut triggers, stop).await;
    });
}

/// Returns true once `n` nodes registered with this control plane are Ready, false on
/// shutdown. Nodes the store still holds as Ready from before a restart do not count until
/// their agents are back.
async fn wait_for_ready_nodes(cache: &Cache, n: usize, stop: &CancellationToken) -> bool {
    tracing::info!(nodes = n, "waiting for nodes before the first apply");
    // Less a margin: condition times are kept to the second.
    let since = chrono::Utc::now() - chrono::Duration::seconds(2);
    loop {
        let ready = cache
            .list(keel_schema::Kind::Node, None)
            .iter()
            .filter(|s| match &s.object {
                keel_schema::Object::Node(node) => node.is_ready() && node.heard_since(since),
                _ => false,
            })
            .count();
        if ready >= n {
            return true;
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            _ = stop.cancelled() => return false,
        }
    }
}
