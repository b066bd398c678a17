//! `keel up`: an all-in-one local cluster for trying keel. The control plane runs in this
//! process (embedded store in the data dir); each node is a `keel-agent` process on the local
//! Docker engine. Without `--repo`, the example app becomes a fresh git repository in the
//! data dir. Ctrl-C stops everything and removes the containers; running it again on the same
//! data dir resumes (same repository, store and node names).

mod agents;
pub use agents::{MAX_NODES, remove_addresses, remove_containers};
pub mod example;
pub mod images;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::apply::ServiceNetwork;
use crate::server::Config;
use agents::Agents;

/// What `keel up` was asked for.
#[derive(Debug, Clone)]
pub struct UpConfig {
    pub repo: Option<PathBuf>,
    pub nodes: usize,
    pub data_dir: PathBuf,
    pub listen: String,
    pub agent_listen: String,
    pub service_network: ServiceNetwork,
    /// How long to wait for the pods before printing what is still starting.
    pub wait: Duration,
}

/// A line of progress, at once (stdout may be a pipe).
fn step(text: &str) {
    crate::cli::out(&format!("==> {text}\n"));
}

/// The commands that install and start Docker on Debian, for the message when it is missing.
const DOCKER_HELP: &str = "keel runs pods on the local Docker engine, and none answers.
Install and start it (Debian, as root):
    apt-get install -y docker.io busybox-static
    nohup dockerd >/var/log/dockerd.log 2>&1 &
then run keel up again. (./scripts/demo does this for you.)";

fn docker_version() -> Option<String> {
    let out = Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Runs the cluster until Ctrl-C; returns the exit code.
pub fn run(config: UpConfig) -> i32 {
    match start_and_serve(config) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("keel up: {e:#}");
            1
        }
    }
}

fn start_and_serve(config: UpConfig) -> anyhow::Result<()> {
    std::fs::create_dir_all(config.data_dir.join("logs")).map_err(|e| {
        anyhow::anyhow!(
            "cannot create the data dir {}: {e}",
            config.data_dir.display()
        )
    })?;
    let server_log = config.data_dir.join("logs").join("server.log");
    crate::logging::init_file(&server_log)?;
    // One local cluster per machine: node names, NodePorts and the example's addresses are
    // fixed, so a second one would take over the first one's containers and traffic.
    let _lock = lock_machine()?;

    let Some(version) = docker_version() else {
        anyhow::bail!("{DOCKER_HELP}");
    };
    step(&format!("Docker engine {version} is running"));
    let leftovers = agents::clean_leftovers(&config.data_dir, config.nodes);
    if leftovers > 0 {
        step(&format!(
            "removed {leftovers} containers of nodes beyond --nodes {}",
            config.nodes
        ));
    }

    let mut missing = Vec::new();
    for image in images::example_images() {
        if !images::present(&image.reference)
            && let Err(e) = images::import(&image)
        {
            missing.push(format!("{}: {e:#}", image.reference));
        }
    }
    match (missing.is_empty(), &config.repo) {
        (true, _) => {
            step("images ready: keel-example/web:1, keel-example/web:2, keel-example/api:1")
        }
        // The example needs them; another repository may not.
        (false, None) => anyhow::bail!("cannot make the example's images: {}", missing.join("; ")),
        (false, Some(_)) => step(&format!(
            "the example's images could not be made ({}); going on with your repository",
            missing.join("; ")
        )),
    }

    let repo = match &config.repo {
        Some(repo) => {
            let repo = std::fs::canonicalize(repo)
                .map_err(|e| anyhow::anyhow!("--repo {}: {e}", repo.display()))?;
            step(&format!("using the repository {}", repo.display()));
            repo
        }
        None => {
            let repo = config.data_dir.join("repo");
            if repo.join(".git").is_dir() {
                step(&format!("resuming with the repository {}", repo.display()));
            } else {
                example::create(&repo)?;
                step(&format!(
                    "created a repository with the example app: {}",
                    repo.display()
                ));
            }
            repo
        }
    };

    let server = Config {
        repo: repo.to_string_lossy().into_owned(),
        // The example's repository is followed on main, whatever the user checks out in it.
        branch: config.repo.is_none().then(|| "main".to_string()),
        path: None,
        data_dir: config.data_dir.join("server"),
        store: None,
        listen: config.listen.clone(),
        agent_listen: config.agent_listen.clone(),
        node_grace: Duration::from_secs(10),
        pod_eviction_timeout: Duration::from_secs(30),
        poll_interval: Duration::from_secs(30),
        resync_interval: Duration::from_secs(60),
        webhook_secret: None,
        service_network: config.service_network.clone(),
        wait_for_nodes: config.nodes,
        insecure: false,
        cert_validity: keel_tls::DEFAULT_CERT_VALIDITY,
        anonymous_read: false,
        encryption_key_file: None,
    };
    // The control plane on its own thread and runtime, as its own process would have; it
    // stops on Ctrl-C or SIGTERM like `keel server`.
    let control_plane = std::thread::spawn(move || -> anyhow::Result<()> {
        let result = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
            .block_on(crate::server::run(server));
        if let Err(e) = &result {
            // Into server.log, which keel up shows when the control plane does not start.
            tracing::error!("keel server: {e:#}");
        }
        result
    });

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let url = format!("http://{}", config.listen);
    let api = Api {
        url: url.clone(),
        client: crate::cli::http::client(),
        token_file: config
            .data_dir
            .join("server")
            .join(crate::auth::api_token::FILE),
    };
    let mut agents: Option<Agents> = None;
    let outcome = runtime.block_on(async {
        tokio::select! {
            r = bring_up(&config, &api, &repo, &control_plane, &mut agents, &server_log) => r.map(|()| true),
            _ = stop_signal() => Ok(false),
        }
    });
    let interrupted = matches!(outcome, Ok(false));
    let keep_running = match outcome {
        Ok(up) => up,
        // A control plane that stopped says why itself, below.
        Err(_) if control_plane.is_finished() => false,
        Err(e) => {
            eprintln!("keel up: {e:#}");
            false
        }
    };
    if keep_running {
        runtime.block_on(stop_signal());
    }
    step("stopping");
    // The control plane saw the same signal; after a startup failure it did not, and this
    // process's exit ends it (the store is crash-safe).
    let removed = agents.map(Agents::stop_and_clean).unwrap_or(0);
    step(&format!("stopped; removed {removed} containers"));
    if keep_running {
        step("`keel up` again resumes with the same repository and store");
    }
    if control_plane.is_finished()
        && let Ok(Err(e)) = control_plane.join()
    {
        anyhow::bail!("the control plane stopped: {e:#}");
    }
    match (keep_running, interrupted) {
        (true, _) => Ok(()),
        // Interrupted while starting: what was started is gone; 130 as a shell reports it.
        (false, true) => std::process::exit(130),
        (false, false) => std::process::exit(1),
    }
}

/// Takes the machine-wide `keel up` lock (a file in the temp dir, held while this process
/// lives), or says who holds it.
fn lock_machine() -> anyhow::Result<std::fs::File> {
    let path = std::env::temp_dir().join("keel-up.lock");
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .map_err(|e| anyhow::anyhow!("cannot open {}: {e}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {
            use std::io::{Seek, Write};
            file.set_len(0)?;
            file.seek(std::io::SeekFrom::Start(0))?;
            write!(file, "{}", std::process::id())?;
            Ok(file)
        }
        Err(std::fs::TryLockError::WouldBlock) => {
            let holder = std::fs::read_to_string(&path).unwrap_or_default();
            anyhow::bail!(
                "another keel up is running on this machine (pid {}); stop it (Ctrl-C in its terminal) first",
                holder.trim()
            )
        }
        Err(std::fs::TryLockError::Error(e)) => {
            anyhow::bail!("cannot lock {}: {e}", path.display())
        }
    }
}

/// Ctrl-C, SIGTERM, or SIGHUP (the terminal closed): each stops the cluster cleanly.
async fn stop_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).ok();
    let mut hangup = signal(SignalKind::hangup()).ok();
    async fn wait(s: Option<&mut tokio::signal::unix::Signal>) {
        match s {
            Some(s) => {
                s.recv().await;
            }
            None => std::future::pending::<()>().await,
        }
    }
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = wait(term.as_mut()) => {}
        _ = wait(hangup.as_mut()) => {}
    }
}

struct Api {
    url: String,
    client: reqwest::Client,
    /// The control plane's admin token (it makes the file when it starts).
    token_file: std::path::PathBuf,
}

impl Api {
    async fn get(&self, path: &str) -> Option<Value> {
        let token = std::fs::read_to_string(&self.token_file).unwrap_or_default();
        let resp = self
            .client
            .get(format!("{}{path}", self.url))
            .bearer_auth(token.trim())
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .ok()?;
        if !resp.status().is_success() {
            return None;
        }
        resp.json().await.ok()
    }

    async fn answers(&self, path: &str) -> bool {
        self.client
            .get(format!("{}{path}", self.url))
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
    }

    async fn items(&self, path: &str) -> Vec<Value> {
        self.get(path)
            .await
            .and_then(|l| l["items"].as_array().cloned())
            .unwrap_or_default()
    }
}

/// Whether a node's Ready condition was written at or after `since` (its agent registered or
/// beat since then).
fn heard_since(node: &Value, since: chrono::DateTime<chrono::Utc>) -> bool {
    node["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["type"] == "Ready")
        .filter_map(|c| c["lastHeartbeatTime"].as_str())
        .filter_map(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .any(|t| t >= since)
}

fn condition(object: &Value, kind: &str) -> bool {
    object["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"] == kind && c["status"] == "True")
    })
}

/// The last lines of a log file, for a message about what failed.
fn tail(path: &std::path::Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Starts the agents and waits through each stage, printing progress; then prints how to
/// use the cluster.
async fn bring_up(
    config: &UpConfig,
    api: &Api,
    repo: &std::path::Path,
    control_plane: &std::thread::JoinHandle<anyhow::Result<()>>,
    agents: &mut Option<Agents>,
    server_log: &std::path::Path,
) -> anyhow::Result<()> {
    let started = Instant::now();
    while !api.answers("/healthz").await {
        if control_plane.is_finished() {
            anyhow::bail!("the control plane stopped (log: {})", server_log.display());
        }
        if started.elapsed() > Duration::from_secs(30) {
            anyhow::bail!("the control plane did not answer at {} within 30s", api.url);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    step(&format!("control plane at {}", api.url));

    // Agents that joined before have their certificates; new ones join with this token.
    let server_dir = config.data_dir.join("server");
    let ca = keel_tls::ClusterCa::load_or_create(&keel_tls::ca::pki_dir(&server_dir))?;
    let (token, _) = crate::auth::join_tokens::JoinTokens::new(&server_dir).create(
        &ca.fingerprint(),
        Duration::from_secs(3600),
        Some("keel up".into()),
    )?;
    let started_agents = agents.insert(Agents::start(
        config.nodes,
        &config.agent_listen,
        &config.data_dir,
        &token.reveal(),
    )?);
    // Less a margin: the API writes times to the second.
    let agents_started = chrono::Utc::now() - chrono::Duration::seconds(2);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        // Ready from this run: a resumed cluster's nodes are still Ready in the store.
        let ready: Vec<String> = api
            .items("/api/v1/nodes")
            .await
            .iter()
            .filter(|n| condition(n, "Ready") && heard_since(n, agents_started))
            .filter_map(|n| n["metadata"]["name"].as_str().map(str::to_string))
            .collect();
        if ready.len() >= config.nodes {
            step(&format!(
                "{} nodes ready: {}",
                ready.len(),
                ready.join(", ")
            ));
            break;
        }
        if let Some((name, status)) = started_agents.exited() {
            let log = config.data_dir.join("logs").join(format!("{name}.log"));
            anyhow::bail!(
                "node {name} stopped ({status}); its log ({}):\n{}",
                log.display(),
                tail(&log, 5)
            );
        }
        if control_plane.is_finished() {
            anyhow::bail!("the control plane stopped (log: {})", server_log.display());
        }
        if Instant::now() > deadline {
            anyhow::bail!(
                "only {} of {} nodes registered within 60s; see the logs in {}",
                ready.len(),
                config.nodes,
                config.data_dir.join("logs").display()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let applied = loop {
        let status = api.get("/api/keel/status").await.unwrap_or_default();
        if let Some(commit) = status["applied_commit"].as_str() {
            break commit.chars().take(7).collect::<String>();
        }
        if control_plane.is_finished() {
            anyhow::bail!("the control plane stopped (log: {})", server_log.display());
        }
        if let Some(error) = status["fetch_error"].as_str() {
            step(&format!("cannot read the repository: {error}"));
            step("fix it (a repository needs a commit on its branch); keel retries");
            break String::new();
        }
        if status["last_result"] == "failed" || status["last_result"] == "refused" {
            // The cluster runs on; the user fixes the repository and commits.
            step(&format!(
                "the repository's revision was not applied: {}",
                status["last_error"].as_str().unwrap_or("unknown error")
            ));
            step("fix it and commit; keel applies the next good revision");
            break String::new();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    if !applied.is_empty() {
        step(&format!("revision {applied} applied"));
        let deadline = Instant::now() + config.wait;
        let mut last = (usize::MAX, usize::MAX);
        loop {
            let pods = api.items("/api/v1/pods").await;
            // A Job's pod is done when it succeeded; any other pod when it is Ready.
            let done = pods
                .iter()
                .filter(|p| {
                    let of_job = p["metadata"]["ownerReferences"]
                        .as_array()
                        .is_some_and(|o| o.iter().any(|r| r["kind"] == "Job"));
                    p["status"]["phase"] == "Succeeded"
                        || (!of_job && p["status"]["phase"] == "Running" && condition(p, "Ready"))
                })
                .count();
            if (done, pods.len()) != last {
                step(&format!("pods ready: {done}/{}", pods.len()));
                last = (done, pods.len());
            }
            if !pods.is_empty() && done == pods.len() {
                break;
            }
            if Instant::now() > deadline {
                step(
                    "some pods are still starting: see `keel get pods` and `keel describe pod NAME`",
                );
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    // The URLs printed next work when they are printed: each node's proxy listens once
    // its agent has the Service's ready endpoints, a moment after the pods are ready.
    let deadline = Instant::now() + Duration::from_secs(30);
    for (name, url) in node_port_urls(api).await {
        loop {
            let answered = api
                .client
                .get(&url)
                .timeout(Duration::from_secs(2))
                .send()
                .await
                .is_ok();
            if answered {
                break;
            }
            if Instant::now() > deadline {
                step(&format!(
                    "{name} does not answer at {url} yet: see `keel get endpoints` and `keel describe pod`"
                ));
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    print_summary(api, repo, config.repo.is_none()).await;
    Ok(())
}

/// `(service name, http://127.0.0.1:NODEPORT/)` for every NodePort Service port.
async fn node_port_urls(api: &Api) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for svc in api.items("/api/v1/services").await {
        if svc["spec"]["type"] != "NodePort" {
            continue;
        }
        let name = svc["metadata"]["name"].as_str().unwrap_or("?").to_string();
        for port in svc["spec"]["ports"].as_array().into_iter().flatten() {
            if let Some(np) = port["nodePort"].as_i64() {
                out.push((name.clone(), format!("http://127.0.0.1:{np}/")));
            }
        }
    }
    out
}

async fn print_summary(api: &Api, repo: &std::path::Path, example: bool) {
    let keel = std::env::current_exe()
        .ok()
        .filter(|p| !in_path(p))
        .map_or_else(|| "keel".to_string(), |p| p.display().to_string());
    let mut lines = vec![String::new(), "keel is up.".to_string(), String::new()];
    for (name, url) in node_port_urls(api).await {
        lines.push(format!("  {name:<6} {url}"));
    }
    lines.push(format!("  repo   {}", repo.display()));
    lines.push(format!("  server {}", api.url));
    // The CLI finds the API token by itself in keel up's default data dir only.
    let default_token = crate::cli::up::default_data_dir()
        .join("server")
        .join(crate::auth::api_token::FILE);
    if api.token_file != default_token
        && let Some(dir) = api.token_file.parent()
    {
        lines.push(format!(
            "  token  {}  (export KEEL_DATA_DIR={} so that keel commands find it)",
            api.token_file.display(),
            dir.display()
        ));
    }
    lines.push(String::new());
    lines.push(format!("Try it (in {}):", repo.display()));
    if !example {
        lines.push(format!(
            "  1. change a manifest and commit:  git commit -am \"...\"  (applied within seconds)\n  2. review a branch:  {keel} plan --repo . --from BRANCH --to OTHER-BRANCH\n  3. roll back:  git revert --no-edit HEAD\n\nCtrl-C stops the cluster."
        ));
        crate::cli::out(&(lines.join("\n") + "\n"));
        return;
    }
    lines.push(
        "  1. change the page:  edit web/configmap.yaml, then  git commit -am \"new page\"".into(),
    );
    // The client verbs default to the default address.
    let server = if api.url == "http://127.0.0.1:7400" {
        String::new()
    } else {
        format!(" --server {}", api.url)
    };
    lines.push(format!(
        "  2. review a change:  git checkout -b v2 && sed -i s/web:1/web:2/ web/deployment.yaml && git commit -am v2 && git checkout main\n                       {keel} plan --repo . --from main --to v2"
    ));
    lines.push("  3. roll back:        git revert --no-edit HEAD".into());
    lines.push(String::new());
    lines.push(format!(
        "See it with `{keel} get pods{server}` and `{keel} status{server}`. Ctrl-C stops the cluster."
    ));
    crate::cli::out(&(lines.join("\n") + "\n"));
}

/// Whether `exe` is what `keel` on the PATH runs.
fn in_path(exe: &std::path::Path) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|dir| {
            std::fs::canonicalize(dir.join("keel")).ok() == std::fs::canonicalize(exe).ok()
        })
    })
}
