//! The agent's side of the control plane's API: registration (retried with backoff for as long
//! as the control plane is unreachable), the status stream (a heartbeat every second, each
//! pod's status when it changes, everything again after a reconnect), and asking for its
//! desired sets (`NextSet`, one call waiting at a time, each saying how the last set went),
//! all on one connection. Over mutual TLS with the node's certificate unless the agent runs
//! `--insecure`.
//!
//! With several servers (`--server a,b,c`) the agent registers with, reports to and takes
//! its sets from the leader: a follower refuses, and the agent moves on to the next server
//! at once; only when a whole round failed does it back off.

use std::collections::BTreeMap;
use std::time::Duration;

use keel_agent_protocol::control_plane_client::ControlPlaneClient;
use keel_agent_protocol::status_report::Report;
use keel_agent_protocol::{Heartbeat, NextSetRequest, RegisterRequest, SetOutcome, StatusReport};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::task::AbortOnDropHandle;
use tonic::transport::Channel;

use super::endpoint::endpoint;
use super::identity::NodeIdentity;
use super::server::{MAX_MESSAGE_BYTES, NodeAgentService};
use crate::network::{Assignment, NodeNetwork};
use crate::status::StatusHub;
use crate::supervisor::Supervisor;

/// How often heartbeats go when the control plane does not say (one from before
/// `heartbeat_interval_ms`).
const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(1);

/// The heartbeat interval the control plane asked for at registration (a quarter of its
/// `--node-grace`), held within the protocol's bounds whatever it says.
fn heartbeat_interval(asked_ms: u64) -> Duration {
    if asked_ms == 0 {
        return DEFAULT_HEARTBEAT;
    }
    Duration::from_millis(asked_ms).clamp(
        keel_agent_protocol::HEARTBEAT_INTERVAL_MIN,
        keel_agent_protocol::HEARTBEAT_INTERVAL_MAX,
    )
}

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

/// Registers and reports status for as long as the agent runs, reconnecting whenever the
/// control plane goes away.
pub async fn run(
    server: String,
    me: Registration,
    hub: std::sync::Arc<StatusHub>,
    service: std::sync::Arc<NodeAgentService>,
    identity: Option<std::sync::Arc<NodeIdentity>>,
    network: NodeNetwork,
) {
    let servers = super::endpoint::servers(&server);
    let mut at = 0;
    let mut failed_in_round = 0;
    let mut delay = Duration::from_millis(250);
    let mut warned = false;
    let mut renewals = identity.as_ref().map(|i| i.renewals());
    loop {
        let server = servers
            .get(at % servers.len().max(1))
            .cloned()
            .unwrap_or_default();
        let tls = match identity.as_ref().map(|i| i.control_plane_tls()).transpose() {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(error = %e, "cannot set up TLS to the control plane");
                return;
            }
        };
        let session = session(
            &server,
            &me,
            &hub,
            &service,
            &network,
            tls,
            renewals.as_mut(),
        );
        match session.await {
            Ok(Ended::Renewed) => {
                delay = Duration::from_millis(250);
                continue;
            }
            Ok(Ended::Closed) => {
                delay = Duration::from_millis(250);
                warned = false;
                failed_in_round = 0;
                tracing::warn!(server = %server, node = %me.node, "the control plane closed the status stream; reconnecting");
            }
            Err(e) if servers.len() > 1 && failed_in_round + 1 < servers.len() => {
                // Not the leader, or down: the next server, at once.
                tracing::info!(server = %server, node = %me.node, error = %e, "moving on to the next control-plane server");
                failed_in_round += 1;
                at += 1;
                continue;
            }
            Err(e) => {
                failed_in_round = 0;
                at += 1;
                if !warned {
                    tracing::warn!(server = %server, node = %me.node, error = %e, "cannot reach the control plane; retrying with backoff (pods keep running)");
                    warned = true;
                } else {
                    tracing::debug!(server = %server, node = %me.node, error = %e, "control plane still unreachable");
                }
            }
        }
        tokio::time::sleep(delay).await;
        // With several servers a leader is usually being elected: try again soon, so the
        // new leader hears from this node well within its grace.
        let cap = if servers.len() > 1 {
            Duration::from_secs(2)
        } else {
            keel_agent_protocol::RECONNECT_BACKOFF_MAX
        };
        delay = (delay * 2).min(cap);
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
    service: &std::sync::Arc<NodeAgentService>,
    network: &NodeNetwork,
    tls: Option<keel_tls::transport::ClientTls>,
    renewals: Option<&mut tokio::sync::watch::Receiver<u64>>,
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
    let mut client = ControlPlaneClient::new(channel).max_decoding_message_size(MAX_MESSAGE_BYTES);
    let supervisor = &service.supervisor;
    let beat = register(&mut client, server, me, supervisor, network).await?;
    // Aborted with the session (on drop), so a new session's calls are the only ones.
    let sets = AbortOnDropHandle::new(tokio::spawn(take_sets(
        client.clone(),
        me.node.clone(),
        service.clone(),
    )));
    let (tx, rx) = mpsc::channel::<StatusReport>(256);
    let call = tokio::spawn(async move { client.report_status(ReceiverStream::new(rx)).await });
    let stream = Stream {
        node: &me.node,
        beat,
        tx,
        hub,
        supervisor,
    };
    stream.report(call, sets, renewals).await
}

/// How long one `NextSet` may take: the control plane answers within 30 s, with an empty
/// set when it had none. A call that outlives this is on a connection that went silent.
const NEXT_SET_TIMEOUT: Duration = Duration::from_secs(60);

/// Asks for the node's sets and applies each, for as long as the session lasts; the error
/// that ended it.
async fn take_sets(
    mut client: ControlPlaneClient<Channel>,
    node: String,
    service: std::sync::Arc<NodeAgentService>,
) -> anyhow::Error {
    let mut outcome = None;
    loop {
        let call = client.next_set(NextSetRequest {
            node_name: node.clone(),
            outcome: outcome.take(),
        });
        let set = match tokio::time::timeout(NEXT_SET_TIMEOUT, call).await {
            Ok(Ok(set)) => set.into_inner(),
            // A control plane from before NextSet: it dials this agent and sends its sets
            // with Sync instead, so the session goes on without asking.
            Ok(Err(status)) if status.code() == tonic::Code::Unimplemented => {
                tracing::info!("the control plane sends sets with Sync; not asking for them");
                return std::future::pending().await;
            }
            Ok(Err(status)) => return status.into(),
            Err(_) => {
                return anyhow::anyhow!(
                    "the control plane did not answer NextSet within {NEXT_SET_TIMEOUT:?}"
                );
            }
        };
        // Generation 0: nothing new within the control plane's wait; ask again.
        if set.generation == 0 {
            continue;
        }
        let generation = set.generation;
        let applied = service.apply_set(set);
        outcome = Some(match applied {
            Ok(ack) => SetOutcome {
                generation,
                ack: Some(ack),
                ..Default::default()
            },
            Err(status) => SetOutcome {
                generation,
                ack: None,
                refused_code: status.code() as i32,
                refused_message: status.message().to_string(),
            },
        });
    }
}

/// Registers `me`; the control plane's answer sets the floor of the generations to come,
/// gives the node its pod range, and says how often to send heartbeats (returned).
async fn register(
    client: &mut ControlPlaneClient<Channel>,
    server: &str,
    me: &Registration,
    supervisor: &Supervisor,
    network: &NodeNetwork,
) -> anyhow::Result<Duration> {
    let register = client.register(RegisterRequest {
        node_name: me.node.clone(),
        address: me.address.clone(),
        cpu_millis: me.cpu_millis,
        memory_bytes: me.memory_bytes,
        max_pods: me.max_pods,
        labels: me.labels.clone().into_iter().collect(),
        agent_version: env!("CARGO_PKG_VERSION").to_string(),
        runtime: me.runtime.clone(),
        takes_sets: true,
    });
    let registered = tokio::time::timeout(Duration::from_secs(10), register)
        .await
        .map_err(|_| anyhow::anyhow!("registration timed out after 10s"))??
        .into_inner();
    let assignment = Assignment::parse(&registered.pod_cidr, &registered.cluster_cidr)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let beat = heartbeat_interval(registered.heartbeat_interval_ms);
    tracing::info!(server = %server, node = %me.node, pod_cidr = %assignment.pod_cidr, heartbeat = ?beat, "registered with the control plane");
    network.assign(assignment);
    supervisor.lower_generation_floor(registered.next_generation);
    Ok(beat)
}

type StatusCall =
    tokio::task::JoinHandle<Result<tonic::Response<keel_agent_protocol::StatusAck>, tonic::Status>>;

/// The status stream of one session.
struct Stream<'a> {
    node: &'a str,
    /// How often a heartbeat goes.
    beat: Duration,
    tx: mpsc::Sender<StatusReport>,
    hub: &'a StatusHub,
    supervisor: &'a Supervisor,
}

impl Stream<'_> {
    async fn send(&self, r: Report) -> bool {
        let report = StatusReport {
            node_name: self.node.to_string(),
            report: Some(r),
        };
        self.tx.send(report).await.is_ok()
    }

    /// Sends every change (all of them first: the control plane may have missed any while
    /// the agent was away) and a heartbeat every `beat`, until the stream or the node's
    /// certificate changes.
    async fn report(
        &self,
        mut call: StatusCall,
        mut sets: AbortOnDropHandle<anyhow::Error>,
        mut renewals: Option<&mut tokio::sync::watch::Receiver<u64>>,
    ) -> anyhow::Result<Ended> {
        let mut changes = self.hub.subscribe();
        let mut since = 0;
        let mut beat = tokio::time::interval(self.beat);
        beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            if !self.send_changes(&mut since).await {
                return finish(call).await;
            }
            tokio::select! {
                _ = beat.tick() => {
                    if !self.send(Report::Heartbeat(self.heartbeat())).await {
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
                ended = &mut sets => {
                    return Err(match ended {
                        Ok(e) => e.context("asking for the node's sets"),
                        Err(e) => anyhow::anyhow!("asking for the node's sets stopped: {e}"),
                    });
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

    /// Pod statuses changed since `since`, and pod events; false when the stream is gone.
    async fn send_changes(&self, since: &mut u64) -> bool {
        let (updates, next) = self.hub.changes_since(*since);
        *since = next;
        for u in updates {
            if !self.send(Report::PodStatus(u)).await {
                return false;
            }
        }
        for e in self.hub.take_events() {
            if !self.send(Report::PodEvent(e)).await {
                return false;
            }
        }
        for handle in self.hub.take_volumes_removed() {
            let removed = keel_agent_protocol::VolumeRemoved { handle };
            if !self.send(Report::VolumeRemoved(removed)).await {
                return false;
            }
        }
        true
    }

    fn heartbeat(&self) -> Heartbeat {
        Heartbeat {
            time_unix_ms: chrono::Utc::now().timestamp_millis(),
            applied_generation: self.supervisor.applied_generation(),
            running_pods: i32::try_from(self.hub.running_pods()).unwrap_or(i32::MAX),
        }
    }
}

async fn finish(call: StatusCall) -> anyhow::Result<Ended> {
    match call.await {
        Ok(Ok(_)) => Ok(Ended::Closed),
        Ok(Err(status)) => Err(status.into()),
        Err(e) => Err(e.into()),
    }
}
