//! Prometheus metrics of `keel server` (`GET /metrics`): sync results and durations, fetch
//! failures, scheduling latency, and (read from the controllers' cache at each scrape)
//! objects per kind, pods per phase and nodes by readiness.

use keel_schema::Kind;
use keel_schema::types::pod::PodPhase;
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

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PhaseLabel {
    pub phase: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReadyLabel {
    pub ready: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AppLabel {
    /// keel.yaml's name for the app, or `(root)`.
    pub app: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NotifyLabel {
    pub target: String,
    /// `sent`, `failed` or `dropped`.
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
    /// From a pod's creation to its binding.
    pub scheduling_seconds: Histogram,
    pub objects: Family<KindLabel, Gauge>,
    pub pods: Family<PhaseLabel, Gauge>,
    pub nodes: Family<ReadyLabel, Gauge>,
    pub heartbeats: Counter,
    /// 1 while this server leads (always 1 on the embedded store).
    pub leader: Gauge,
    /// Times this server became or stopped being the leader.
    pub leader_transitions: Counter,
    /// Notifications by target and result, as `keel status` shows them.
    pub notifications: Family<NotifyLabel, Gauge>,
    /// Times an app's files were read and rendered (an app whose inputs did not change is
    /// not).
    pub renders: Family<AppLabel, Counter>,
    /// Time to compare what runs with the store again (every app), and correct drift.
    pub resync_seconds: Histogram,
    /// Watches open on the Kubernetes API (kubectl `-w`, informers).
    pub watches: Gauge,
    /// Cache changes a controller or node sync has not read yet (see `Cache::changes_unread`).
    pub changes_unread: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("keel");
        let syncs = Family::<ResultLabel, Counter>::default();
        let sync_seconds = Histogram::new(exponential_buckets(0.001, 2.0, 16));
        let fetch_failures = Counter::default();
        let fetch_failing = Gauge::default();
        let last_success = Gauge::default();
        let scheduling_seconds = Histogram::new(exponential_buckets(0.001, 2.0, 18));
        let objects = Family::<KindLabel, Gauge>::default();
        let pods = Family::<PhaseLabel, Gauge>::default();
        let nodes = Family::<ReadyLabel, Gauge>::default();
        let heartbeats = Counter::default();
        let leader = Gauge::default();
        let leader_transitions = Counter::default();
        registry.register("leader", "1 while this server leads", leader.clone());
        registry.register(
            "leader_transitions",
            "Times this server became or stopped being the leader",
            leader_transitions.clone(),
        );
        registry.register(
            "node_heartbeats",
            "Heartbeats received from node agents",
            heartbeats.clone(),
        );
        registry.register(
            "scheduling_duration_seconds",
            "Time from a pod's creation to its binding to a node",
            scheduling_seconds.clone(),
        );
        registry.register("objects", "Objects in the store, by kind", objects.clone());
        registry.register("pods", "Pods by phase", pods.clone());
        registry.register(
            "nodes",
            "Nodes by readiness (True, False, Unknown)",
            nodes.clone(),
        );
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
        let notifications = Family::<NotifyLabel, Gauge>::default();
        registry.register(
            "notifications",
            "Notifications by target and result (sent, failed after retries, dropped)",
            notifications.clone(),
        );
        let renders = Family::<AppLabel, Counter>::default();
        registry.register(
            "app_renders",
            "Times an app's files were read and rendered, by app",
            renders.clone(),
        );
        let resync_seconds = Histogram::new(exponential_buckets(0.001, 2.0, 16));
        registry.register(
            "resync_duration_seconds",
            "Time to compare what runs with the store again and correct drift",
            resync_seconds.clone(),
        );
        let watches = Gauge::default();
        registry.register(
            "api_watches",
            "Watches open on the Kubernetes API",
            watches.clone(),
        );
        let changes_unread = Gauge::default();
        registry.register(
            "cache_changes_unread",
            "Changes to cached objects that a controller or node sync has not read yet",
            changes_unread.clone(),
        );
        Self {
            watches,
            changes_unread,
            resync_seconds,
            renders,
            registry,
            syncs,
            sync_seconds,
            fetch_failures,
            fetch_failing,
            last_success,
            scheduling_seconds,
            objects,
            pods,
            nodes,
            heartbeats,
            leader,
            leader_transitions,
            notifications,
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

    /// Sets the cluster gauges from the controllers' cache (nothing before it is synced:
    /// "not loaded yet" is not "zero").
    pub fn observe(&self, cache: &crate::cache::Cache) {
        use keel_schema::Object;
        if !cache.is_synced() {
            return;
        }
        self.changes_unread.set(cache.changes_unread() as i64);
        // Events are not cached (nobody here reads them), so they are not counted.
        for kind in Kind::ALL.iter().filter(|k| **k != Kind::Event) {
            let n = cache.list(*kind, None).len();
            self.objects
                .get_or_create(&KindLabel {
                    kind: kind.to_string(),
                })
                .set(n as i64);
        }
        let mut phases: std::collections::BTreeMap<&str, i64> = [
            PodPhase::Pending,
            PodPhase::Running,
            PodPhase::Succeeded,
            PodPhase::Failed,
            PodPhase::Unknown,
        ]
        .into_iter()
        .map(|p| (p.as_str(), 0))
        .collect();
        for s in cache.list(Kind::Pod, None) {
            if let Object::Pod(p) = &s.object {
                let phase = p.phase().unwrap_or(PodPhase::Pending);
                *phases.entry(phase.as_str()).or_default() += 1;
            }
        }
        for (phase, n) in phases {
            self.pods
                .get_or_create(&PhaseLabel {
                    phase: phase.to_string(),
                })
                .set(n);
        }
        let mut ready: std::collections::BTreeMap<String, i64> = ["True", "False", "Unknown"]
            .into_iter()
            .map(|r| (r.to_string(), 0))
            .collect();
        for s in cache.list(Kind::Node, None) {
            if let Object::Node(n) = &s.object {
                let status = n
                    .ready_condition()
                    .map_or("Unknown".to_string(), |c| c.status.clone());
                *ready.entry(status).or_default() += 1;
            }
        }
        for (r, n) in ready {
            self.nodes.get_or_create(&ReadyLabel { ready: r }).set(n);
        }
    }

    /// Sets the notification counts from the notifier's statuses.
    pub fn observe_notifications(&self, statuses: &[keel_api::status::NotificationStatus]) {
        for s in statuses {
            for (result, n) in [
                ("sent", s.sent),
                ("failed", s.failed),
                ("dropped", s.dropped),
            ] {
                let label = NotifyLabel {
                    target: s.target.clone(),
                    result: result.to_string(),
                };
                self.notifications
                    .get_or_create(&label)
                    .set(i64::try_from(n).unwrap_or(i64::MAX));
            }
        }
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
