//! `keel server`: follows the repository and applies each new revision whole, and serves
//! the HTTP API (health, webhook, status, history).
//!
//! # Layout
//! - [`sync`]: the loop: fetch, read the branch tip, load + validate + apply, record.
//! - [`http`]: the axum router; [`webhook`]: GitHub push webhooks with HMAC signatures.
//! - [`watch`]: notify on a local repository's git folder, so a commit is picked up at once.

pub mod api;
pub mod http;
pub mod logs;
pub mod metrics;
pub mod sync;
pub mod tokens;
pub mod watch;
pub mod webhook;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use tokio::sync::{mpsc, watch as signal};

use crate::source::GitSource;
use keel_schema::Kind;
use keel_store::{Store, StoreSpec};

/// Everything `keel server` is told on its command line.
#[derive(Debug, Clone)]
pub struct Config {
    pub repo: String,
    pub branch: Option<String>,
    pub path: Option<String>,
    pub data_dir: PathBuf,
    pub store: Option<String>,
    /// `HOST:PORT` (a name such as `localhost` is resolved).
    pub listen: String,
    /// `HOST:PORT` of the agents' gRPC API.
    pub agent_listen: String,
    pub node_grace: Duration,
    pub pod_eviction_timeout: Duration,
    pub poll_interval: Duration,
    pub resync_interval: Duration,
    pub webhook_secret: Option<Vec<u8>>,
    /// Where Services get their ClusterIPs and NodePorts.
    pub service_network: crate::apply::ServiceNetwork,
    /// Hold the first apply until this many nodes are Ready, so a fresh cluster's pods
    /// spread over its nodes instead of all landing on the first to register (`keel up`).
    pub wait_for_nodes: usize,
    /// Plaintext gRPC with agents, no certificates (tests only; loudly warned about).
    pub insecure: bool,
    /// How long node and control-plane certificates last.
    pub cert_validity: Duration,
    /// Serve the read endpoints without the bearer token.
    pub anonymous_read: bool,
    /// Encrypt Secrets at rest with the key in this file.
    pub encryption_key_file: Option<PathBuf>,
}

/// Runs until Ctrl-C or SIGTERM.
pub async fn run(config: Config) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create data dir {}", config.data_dir.display()))?;
    let spec = StoreSpec::parse(config.store.as_deref(), config.data_dir.clone())?;
    let cipher = match &config.encryption_key_file {
        Some(path) => Some(Arc::new(
            keel_store::encryption::SecretCipher::from_key_file(path)?,
        )),
        None => None,
    };
    let store = Store::open_encrypted(&spec, cipher)
        .await
        .context("cannot open the store")?;
    let source = GitSource::new(
        &config.repo,
        &config.data_dir,
        config.branch.clone(),
        config.path.clone(),
    )
    .context("cannot use --repo")?;
    let status = Arc::new(Mutex::new(sync::SyncStatus {
        repo: source.display().to_string(),
        branch: source.branch(),
        ..Default::default()
    }));
    let (trigger, triggers) = mpsc::channel(16);
    // Kept alive for the server's lifetime: dropping it stops watching.
    let _watcher = match source.git_dir() {
        Some(dir) => Some(
            watch::watch_git_dir(&dir, trigger.clone()).context("cannot watch the repository")?,
        ),
        None => None,
    };
    let (stop_tx, stop_rx) = signal::channel(false);
    let pki = if config.insecure {
        tracing::warn!(
            "--insecure: agents connect in plaintext and without certificates; anyone who can \
             reach --agent-listen can register a node, and anyone who can reach an agent can \
             run containers on it. For tests only."
        );
        None
    } else {
        Some(
            crate::auth::pki::ControlPlanePki::load_or_create(
                &config.data_dir,
                config.cert_validity,
            )
            .context("cannot set up the cluster's certificates")?,
        )
    };
    let api_token = crate::auth::api_token::ApiToken::load_or_create(&config.data_dir)?;
    let join_tokens = Arc::new(crate::auth::join_tokens::JoinTokens::new(&config.data_dir));
    let dialer = crate::nodes::dial::AgentDialer::new(pki.clone());
    let metrics = Arc::new(metrics::Metrics::default());
    let cache = crate::controllers::cache::Cache::new();
    let state = http::AppState {
        cache: cache.clone(),
        store: store.clone(),
        status: status.clone(),
        metrics: metrics.clone(),
        trigger,
        webhook_secret: config.webhook_secret.clone().map(Arc::new),
        service_network: config.service_network.clone(),
        dialer: dialer.clone(),
        api_token,
        anonymous_read: config.anonymous_read,
        join_tokens: join_tokens.clone(),
        pki: pki.clone(),
    };
    let listener = match tokio::net::TcpListener::bind(config.listen.as_str()).await {
        Ok(l) => l,
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            anyhow::bail!(
                "cannot listen on {}: {e} (is another keel server running?)",
                config.listen
            )
        }
        Err(e) => anyhow::bail!("cannot listen on {}: {e}", config.listen),
    };
    let agent_listener = tokio::net::TcpListener::bind(config.agent_listen.as_str())
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot listen on {} (--agent-listen): {e}",
                config.agent_listen
            )
        })?;
    let (events, event_writer) = crate::events::Recorder::new(store.clone(), stop_rx.clone());
    tokio::spawn(event_writer);
    let registry = crate::nodes::NodeRegistry::new(store.clone(), config.node_grace)
        .await
        .context("cannot read the nodes from the store")?
        .with_events(events.clone())
        .with_heartbeat_counter(metrics.heartbeats.clone());
    let branch = if source.is_remote() && config.branch.is_none() {
        "the remote's HEAD branch".to_string()
    } else {
        source.branch()
    };
    tracing::info!(listen = %config.listen, repo = %source.display(), branch = %branch, "keel server started");
    let mut http_stop = stop_rx.clone();
    let http = tokio::spawn(async move {
        axum::serve(listener, http::router(state))
            .with_graceful_shutdown(async move {
                let _ = http_stop.wait_for(|s| *s).await;
            })
            .await
    });
    let agents = tokio::spawn(crate::nodes::grpc::serve(
        agent_listener,
        registry.clone(),
        pki.clone(),
        join_tokens,
        stop_rx.clone(),
    ));
    if let Some(pki) = pki {
        tokio::spawn(pki.renew_loop(stop_rx.clone()));
    }
    let controllers = crate::controllers::Config {
        pod_eviction_timeout: config.pod_eviction_timeout,
        scheduling_seconds: Some(metrics.scheduling_seconds.clone()),
        ..Default::default()
    };
    crate::controllers::start(
        store.clone(),
        cache.clone(),
        controllers,
        events,
        stop_rx.clone(),
    );
    tokio::spawn(crate::nodes::sync::run(
        cache.clone(),
        dialer,
        stop_rx.clone(),
    ));
    let lifecycle_stop = stop_rx.clone();
    tokio::spawn(async move { registry.run_lifecycle(lifecycle_stop).await });
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down");
        let _ = stop_tx.send(true);
    });
    if config.wait_for_nodes > 0 {
        wait_for_nodes(&cache, config.wait_for_nodes, stop_rx.clone()).await;
    }
    sync::run(store, source, status, metrics, triggers, &config, stop_rx).await;
    http.await
        .context("HTTP server task")?
        .context("HTTP server")?;
    agents
        .await
        .context("agent API task")?
        .context("agent API")?;
    Ok(())
}

/// Returns once `n` nodes registered with this control plane are Ready, or on shutdown.
/// Nodes the store still holds as Ready from before a restart do not count until their
/// agents are back.
async fn wait_for_nodes(
    cache: &crate::controllers::cache::Cache,
    n: usize,
    mut stop: signal::Receiver<bool>,
) {
    tracing::info!(nodes = n, "waiting for nodes before the first apply");
    // Less a margin: condition times are kept to the second.
    let since = chrono::Utc::now() - chrono::Duration::seconds(2);
    loop {
        let ready = cache
            .list(Kind::Node, None)
            .iter()
            .filter(|s| match &s.object {
                keel_schema::Object::Node(node) => {
                    crate::nodes::is_ready(node) && crate::nodes::heard_since(node, since)
                }
                _ => false,
            })
            .count();
        if ready >= n {
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_millis(200)) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = ctrl_c => {}
        _ = async { if let Some(t) = term.as_mut() { t.recv().await; } else { std::future::pending::<()>().await } } => {}
    }
}
