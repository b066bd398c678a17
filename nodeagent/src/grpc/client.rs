//! The agent's side of the control plane's API: registration (retried with backoff for as long
//! as the control plane is unreachable) and the status stream (a heartbeat every second, each
//! pod's status when it changes, everything again after a reconnect). Over mutual TLS with
//! the node's certificate unless the agent runs `--insecure`.

use std::collections::BTreeMap;
use std::time::Duration;

use keel_agent_protocol::control_plane_client::ControlPlaneClient;
use keel_agent_protocol::status_report::Report;
use keel_agent_protocol::{Heartbeat, RegisterRequest, StatusReport};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Channel, Endpoint};

use super::identity::NodeIdentity;
use crate::status::StatusHub;
use crate::supervisor::Supervisor;

pub const HEARTBEAT: Duration = Duration::from_secs(1);

/// What the agent tells the control plane about itself.
#[derive(Debug, Clone)]
pub struct Registration {
    pub node: String,
    pub address: String,
    pub cpu_millis: i64,
    pub memory_bytes: i64,
    pub max_pods: i64,
    pub labels: BTreeMap<String, String>,
    pub runtime: String,
}

/// The channel to the control plane at `addr` (`host:port` or a URL).
pub fn endpoint(addr: &str) -> Result<Endpoint, tonic::transport::Error> {
    let url = if addr.contains("://") {
        addr.to_string()
    } else {
        format!("http://{addr}")
    };
    Ok(Endpoint::from_shared(url)?
        .connect_timeout(Duration::from_secs(5))
        .tcp_keepalive(Some(Duration::from_secs(30))))
}

/// Registers and reports status for as long as the agent runs, reconnecting whenever the
/// control plane goes away.
pub async fn run(
    server: String,
    me: Registration,
    hub: std::sync::Arc<StatusHub>,
    supervisor: Supervisor,
    identity: Option<std::sync::Arc<NodeIdentity>>,
) {
    let mut delay = Duration::from_millis(250);
    let mut warned = false;
    let mut renewals = identity.as_ref().map(|i| i.renewals());
    loop {
        let tls = match identity.as_ref().map(|i| i.control_plane_tls()).transpose() {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(error = %e, "cannot set up TLS to the control plane");
                return;
            }
        };
        match session(&server, &me, &hub, &supervisor, tls, renewals.as_mut()).await {
            Ok(Ended::Renewed) => {
                delay = Duration::from_millis(250);
                continue;
            }
            Ok(Ended::Closed) => {
                delay = Duration::from_millis(250);
                warned = false;
                tracing::warn!(server = %server, "the control plane closed the status stream; reconnecting");
            }
            Err(e) => {
                if !warned {
                    tracing::warn!(server = %server, error = %e, "cannot reach the control plane; retrying with backoff (pods keep running)");
                    warned = true;
                } else {
                    tracing::debug!(server = %server, error = %e, "control plane still unreachable");
                }
            }
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(10));
    }
}

/// Why a session ended without an error.
enum Ended {
    /// The control plane closed the stream.
    Closed,
    /// The node's certificate was renewed: register again with it.
    Renewed,
}

/// One registration and status stream, until either breaks.
async fn session(
    server: &str,
    me: &Registration,
    hub: &StatusHub,
    supervisor: &Supervisor,
    tls: Option<keel_tls::transport::ClientTls>,
    mut renewals: Option<&mut tokio::sync::watch::Receiver<u64>>,
) -> anyhow::Result<Ended> {
    // No timeout on the channel: the status stream lasts as long as the agent.
    let channel: Channel = keel_tls::transport::connect(endpoint(server)?, tls)
        .await
        .map_err(|e| {
            let detail = std::error::Error::source(&e)
                .map(|s| format!(": {s}"))
                .unwrap_or_default();
            anyhow::anyhow!("{e}{detail}")
        })?;
    let mut client = ControlPlaneClient::new(channel);
    let register = client.register(RegisterRequest {
        node_name: me.node.clone(),
        address: me.address.clone(),
        cpu_millis: me.cpu_millis,
        memory_bytes: me.memory_bytes,
        max_pods: me.max_pods,
        labels: me.labels.clone().into_iter().collect(),
        agent_version: env!("CARGO_PKG_VERSION").to_string(),
        runtime: me.runtime.clone(),
    });
    let registered = tokio::time::timeout(Duration::from_secs(10), register)
        .await
        .map_err(|_| anyhow::anyhow!("registration timed out after 10s"))??
        .into_inner();
    tracing::info!(server = %server, node = %me.node, "registered with the control plane");
    supervisor.lower_generation_floor(registered.next_generation);

    let (tx, rx) = mpsc::channel::<StatusReport>(256);
    let mut call = {
        let mut client = client.clone();
        tokio::spawn(async move { client.report_status(ReceiverStream::new(rx)).await })
    };
    let report = |r: Report| StatusReport {
        node_name: me.node.clone(),
        report: Some(r),
    };
    let mut changes = hub.subscribe();
    // Everything first: the control plane may have missed any change while we were away.
    let mut since = 0;
    let mut beat = tokio::time::interval(HEARTBEAT);
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let (updates, next) = hub.changes_since(since);
        since = next;
        for u in updates {
            if tx.send(report(Report::PodStatus(u))).await.is_err() {
                return finish(call).await;
            }
        }
        for e in hub.take_events() {
            if tx.send(report(Report::PodEvent(e))).await.is_err() {
                return finish(call).await;
            }
        }
        tokio::select! {
            _ = beat.tick() => {
                let hb = Heartbeat {
                    time_unix_ms: chrono::Utc::now().timestamp_millis(),
                    applied_generation: supervisor.applied_generation(),
                    running_pods: i32::try_from(hub.running_pods()).unwrap_or(i32::MAX),
                };
                if tx.send(report(Report::Heartbeat(hb))).await.is_err() {
                    return finish(call).await;
                }
            }
            changed = changes.changed() => {
                if changed.is_err() {
                    return Ok(Ended::Closed);
                }
            }
            // A renewed certificate: register again on a new connection, so the control
            // plane shows the new expiry.
            _ = async {
                match renewals.as_mut() {
                    Some(r) => { let _ = r.changed().await; }
                    None => std::future::pending::<()>().await,
                }
            } => {
                tracing::info!("reconnecting with the renewed certificate");
                return Ok(Ended::Renewed);
            }
            ended = &mut call => {
                return match ended {
                    Ok(Ok(_)) => Ok(Ended::Closed),
                    Ok(Err(status)) => Err(status.into()),
                    Err(e) => Err(e.into()),
                };
            }
        }
    }
}

async fn finish(
    call: tokio::task::JoinHandle<
        Result<tonic::Response<keel_agent_protocol::StatusAck>, tonic::Status>,
    >,
) -> anyhow::Result<Ended> {
    match call.await {
        Ok(Ok(_)) => Ok(Ended::Closed),
        Ok(Err(status)) => Err(status.into()),
        Err(e) => Err(e.into()),
    }
}
