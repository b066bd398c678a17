//! Lifecycle hooks, as the kubelet runs them: `postStart` right after a container starts
//! (it is not Running until the hook returns, and a failed hook kills it, which the restart
//! policy then handles), `preStop` before a container is killed (a failed probe or
//! postStart hook) and before the pod's containers are stopped, all at once, within the
//! pod's grace period.

use std::time::Duration;

use keel_schema::types::core::EventType;
use keel_schema::types::pod::{Container, LifecycleHandler, Probe};
use tokio::time::Instant;

use super::PodWorker;
use crate::pod::probe::{self, Outcome};
use crate::pod::state::ContainerLife;

/// The longest a postStart hook holds its pod's worker (Kubernetes sets no limit; a hook
/// that never returns must not freeze the pod for good).
const POST_START_LIMIT: Duration = Duration::from_secs(120);

/// After preStop hooks, the containers still get at least this long to stop, as the
/// kubelet gives them.
const MIN_STOP_GRACE: Duration = Duration::from_secs(2);

/// Runs `hook` for container `id` of `container` (pod IP `ip`) within `limit`.
pub(super) async fn run(
    runtime: std::sync::Arc<dyn crate::runtime::Runtime>,
    ip: Option<String>,
    id: &str,
    container: &Container,
    hook: &LifecycleHandler,
    limit: Duration,
) -> Result<(), String> {
    if let Some(sleep) = &hook.sleep {
        let asked = Duration::from_secs(sleep.seconds.max(0) as u64);
        tokio::time::sleep(asked.min(limit)).await;
        return Ok(());
    }
    // An exec or httpGet hook is a probe's action, run once.
    let action = Probe {
        exec: hook.exec.clone(),
        http_get: hook.http_get.clone(),
        ..Default::default()
    };
    let run = probe::run(
        runtime,
        id.to_string(),
        ip,
        container.clone(),
        action,
        limit,
    );
    match tokio::time::timeout(limit, run).await {
        Ok(Outcome::Success) => Ok(()),
        Ok(Outcome::Failure(m) | Outcome::Unknown(m)) => Err(m),
        Err(_) => Err(format!(
            "did not finish within {}",
            humantime::format_duration(limit)
        )),
    }
}

impl PodWorker {
    fn pod_ip(&self) -> Option<String> {
        self.sandbox.as_ref().and_then(|s| s.ip.clone())
    }

    /// Runs container `i`'s preStop hook, if it has one, then stops it, in a task of its
    /// own (its grace period may be long), as the kubelet kills a container: after a failed
    /// liveness or startup probe, or a failed postStart hook. Returns how long to wait
    /// before stopping it again should it still run.
    pub(super) fn kill_in_background(&self, i: usize, id: &str) -> Duration {
        let grace = Duration::from_secs(self.desired.grace_seconds().max(0) as u64);
        let spec = self.slots[i].spec.clone();
        let Some(hook) = spec.lifecycle.as_ref().and_then(|l| l.pre_stop.clone()) else {
            return self.stop_in_background(id);
        };
        let (runtime, ip, id) = (self.ctx.runtime.clone(), self.pod_ip(), id.to_string());
        let (ctx, desired) = (self.ctx.clone(), self.desired.clone());
        tokio::spawn(async move {
            let started = Instant::now();
            if let Err(e) = run(runtime.clone(), ip, &id, &spec, &hook, grace).await {
                let message = format!(
                    "PreStopHook for container {:?} in pod {:?} failed: {e}",
                    spec.name,
                    desired.key()
                );
                let event =
                    super::pod_event(&desired, EventType::Warning, "FailedPreStopHook", message);
                ctx.hub.record_event(event);
            }
            let left = grace.saturating_sub(started.elapsed()).max(MIN_STOP_GRACE);
            if let Err(e) = runtime.stop(&id, left).await {
                tracing::warn!(error = %e, "stopping a container after its preStop hook; will retry");
            }
        });
        grace + MIN_STOP_GRACE + Duration::from_secs(5)
    }

    /// Runs the postStart hook of container `i`, just started as `id`. On failure the
    /// container is being stopped (as after a failed liveness probe) and false is returned.
    pub(super) async fn post_start(&mut self, i: usize, id: &str) -> bool {
        let spec = self.slots[i].spec.clone();
        let Some(hook) = spec.lifecycle.as_ref().and_then(|l| l.post_start.as_ref()) else {
            return true;
        };
        let runtime = self.ctx.runtime.clone();
        let Err(e) = run(runtime, self.pod_ip(), id, &spec, hook, POST_START_LIMIT).await else {
            return true;
        };
        let message = format!(
            "PostStartHook for container {:?} in pod {:?} failed: {e}",
            spec.name,
            self.desired.key()
        );
        tracing::warn!(pod = %self.desired.key(), container = %spec.name, error = %e, "postStart hook failed; stopping the container");
        self.event(EventType::Warning, "FailedPostStartHook", message);
        let again = self.kill_in_background(i, id);
        if let ContainerLife::Running { started_at, .. } = &self.slots[i].life {
            let started_at = *started_at;
            self.slots[i].life = ContainerLife::Stopping {
                id: id.to_string(),
                started_at,
                retry_at: Instant::now() + again,
            };
        }
        false
    }

    /// Runs the preStop hooks of every running container at once, within `grace`; returns
    /// what the containers then get to stop.
    pub(super) async fn pre_stop_all(&self, grace: Duration) -> Duration {
        let started = Instant::now();
        let hooks = self.slots.iter().filter_map(|s| {
            let ContainerLife::Running { id, .. } = &s.life else {
                return None;
            };
            let hook = s.spec.lifecycle.as_ref()?.pre_stop.as_ref()?;
            let (runtime, ip) = (self.ctx.runtime.clone(), self.pod_ip());
            Some(async move {
                if let Err(e) = run(runtime, ip, id, &s.spec, hook, grace).await {
                    let message = format!(
                        "PreStopHook for container {:?} in pod {:?} failed: {e}",
                        s.spec.name,
                        self.desired.key()
                    );
                    self.event(EventType::Warning, "FailedPreStopHook", message);
                }
            })
        });
        let hooks: Vec<_> = hooks.collect();
        if hooks.is_empty() {
            return grace;
        }
        futures_util::future::join_all(hooks).await;
        grace.saturating_sub(started.elapsed()).max(MIN_STOP_GRACE)
    }
}
