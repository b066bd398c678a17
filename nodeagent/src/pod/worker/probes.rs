//! Liveness, readiness and startup probes: started when due, their verdicts acted on.

use futures_util::FutureExt;
use tokio::time::Instant;

use super::{PodWorker, ProbeDone, pod_event};
use crate::pod::probe::{self, Outcome, ProbeKind, Verdict};
use crate::pod::state::ContainerLife;
use keel_schema::types::core::EventType;

impl PodWorker {
    /// Starts every probe that is due.
    pub(super) fn schedule_probes(&mut self) {
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

    pub(super) async fn on_probe(&mut self, done: ProbeDone) {
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
                    EventType::Warning,
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
                EventType::Normal,
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
            let i = self
                .slots
                .iter()
                .position(|s| s.spec.name == name)
                .unwrap_or_default();
            let again = self.kill_in_background(i, &id);
            if let Some(slot) = self.slots.iter_mut().find(|s| s.spec.name == name) {
                slot.life = ContainerLife::Stopping {
                    id,
                    started_at,
                    retry_at: Instant::now() + again,
                };
            }
        }
    }
}
