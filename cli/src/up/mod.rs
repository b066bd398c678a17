//! `keel up`: an all-in-one local cluster for trying keel. The control plane runs in this
//! process (embedded store in the data dir); each node is a `keel-agent` process in a network
//! namespace of its own on a bridge standing in for the LAN, its containers on the local
//! Docker engine. Without `--repo`, the example app becomes a fresh git repository in the
//! data dir. Ctrl-C stops everything and removes the containers, namespaces and links;
//! running it again on the same data dir resumes (same repository, store, node names and
//! addresses).
//!
//! # Layout
//! - this file: the flow, from the machine lock to the stop.
//! - [`lock`]: one local cluster per machine; [`images`]: the example's images;
//!   [`example`]: the example repository; [`hosts`]: the nodes' network namespaces and
//!   their LAN; [`agents`]: the `keel-agent` processes; [`ports`]: NodePorts on loopback.
//! - [`stages`]: waiting through each stage with progress lines; [`summary`]: what is
//!   printed once the cluster is up.

mod agents;
pub mod example;
mod hosts;
pub mod images;
mod lock;
mod ports;
mod stages;
mod summary;

pub use agents::{MAX_NODES, release_pinned_mounts, remove_addresses, remove_containers};

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use keel_reconciler::apply::ServiceNetwork;
use keel_reconciler::{Config, ControlPlane};

use hosts::NodeHosts;

/// What `keel up` was asked for.
#[derive(Debug, Clone)]
pub struct UpConfig {
    pub repo: Option<PathBuf>,
    pub nodes: usize,
    pub data_dir: PathBuf,
    pub listen: String,
    /// The API over HTTPS (`--tls-listen`).
    pub tls_listen: Option<String>,
    /// The port the control plane listens on for the nodes, at the machine's LAN address.
    pub agent_port: u16,
    /// The LAN of the nodes' network hosts.
    pub lan: ipnet::Ipv4Net,
    /// `vxlan` or `host-gw`, passed to every agent.
    pub network_backend: String,
    pub service_network: ServiceNetwork,
    pub load_balancer_pool: Option<keel_reconciler::controllers::loadbalancer::LoadBalancerPool>,
    pub pod_network: keel_reconciler::nodes::PodNetwork,
    /// How long to wait for the pods before printing what is still starting.
    pub wait: Duration,
}

/// `~/.local/share/keel/up`, or `./keel-up` without a home.
pub fn default_data_dir() -> PathBuf {
    std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .map_or_else(|| PathBuf::from("keel-up"), |d| d.join("keel").join("up"))
}

/// A line of progress, at once (stdout may be a pipe).
fn step(text: &str) {
    crate::output::out(&format!("==> {text}\n"));
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

/// Everything before the control plane starts: logs, the machine lock, Docker, the nodes'
/// network hosts, images, the repository.
fn prepare(config: &UpConfig) -> anyhow::Result<(std::fs::File, NodeHosts, PathBuf)> {
    keel_tls::files::private_dir(&config.data_dir)
        .and_then(|()| keel_tls::files::private_dir(&config.data_dir.join("logs")))
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot create the data dir {}: {e}",
                config.data_dir.display()
            )
        })?;
    keel_telemetry::init_file(&config.data_dir.join("logs").join("server.log"))?;
    // One local cluster per machine: node names, NodePorts and the example's addresses are
    // fixed, so a second one would take over the first one's containers and traffic.
    let lock = lock::lock_machine()?;
    let Some(version) = docker_version() else {
        anyhow::bail!("{DOCKER_HELP}");
    };
    step(&format!("Docker engine {version} is running"));
    let orphans = agents::stop_previous(&config.data_dir);
    if !orphans.is_empty() {
        step(&format!(
            "stopped the agents an earlier keel up left running ({})",
            orphans.join(", ")
        ));
    }
    let leftovers = agents::clean_leftovers(&config.data_dir);
    if leftovers > 0 {
        step(&format!(
            "removed {leftovers} containers an earlier keel up left behind"
        ));
    }
    // What can be refused is refused before anything is made on the machine.
    let repo = repository(config)?;
    let hosts = NodeHosts::create(config.lan, config.nodes)?;
    step(&format!(
        "{} node hosts on the LAN {} (ip netns: keel-1…keel-{}, switch keel-lan), pod traffic over {}",
        config.nodes, config.lan, config.nodes, config.network_backend
    ));
    match images::ensure_example_images(config.repo.is_some(), step) {
        Ok(()) => Ok((lock, hosts, repo)),
        Err(e) => {
            hosts.remove();
            Err(e)
        }
    }
}

/// The repository to follow: `--repo`, or the example made (or kept) in the data dir.
fn repository(config: &UpConfig) -> anyhow::Result<PathBuf> {
    if let Some(repo) = &config.repo {
        let repo = std::fs::canonicalize(repo)
            .map_err(|e| anyhow::anyhow!("--repo {}: {e}", repo.display()))?;
        if let Err(e) = git2::Repository::open(&repo) {
            anyhow::bail!(
                "--repo {} is not a git repository ({}); run `git init` there and commit the manifests",
                repo.display(),
                e.message()
            );
        }
        step(&format!("using the repository {}", repo.display()));
        return Ok(repo);
    }
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
    Ok(repo)
}

/// The control plane's settings for a local cluster whose nodes reach the machine at
/// `gateway`.
fn control_plane_config(config: &UpConfig, repo: &Path, gateway: Ipv4Addr) -> Config {
    Config {
        repo: repo.to_string_lossy().into_owned(),
        // The example's repository is followed on main, whatever the user checks out in it.
        branch: config.repo.is_none().then(|| "main".to_string()),
        path: None,
        data_dir: config.data_dir.join("server"),
        store: None,
        listen: config.listen.clone(),
        tls_listen: config.tls_listen.clone(),
        tls_names: Vec::new(),
        agent_listen: format!("{gateway}:{}", config.agent_port),
        node_grace: Duration::from_secs(10),
        pod_eviction_timeout: Duration::from_secs(15),
        poll_interval: Duration::from_secs(30),
        resync_interval: Duration::from_secs(60),
        webhook_secret: None,
        service_network: config.service_network.clone(),
        load_balancer_pool: config.load_balancer_pool,
        pod_network: config.pod_network,
        wait_for_nodes: config.nodes,
        insecure: false,
        cert_validity: keel_tls::DEFAULT_CERT_VALIDITY,
        anonymous_read: false,
        encryption_key_file: None,
        sops_age_key_file: None,
        notify_secrets_dir: None,
        notify_retry_delay: std::time::Duration::from_secs(1),
        advertise_address: None,
        leader: Default::default(),
    }
}

fn start_and_serve(config: UpConfig) -> anyhow::Result<()> {
    let (_lock, hosts, repo) = prepare(&config)?;
    let served = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|runtime| runtime.block_on(serve(&config, &repo, &hosts)));
    // The agents are stopped by now: their hosts go, whatever way keel up leaves.
    hosts.remove();
    let (keep_running, interrupted) = served?;
    match (keep_running, interrupted) {
        (true, _) => Ok(()),
        // Interrupted while starting: what was started is gone; 130 as a shell reports it.
        (false, true) => std::process::exit(130),
        (false, false) => std::process::exit(1),
    }
}

/// Starts the control plane and the agents, waits through each stage, runs until a signal,
/// then stops everything. Returns (it was up, it was interrupted while starting).
async fn serve(config: &UpConfig, repo: &Path, hosts: &NodeHosts) -> anyhow::Result<(bool, bool)> {
    let server_log = config.data_dir.join("logs").join("server.log");
    let mut control_plane =
        ControlPlane::start(control_plane_config(config, repo, hosts.gateway()))
            .await
            .map_err(|e| {
                // Into server.log too, where the rest of the control plane's story is.
                tracing::error!("keel server: {e:#}");
                anyhow::anyhow!("the control plane did not start: {e:#}")
            })?;
    let cluster = stages::Cluster::new(config, hosts);
    let mut agents = None;
    let mut loopback = None;
    let outcome = tokio::select! {
        r = cluster.bring_up(&mut agents, &mut loopback) => r.map(|()| true),
        failure = control_plane.failed() => Err(anyhow::anyhow!(
            "the control plane stopped: {failure} (log: {})",
            server_log.display()
        )),
        () = crate::signal::shutdown_signal() => Ok(false),
    };
    let interrupted = matches!(outcome, Ok(false));
    if matches!(outcome, Ok(true)) {
        summary::print(&cluster, repo, config.repo.is_none()).await;
    }
    let mut keep_running = match outcome {
        Ok(up) => up,
        Err(e) => {
            eprintln!("keel up: {e:#}");
            false
        }
    };
    if keep_running {
        // A node whose agent stops is started again, and the user told.
        let mut check = tokio::time::interval(Duration::from_secs(2));
        let shutdown = crate::signal::shutdown_signal();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                failure = control_plane.failed() => {
                    eprintln!("keel up: the control plane stopped: {failure} (log: {})", server_log.display());
                    keep_running = false;
                    break;
                }
                _ = check.tick() => {
                    for line in agents.as_mut().map(agents::Agents::restart_stopped).unwrap_or_default() {
                        step(&line);
                    }
                }
            }
        }
    }
    step("stopping");
    if let Some(task) = loopback {
        task.abort();
    }
    // Agents first: the control plane then stops without nodes calling it.
    let removed = agents.map(agents::Agents::stop_and_clean).unwrap_or(0);
    control_plane.shutdown().await;
    step(&format!(
        "stopped; removed {removed} containers and the node hosts keel-1…keel-{}",
        config.nodes
    ));
    if keep_running {
        step("`keel up` again resumes with the same repository and store");
    }
    Ok((keep_running, interrupted))
}
