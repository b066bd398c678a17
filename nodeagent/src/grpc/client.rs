//! The agent's side of the control plane's API: registration (retried with backoff for as long
//! as the control plane is unreachable) and the status stream (a heartbeat every second, each
//! pod's status when it changes, everything again after a reconnect). The channel to the
//! control plane is built in one place, [`endpoint`], so that mutual TLS is a change there.

use std::collections::BTreeMap;
use std::time::Duration;

use keel_schema::proto::control_plane_client::ControlPlaneClient;
use keel_schema::proto::status_report::Report;
use keel_schema::proto::{Heartbeat, RegisterRequest, StatusReport};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Channel, Endpoint};

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
) {
    let mut delay = Duration::from_millis(250);
    let mut warned = false;
    loop {
        match session(&server, &me, &hub, &supervisor).await {
            Ok(()) => {
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

/// One registration and status stream, until either breaks.
async fn session(
    server: &str,
    me: &Registration,
    hub: &StatusHub,
    supervisor: &Supervisor,
) -> anyhow::Result<()> {
    // No timeout on the channel: the status stream lasts as long as the agent.
    let channel: Channel = endpoint(server)?.connect().await?;
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
                    return Ok(());
                }
            }
            ended = &mut call => {
                return match ended {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err(status)) => Err(status.into()),
                    Err(e) => Err(e.into()),
                };
            }
        }
    }
}

async fn finish(
    call: tokio::task::JoinHandle<
        Result<tonic::Response<keel_schema::proto::StatusAck>, tonic::Status>,
    >,
) -> anyhow::Result<()> {
    match call.await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(status)) => Err(status.into()),
        Err(e) => Err(e.into()),
    }
}
