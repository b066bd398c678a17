//! A usage sample as the `Metrics` call reports it.

use keel_agent_protocol::{ContainerMetrics, MetricsReport, PodMetrics, ResourceUsage};

use crate::usage::{Sample, Usage};

fn usage(u: &Usage) -> ResourceUsage {
    ResourceUsage {
        cpu_nanocores: u.cpu_nanocores,
        memory_bytes: u.memory_bytes,
    }
}

pub fn report(sample: &Sample) -> MetricsReport {
    MetricsReport {
        timestamp_unix_ms: sample.at.timestamp_millis(),
        window_ms: i64::try_from(sample.window.as_millis()).unwrap_or(i64::MAX),
        node: Some(usage(&sample.node)),
        pods: sample
            .pods
            .iter()
            .map(|p| PodMetrics {
                namespace: p.namespace.clone(),
                name: p.name.clone(),
                uid: p.uid.clone(),
                containers: p
                    .containers
                    .iter()
                    .map(|c| ContainerMetrics {
                        name: c.name.clone(),
                        usage: Some(usage(&c.usage)),
                    })
                    .collect(),
            })
            .collect(),
    }
}
