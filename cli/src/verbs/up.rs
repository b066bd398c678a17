//! `keel up`: an all-in-one local cluster on this machine's Docker engine.

use std::path::PathBuf;
use std::time::Duration;

use crate::up::{MAX_NODES, UpConfig, default_data_dir, run as run_up};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The manifest repository to run (a local git repository). Without it, the example app
    /// is copied into a fresh repository in the data dir, whose path is printed.
    #[arg(long)]
    pub repo: Option<PathBuf>,
    /// How many nodes (`keel-agent` processes) to start, 1 to 20.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=MAX_NODES as i64))]
    pub nodes: u16,
    /// Where the cluster keeps its state: store, repository, agents' data, logs (default
    /// ~/.local/share/keel/up). Running `keel up` again on the same data dir resumes.
    #[arg(long, env = "KEEL_UP_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Address of the HTTP API (`keel get --server`, `keel plan --server`).
    #[arg(long, default_value = "127.0.0.1:7400")]
    pub listen: String,
    /// Address of the same API over HTTPS, with a certificate from the cluster's CA: what
    /// `keel kubeconfig` points kubectl at ("" for none).
    #[arg(long, default_value = "127.0.0.1:7443")]
    pub tls_listen: String,
    /// The port the nodes register at, on the machine's address on the nodes' LAN.
    #[arg(long, default_value_t = 7402)]
    pub agent_port: u16,
    /// The LAN the nodes sit on: each node is a network namespace (`keel-1`, `keel-2`, …) at
    /// the 11th, 12th, … address, and the machine takes the first. Keep it clear of the
    /// machine's own networks and of the pod and Service ranges.
    #[arg(long, default_value = "10.250.0.0/24")]
    pub lan_cidr: ipnet::Ipv4Net,
    /// How pod traffic crosses between nodes: `vxlan` (an overlay) or `host-gw` (a route per
    /// node; the nodes share one LAN, as here).
    #[arg(long, default_value = "vxlan", value_parser = ["vxlan", "host-gw"])]
    pub network_backend: String,
    #[command(flatten)]
    pub network: super::network::NetworkArgs,
    /// How long to wait for the pods before printing what is still starting.
    #[arg(long, default_value = "3m", value_parser = humantime::parse_duration)]
    pub wait: Duration,
}

use keel_reconciler::controllers::loadbalancer::LoadBalancerPool;

pub fn run(args: &Args) -> i32 {
    let (service_network, pod_network) = match args.network.plans() {
        Ok(n) => n,
        Err(e) => {
            eprintln!("keel up: {e}");
            return 2;
        }
    };
    if let Err(e) = args.listen.parse::<std::net::SocketAddr>() {
        eprintln!(
            "keel up: --listen {:?}: {e} (an address and port, e.g. 127.0.0.1:7400)",
            args.listen
        );
        return 2;
    }
    let lan = args.lan_cidr.trunc();
    let overlapping = [
        ("--cluster-cidr", pod_network.cluster()),
        ("--service-cidr", service_network.cidr()),
    ]
    .into_iter()
    .find(|(_, other)| other.contains(&lan.network()) || lan.contains(&other.network()));
    if let Some((flag, other)) = overlapping {
        eprintln!("keel up: --lan-cidr {lan} overlaps {flag} {other}; choose ranges apart");
        return 2;
    }
    if lan.hosts().count() < 10 + usize::from(args.nodes) {
        eprintln!(
            "keel up: --lan-cidr {lan} has no room for {} nodes (they start at its 11th address)",
            args.nodes
        );
        return 2;
    }
    // The nodes' LAN is keel up's own: by default its second-to-last 16 addresses are the
    // LoadBalancer pool, reachable from this machine.
    let load_balancer_pool = match args.network.load_balancer_pool() {
        Ok(Some(p)) => Some(p),
        Ok(None) => lan
            .subnets(28)
            .ok()
            .and_then(|s| s.collect::<Vec<_>>().into_iter().rev().nth(1))
            .filter(|_| lan.prefix_len() <= 26)
            .map(LoadBalancerPool::Range),
        Err(e) => {
            eprintln!("keel up: {e}");
            return 2;
        }
    };
    run_up(UpConfig {
        repo: args.repo.clone(),
        nodes: usize::from(args.nodes),
        data_dir: args.data_dir.clone().unwrap_or_else(default_data_dir),
        listen: args.listen.clone(),
        tls_listen: Some(args.tls_listen.clone()).filter(|l| !l.is_empty()),
        agent_port: args.agent_port,
        lan,
        network_backend: args.network_backend.clone(),
        service_network,
        load_balancer_pool,
        pod_network,
        wait: args.wait,
    })
}
