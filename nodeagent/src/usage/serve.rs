//! The agent's `/metrics` (`--metrics-listen`): the latest usage sample as Prometheus series,
//! per container, per pod and for the node, for a Prometheus that scrapes the nodes.

use std::sync::atomic::AtomicU64;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::{Sample, UsageSampler};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ContainerLabels {
    namespace: String,
    pod: String,
    container: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PodLabels {
    namespace: String,
    pod: String,
}

type Cores = Gauge<f64, AtomicU64>;

/// The Prometheus text of `sample` (empty families when there is none yet).
pub fn render(sample: Option<&Sample>) -> String {
    let mut registry = Registry::with_prefix("keel_agent");
    let cpu_total = Family::<ContainerLabels, Counter<f64, AtomicU64>>::default();
    let cpu = Family::<ContainerLabels, Cores>::default();
    let memory = Family::<ContainerLabels, Gauge>::default();
    let pod_cpu = Family::<PodLabels, Cores>::default();
    let pod_memory = Family::<PodLabels, Gauge>::default();
    let node_cpu = Cores::default();
    let node_memory: Gauge = Gauge::default();
    registry.register(
        "container_cpu_usage_seconds",
        "CPU time a container used since it started",
        cpu_total.clone(),
    );
    registry.register(
        "container_cpu_usage_cores",
        "A container's CPU use over the last sample window, in cores",
        cpu.clone(),
    );
    registry.register(
        "container_memory_working_set_bytes",
        "A container's memory in use, less inactive file cache",
        memory.clone(),
    );
    registry.register(
        "pod_cpu_usage_cores",
        "A pod's containers' CPU use over the last sample window, in cores",
        pod_cpu.clone(),
    );
    registry.register(
        "pod_memory_working_set_bytes",
        "A pod's containers' memory working set",
        pod_memory.clone(),
    );
    registry.register(
        "node_cpu_usage_cores",
        "The node's CPU use over the last sample window, in cores",
        node_cpu.clone(),
    );
    registry.register(
        "node_memory_working_set_bytes",
        "The node's memory in use",
        node_memory.clone(),
    );
    if let Some(sample) = sample {
        for pod in &sample.pods {
            let pod_labels = PodLabels {
                namespace: pod.namespace.clone(),
                pod: pod.name.clone(),
            };
            let (mut cores, mut bytes) = (0.0, 0u64);
            for c in &pod.containers {
                let labels = ContainerLabels {
                    namespace: pod.namespace.clone(),
                    pod: pod.name.clone(),
                    container: c.name.clone(),
                };
                let used = c.usage.cpu_nanocores as f64 / 1e9;
                cpu_total
                    .get_or_create(&labels)
                    .inc_by(c.cpu_ns_total as f64 / 1e9);
                cpu.get_or_create(&labels).set(used);
                memory
                    .get_or_create(&labels)
                    .set(i64::try_from(c.usage.memory_bytes).unwrap_or(i64::MAX));
                cores += used;
                bytes = bytes.saturating_add(c.usage.memory_bytes);
            }
            pod_cpu.get_or_create(&pod_labels).set(cores);
            pod_memory
                .get_or_create(&pod_labels)
                .set(i64::try_from(bytes).unwrap_or(i64::MAX));
        }
        node_cpu.set(sample.node.cpu_nanocores as f64 / 1e9);
        node_memory.set(i64::try_from(sample.node.memory_bytes).unwrap_or(i64::MAX));
    }
    let mut text = String::new();
    // Writing to a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut text, &registry);
    text
}

async fn metrics(State(sampler): State<UsageSampler>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        render(sampler.latest().as_ref()),
    )
}

/// Serves `/metrics` on `listener` until the task is dropped.
pub async fn serve(listener: tokio::net::TcpListener, sampler: UsageSampler) {
    let router = Router::new()
        .route("/metrics", get(metrics))
        .with_state(sampler);
    if let Err(e) = axum::serve(listener, router).await {
        tracing::error!(error = %e, "the agent's /metrics stopped");
    }
}

#[cfg(test)]
mod tests {
    use super::super::{ContainerUsage, PodUsage, Sample, Usage};
    use std::time::Duration;

    #[test]
    fn a_sample_becomes_per_container_pod_and_node_series() {
        let sample = Sample {
            at: chrono::Utc::now(),
            window: Duration::from_secs(15),
            node: Usage {
                cpu_nanocores: 2_000_000_000,
                memory_bytes: 1 << 30,
            },
            pods: vec![PodUsage {
                namespace: "shop".into(),
                name: "web-1".into(),
                uid: "u".into(),
                containers: vec![ContainerUsage {
                    name: "web".into(),
                    usage: Usage {
                        cpu_nanocores: 250_000_000,
                        memory_bytes: 10 << 20,
                    },
                    cpu_ns_total: 5_000_000_000,
                }],
            }],
        };
        let text = super::render(Some(&sample));
        for line in [
            r#"keel_agent_container_cpu_usage_cores{namespace="shop",pod="web-1",container="web"} 0.25"#,
            r#"keel_agent_container_memory_working_set_bytes{namespace="shop",pod="web-1",container="web"} 10485760"#,
            r#"keel_agent_container_cpu_usage_seconds_total{namespace="shop",pod="web-1",container="web"} 5.0"#,
            r#"keel_agent_pod_cpu_usage_cores{namespace="shop",pod="web-1"} 0.25"#,
            "keel_agent_node_cpu_usage_cores 2.0",
        ] {
            assert!(text.contains(line), "{line} in:\n{text}");
        }
        assert!(super::render(None).contains("# TYPE keel_agent_node_cpu_usage_cores gauge"));
    }
}
