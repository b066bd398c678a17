//! Prometheus metrics of `keel server` (`GET /metrics`): sync results and durations, fetch
//! failures. Later steps add objects per kind, pods per phase, scheduling and nodes.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    pub result: String,
}

pub struct Metrics {
    registry: Registry,
    /// Revisions attempted, by result (`applied`, `unchanged`, `failed`, `refused`, `error`).
    pub syncs: Family<ResultLabel, Counter>,
    /// Time to load, validate, diff and apply a revision.
    pub sync_seconds: Histogram,
    /// Failed fetches of a remote repository, and whether fetching fails right now.
    pub fetch_failures: Counter,
    pub fetch_failing: Gauge,
    /// When a revision was last applied or confirmed unchanged (Unix seconds).
    pub last_success: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("keel");
        let syncs = Family::<ResultLabel, Counter>::default();
        let sync_seconds = Histogram::new(exponential_buckets(0.001, 2.0, 16));
        let fetch_failures = Counter::default();
        let fetch_failing = Gauge::default();
        let last_success = Gauge::default();
        registry.register("sync", "Revisions attempted, by result", syncs.clone());
        registry.register(
            "sync_duration_seconds",
            "Time to load, validate, diff and apply a revision",
            sync_seconds.clone(),
        );
        registry.register(
            "fetch_failures",
            "Failed fetches of the repository",
            fetch_failures.clone(),
        );
        registry.register(
            "fetch_failing",
            "1 while fetching the repository fails",
            fetch_failing.clone(),
        );
        registry.register(
            "last_sync_success_timestamp_seconds",
            "When a revision was last applied or confirmed",
            last_success.clone(),
        );
        Self {
            registry,
            syncs,
            sync_seconds,
            fetch_failures,
            fetch_failing,
            last_success,
        }
    }
}

impl Metrics {
    pub fn count_sync(&self, result: &str) {
        self.syncs
            .get_or_create(&ResultLabel {
                result: result.to_string(),
            })
            .inc();
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}
