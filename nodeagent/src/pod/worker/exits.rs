//! A container that ended: what it ended as, and what the restart policy makes of it.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::time::Instant;

use super::PodWorker;
use crate::pod::state::{ContainerLife, Ended, WaitReason};
use crate::runtime::{ContainerInfo, ContainerState};
use keel_schema::types::core::EventType;

pub(super) fn ended_from(info: &ContainerInfo) -> Ended {
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
pub(super) fn vanished(id: &str, started_at: Option<DateTime<Utc>>) -> Ended {
    Ended {
        id: id.to_string(),
        exit_code: 137,
        reason: "ContainerStatusUnknown".to_string(),
        message: Some("The container could not be located when the pod was terminated".into()),
        started_at,
        finished_at: Some(Utc::now()),
    }
}

impl PodWorker {
    /// Docker records an OOM kill from an event of its own that can land just after the
    /// exit (seen on a loaded machine): an exit 137 without the flag is looked at again
    /// briefly before it is taken as final, so an OOM kill is not reported as `Error`.
    pub(super) async fn settled_exit(&self, id: &str, mut info: ContainerInfo) -> ContainerInfo {
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

    /// Why container `i` ended, in its own words: its termination message file, or with
    /// `FallbackToLogsOnError` after a failure, the end of its log.
    async fn termination_message(&self, i: usize, ended: &Ended) -> Option<String> {
        use crate::pod::termination;
        let pod_dir = crate::pod::volumes::pod_dir(&self.ctx.data_dir, &self.desired.uid);
        let spec = &self.slots[i].spec;
        if let Some(text) = termination::read(&pod_dir, &spec.name) {
            return Some(text);
        }
        if !termination::falls_back_to_logs(spec) || ended.exit_code == 0 {
            return None;
        }
        use futures_util::StreamExt;
        let mut log = Vec::new();
        let mut chunks = self
            .ctx
            .runtime
            .logs(&ended.id, termination::LOG_LINES, false);
        while let Some(Ok((_, bytes))) = chunks.next().await {
            log.extend_from_slice(&bytes);
            if log.len() > 64 * 1024 {
                log.drain(..log.len() - termination::MAX_LOG_MESSAGE);
            }
        }
        termination::log_tail(&String::from_utf8_lossy(&log))
    }

    /// Container `i` stopped: keep it as the previous run and restart it if the policy says so.
    pub(super) async fn on_exit(&mut self, i: usize, mut ended: Ended) {
        if let Some(message) = self.termination_message(i, &ended).await {
            ended.message = Some(message);
        }
        let restart = match self.restart_policy() {
            "Never" => false,
            "OnFailure" => ended.exit_code != 0,
            // An init container that completed is done, whatever the policy.
            _ if self.slots[i].init => ended.exit_code != 0,
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
                EventType::Warning,
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
}
