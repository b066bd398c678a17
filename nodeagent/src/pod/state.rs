//! The explicit states of a pod's containers, and the Kubernetes status read off them.
//!
//! Each container is in exactly one [`ContainerLife`]: waiting (to be created, for an image,
//! or in a backoff), running, or terminated for good. The pod's phase, conditions and
//! `containerStatuses` are computed from these states alone.

use std::time::Duration;

use chrono::{DateTime, Utc};
use keel_schema::types::meta::Condition;
use keel_schema::types::pod::{
    Container, ContainerState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, ContainerStatus, PodPhase, PodStatus,
};
use tokio::time::Instant;

/// Kubernetes writes timestamps with second precision.
fn secs(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp(t.timestamp(), 0).unwrap_or(t)
}

use super::backoff::Backoff;
use super::probe::{ProbeKind, ProbeState, Verdict};

/// Why a container is waiting, with Kubernetes' reasons.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitReason {
    ContainerCreating,
    ErrImagePull,
    ImagePullBackOff,
    ErrImageNeverPull,
    CreateContainerConfigError,
    CreateContainerError,
    CrashLoopBackOff,
    /// An app container whose pod's init containers have not all completed.
    PodInitializing,
}

impl WaitReason {
    pub fn as_str(self) -> &'static str {
        match self {
            WaitReason::ContainerCreating => "ContainerCreating",
            WaitReason::ErrImagePull => "ErrImagePull",
            WaitReason::ImagePullBackOff => "ImagePullBackOff",
            WaitReason::ErrImageNeverPull => "ErrImageNeverPull",
            WaitReason::CreateContainerConfigError => "CreateContainerConfigError",
            WaitReason::CreateContainerError => "CreateContainerError",
            WaitReason::CrashLoopBackOff => "CrashLoopBackOff",
            WaitReason::PodInitializing => "PodInitializing",
        }
    }
}

/// How a container run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ended {
    pub id: String,
    pub exit_code: i64,
    /// `Completed`, `Error`, `OOMKilled` or `ContainerStatusUnknown`.
    pub reason: String,
    pub message: Option<String>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl Ended {
    pub fn ran_for(&self) -> Duration {
        match (self.started_at, self.finished_at) {
            (Some(s), Some(f)) => (f - s).to_std().unwrap_or_default(),
            _ => Duration::ZERO,
        }
    }

    fn as_state(&self) -> ContainerState {
        ContainerState {
            terminated: Some(Box::new(ContainerStateTerminated {
                exit_code: self.exit_code,
                signal: None,
                reason: Some(self.reason.clone()),
                message: self.message.clone(),
                started_at: self.started_at.map(secs),
                finished_at: self.finished_at.map(secs),
            })),
            ..Default::default()
        }
    }
}

#[derive(Debug, Clone)]
pub enum ContainerLife {
    /// Not running; started again at `retry_at` (at once when `None`).
    Waiting {
        reason: WaitReason,
        message: Option<String>,
        retry_at: Option<Instant>,
    },
    Running {
        id: String,
        started_at: DateTime<Utc>,
        probes: Vec<ProbeState>,
    },
    /// Being stopped by the agent (a failed liveness or startup probe): still running until
    /// its stop signal takes effect, but never ready.
    Stopping {
        id: String,
        started_at: DateTime<Utc>,
        /// When to send the stop again if the container still runs (the engine may not have
        /// taken the first one).
        retry_at: Instant,
    },
    /// Finished, and the restart policy says it stays so.
    Terminated(Ended),
}

/// One container of the pod: its spec, its state, and what it remembers across runs.
#[derive(Debug, Clone)]
pub struct ContainerSlot {
    pub spec: Container,
    /// One of `initContainers`: runs to completion, in order, before any app container.
    pub init: bool,
    pub life: ContainerLife,
    /// Runs started so far; the next run's attempt number. Restart count is `starts - 1`.
    pub starts: u32,
    /// The previous run, shown as `lastState` and kept for `logs --previous`.
    pub last: Option<Ended>,
    /// The container of the run before `last`, kept while the container waits to restart
    /// (then `last` is the current instance and this one the previous).
    pub older: Option<String>,
    pub backoff: Backoff,
}

impl ContainerSlot {
    pub fn new(spec: Container) -> Self {
        Self {
            spec,
            init: false,
            life: ContainerLife::Waiting {
                reason: WaitReason::ContainerCreating,
                message: None,
                retry_at: None,
            },
            starts: 0,
            last: None,
            older: None,
            backoff: Backoff::default(),
        }
    }

    /// A slot of the pod's `initContainers`.
    pub fn init(spec: Container) -> Self {
        Self {
            init: true,
            ..Self::new(spec)
        }
    }

    /// An app container of a pod with init containers: it waits for them first.
    pub fn after_init(spec: Container) -> Self {
        Self {
            life: ContainerLife::Waiting {
                reason: WaitReason::PodInitializing,
                message: None,
                retry_at: None,
            },
            ..Self::new(spec)
        }
    }

    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// Ran to completion with success (what an init container must do).
    pub fn completed(&self) -> bool {
        matches!(&self.life, ContainerLife::Terminated(e) if e.exit_code == 0)
    }

    pub fn restart_count(&self) -> i64 {
        i64::from(self.starts.saturating_sub(1))
    }

    pub fn probes_for(spec: &Container, started: Instant) -> Vec<ProbeState> {
        [
            (ProbeKind::Startup, &spec.startup_probe),
            (ProbeKind::Liveness, &spec.liveness_probe),
            (ProbeKind::Readiness, &spec.readiness_probe),
        ]
        .into_iter()
        .filter_map(|(kind, p)| p.clone().map(|p| ProbeState::new(kind, *p, started)))
        .collect()
    }

    fn verdict(probes: &[ProbeState], kind: ProbeKind) -> Option<Verdict> {
        probes.iter().find(|p| p.kind == kind).map(|p| p.verdict)
    }

    /// Started: running and past its startup probe (if any).
    pub fn started(&self) -> bool {
        match &self.life {
            ContainerLife::Running { probes, .. } => {
                Self::verdict(probes, ProbeKind::Startup).is_none_or(|v| v == Verdict::Success)
            }
            ContainerLife::Stopping { .. } => true,
            _ => false,
        }
    }

    /// Ready: started, and its readiness probe (if any) succeeded.
    pub fn ready(&self) -> bool {
        match &self.life {
            ContainerLife::Running { probes, .. } => {
                self.started()
                    && Self::verdict(probes, ProbeKind::Readiness)
                        .is_none_or(|v| v == Verdict::Success)
            }
            _ => false,
        }
    }

    /// The container's status; ids are shown as `<runtime>://<id>`, as Kubernetes does.
    pub fn status(&self, runtime: &str) -> ContainerStatus {
        let (state, id) = match &self.life {
            ContainerLife::Waiting {
                reason, message, ..
            } => (
                ContainerState {
                    waiting: Some(Box::new(ContainerStateWaiting {
                        reason: Some(reason.as_str().to_string()),
                        message: message.clone(),
                    })),
                    ..Default::default()
                },
                self.last.as_ref().map(|l| l.id.clone()),
            ),
            ContainerLife::Running { id, started_at, .. }
            | ContainerLife::Stopping { id, started_at, .. } => (
                ContainerState {
                    running: Some(ContainerStateRunning {
                        started_at: Some(secs(*started_at)),
                    }),
                    ..Default::default()
                },
                Some(id.clone()),
            ),
            ContainerLife::Terminated(ended) => (ended.as_state(), Some(ended.id.clone())),
        };
        ContainerStatus {
            name: self.spec.name.clone(),
            ready: self.ready(),
            restart_count: self.restart_count(),
            started: Some(self.started()),
            image: self.spec.image.clone(),
            container_id: id.map(|id| format!("{runtime}://{id}")),
            state: Some(state),
            last_state: Some(self.last.as_ref().map(Ended::as_state).unwrap_or_default()),
        }
    }
}

/// Whether an app container has ever started: the pod is past its init containers then,
/// as the kubelet judges it (a completed init container removed since, by a prune say, is
/// not run again beside the running app).
pub fn apps_started(slots: &[ContainerSlot]) -> bool {
    slots.iter().any(|s| !s.init && s.starts > 0)
}

/// Whether every init container completed (true without any), or the app containers have
/// started already.
pub fn initialized(slots: &[ContainerSlot]) -> bool {
    apps_started(slots)
        || slots
            .iter()
            .filter(|s| s.init)
            .all(ContainerSlot::completed)
}

/// `Pending`, `Running`, `Succeeded` or `Failed`, as Kubernetes decides them.
pub fn phase(slots: &[ContainerSlot]) -> PodPhase {
    // An init container that failed for good (restartPolicy Never) fails the pod; until
    // all have completed, the pod is pending.
    let init_failed = !apps_started(slots)
        && slots
            .iter()
            .any(|s| s.init && matches!(s.life, ContainerLife::Terminated(_)) && !s.completed());
    if init_failed {
        return PodPhase::Failed;
    }
    if !initialized(slots) {
        return PodPhase::Pending;
    }
    let slots: Vec<&ContainerSlot> = slots.iter().filter(|s| !s.init).collect();
    let all_terminated = slots
        .iter()
        .all(|s| matches!(s.life, ContainerLife::Terminated(_)));
    if !slots.is_empty() && all_terminated {
        let all_ok = slots.iter().all(|s| match &s.life {
            ContainerLife::Terminated(e) => e.exit_code == 0,
            _ => false,
        });
        return if all_ok {
            PodPhase::Succeeded
        } else {
            PodPhase::Failed
        };
    }
    // Restarting containers (waiting in a backoff) still count as running, as in Kubernetes.
    if slots.iter().any(|s| s.starts == 0) {
        PodPhase::Pending
    } else {
        PodPhase::Running
    }
}

fn condition(
    type_: &str,
    ok: bool,
    previous: Option<&PodStatus>,
    now: DateTime<Utc>,
    reason: Option<&str>,
) -> Condition {
    let status = if ok { "True" } else { "False" };
    // Keep the transition time while the status stays the same.
    let since = previous
        .and_then(|p| p.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == type_))
        .filter(|c| c.status == status)
        .and_then(|c| c.last_transition_time);
    Condition {
        type_: type_.to_string(),
        status: status.to_string(),
        last_transition_time: Some(since.unwrap_or(secs(now))),
        reason: reason.filter(|_| !ok).map(str::to_string),
        ..Default::default()
    }
}

pub struct StatusInput<'a> {
    pub slots: &'a [ContainerSlot],
    /// The runtime's name, for container ids.
    pub runtime: &'a str,
    pub pod_ip: Option<&'a str>,
    pub host_ip: Option<&'a str>,
    pub start_time: DateTime<Utc>,
    pub previous: Option<&'a PodStatus>,
}

pub fn pod_status(input: StatusInput<'_>) -> PodStatus {
    let now = Utc::now();
    let phase = phase(input.slots);
    let (inits, apps): (Vec<&ContainerSlot>, Vec<&ContainerSlot>) =
        input.slots.iter().partition(|s| s.init);
    let containers_ready = !apps.is_empty() && apps.iter().all(|s| s.ready());
    let not_ready = Some("ContainersNotReady");
    let statuses = |slots: &[&ContainerSlot]| -> Vec<ContainerStatus> {
        slots.iter().map(|s| s.status(input.runtime)).collect()
    };
    PodStatus {
        phase: Some(phase),
        conditions: Some(vec![
            condition(
                "Initialized",
                initialized(input.slots),
                input.previous,
                now,
                Some("ContainersNotInitialized"),
            ),
            condition("Ready", containers_ready, input.previous, now, not_ready),
            condition(
                "ContainersReady",
                containers_ready,
                input.previous,
                now,
                not_ready,
            ),
            condition("PodScheduled", true, input.previous, now, None),
        ]),
        message: None,
        reason: None,
        host_ip: input.host_ip.map(str::to_string),
        pod_ip: input.pod_ip.map(str::to_string),
        start_time: Some(secs(input.start_time)),
        init_container_statuses: (!inits.is_empty()).then(|| statuses(&inits)),
        container_statuses: Some(statuses(&apps)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(name: &str) -> Container {
        Container {
            name: name.to_string(),
            ..Default::default()
        }
    }

    fn running(slot: &mut ContainerSlot) {
        slot.starts = 1;
        slot.life = ContainerLife::Running {
            id: "c".into(),
            started_at: Utc::now(),
            probes: Vec::new(),
        };
    }

    #[test]
    fn init_containers_hold_the_pod_until_done_or_the_app_has_started() {
        let mut slots = vec![
            ContainerSlot::init(container("setup")),
            ContainerSlot::after_init(container("app")),
        ];
        assert!(!initialized(&slots));
        assert_eq!(phase(&slots), PodPhase::Pending);
        // The init container failed for good: the pod failed.
        slots[0].life = ContainerLife::Terminated(Ended {
            id: "i".into(),
            exit_code: 2,
            reason: "Error".into(),
            message: None,
            started_at: None,
            finished_at: None,
        });
        assert_eq!(phase(&slots), PodPhase::Failed);
        // Once the app has started, a missing init container (pruned meanwhile) does not
        // hold the pod back or fail it.
        slots[0].life = ContainerLife::Waiting {
            reason: WaitReason::ContainerCreating,
            message: None,
            retry_at: None,
        };
        running(&mut slots[1]);
        assert!(initialized(&slots));
        assert_eq!(phase(&slots), PodPhase::Running);
    }
}
