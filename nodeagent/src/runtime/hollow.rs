//! The hollow runtime: containers simulated in memory, for scale tests with thousands of nodes
//! on one machine. Containers start at once and run until stopped, unless the pod scripts a
//! failure with annotations:
//! - `hollow.keel.dev/exit-after`: a duration (`2s`, `500ms`) after which each container exits;
//! - `hollow.keel.dev/exit-code`: the exit code it exits with (default 0).
//!
//! Init containers complete at once (exit 0) unless those annotations say otherwise.
//!
//! Restart policy, backoff and status are the pod workers' business, exactly as with Docker.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use tokio::sync::broadcast;

use crate::network::NodeNetwork;

use super::{
    ContainerInfo, ContainerSpec, ContainerState, ExecOutcome, ImageError, LogStream, PullPolicy,
    Runtime, RuntimeError, RuntimeEvent, Sandbox, SandboxSpec,
};

pub const EXIT_AFTER: &str = "hollow.keel.dev/exit-after";
pub const EXIT_CODE: &str = "hollow.keel.dev/exit-code";

pub struct HollowRuntime {
    shared: Arc<Shared>,
    next: AtomicU64,
    /// False while the simulated engine does not answer looks (see [`Self::set_answering`]).
    answering: AtomicBool,
    /// Sandboxes take addresses from the node's range once it has one, as real pods do.
    network: Option<NodeNetwork>,
}

/// What the timers of scripted exits need too.
struct Shared {
    containers: Mutex<HashMap<String, ContainerInfo>>,
    events: broadcast::Sender<RuntimeEvent>,
}

impl Default for HollowRuntime {
    fn default() -> Self {
        Self::new()
    }
}

impl HollowRuntime {
    pub fn new() -> Self {
        Self {
            shared: Arc::new(Shared {
                containers: Mutex::default(),
                events: broadcast::channel(4096).0,
            }),
            next: AtomicU64::new(1),
            answering: AtomicBool::new(true),
            network: None,
        }
    }

    /// Hands out sandbox addresses from `network`'s range (wrapping around a full range:
    /// there is no network to collide on).
    pub fn with_network(mut self, network: NodeNetwork) -> Self {
        self.network = Some(network);
        self
    }

    /// While `false`, looks at containers (inspect, list) fail as with an engine that is
    /// overloaded or restarting; for tests of what the pod workers do meanwhile.
    pub fn set_answering(&self, answering: bool) {
        self.answering.store(answering, Ordering::Relaxed);
    }

    fn answers(&self) -> Result<(), RuntimeError> {
        if self.answering.load(Ordering::Relaxed) {
            Ok(())
        } else {
            Err(RuntimeError::Unavailable(
                "the hollow engine is not answering".into(),
            ))
        }
    }

    fn address(&self, n: u64) -> Result<String, RuntimeError> {
        let Some(network) = &self.network else {
            // Alone (tests without a control plane): any distinct address will do.
            return Ok(format!(
                "10.{}.{}.{}",
                128 + (n >> 16) % 128,
                (n >> 8) % 256,
                n % 256
            ));
        };
        let range = network
            .current()
            .ok_or_else(|| RuntimeError::Failed("this node has no pod range yet".into()))?
            .pod_cidr;
        // Past the network address and the gateway, short of the broadcast address.
        let usable = u64::from(u32::MAX >> range.prefix_len())
            .saturating_sub(2)
            .max(1);
        let offset = 2 + (n % usable) as u32;
        Ok(std::net::Ipv4Addr::from(u32::from(range.network()) + offset).to_string())
    }

    fn next_id(&self) -> u64 {
        self.next.fetch_add(1, Ordering::Relaxed)
    }

    fn containers(&self) -> std::sync::MutexGuard<'_, HashMap<String, ContainerInfo>> {
        self.shared.lock()
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, ContainerInfo>> {
        self.containers.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn exit(&self, id: &str, exit_code: i64) {
        let uid = {
            let mut all = self.lock();
            let Some(c) = all.get_mut(id) else { return };
            let ContainerState::Running { started_at } = c.state else {
                return;
            };
            c.state = ContainerState::Exited {
                exit_code,
                oom_killed: false,
                started_at: Some(started_at),
                finished_at: Some(Utc::now()),
                error: None,
            };
            c.pod_uid.clone()
        };
        let _ = self.events.send(RuntimeEvent::Pod(uid));
    }
}

fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    if let Some(ms) = text.strip_suffix("ms") {
        return ms.parse().ok().map(Duration::from_millis);
    }
    text.strip_suffix('s')
        .unwrap_or(text)
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0 && *s < 1e9)
        .map(Duration::from_secs_f64)
}

#[async_trait]
impl Runtime for HollowRuntime {
    fn name(&self) -> &'static str {
        "hollow"
    }

    async fn image_present(&self, _image: &str) -> Result<bool, ImageError> {
        Ok(true)
    }

    async fn ensure_image(
        &self,
        _image: &str,
        _policy: PullPolicy,
        _auth: Option<&super::RegistryAuth>,
    ) -> Result<(), ImageError> {
        Ok(())
    }

    async fn run_sandbox(&self, spec: &SandboxSpec) -> Result<Sandbox, RuntimeError> {
        let n = self.next_id();
        let id = format!("hollow-{n:012}");
        let ip = self.address(n)?;
        let info = ContainerInfo {
            id: id.clone(),
            pod_uid: spec.pod.uid.clone(),
            pod_namespace: spec.pod.namespace.clone(),
            pod_name: spec.pod.name.clone(),
            pod_hash: spec.pod.hash.clone(),
            grace_seconds: spec.pod.grace_seconds,
            container: None,
            attempt: spec.attempt,
            image: "hollow/pause".to_string(),
            state: ContainerState::Running {
                started_at: Utc::now(),
            },
            ip: Some(ip.clone()),
        };
        self.containers().insert(id.clone(), info);
        Ok(Sandbox {
            id,
            attempt: spec.attempt,
            ip: Some(ip),
        })
    }

    async fn run_container(
        &self,
        _sandbox: &Sandbox,
        spec: &ContainerSpec,
    ) -> Result<String, RuntimeError> {
        let id = format!("hollow-{:012}", self.next_id());
        let info = ContainerInfo {
            id: id.clone(),
            pod_uid: spec.pod.uid.clone(),
            pod_namespace: spec.pod.namespace.clone(),
            pod_name: spec.pod.name.clone(),
            pod_hash: spec.pod.hash.clone(),
            grace_seconds: spec.pod.grace_seconds,
            container: Some(spec.name.clone()),
            attempt: spec.attempt,
            image: spec.image.clone(),
            state: ContainerState::Running {
                started_at: Utc::now(),
            },
            ip: None,
        };
        self.containers().insert(id.clone(), info);
        // An init container completes at once unless the pod scripts otherwise.
        let exit_after = spec
            .pod
            .annotations
            .get(EXIT_AFTER)
            .and_then(|d| parse_duration(d))
            .or(spec.init.then_some(Duration::ZERO));
        if let Some(after) = exit_after {
            let code = spec
                .pod
                .annotations
                .get(EXIT_CODE)
                .and_then(|c| c.trim().parse().ok())
                .unwrap_or(0);
            let shared = self.shared.clone();
            let id = id.clone();
            tokio::spawn(async move {
                tokio::time::sleep(after).await;
                shared.exit(&id, code);
            });
        }
        Ok(id)
    }

    async fn stop(&self, id: &str, _grace: Duration) -> Result<(), RuntimeError> {
        // A simulated process honours SIGTERM at once and exits 143, as a shell would.
        self.shared.exit(id, 143);
        Ok(())
    }

    async fn remove(&self, id: &str) -> Result<(), RuntimeError> {
        self.containers().remove(id);
        Ok(())
    }

    async fn inspect(&self, id: &str) -> Result<Option<ContainerInfo>, RuntimeError> {
        self.answers()?;
        Ok(self.containers().get(id).cloned())
    }

    async fn list(&self) -> Result<Vec<ContainerInfo>, RuntimeError> {
        self.answers()?;
        Ok(self.containers().values().cloned().collect())
    }

    async fn exec(
        &self,
        _id: &str,
        _cmd: &[String],
        _timeout: Duration,
    ) -> Result<ExecOutcome, RuntimeError> {
        Ok(ExecOutcome {
            exit_code: 0,
            output: String::new(),
        })
    }

    fn probes_are_real(&self) -> bool {
        false
    }

    fn host_binds(&self) -> Result<super::HostBinds, String> {
        Ok(super::HostBinds::Nothing)
    }

    fn logs(
        &self,
        id: &str,
        _tail: u64,
        _follow: bool,
    ) -> BoxStream<'static, Result<(LogStream, bytes::Bytes), RuntimeError>> {
        let line = format!("hollow container {id} has no real output\n");
        futures_util::stream::once(async move { Ok((LogStream::Stdout, line.into())) }).boxed()
    }

    fn events(&self) -> broadcast::Receiver<RuntimeEvent> {
        self.shared.events.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn scripted_durations() {
        assert_eq!(parse_duration("2s"), Some(Duration::from_secs(2)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("-1s"), None);
        assert_eq!(parse_duration("soon"), None);
    }
}
