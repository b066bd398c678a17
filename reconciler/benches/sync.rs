//! Sync benchmarks on a repository of 10,000 objects in 1,000 files:
//! - load + validate + diff of a new revision (target: under 1 s),
//! - a no-op resync of the applied revision (target: under 100 ms),
//! - commit-to-applied latency of a running `keel server` on a local repo (target: p50
//!   under 200 ms), measured from `git commit` returning to the server reporting it;
//! - a repository of 100 apps (keel.yaml `apps:`) in a running server: a no-op resync of
//!   every app (target: under 200 ms, from `keel_resync_duration_seconds`), and a commit to
//!   one app rendering only that app (counted by `keel_app_renders_total`).
//!
//! `cargo bench -p keel-reconciler --bench sync` (builds the release `keel` binary first).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use keel_reconciler::apply::{Scope, ServiceNetwork, applied_objects, apply_revision, plan_batch};
use keel_reconciler::source::GitSource;
use keel_store::{Store, StoreSpec};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args([
            "-c",
            "user.name=Bench",
            "-c",
            "user.email=b@example.com",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn file(i: usize, image: &str) -> String {
    (0..10)
        .map(|j| {
            format!(
                "---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app-{i:04}-{j}\n  namespace: team-{}\n  labels: {{app: app-{i:04}-{j}, team: t{}}}\nspec:\n  replicas: 2\n  selector:\n    matchLabels: {{app: app-{i:04}-{j}}}\n  template:\n    metadata:\n      labels: {{app: app-{i:04}-{j}}}\n    spec:\n      containers:\n      - name: main\n        image: {image}\n        ports: [{{name: http, containerPort: 8080}}]\n        resources: {{requests: {{cpu: 50m, memory: 32Mi}}, limits: {{memory: 64Mi}}}}\n        readinessProbe: {{httpGet: {{path: /healthz, port: http}}}}\n",
                i % 20,
                i % 7
            )
        })
        .collect()
}

/// Applies `revision` as a repository without apps (`new_commit`: as a new tip, not a
/// resync).
async fn apply(
    store: &Store,
    commit: &keel_reconciler::source::CommitInfo,
    revision: &keel_schema::Revision,
    new_commit: bool,
) -> Result<keel_reconciler::apply::Applied, keel_reconciler::apply::ApplyError> {
    let scope = Scope::whole(revision);
    apply_revision(
        store,
        commit,
        revision,
        &ServiceNetwork::default(),
        new_commit,
        &scope,
    )
    .await
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = dir.path().join("repo");
    std::fs::create_dir_all(&repo).expect("mkdir");
    git(&repo, &["init", "-q"]);
    for i in 0..1000 {
        let path = repo.join(format!("apps/group-{:02}/app-{i:04}.yaml", i / 50));
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, file(i, "app:1")).expect("write");
    }
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "10,000 objects"]);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let data = dir.path().join("data");
        let store = Store::open(&StoreSpec::Redb {
            data_dir: data.clone(),
        })
        .await
        .expect("store");
        let source =
            GitSource::new(repo.to_str().expect("path"), &data, None, None).expect("source");
        let tip = source.tip().expect("tip");
        let (commit, revision) = source.load(&tip.id).expect("load");
        assert!(revision.is_valid(), "{:?}", revision.errors.first());
        assert_eq!(revision.manifests.len(), 10_000);
        apply(&store, &commit, &revision, true)
            .await
            .expect("first apply");

        // A new revision that changes one file: load + validate + diff against the store.
        let mut new_revision = Vec::new();
        for round in 0..5 {
            std::fs::write(
                repo.join("apps/group-00/app-0000.yaml"),
                file(0, &format!("app:{}", round + 2)),
            )
            .expect("write");
            git(&repo, &["commit", "-q", "-am", "bump"]);
            let started = Instant::now();
            let tip = source.tip().expect("tip");
            let (commit, revision) = source.load(&tip.id).expect("load");
            let applied = applied_objects(&store).await.expect("applied");
            let (batch, counts) =
                plan_batch(&commit, &revision, &applied, &ServiceNetwork::default()).expect("plan");
            new_revision.push(started.elapsed());
            assert_eq!((counts.updated, batch.ops.len()), (10, 10));
            apply(&store, &commit, &revision, true)
                .await
                .expect("apply");
        }

        // A no-op resync: the loaded revision compared with the store again.
        let tip = source.tip().expect("tip");
        let (commit, revision) = source.load(&tip.id).expect("load");
        let mut resync = Vec::new();
        for _ in 0..10 {
            let started = Instant::now();
            let applied = apply(&store, &commit, &revision, false)
                .await
                .expect("resync");
            resync.push(started.elapsed());
            assert_eq!(applied.created + applied.updated + applied.deleted, 0);
        }
        println!("{:<52} {:>10}", "sync benchmark (median)", "time");
        println!(
            "{:<52} {:>10}",
            "load + validate + diff, 10,000 objects / 1,000 files",
            ms(median(new_revision))
        );
        println!(
            "{:<52} {:>10}",
            "no-op resync, 10,000 objects",
            ms(median(resync))
        );
    });
    drop(rt);

    // Commit-to-applied latency through a running server (release binary).
    let built = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args([
            "build",
            "--release",
            "--quiet",
            "-p",
            "keel-cli",
            "--bin",
            "keel",
        ])
        .status()
        .expect("cargo build");
    assert!(built.success());
    let keel = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release/keel");
    let small = dir.path().join("small");
    std::fs::create_dir_all(&small).expect("mkdir");
    git(&small, &["init", "-q"]);
    std::fs::write(small.join("app.yaml"), file(0, "app:0")).expect("write");
    git(&small, &["add", "-A"]);
    git(&small, &["commit", "-q", "-m", "start"]);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port");
    let server = Command::new(&keel)
        .args([
            "server",
            "--repo",
            small.to_str().expect("path"),
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .args(["--agent-listen", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(dir.path().join("server-data"))
        .stderr(Stdio::null())
        .spawn()
        .map(Stopped)
        .expect("server");
    let server_data = dir.path().join("server-data");
    let wait_for = |id: &str| wait_applied(port, &server_data, id);
    wait_for(&git(&small, &["rev-parse", "HEAD"]));
    let mut latencies = Vec::new();
    for round in 0..20 {
        std::fs::write(
            small.join("app.yaml"),
            file(0, &format!("app:{}", round + 1)),
        )
        .expect("write");
        git(&small, &["add", "-A"]);
        git(&small, &["commit", "-q", "-m", "next"]);
        let started = Instant::now();
        wait_for(&git(&small, &["rev-parse", "HEAD"]));
        latencies.push(started.elapsed());
    }
    drop(server);
    hundred_apps(&keel, dir.path());
    let p50 = median(latencies.clone());
    latencies.sort();
    println!(
        "{:<52} {:>10}",
        "commit-to-applied latency p50 (local repo)",
        ms(p50)
    );
    println!(
        "{:<52} {:>10}",
        "commit-to-applied latency max of 20",
        ms(*latencies.last().expect("samples"))
    );
}

/// A server process, killed however the bench ends (a panic too).
struct Stopped(std::process::Child);

impl Drop for Stopped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits until the server on `port` (data dir `data`, for its API token) has applied `id`.
fn wait_applied(port: u16, data: &Path, id: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let token = std::fs::read_to_string(data.join("admin-token")).unwrap_or_default();
        let status = Command::new("curl")
            .args(["-s", &format!("http://127.0.0.1:{port}/api/keel/status")])
            .args(["-H", &format!("Authorization: Bearer {}", token.trim())])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
            .unwrap_or_default();
        if status.contains(&format!("\"applied_commit\":\"{id}\"")) {
            return;
        }
        assert!(Instant::now() < deadline, "server never applied {id}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// The text of the server's `/metrics`.
fn scrape(port: u16, token: &str) -> String {
    Command::new("curl")
        .args(["-s", &format!("http://127.0.0.1:{port}/metrics")])
        .args(["-H", &format!("Authorization: Bearer {token}")])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
        .unwrap_or_default()
}

/// One line of `/metrics`, by its name and labels, as a number.
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
        .unwrap_or(0.0)
}

/// Each app's `keel_app_renders_total`.
fn renders(text: &str) -> std::collections::BTreeMap<String, f64> {
    text.lines()
        .filter_map(|l| l.strip_prefix("keel_app_renders_total{app=\""))
        .filter_map(|l| l.split_once("\"} "))
        .map(|(app, n)| (app.to_string(), n.trim().parse().unwrap_or(0.0)))
        .collect()
}

/// 100 apps of 10 Deployments each, applied by a running server.
fn hundred_apps(keel: &Path, dir: &Path) {
    let repo = dir.join("hundred");
    std::fs::create_dir_all(&repo).expect("mkdir");
    git(&repo, &["init", "-q"]);
    let mut config = String::from("apps:\n");
    for i in 0..100 {
        config.push_str(&format!("- {{name: app-{i:03}, path: apps/app-{i:03}}}\n"));
        let path = repo.join(format!("apps/app-{i:03}/deployments.yaml"));
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, file(i, "app:1")).expect("write");
    }
    std::fs::write(repo.join("keel.yaml"), config).expect("write");
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "100 apps"]);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port");
    let data = dir.join("hundred-data");
    let server = Command::new(keel)
        .args(["server", "--repo", repo.to_str().expect("path")])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--resync-interval", "1s"])
        .args(["--agent-listen", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(&data)
        .stderr(Stdio::null())
        .spawn()
        .map(Stopped)
        .expect("server");
    let token = || std::fs::read_to_string(data.join("admin-token")).unwrap_or_default();
    let applied = |id: &str| wait_applied(port, &data, id);
    applied(&git(&repo, &["rev-parse", "HEAD"]));
    // Let the controllers settle (ReplicaSets and Pending pods made), then measure resyncs.
    std::thread::sleep(Duration::from_secs(10));
    let before = scrape(port, token().trim());
    std::thread::sleep(Duration::from_secs(15));
    let after = scrape(port, token().trim());
    let (sum, count) = (
        "keel_resync_duration_seconds_sum ",
        "keel_resync_duration_seconds_count ",
    );
    let resyncs = metric(&after, count) - metric(&before, count);
    let mean = (metric(&after, sum) - metric(&before, sum)) / resyncs.max(1.0);

    // One app changed: only it is rendered again.
    let renders_before = renders(&after);
    std::fs::write(
        repo.join("apps/app-042/deployments.yaml"),
        file(42, "app:2"),
    )
    .expect("write");
    git(&repo, &["commit", "-q", "-am", "bump app-042"]);
    let started = Instant::now();
    applied(&git(&repo, &["rev-parse", "HEAD"]));
    let latency = started.elapsed();
    let renders_after = renders(&scrape(port, token().trim()));
    let rendered: Vec<String> = renders_after
        .iter()
        .filter(|(app, n)| renders_before.get(*app).copied().unwrap_or(0.0) < **n)
        .map(|(app, _)| app.clone())
        .collect();
    drop(server);
    assert_eq!(rendered, ["app-042"], "apps rendered again");
    println!(
        "{:<52} {:>10}",
        format!("no-op resync, 100 apps / 1,000 Deployments (mean of {resyncs})"),
        ms(Duration::from_secs_f64(mean))
    );
    println!(
        "{:<52} {:>10}",
        "apps rendered for a commit to one app of 100",
        rendered.len()
    );
    println!(
        "{:<52} {:>10}",
        "commit-to-applied, one app of 100",
        ms(latency)
    );
}
