//! Resource use, as the kubelet's summary reports it to metrics-server: every [`EVERY`],
//! each running container's CPU (a rate over the last window) and memory working set from
//! its cgroup ([`cgroup`]; the engine's stats where the agent cannot see the cgroup files),
//! and the node's from `/proc` ([`host`]). The control plane asks
//! for the latest sample (the `Metrics` call) to serve `metrics.k8s.io` (`kubectl top`).
//!
//! A container's CPU rate needs two readings, so it shows from its second sample on; the
//! first sample is taken twice, a second apart, so that an agent reports from its start.
//! With `--metrics-listen`, [`serve`] offers the latest sample as Prometheus series.

pub mod cgroup;
pub mod host;
pub mod serve;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use crate::runtime::{ContainerState, Runtime};
use cgroup::Reading;

/// How often use is sampled (the kubelet's and metrics-server's resolution).
pub const EVERY: Duration = Duration::from_secs(15);

/// CPU as a rate (nanocores: a billionth of a core) and memory in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub cpu_nanocores: u64,
    pub memory_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerUsage {
    pub name: String,
    pub usage: Usage,
    /// CPU time used since the container started, nanoseconds (a counter, for `/metrics`).
    pub cpu_ns_total: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodUsage {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub containers: Vec<ContainerUsage>,
}

/// One sample of the node and its pods.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub at: DateTime<Utc>,
    /// The time the CPU rates are averaged over.
    pub window: Duration,
    pub node: Usage,
    pub pods: Vec<PodUsage>,
}

/// The latest sample, shared by the sampler and the gRPC server. Cheap to clone.
#[derive(Clone, Default)]
pub struct UsageSampler {
    latest: Arc<RwLock<Option<Sample>>>,
}

/// A counter read at an instant.
type Counted = (Reading, Instant);

/// The rate of a counter of nanoseconds between two readings, in nanocores.
fn rate(now: &Counted, before: &Counted) -> u64 {
    let elapsed = now.1.saturating_duration_since(before.1).as_secs_f64();
    if elapsed <= 0.0 {
        return 0;
    }
    (now.0.cpu_ns.saturating_sub(before.0.cpu_ns) as f64 / elapsed) as u64
}

impl UsageSampler {
    /// The latest sample; `None` until the first is taken (or on a runtime without
    /// cgroups, such as the hollow one).
    pub fn latest(&self) -> Option<Sample> {
        self.latest
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Samples `runtime`'s containers every [`EVERY`] until the task is dropped.
    pub fn start(runtime: Arc<dyn Runtime>) -> (UsageSampler, tokio::task::JoinHandle<()>) {
        let sampler = UsageSampler::default();
        let task = tokio::spawn({
            let sampler = sampler.clone();
            async move {
                let mut before: HashMap<String, Counted> = HashMap::new();
                let mut node_before: Option<Counted> = None;
                // A first reading a second before the first sample, so rates show at once.
                sampler
                    .sample(&runtime, &mut before, &mut node_before)
                    .await;
                tokio::time::sleep(Duration::from_secs(1)).await;
                loop {
                    sampler
                        .sample(&runtime, &mut before, &mut node_before)
                        .await;
                    tokio::time::sleep(EVERY).await;
                }
            }
        });
        (sampler, task)
    }

    async fn sample(
        &self,
        runtime: &Arc<dyn Runtime>,
        before: &mut HashMap<String, Counted>,
        node_before: &mut Option<Counted>,
    ) {
        let Ok(containers) = runtime.list().await else {
            return;
        };
        let mut window = EVERY;
        let mut now_readings: HashMap<String, Counted> = HashMap::new();
        let mut pods: HashMap<String, PodUsage> = HashMap::new();
        for info in containers {
            let (Some(name), ContainerState::Running { .. }) = (&info.container, &info.state)
            else {
                continue;
            };
            let Some(reading) = runtime.usage(&info.id).await else {
                continue;
            };
            let now = (reading, Instant::now());
            let Some(previous) = before.get(&info.id) else {
                now_readings.insert(info.id.clone(), now);
                continue;
            };
            window = now.1.saturating_duration_since(previous.1);
            let usage = Usage {
                cpu_nanocores: rate(&now, previous),
                memory_bytes: reading.memory_bytes,
            };
            now_readings.insert(info.id.clone(), now);
            pods.entry(info.pod_uid.clone())
                .or_insert_with(|| PodUsage {
                    namespace: info.pod_namespace.clone(),
                    name: info.pod_name.clone(),
                    uid: info.pod_uid.clone(),
                    containers: Vec::new(),
                })
                .containers
                .push(ContainerUsage {
                    name: name.clone(),
                    usage,
                    cpu_ns_total: reading.cpu_ns,
                });
        }
        // Containers gone since are forgotten with their readings.
        *before = now_readings;
        let node_now = host::read().map(|r| (r, Instant::now()));
        let node = match (&node_now, node_before.as_ref()) {
            (Some(now), Some(previous)) => Usage {
                cpu_nanocores: rate(now, previous),
                memory_bytes: now.0.memory_bytes,
            },
            (Some(now), None) => Usage {
                cpu_nanocores: 0,
                memory_bytes: now.0.memory_bytes,
            },
            (None, _) => Usage::default(),
        };
        if let Some(now) = node_now {
            *node_before = Some(now);
        }
        let mut pods: Vec<PodUsage> = pods.into_values().collect();
        pods.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        for pod in &mut pods {
            pod.containers.sort_by(|a, b| a.name.cmp(&b.name));
        }
        let sample = Sample {
            at: Utc::now(),
            window,
            node,
            pods,
        };
        *self.latest.write().unwrap_or_else(|p| p.into_inner()) = Some(sample);
    }
}

#[cfg(test)]
mod tests {
    use super::{Reading, rate};
    use std::time::{Duration, Instant};

    #[test]
    fn cpu_rates_are_nanoseconds_per_second() {
        let start = Instant::now();
        let before = (
            Reading {
                cpu_ns: 1_000_000_000,
                memory_bytes: 0,
            },
            start,
        );
        let now = (
            Reading {
                cpu_ns: 1_500_000_000,
                memory_bytes: 0,
            },
            start + Duration::from_secs(2),
        );
        // Half a second of CPU over two seconds: a quarter of a core.
        assert_eq!(rate(&now, &before), 250_000_000);
        assert_eq!(rate(&before, &now), 0, "a counter going back reads as idle");
    }
}
