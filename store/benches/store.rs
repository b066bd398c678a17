//! Store benchmarks, both engines side by side in one run:
//! - apply one 10,000-object batch (targets for redb: under 500 ms),
//! - update 10,000 objects, one write each, a thousand at a time (group-committed: the path of the
//!   status reports and binds of a big rollout),
//! - list 10,000 objects (redb: under 100 ms),
//! - fan one write out to 100 watchers (time until every watcher has it).
//!
//! `cargo bench -p keel-store --bench store` (etcd is skipped, saying so, when the
//! `etcd` binary is missing). Prints one table; each figure is the median of several runs.

use std::time::{Duration, Instant};

use keel_schema::Kind;
use keel_schema::{Object, SourceFile, load_sources};
use keel_store::etcd_process::EtcdProcess;
use keel_store::{Batch, BatchOp, Store, StoreSpec};

// The same allocator as the `keel` binary, so the figures are the product's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const OBJECTS: usize = 10_000;
const WATCHERS: usize = 100;
/// Single updates in flight at once in the update figure.
const UPDATES_IN_FLIGHT: usize = 1000;

/// A Deployment as a team would write it (about 1 KB of JSON), renamed per copy.
fn template() -> Object {
    let yaml = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web, team: storefront, tier: frontend}
  annotations: {example.com/owner: storefront-team}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web, tier: frontend}}
    spec:
      containers:
      - name: web
        image: keel-example/web:1
        command: [httpd, -f, -p, "8080", -h, /srv]
        env: [{name: MODE, value: production}, {name: LOG_LEVEL, value: info}]
        ports: [{name: http, containerPort: 8080}]
        readinessProbe: {httpGet: {path: /healthz, port: http}, periodSeconds: 2}
        resources: {requests: {cpu: 50m, memory: 16Mi}, limits: {cpu: 200m, memory: 64Mi}}
"#;
    let rev = load_sources(
        &[SourceFile {
            name: "bench.yaml".into(),
            bytes: yaml.as_bytes().to_vec(),
        }],
        None,
    );
    assert!(rev.errors.is_empty(), "{:?}", rev.errors);
    rev.manifests[0].object.clone()
}

fn copies(base: &Object, namespace: &str) -> Vec<BatchOp> {
    (0..OBJECTS)
        .map(|i| {
            let mut o = base.clone();
            o.meta_mut().name = Some(format!("web-{i:05}"));
            o.meta_mut().namespace = Some(namespace.to_string());
            BatchOp::Create(o)
        })
        .collect()
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// Chooses one figure of a [`Figures`], for printing rows.
type Pick = fn(&Figures) -> Duration;

struct Figures {
    batch: Duration,
    updates: Duration,
    list: Duration,
    fanout: Duration,
}

async fn measure(store: &Store, base: &Object, runs: usize) -> Figures {
    let mut batch = Vec::new();
    for run in 0..runs {
        let ops = copies(base, &format!("bench-{run}"));
        let started = Instant::now();
        store
            .apply_batch(Batch {
                label: format!("bench {run}"),
                ops,
                record: None,
            })
            .await
            .expect("batch applies");
        batch.push(started.elapsed());
    }
    let mut updates = Vec::new();
    for run in 0..runs {
        let listed = store
            .list(Kind::Deployment, Some(&format!("bench-{run}")), None)
            .await
            .expect("list");
        let started = Instant::now();
        // A thousand at a time, as many as a big cluster's agents have in flight: more,
        // and etcd refuses some for load (more than 5,000 entries ahead of what it has
        // applied), which the store waits out and this figure is not about.
        for chunk in listed.items.chunks(UPDATES_IN_FLIGHT) {
            let writes = chunk.iter().cloned().map(|stored| {
                let store = store.clone();
                let mut object = stored.object;
                object
                    .meta_mut()
                    .labels
                    .get_or_insert_with(Default::default)
                    .extend([("updated", "yes".to_string())]);
                async move {
                    store
                        .update(object, stored.resource_version)
                        .await
                        .expect("update");
                }
            });
            join_all(writes).await;
        }
        updates.push(started.elapsed());
    }
    let mut list = Vec::new();
    for _ in 0..runs.max(5) {
        let started = Instant::now();
        let listed = store
            .list(Kind::Deployment, Some("bench-0"), None)
            .await
            .expect("list");
        list.push(started.elapsed());
        assert_eq!(listed.items.len(), OBJECTS);
    }
    let mut fanout = Vec::new();
    for run in 0..runs.max(5) {
        let from = store.revision().await.expect("revision");
        let mut watchers = Vec::new();
        for _ in 0..WATCHERS {
            watchers.push(
                store
                    .watch(Some(Kind::Deployment), from)
                    .await
                    .expect("watch"),
            );
        }
        let mut o = base.clone();
        o.meta_mut().name = Some(format!("fanout-{run}"));
        o.meta_mut().namespace = Some("fanout".into());
        let started = Instant::now();
        store.create(o).await.expect("write");
        let waits = watchers.into_iter().map(|mut w| async move {
            w.next().await.expect("event").expect("ok");
        });
        join_all(waits).await;
        fanout.push(started.elapsed());
    }
    Figures {
        batch: median(batch),
        updates: median(updates),
        list: median(list),
        fanout: median(fanout),
    }
}

/// Awaits every future, each on its own task (a tiny join_all, to keep dependencies short).
async fn join_all<F: std::future::Future<Output = ()> + Send + 'static>(
    futures: impl Iterator<Item = F>,
) {
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    for h in handles {
        h.await.expect("task");
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let base = template();
        println!(
            "object size: {} bytes of JSON",
            serde_json::to_vec(&base).map(|v| v.len()).unwrap_or(0)
        );
        let dir = tempfile::tempdir().expect("temp dir");
        let redb = Store::open(&StoreSpec::Redb {
            data_dir: dir.path().to_path_buf(),
        })
        .await
        .expect("redb");
        let redb_figures = measure(&redb, &base, 5).await;
        let etcd = if EtcdProcess::available() {
            let process = EtcdProcess::start().expect("etcd starts");
            let store = Store::open(&StoreSpec::Etcd {
                endpoints: vec![process.endpoint.clone()],
            })
            .await
            .expect("etcd");
            Some((measure(&store, &base, 3).await, process))
        } else {
            println!("etcd not installed: etcd column skipped");
            None
        };
        println!();
        println!(
            "{:<44} {:>12} {:>12}",
            "store benchmark (median)", "redb", "etcd"
        );
        let rows: [(&str, Pick); 4] = [
            ("apply one 10,000-object batch", |f| f.batch),
            ("update 10,000 objects, one write each", |f| f.updates),
            ("list 10,000 objects", |f| f.list),
            ("one write seen by 100 watchers", |f| f.fanout),
        ];
        for (name, get) in rows {
            let etcd_cell = etcd
                .as_ref()
                .map(|(f, _)| ms(get(f)))
                .unwrap_or_else(|| "-".into());
            println!(
                "{name:<44} {:>12} {:>12}",
                ms(get(&redb_figures)),
                etcd_cell
            );
        }
    });
}
