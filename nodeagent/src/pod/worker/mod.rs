//! One task per pod: it owns the pod's sandbox and containers and moves them through their
//! states until the pod is no longer wanted, then stops and removes everything it made.
//!
//! The worker is level-triggered like the kubelet's `syncPod`: each pass looks at what the
//! runtime says and takes the next step toward the spec (make the sandbox, start a container,
//! restart one that exited, probe). A pass runs after every command, runtime event for this
//! pod, probe result or timer (a backoff expiring, a probe due, the engine not answering, a
//! periodic look every minute).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use keel_agent_protocol::{PodEvent, PodStatusUpdate};
use keel_schema::defaults::default_pull_policy;
use keel_schema::types::core::EventType;
use keel_schema::types::pod::{Container, PodPhase, PodStatus};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;

mod adopt;
mod cleanup;
mod exits;
mod hooks;
mod probes;
mod sandbox;
mod start;

use super::backoff::Backoff;
use super::probe::{Outcome, ProbeKind};
use super::state::{
    ContainerLife, ContainerSlot, StatusInput, WaitReason, apps_started, phase, pod_status,
};
use super::volumes::{self, PodVolumes};
use crate::desired::DesiredPod;
use crate::runtime::{ContainerInfo, ContainerState, PodRef, PullPolicy, Runtime, Sandbox};
use crate::status::StatusHub;
use cleanup::remove_all;
pub use cleanup::spawn_orphan_cleanup;
use exits::{ended_from, vanished};

/// What every worker of a node shares.
pub struct PodContext {
    pub runtime: Arc<dyn Runtime>,
    pub host_ip: Option<String>,
    pub data_dir: PathBuf,
    pub allowed_host_paths: Vec<PathBuf>,
    pub hub: Arc<StatusHub>,
    /// The node's cluster DNS, which pods get as their nameserver by default.
    pub cluster_dns: Option<crate::dns::DnsSettings>,
    /// Becomes true when the agent stops: workers end without touching their containers.
    pub shutdown: tokio::sync::watch::Receiver<bool>,
}

#[derive(Debug)]
pub enum Command {
    /// The pod as the latest desired set has it.
    Update(Arc<DesiredPod>),
    /// Something changed in the runtime for this pod.
    Look,
    /// The pod is no longer wanted: stop and remove everything.
    Terminate,
}

/// How often a worker looks at its containers even when nothing told it to: the kubelet's
/// default `--sync-frequency`. Exits and removals arrive as the engine's events, and a broken
/// event stream makes every worker look again, so this look is only a backstop. Every 10 s
/// it was about a quarter of an idle hollow node's CPU at 100,000 pods, and with Docker an inspect
/// per container every 10 s on every node.
const RESYNC: Duration = Duration::from_secs(60);
/// The shortest pause between two passes.
const MIN_WAKE: Duration = Duration::from_millis(100);
/// How soon to retry, or look again, when the engine could not be reached.
const ENGINE_RETRY: Duration = Duration::from_secs(2);

struct ProbeDone {
    container_id: String,
    kind: ProbeKind,
    result: Outcome,
}

/// How a worker's run ended.
enum RunEnd {
    /// The pod was terminated and everything removed.
    Removed,
    /// The agent is stopping; the pod's containers are left running.
    Shutdown,
}

struct PodWorker {
    ctx: Arc<PodContext>,
    desired: Arc<DesiredPod>,
    pod_ref: PodRef,
    sandbox: Option<Sandbox>,
    /// Sandboxes made so far; the next one's attempt number.
    sandbox_starts: u32,
    /// Failed sandbox creations (a CNI plugin refusing, say) are retried with backoff.
    sandbox_backoff: Backoff,
    /// When the last creation failed, the next try.
    sandbox_retry: Option<Instant>,
    slots: Vec<ContainerSlot>,
    volumes: Option<PodVolumes>,
    /// When volumes failed to prepare, the next try.
    volumes_retry: Option<Instant>,
    /// When the engine did not answer a look in this pass, the next look.
    look_again: Option<Instant>,
    start_time: DateTime<Utc>,
    last_status: Option<PodStatus>,
    probes: JoinSet<ProbeDone>,
}

fn pod_ref(d: &DesiredPod) -> PodRef {
    PodRef {
        uid: d.uid.clone(),
        namespace: d.namespace.clone(),
        name: d.name.clone(),
        hash: d.hash.clone(),
        grace_seconds: d.grace_seconds(),
        annotations: d
            .pod
            .metadata
            .annotations
            .clone()
            .map(Into::into)
            .unwrap_or_default(),
    }
}

/// A kubelet-style event about pod `d`.
fn pod_event(d: &DesiredPod, type_: EventType, reason: &str, message: String) -> PodEvent {
    PodEvent {
        namespace: d.namespace.clone(),
        name: d.name.clone(),
        uid: d.uid.clone(),
        r#type: type_.as_str().to_string(),
        reason: reason.to_string(),
        message,
    }
}

/// The pod's init containers first, in order, then its app containers.
fn slots_for(d: &DesiredPod) -> Vec<ContainerSlot> {
    let inits = d.pod.spec.init_containers.iter().flatten().cloned();
    let app = if d.pod.spec.init_containers.iter().flatten().next().is_some() {
        ContainerSlot::after_init
    } else {
        ContainerSlot::new
    };
    inits
        .map(ContainerSlot::init)
        .chain(d.pod.spec.containers.iter().cloned().map(app))
        .collect()
}

fn pull_policy(c: &Container) -> PullPolicy {
    let image = c.image.as_deref().unwrap_or("");
    match c
        .image_pull_policy
        .as_deref()
        .unwrap_or_else(|| default_pull_policy(image))
    {
        "Always" => PullPolicy::Always,
        "Never" => PullPolicy::Never,
        _ => PullPolicy::IfNotPresent,
    }
}

/// Starts the worker of `desired`, adopting `adopted` (its containers found at agent start).
/// When it has removed everything, it sends the pod's uid on `exited`.
pub fn spawn(
    ctx: Arc<PodContext>,
    desired: Arc<DesiredPod>,
    adopted: Vec<ContainerInfo>,
    exited: mpsc::UnboundedSender<String>,
) -> mpsc::UnboundedSender<Command> {
    let (tx, rx) = mpsc::unbounded_channel();
    let worker = PodWorker {
        pod_ref: pod_ref(&desired),
        slots: slots_for(&desired),
        desired,
        ctx,
        sandbox: None,
        sandbox_starts: 0,
        sandbox_backoff: Backoff::default(),
        sandbox_retry: None,
        volumes: None,
        volumes_retry: None,
        look_again: None,
        start_time: Utc::now(),
        last_status: None,
        probes: JoinSet::new(),
    };
    tokio::spawn(async move {
        let uid = worker.desired.uid.clone();
        let grace = worker.desired.grace_seconds();
        let ctx = worker.ctx.clone();
        let (namespace, name) = (
            worker.desired.namespace.clone(),
            worker.desired.name.clone(),
        );
        // A worker that fails unexpectedly must not strand its pod: clean up after it, and
        // wait before the pod is started again so a failure that repeats does not spin.
        match tokio::spawn(worker.run(rx, adopted)).await {
            Ok(RunEnd::Removed) => {}
            // The agent is stopping: the pod stays as it is, for the next agent to adopt.
            Ok(RunEnd::Shutdown) => return,
            Err(e) => {
                tracing::error!(pod = %format!("{namespace}/{name}"), error = %e, "pod worker failed; removing the pod's containers");
                remove_all(&ctx, &uid, grace).await;
                ctx.hub.publish_deleted(&uid, &namespace, &name);
                tokio::time::sleep(Duration::from_secs(10)).await;
            }
        }
        let _ = exited.send(uid);
    });
    tx
}

/// The monotonic instant a container started at, from the engine's wall-clock time.
fn instant_of(started_at: DateTime<Utc>) -> Instant {
    let ago = (Utc::now() - started_at).to_std().unwrap_or_default();
    Instant::now().checked_sub(ago).unwrap_or_else(Instant::now)
}

impl PodWorker {
    async fn run(
        mut self,
        mut rx: mpsc::UnboundedReceiver<Command>,
        adopted: Vec<ContainerInfo>,
    ) -> RunEnd {
        let mut shutdown = self.ctx.shutdown.clone();
        // A pod the control plane already holds as Succeeded or Failed, with no container
        // left here (removed by an operator, or by `keel up` stopping): a finished pod never
        // runs again, as in Kubernetes; a Job's work is not redone. Its recorded status
        // stands, so nothing is published.
        let finished = adopted.is_empty() && self.desired.pod.is_finished();
        if finished {
            tracing::info!(pod = %self.desired.key(), "pod already finished; not running it again");
        }
        if !adopted.is_empty() {
            self.adopt(adopted).await;
        }
        loop {
            if *shutdown.borrow() {
                return RunEnd::Shutdown;
            }
            if !finished {
                self.sync().await;
                self.publish();
            }
            let wake = self.next_wake();
            let command = tokio::select! {
                _ = shutdown.changed() => return RunEnd::Shutdown,
                cmd = rx.recv() => cmd.unwrap_or(Command::Terminate),
                Some(done) = self.probes.join_next(), if !self.probes.is_empty() => {
                    if let Ok(done) = done {
                        self.on_probe(done).await;
                    }
                    continue;
                }
                _ = tokio::time::sleep_until(wake) => continue,
            };
            match command {
                Command::Terminate => break,
                Command::Look => {}
                Command::Update(d) => self.update(d).await,
            }
        }
        self.probes.abort_all();
        tracing::info!(pod = %self.desired.key(), "stopping pod");
        for i in 0..self.slots.len() {
            if matches!(self.slots[i].life, ContainerLife::Running { .. }) {
                let name = self.slots[i].spec.name.clone();
                self.event(
                    EventType::Normal,
                    "Killing",
                    format!("Stopping container {name}"),
                );
            }
        }
        let grace = Duration::from_secs(self.desired.grace_seconds().max(0) as u64);
        let left = self.pre_stop_all(grace).await;
        remove_all(&self.ctx, &self.desired.uid, left.as_secs() as i64).await;
        self.ctx.hub.publish_deleted(
            &self.desired.uid,
            &self.desired.namespace,
            &self.desired.name,
        );
        RunEnd::Removed
    }

    async fn update(&mut self, d: Arc<DesiredPod>) {
        if d.is_deleting() {
            return;
        }
        if d.hash != self.desired.hash {
            tracing::info!(pod = %d.key(), "pod spec changed; replacing its containers");
            self.probes.abort_all();
            remove_all(&self.ctx, &self.desired.uid, self.desired.grace_seconds()).await;
            self.slots = slots_for(&d);
            self.sandbox = None;
            self.volumes = None;
            self.start_time = Utc::now();
            self.pod_ref = pod_ref(&d);
            self.desired = d;
            return;
        }
        // Same spec: ConfigMap and Secret files are refreshed on the next pass.
        self.desired = d;
        self.volumes = None;
        self.volumes_retry = None;
    }

    /// Succeeded or failed for good: nothing of the pod runs again.
    fn terminal(&self) -> bool {
        !self.slots.is_empty() && phase(&self.slots).is_finished()
    }

    fn restart_policy(&self) -> &str {
        self.desired
            .pod
            .spec
            .restart_policy
            .as_deref()
            .unwrap_or("Always")
    }

    /// One pass toward the spec.
    async fn sync(&mut self) {
        self.look_again = None;
        if self.terminal() {
            // A finished pod keeps its containers (for logs) but not its sandbox.
            if let Some(sb) = self.sandbox.take()
                && let Err(e) = self.ctx.runtime.remove(&sb.id).await
            {
                tracing::debug!(error = %e, "sandbox removal failed; retrying");
                self.engine_unanswered();
                self.sandbox = Some(sb);
            }
            return;
        }
        if self.volumes.is_none() && self.volumes_retry.is_none_or(|t| t <= Instant::now()) {
            let dir = volumes::pod_dir(&self.ctx.data_dir, &self.desired.uid);
            match volumes::prepare(&dir, &self.desired, &self.ctx.allowed_host_paths) {
                Ok(v) => {
                    self.volumes = Some(v);
                    self.volumes_retry = None;
                }
                Err(message) => {
                    let retry = Instant::now() + Duration::from_secs(10);
                    self.volumes_retry = Some(retry);
                    for slot in self.slots.iter_mut().filter(|s| s.starts == 0) {
                        slot.life = ContainerLife::Waiting {
                            reason: WaitReason::CreateContainerConfigError,
                            message: Some(message.clone()),
                            retry_at: Some(retry),
                        };
                    }
                }
            }
        }
        if !self.ensure_sandbox().await {
            return;
        }
        let past_init = apps_started(&self.slots);
        for i in 0..self.slots.len() {
            if self.slots[i].init && (past_init || self.slots[i].completed()) {
                continue;
            }
            self.sync_container(i).await;
            // One init container at a time, each to completion, before anything after it.
            if self.slots[i].init && !self.slots[i].completed() {
                break;
            }
        }
        self.schedule_probes();
    }

    async fn sync_container(&mut self, i: usize) {
        let now = Instant::now();
        match &self.slots[i].life {
            ContainerLife::Running { id, started_at, .. }
            | ContainerLife::Stopping { id, started_at, .. } => {
                let (id, started_at) = (id.clone(), *started_at);
                match self.ctx.runtime.inspect(&id).await {
                    Ok(Some(info)) => match info.state {
                        ContainerState::Running { started_at: engine } => {
                            // The engine's start time, not the moment we asked for it.
                            let again = match &self.slots[i].life {
                                ContainerLife::Stopping { retry_at, .. } if *retry_at <= now => {
                                    Some(self.stop_in_background(&id))
                                }
                                _ => None,
                            };
                            match &mut self.slots[i].life {
                                ContainerLife::Running { started_at, .. } => *started_at = engine,
                                ContainerLife::Stopping {
                                    started_at,
                                    retry_at,
                                    ..
                                } => {
                                    *started_at = engine;
                                    if let Some(again) = again {
                                        *retry_at = now + again;
                                    }
                                }
                                _ => {}
                            }
                        }
                        _ => {
                            let info = self.settled_exit(&id, info).await;
                            self.on_exit(i, ended_from(&info)).await
                        }
                    },
                    Ok(None) => self.on_exit(i, vanished(&id, Some(started_at))).await,
                    Err(e) => {
                        tracing::debug!(error = %e, "cannot inspect a container");
                        self.engine_unanswered();
                    }
                }
            }
            ContainerLife::Waiting { retry_at, .. } => {
                if retry_at.is_none_or(|t| t <= now) {
                    self.start(i).await;
                }
            }
            ContainerLife::Terminated(_) => {}
        }
    }

    fn wait(&mut self, i: usize, reason: WaitReason, message: String, after: Duration) {
        self.slots[i].life = ContainerLife::Waiting {
            reason,
            message: Some(message),
            retry_at: Some(Instant::now() + after),
        };
    }

    /// Records a kubelet-style event about this pod.
    fn event(&self, type_: EventType, reason: &str, message: String) {
        self.ctx
            .hub
            .record_event(pod_event(&self.desired, type_, reason, message));
    }

    fn host_network(&self) -> bool {
        self.desired.pod.spec.host_network == Some(true)
    }

    /// A sandbox on the node's network has no address of its own: the pod's is the node's,
    /// as in Kubernetes.
    fn sandbox_ip(&self, ip: Option<String>) -> Option<String> {
        if self.host_network() {
            self.ctx.host_ip.clone()
        } else {
            ip
        }
    }

    /// Stops container `id` in a task of its own (its grace period may be long); returns how
    /// long to wait before trying again should it still be running.
    fn stop_in_background(&self, id: &str) -> Duration {
        let grace = Duration::from_secs(self.desired.grace_seconds() as u64);
        let runtime = self.ctx.runtime.clone();
        let id = id.to_string();
        tokio::spawn(async move {
            if let Err(e) = runtime.stop(&id, grace).await {
                tracing::warn!(error = %e, "stopping a container that failed its probe; will retry");
            }
        });
        grace + Duration::from_secs(5)
    }

    /// The engine could not say how a container is: look again soon, not at the next
    /// periodic look.
    fn engine_unanswered(&mut self) {
        self.look_again = Some(Instant::now() + ENGINE_RETRY);
    }

    fn next_wake(&self) -> Instant {
        let mut wake = Instant::now() + RESYNC;
        for t in [self.volumes_retry, self.look_again].into_iter().flatten() {
            wake = wake.min(t);
        }
        for slot in &self.slots {
            match &slot.life {
                ContainerLife::Waiting {
                    retry_at: Some(t), ..
                } => wake = wake.min(*t),
                ContainerLife::Running { probes, .. } => {
                    for p in probes.iter().filter(|p| !p.in_flight) {
                        wake = wake.min(p.next_at);
                    }
                }
                ContainerLife::Stopping { retry_at, .. } => wake = wake.min(*retry_at),
                _ => {}
            }
        }
        // A deadline already past (a probe due while there is no sandbox, say) must not
        // turn into a busy loop against the engine.
        wake.max(Instant::now() + MIN_WAKE)
    }

    fn publish(&mut self) {
        let status = pod_status(StatusInput {
            slots: &self.slots,
            runtime: self.ctx.runtime.name(),
            pod_ip: self
                .sandbox
                .as_ref()
                .and_then(|s| s.ip.as_deref())
                .or_else(|| self.last_status.as_ref().and_then(|s| s.pod_ip.as_deref())),
            host_ip: self.ctx.host_ip.as_deref(),
            start_time: self.start_time,
            previous: self.last_status.as_ref(),
        });
        if self.last_status.as_ref() == Some(&status) {
            return;
        }
        self.ctx.hub.publish(
            PodStatusUpdate {
                namespace: self.desired.namespace.clone(),
                name: self.desired.name.clone(),
                uid: self.desired.uid.clone(),
                status: serde_json::to_vec(&status).unwrap_or_default(),
                deleted: false,
            },
            status.phase == Some(PodPhase::Running),
        );
        self.last_status = Some(status);
    }
}
