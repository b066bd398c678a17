//! `metrics.k8s.io/v1beta1` (`kubectl top`, `keel top`): each node's and each pod's
//! containers' CPU and memory use, as the agents last sampled it.

use std::collections::BTreeMap;

use keel_schema::quantity::Quantity;
use serde::{Deserialize, Serialize};

/// Where the metrics are served.
pub const BASE: &str = "/apis/metrics.k8s.io/v1beta1";

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Named {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub namespace: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ContainerMetrics {
    pub name: String,
    /// `cpu` and `memory`, as Kubernetes quantities.
    #[serde(default)]
    pub usage: BTreeMap<String, Quantity>,
}

/// What every sample carries: whose, when, and over how long its CPU rates are averaged.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Sampled {
    #[serde(default)]
    pub metadata: Named,
    #[serde(default)]
    pub timestamp: String,
    #[serde(default)]
    pub window: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PodMetrics {
    #[serde(flatten)]
    pub sampled: Sampled,
    #[serde(default)]
    pub containers: Vec<ContainerMetrics>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NodeMetrics {
    #[serde(flatten)]
    pub sampled: Sampled,
    #[serde(default)]
    pub usage: BTreeMap<String, Quantity>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct MetricsList<T> {
    #[serde(default = "Vec::new")]
    pub items: Vec<T>,
}

/// CPU in millicores (what `kubectl top` prints as `250m`); 0 when absent or malformed.
pub fn millicores(usage: &BTreeMap<String, Quantity>) -> i64 {
    usage.get("cpu").and_then(|q| q.millis().ok()).unwrap_or(0)
}

/// Memory in bytes; 0 when absent or malformed.
pub fn bytes(usage: &BTreeMap<String, Quantity>) -> i64 {
    usage
        .get("memory")
        .and_then(|q| q.value().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use keel_schema::quantity::Quantity;
    use std::collections::BTreeMap;

    #[test]
    fn reads_what_the_server_writes() {
        let usage: BTreeMap<String, Quantity> = [
            ("cpu".to_string(), Quantity::new("12345678n")),
            ("memory".to_string(), Quantity::new("10240Ki")),
        ]
        .into();
        // Rounded up, as Kubernetes reads a quantity in millis (and kubectl top prints it).
        assert_eq!(super::millicores(&usage), 13);
        assert_eq!(super::bytes(&usage), 10 * 1024 * 1024);
        assert_eq!(super::millicores(&BTreeMap::new()), 0);
    }
}
