//! One task per pod: it owns the pod's sandbox and containers and moves them through their
//! states until the pod is no longer wanted, then stops and removes everything it made.
//!
//! The worker is level-triggered like the kubelet's `syncPod`: each pass looks at what the
//! runtime says and takes the next step toward the spec (make the sandbox, start a container,
//! restart one that exited, probe). A pass runs after every command, runtime event for this
//! pod, probe result or timer (a backoff expiring, a probe due, a periodic look every 10 s).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::FutureExt;
use keel_agent_protocol::{PodEvent, PodStatusUpdate};
use keel_schema::defaults::default_pull_policy;
use keel_schema::types::pod::{Container, PodPhase, PodStatus};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::probe::{self, Outcome, ProbeKind, Verdict};
use super::spec::container_spec;
use super::state::{ContainerLife, ContainerSlot, Ended, StatusInput, WaitReason, pod_status};
use super::volumes::{self, PodVolumes};
use crate::desired::DesiredPod;
use crate::runtime::{
    ContainerInfo, ContainerState, ImageError, PodRef, PullPolicy, Runtime, RuntimeError, Sandbox,
    SandboxSpec,
};
use crate::status::StatusHub;

/// What every worker of a node shares.
pub struct PodContext {
    pub runtime: Arc<dyn Runtime>,
    pub host_ip: Option<String>,
    pub data_dir: PathBuf,
    pub allowed_host_paths: Vec<PathBuf>,
    pub hub: Arc<StatusHub>,
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

/// How often a worker looks at its containers even when nothing told it to.
const RESYNC: Duration = Duration::from_secs(10);
/// The shortest pause between two passes.
const MIN_WAKE: Duration = Duration::from_millis(100);
/// How soon to retry when the engine could not be reached.
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
    slots: Vec<ContainerSlot>,
    volumes: Option<PodVolumes>,
    /// When volumes failed to prepare, the next try.
    volumes_retry: Option<Instant>,
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
        annotations: d.pod.metadata.annotations.clone().unwrap_or_default(),
    }
}

/// A kubelet-style event about pod `d`.
fn pod_event(d: &DesiredPod, type_: &str, reason: &str, message: String) -> PodEvent {
    PodEvent {
        namespace: d.namespace.clone(),
        name: d.name.clone(),
        uid: d.uid.clone(),
        r#type: type_.to_string(),
        reason: reason.to_string(),
        message,
    }
}

fn slots_for(d: &DesiredPod) -> Vec<ContainerSlot> {
    d.pod
        .spec
        .containers
        .iter()
        .cloned()
        .map(ContainerSlot::new)
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

fn ended_from(info: &ContainerInfo) -> Ended {
    match &info.state {
        ContainerState::Exited {
            exit_code,
            oom_killed,
            started_at,
            finished_at,
            error,
        } => Ended {
            id: info.id.clone(),
            exit_code: *exit_code,
            reason: if *oom_killed {
                "OOMKilled"
            } else if *exit_code == 0 {
                "Completed"
            } else {
                "Error"
            }
            .to_string(),
            message: error.clone(),
            started_at: *started_at,
            finished_at: *finished_at,
        },
        ContainerState::Running { started_at } => Ended {
            id: info.id.clone(),
            exit_code: 137,
            reason: "Error".to_string(),
            message: None,
            started_at: Some(*started_at),
            finished_at: Some(Utc::now()),
        },
        ContainerState::Created => vanished(&info.id, None),
    }
}

/// A container that disappeared (removed behind the agent's back, say), as Kubernetes reports
/// one it can no longer find.
fn vanished(id: &str, started_at: Option<DateTime<Utc>>) -> Ended {
    Ended {
        id: id.to_string(),
        exit_code: 137,
        reason: "ContainerStatusUnknown".to_string(),
        message: Some("The container could not be located when the pod was terminated".into()),
        started_at,
        finished_at: Some(Utc::now()),
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
        volumes: None,
        volumes_retry: None,
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

/// Stops and removes the containers of a pod that is not wanted (found at agent start), as
/// gracefully as the pod had asked.
pub fn spawn_orphan_cleanup(
    ctx: Arc<PodContext>,
    uid: String,
    found: Vec<ContainerInfo>,
    exited: mpsc::UnboundedSender<String>,
) {
    tokio::spawn(async move {
        let grace = found.iter().map(|c| c.grace_seconds).max().unwrap_or(30);
        tracing::info!(
            pod = %found.first().map(|c| format!("{}/{}", c.pod_namespace, c.pod_name)).unwrap_or_default(),
            uid = %uid,
            "removing the containers of a pod this node no longer runs"
        );
        remove_all(&ctx, &uid, grace).await;
        ctx.hub.publish_deleted(
            &uid,
            found
                .first()
                .map(|c| c.pod_namespace.as_str())
                .unwrap_or(""),
            found.first().map(|c| c.pod_name.as_str()).unwrap_or(""),
        );
        let _ = exited.send(uid);
    });
}

/// Stops every app container of pod `uid` (in parallel, `grace` seconds each), then removes
/// them and the sandbox, and the pod's files. Retries while the engine is unreachable: a pod
/// is never left half-removed.
async fn remove_all(ctx: &PodContext, uid: &str, grace: i64) {
    let grace = Duration::from_secs(grace.max(0) as u64);
    let mut delay = Duration::from_millis(500);
    loop {
        match remove_all_once(ctx, uid, grace).await {
            Ok(()) => break,
            Err(e) => {
                tracing::warn!(uid, error = %e, "removing a pod's containers failed; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(10));
            }
        }
    }
    let dir = volumes::pod_dir(&ctx.data_dir, uid);
    if let Err(e) = tokio::fs::remove_dir_all(&dir).await
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(uid, dir = %dir.display(), error = %e, "cannot remove the pod's files");
    }
}

async fn remove_all_once(ctx: &PodContext, uid: &str, grace: Duration) -> Result<(), RuntimeError> {
    let found = ctx.runtime.list_pod(uid).await?;
    let apps: Vec<&ContainerInfo> = found
        .iter()
        .filter(|c| !c.is_sandbox() && matches!(c.state, ContainerState::Running { .. }))
        .collect();
    let stops = apps.iter().map(|c| ctx.runtime.stop(&c.id, grace));
    for r in futures_util::future::join_all(stops).await {
        r?;
    }
    // Apps first, so no container outlives the namespace it joined.
    for c in found.iter().filter(|c| !c.is_sandbox()) {
        ctx.runtime.remove(&c.id).await?;
    }
    for c in found.iter().filter(|c| c.is_sandbox()) {
        ctx.runtime.remove(&c.id).await?;
    }
    Ok(())
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
                self.event("Normal", "Killing", format!("Stopping container {name}"));
            }
        }
        remove_all(&self.ctx, &self.desired.uid, self.desired.grace_seconds()).await;
        self.ctx.hub.publish_deleted(
            &self.desired.uid,
            &self.desired.namespace,
            &self.desired.name,
        );
        RunEnd::Removed
    }

    /// Takes over the containers an earlier agent process made for this pod, leaving running
    /// ones running.
    async fn adopt(&mut self, mut found: Vec<ContainerInfo>) {
        if found.iter().any(|c| c.pod_hash != self.desired.hash) {
            // Made from another spec: replace the pod.
            tracing::info!(pod = %self.desired.key(), "pod spec changed while the agent was away; replacing its containers");
            remove_all(&self.ctx, &self.desired.uid, self.desired.grace_seconds()).await;
            return;
        }
        found.sort_by_key(|c| std::cmp::Reverse(c.attempt));
        let mut unwanted = Vec::new();
        // Earlier runs are kept for their logs, but never left running beside the latest.
        let mut stray = Vec::new();
        for c in found.iter().filter(|c| c.is_sandbox()) {
            let running = matches!(c.state, ContainerState::Running { .. });
            if self.sandbox.is_none() && running {
                self.sandbox = Some(Sandbox {
                    id: c.id.clone(),
                    attempt: c.attempt,
                    ip: self.sandbox_ip(c.ip.clone()),
                });
                if let ContainerState::Running { started_at } = c.state {
                    self.start_time = started_at;
                }
            } else {
                unwanted.push(c.id.clone());
            }
            self.sandbox_starts = self.sandbox_starts.max(c.attempt + 1);
        }
        for slot in &mut self.slots {
            let mut runs = found
                .iter()
                .filter(|c| c.container.as_deref() == Some(slot.spec.name.as_str()));
            if let Some(latest) = runs.next() {
                slot.starts = latest.attempt + 1;
                match latest.state {
                    ContainerState::Running { started_at } if self.sandbox.is_some() => {
                        // Probe delays count from the container's own start, as the kubelet's.
                        slot.life = ContainerLife::Running {
                            id: latest.id.clone(),
                            started_at,
                            probes: ContainerSlot::probes_for(&slot.spec, instant_of(started_at)),
                        };
                    }
                    _ => {
                        // Exited, or running without its sandbox: the pass below deals with it
                        // through the restart policy.
                        slot.life = ContainerLife::Running {
                            id: latest.id.clone(),
                            started_at: Utc::now(),
                            probes: Vec::new(),
                        };
                    }
                }
            }
            if let Some(previous) = runs.next() {
                slot.last = Some(ended_from(previous));
                stray.push(previous.id.clone());
            }
            if let Some(older) = runs.next() {
                slot.older = Some(older.id.clone());
                stray.push(older.id.clone());
            }
            unwanted.extend(runs.map(|c| c.id.clone()));
        }
        let known: Vec<&str> = self.slots.iter().map(|s| s.spec.name.as_str()).collect();
        unwanted.extend(
            found
                .iter()
                .filter(|c| c.container.as_deref().is_some_and(|n| !known.contains(&n)))
                .map(|c| c.id.clone()),
        );
        let grace = Duration::from_secs(self.desired.grace_seconds() as u64);
        for id in stray {
            let _ = self.ctx.runtime.stop(&id, grace).await;
        }
        for id in unwanted {
            let _ = self.ctx.runtime.remove(&id).await;
        }
        tracing::info!(pod = %self.desired.key(), "adopted the pod's running containers");
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

    fn terminal(&self) -> bool {
        !self.slots.is_empty()
            && self
                .slots
                .iter()
                .all(|s| matches!(s.life, ContainerLife::Terminated(_)))
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
        if self.terminal() {
            // A finished pod keeps its containers (for logs) but not its sandbox.
            if let Some(sb) = self.sandbox.take()
                && let Err(e) = self.ctx.runtime.remove(&sb.id).await
            {
                tracing::debug!(error = %e, "sandbox removal failed; retrying");
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
        for i in 0..self.slots.len() {
            self.sync_container(i).await;
        }
        self.schedule_probes();
    }

    /// Makes sure a running sandbox exists; false when there is none (yet).
    async fn ensure_sandbox(&mut self) -> bool {
        if let Some(sb) = &self.sandbox {
            match self.ctx.runtime.inspect(&sb.id).await {
                Ok(Some(info)) if matches!(info.state, ContainerState::Running { .. }) => {
                    return true;
                }
                Ok(_) => {
                    tracing::warn!(pod = %self.desired.key(), "pod sandbox is gone; recreating the pod's containers");
                    let id = sb.id.clone();
                    let _ = self.ctx.runtime.remove(&id).await;
                    self.sandbox = None;
                }
                Err(e) => {
                    tracing::debug!(error = %e, "cannot inspect the sandbox");
                    return false;
                }
            }
        }
        if self.volumes.is_none() {
            return false;
        }
        // App containers still running belong to a sandbox that is gone (their network went
        // with it): stop them first; the restart policy brings them back in the new one.
        let grace = Duration::from_secs(self.desired.grace_seconds() as u64);
        let orphaned: Vec<(usize, String)> = self
            .slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| match &s.life {
                ContainerLife::Running { id, .. } | ContainerLife::Stopping { id, .. } => {
                    Some((i, id.clone()))
                }
                _ => None,
            })
            .collect();
        let stops = orphaned
            .iter()
            .map(|(_, id)| self.ctx.runtime.stop(id, grace));
        for r in futures_util::future::join_all(stops).await {
            if let Err(e) = r {
                tracing::debug!(error = %e, "cannot stop a container of a lost sandbox");
                return false;
            }
        }
        for (i, id) in orphaned {
            {
                let ended = match self.ctx.runtime.inspect(&id).await {
                    Ok(Some(info)) => ended_from(&info),
                    Ok(None) => vanished(&id, None),
                    Err(_) => return false,
                };
                self.on_exit(i, ended).await;
            }
        }
        if self.terminal() {
            // Every container is done for good (found so after an agent restart, say): a
            // finished pod needs no sandbox.
            return false;
        }
        let mut host_ports = Vec::new();
        for c in &self.desired.pod.spec.containers {
            for p in c.ports.iter().flatten() {
                if let Some(hp) = p
                    .host_port
                    .and_then(|h| u16::try_from(h).ok())
                    .filter(|h| *h > 0)
                {
                    host_ports.push(crate::runtime::HostPort {
                        container_port: u16::try_from(p.container_port).unwrap_or(hp),
                        host_port: hp,
                        host_ip: p.host_ip.clone().filter(|h| !h.is_empty()),
                        protocol: if p.protocol.as_deref() == Some("UDP") {
                            "udp"
                        } else {
                            "tcp"
                        },
                    });
                }
            }
        }
        let spec = SandboxSpec {
            pod: self.pod_ref.clone(),
            attempt: self.sandbox_starts,
            // A hostname is a DNS label: at most 63 characters, as Kubernetes truncates it.
            hostname: self
                .desired
                .name
                .chars()
                .take(63)
                .collect::<String>()
                .trim_end_matches(['-', '.'])
                .to_string(),
            host_ports,
            host_network: self.host_network(),
        };
        match self.ctx.runtime.run_sandbox(&spec).await {
            Ok(mut sb) => {
                sb.ip = self.sandbox_ip(sb.ip);
                self.sandbox_starts += 1;
                self.sandbox = Some(sb);
                true
            }
            Err(e) => {
                tracing::warn!(pod = %self.desired.key(), error = %e, "cannot create the pod sandbox");
                let retry = Instant::now() + ENGINE_RETRY;
                for slot in &mut self.slots {
                    if let ContainerLife::Waiting { reason, .. } = slot.life {
                        slot.life = ContainerLife::Waiting {
                            reason,
                            message: Some(format!("FailedCreatePodSandBox: {e}")),
                            retry_at: Some(retry),
                        };
                    }
                }
                false
            }
        }
    }

    /// Docker records an OOM kill from an event of its own that can land just after the
    /// exit (seen on a loaded machine): an exit 137 without the flag is looked at again
    /// briefly before it is taken as final, so an OOM kill is not reported as `Error`.
    async fn settled_exit(&self, id: &str, mut info: ContainerInfo) -> ContainerInfo {
        for _ in 0..5 {
            if !matches!(
                info.state,
                ContainerState::Exited {
                    exit_code: 137,
                    oom_killed: false,
                    ..
                }
            ) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            match self.ctx.runtime.inspect(id).await {
                Ok(Some(again)) => info = again,
                _ => break,
            }
        }
        info
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
                    Err(e) => tracing::debug!(error = %e, "cannot inspect a container"),
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

    /// Container `i` stopped: keep it as the previous run and restart it if the policy says so.
    async fn on_exit(&mut self, i: usize, ended: Ended) {
        let restart = match self.restart_policy() {
            "Never" => false,
            "OnFailure" => ended.exit_code != 0,
            _ => true,
        };
        let pod = self.desired.key();
        let slot = &mut self.slots[i];
        tracing::info!(pod = %pod, container = %slot.spec.name, exit_code = ended.exit_code, reason = %ended.reason, restart, "container exited");
        if !restart {
            slot.life = ContainerLife::Terminated(ended);
            return;
        }
        let delay = slot.backoff.on_exit(ended.ran_for());
        // The latest run and the one before it are kept (`logs` and `logs --previous` while
        // the container waits to restart); older runs go.
        if let Some(before) = slot.last.replace(ended)
            && let Some(oldest) = slot.older.replace(before.id)
        {
            let _ = self.ctx.runtime.remove(&oldest).await;
        }
        let slot = &mut self.slots[i];
        if delay.is_zero() {
            slot.life = ContainerLife::Waiting {
                reason: WaitReason::ContainerCreating,
                message: None,
                retry_at: None,
            };
            self.start(i).await;
        } else {
            let name = slot.spec.name.clone();
            self.event(
                "Warning",
                "BackOff",
                format!(
                    "Back-off restarting failed container {name} in pod {}_{}({})",
                    self.desired.name, self.desired.namespace, self.desired.uid
                ),
            );
            let slot = &mut self.slots[i];
            slot.life = ContainerLife::Waiting {
                reason: WaitReason::CrashLoopBackOff,
                message: Some(format!(
                    "back-off {}s restarting failed container={} pod={}_{}({})",
                    delay.as_secs(),
                    slot.spec.name,
                    self.desired.name,
                    self.desired.namespace,
                    self.desired.uid
                )),
                retry_at: Some(Instant::now() + delay),
            };
        }
    }

    fn wait(&mut self, i: usize, reason: WaitReason, message: String, after: Duration) {
        self.slots[i].life = ContainerLife::Waiting {
            reason,
            message: Some(message),
            retry_at: Some(Instant::now() + after),
        };
    }

    /// Starts container `i`: its image, its config, then the container itself.
    async fn start(&mut self, i: usize) {
        let (Some(sandbox), Some(volumes)) = (self.sandbox.clone(), self.volumes.clone()) else {
            // Not yet possible: look again shortly rather than at once.
            if let ContainerLife::Waiting { retry_at, .. } = &mut self.slots[i].life {
                *retry_at = Some(Instant::now() + ENGINE_RETRY);
            }
            return;
        };
        let spec = self.slots[i].spec.clone();
        let image = spec.image.clone().unwrap_or_default();
        let previous_reason = match &self.slots[i].life {
            ContainerLife::Waiting { reason, .. } => Some(*reason),
            _ => None,
        };
        let policy = pull_policy(&spec);
        let will_pull = match policy {
            PullPolicy::Always => true,
            PullPolicy::Never => false,
            PullPolicy::IfNotPresent => {
                !self.ctx.runtime.image_present(&image).await.unwrap_or(true)
            }
        };
        if will_pull {
            self.event("Normal", "Pulling", format!("Pulling image \"{image}\""));
        }
        let pulled = self.ctx.runtime.ensure_image(&image, policy).await;
        if pulled.is_ok() {
            let message = if will_pull {
                format!("Successfully pulled image \"{image}\"")
            } else {
                format!("Container image \"{image}\" already present on machine")
            };
            self.event("Normal", "Pulled", message);
        }
        if let Err(ImageError::Runtime(m)) = &pulled {
            // The engine did not answer: not the image's fault.
            let m = m.clone();
            self.wait(i, WaitReason::ContainerCreating, m, ENGINE_RETRY);
            return;
        }
        if let Err(e) = pulled {
            let delay = self.slots[i].backoff.on_failure();
            let reason = match (&e, previous_reason) {
                (ImageError::NeverPull(_), _) => WaitReason::ErrImageNeverPull,
                (_, Some(WaitReason::ErrImagePull | WaitReason::ImagePullBackOff)) => {
                    WaitReason::ImagePullBackOff
                }
                _ => WaitReason::ErrImagePull,
            };
            let message = match reason {
                WaitReason::ImagePullBackOff => format!("Back-off pulling image \"{image}\": {e}"),
                _ => e.to_string(),
            };
            tracing::warn!(pod = %self.desired.key(), container = %spec.name, image = %image, error = %e, "image not available");
            match reason {
                WaitReason::ImagePullBackOff => self.event(
                    "Normal",
                    "BackOff",
                    format!("Back-off pulling image \"{image}\""),
                ),
                _ => self.event(
                    "Warning",
                    "Failed",
                    format!("Failed to pull image \"{image}\": {e}"),
                ),
            }
            self.wait(i, reason, message, delay);
            return;
        }
        let attempt = self.slots[i].starts;
        let cs = match container_spec(&self.desired, &self.pod_ref, &spec, attempt, &volumes) {
            Ok(cs) => cs,
            Err(message) => {
                let delay = self.slots[i].backoff.on_failure();
                self.event("Warning", "Failed", format!("Error: {message}"));
                self.wait(i, WaitReason::CreateContainerConfigError, message, delay);
                return;
            }
        };
        match self.ctx.runtime.run_container(&sandbox, &cs).await {
            Ok(id) => {
                tracing::info!(pod = %self.desired.key(), container = %spec.name, attempt, "container started");
                self.event(
                    "Normal",
                    "Created",
                    format!("Created container {}", spec.name),
                );
                self.event(
                    "Normal",
                    "Started",
                    format!("Started container {}", spec.name),
                );
                // The engine's own start time, so it never changes when read again later.
                let started_at = match self.ctx.runtime.inspect(&id).await {
                    Ok(Some(ContainerInfo {
                        state: ContainerState::Running { started_at },
                        ..
                    })) => started_at,
                    _ => Utc::now(),
                };
                let slot = &mut self.slots[i];
                slot.starts += 1;
                slot.life = ContainerLife::Running {
                    id,
                    started_at,
                    probes: ContainerSlot::probes_for(&slot.spec, Instant::now()),
                };
            }
            Err(RuntimeError::Unavailable(m)) => {
                self.wait(i, WaitReason::ContainerCreating, m, ENGINE_RETRY);
            }
            Err(RuntimeError::Failed(m)) => {
                let delay = self.slots[i].backoff.on_failure();
                tracing::warn!(pod = %self.desired.key(), container = %spec.name, error = %m, "container failed to start");
                self.event("Warning", "Failed", format!("Error: {m}"));
                self.wait(i, WaitReason::CreateContainerError, m, delay);
            }
        }
    }

    /// Records a kubelet-style event about this pod.
    fn event(&self, type_: &str, reason: &str, message: String) {
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

    /// Starts every probe that is due.
    fn schedule_probes(&mut self) {
        let now = Instant::now();
        let pod_ip = self.sandbox.as_ref().and_then(|s| s.ip.clone());
        for slot in &mut self.slots {
            let started = slot.started();
            let ContainerLife::Running { id, probes, .. } = &mut slot.life else {
                continue;
            };
            for p in probes.iter_mut() {
                let applies = match p.kind {
                    ProbeKind::Startup => p.verdict != Verdict::Success,
                    _ => started,
                };
                if !applies || p.in_flight || p.next_at > now {
                    continue;
                }
                p.in_flight = true;
                let (runtime, id, ip, spec, probe, timeout, kind) = (
                    self.ctx.runtime.clone(),
                    id.clone(),
                    pod_ip.clone(),
                    slot.spec.clone(),
                    p.probe.clone(),
                    p.timeout(),
                    p.kind,
                );
                self.probes.spawn(async move {
                    // A probe that panics must not leave its probe "in flight" forever.
                    let run = probe::run(runtime, id.clone(), ip, spec, probe, timeout);
                    let result = std::panic::AssertUnwindSafe(run)
                        .catch_unwind()
                        .await
                        .unwrap_or_else(|_| Outcome::Unknown("the probe panicked".into()));
                    ProbeDone {
                        container_id: id,
                        kind,
                        result,
                    }
                });
            }
        }
    }

    async fn on_probe(&mut self, done: ProbeDone) {
        let pod = self.desired.key();
        let Some(slot) = self.slots.iter_mut().find(
            |s| matches!(&s.life, ContainerLife::Running { id, .. } if *id == done.container_id),
        ) else {
            return; // The container this probe was for is gone.
        };
        let name = slot.spec.name.clone();
        let ContainerLife::Running { probes, .. } = &mut slot.life else {
            return;
        };
        let Some(p) = probes.iter_mut().find(|p| p.kind == done.kind) else {
            return;
        };
        match &done.result {
            Outcome::Failure(m) => {
                tracing::info!(pod = %pod, container = %name, probe = done.kind.as_str(), error = %m, "probe failed");
                let message = format!("{} probe failed: {m}", done.kind.as_str());
                self.ctx.hub.record_event(pod_event(
                    &self.desired,
                    "Warning",
                    "Unhealthy",
                    message,
                ));
            }
            Outcome::Unknown(m) => {
                tracing::debug!(pod = %pod, container = %name, probe = done.kind.as_str(), error = %m, "probe could not run");
            }
            Outcome::Success => {}
        }
        p.record(done.result, Instant::now());
        let kill = p.verdict == Verdict::Failure
            && matches!(p.kind, ProbeKind::Liveness | ProbeKind::Startup);
        if kill {
            let message = p.last_message.clone().unwrap_or_default();
            tracing::info!(pod = %pod, container = %name, "Container {name} failed {} probe, will be restarted: {message}", done.kind.as_str().to_lowercase());
            let event = pod_event(
                &self.desired,
                "Normal",
                "Killing",
                format!(
                    "Container {name} failed {} probe, will be restarted",
                    done.kind.as_str().to_lowercase()
                ),
            );
            self.ctx.hub.record_event(event);
            // Not ready from now on; stopped in the background (its grace period may be long)
            // and the exit is seen on a later pass.
            let ContainerLife::Running { id, started_at, .. } = &slot.life else {
                return;
            };
            let (id, started_at) = (id.clone(), *started_at);
            let again = self.stop_in_background(&id);
            if let Some(slot) = self.slots.iter_mut().find(|s| s.spec.name == name) {
                slot.life = ContainerLife::Stopping {
                    id,
                    started_at,
                    retry_at: Instant::now() + again,
                };
            }
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

    fn next_wake(&self) -> Instant {
        let mut wake = Instant::now() + RESYNC;
        if let Some(t) = self.volumes_retry {
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
