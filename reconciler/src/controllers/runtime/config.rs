//! The controllers' settings.

use std::time::Duration;

/// Settings shared by the controllers (from `keel server`'s flags).
#[derive(Debug, Clone)]
pub struct Config {
    /// How often every key is reconciled even without a change.
    pub resync: Duration,
    /// How long a node may stay not ready before its pods are deleted.
    pub pod_eviction_timeout: Duration,
    /// Where the scheduler records creation-to-binding times (`/metrics`).
    pub scheduling_seconds: Option<prometheus_client::metrics::histogram::Histogram>,
    /// Where LoadBalancer Services get external addresses; `None`: they stay node ports.
    pub load_balancer_pool: Option<crate::controllers::loadbalancer::LoadBalancerPool>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            resync: Duration::from_secs(30),
            pod_eviction_timeout: Duration::from_secs(20),
            scheduling_seconds: None,
            load_balancer_pool: None,
        }
    }
}
