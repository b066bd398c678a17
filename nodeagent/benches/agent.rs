//! The agent's speed, in one run (`cargo bench -p keel-nodeagent --bench agent`):
//! - Docker: time from `Sync` to a simple pod reported Running, image present (p50, p90, max
//!   over sequential pods). Skipped, with a note, when no Docker engine answers.
//! - Hollow: pods started per second on one agent, for one Sync of many pods.
//! - DNS: queries per second and p50/p99 of the cluster DNS over 1,000 Services.

use std::sync::Arc;
use std::time::{Duration, Instant};

use keel_agent_protocol::NodeDesired;
use keel_agent_protocol::node_agent_client::NodeAgentClient;
use keel_nodeagent::agent::{self, AgentConfig, RunningAgent};
use keel_nodeagent::network::cni::{Cni, CniSettings};
use keel_nodeagent::network::{Assignment, NodeNetwork};
use keel_nodeagent::runtime::Runtime;
use keel_nodeagent::runtime::docker::image_import::{Rootfs, import_image};
use keel_nodeagent::runtime::docker::{DEFAULT_PAUSE_IMAGE, DockerRuntime};
use keel_nodeagent::runtime::hollow::HollowRuntime;
use serde_json::json;

const IMAGE: &str = "keel-bench/busybox:1";

/// The bench node's pod range, as registration would give it.
fn network() -> NodeNetwork {
    NodeNetwork::assigned(Assignment::parse("10.239.0.0/24", "10.239.0.0/16").expect("a range"))
}

async fn start(
    node: &str,
    data: &std::path::Path,
    network: &NodeNetwork,
    runtime: Arc<dyn Runtime>,
) -> RunningAgent {
    agent::start(
        AgentConfig {
            max_pods: 100_000,
            ..AgentConfig::bare(node, data.to_path_buf(), network.clone())
        },
        runtime,
    )
    .await
    .expect("agent")
}

fn pod(node: &str, name: &str, uid: &str, command: &[&str]) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "uid": uid},
        "spec": {"nodeName": node, "terminationGracePeriodSeconds": 0,
                 "containers": [{"name": "app", "image": IMAGE, "command": command}]}
    }))
    .unwrap()
}

fn is_running(agent: &RunningAgent, uid: &str) -> bool {
    agent.hub.get(uid).is_some_and(|u| {
        serde_json::from_slice::<keel_schema::types::pod::PodStatus>(&u.status)
            .is_ok_and(|s| s.phase == Some(keel_schema::types::pod::PodPhase::Running))
    })
}

async fn sync(
    client: &mut NodeAgentClient<tonic::transport::Channel>,
    node: &str,
    generation: u64,
    pods: Vec<Vec<u8>>,
) {
    let msg = NodeDesired {
        node_name: node.into(),
        generation,
        pods,
        ..Default::default()
    };
    for _ in 0..100 {
        match client.sync(msg.clone()).await {
            Ok(_) => return,
            Err(s) if s.code() == tonic::Code::Unavailable => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(s) => panic!("sync: {s}"),
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

async fn docker_bench() {
    let node = "bench-docker";
    let data = tempfile::tempdir().unwrap();
    let network = network();
    let cni = Cni::new(
        CniSettings::default_chain(data.path().join("cni"), "keelbench0"),
        network.clone(),
    );
    let rt = match DockerRuntime::connect(node, DEFAULT_PAUSE_IMAGE, Arc::new(cni)).await {
        Ok(rt) => rt,
        Err(e) => {
            println!("docker: skipped ({e:#})");
            return;
        }
    };
    import_image(rt.client(), IMAGE, Rootfs::busybox())
        .await
        .expect("image");
    let agent = start(node, data.path(), &network, Arc::new(rt)).await;
    let mut client = NodeAgentClient::connect(format!("http://{}", agent.addr))
        .await
        .unwrap();
    // Running means the sandbox is attached to the pod network (CNI ADD done) and the
    // container started: pod creation to network ready, and a little more.
    let runs = 100;
    let mut times = Vec::with_capacity(runs);
    for i in 0..runs {
        let uid = format!("bench-{i}");
        let started = Instant::now();
        sync(
            &mut client,
            node,
            2 * i as u64 + 1,
            vec![pod(node, &format!("p{i}"), &uid, &["sleep", "3600"])],
        )
        .await;
        while !is_running(&agent, &uid) {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        times.push(started.elapsed());
        // Remove it before the next one, so each start is measured alone.
        sync(&mut client, node, 2 * i as u64 + 2, vec![]).await;
        while agent.hub.get(&uid).is_some() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    times.sort();
    // The bench node's bridge goes with it (CNI's DEL leaves a node's bridge in place).
    let _ = std::process::Command::new("ip")
        .args(["link", "del", "keelbench0"])
        .status();
    println!(
        "docker: Sync → pod Running with its CNI address ({runs} pods, one at a time): p50 {:.0} ms, p90 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        percentile(&times, 0.5).as_secs_f64() * 1e3,
        percentile(&times, 0.9).as_secs_f64() * 1e3,
        percentile(&times, 0.99).as_secs_f64() * 1e3,
        times.last().unwrap().as_secs_f64() * 1e3,
    );
}

async fn hollow_bench(n: usize) {
    let node = "bench-hollow";
    let data = tempfile::tempdir().unwrap();
    let network = network();
    let runtime = HollowRuntime::new().with_network(network.clone());
    let agent = start(node, data.path(), &network, Arc::new(runtime)).await;
    let mut client = NodeAgentClient::connect(format!("http://{}", agent.addr))
        .await
        .unwrap()
        .max_encoding_message_size(64 << 20);
    let pods: Vec<Vec<u8>> = (0..n)
        .map(|i| pod(node, &format!("p{i}"), &format!("uid-{i}"), &["run"]))
        .collect();
    let started = Instant::now();
    sync(&mut client, node, 1, pods).await;
    let accepted = started.elapsed();
    while agent.hub.running_pods() < n {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let all = started.elapsed();
    println!(
        "hollow: {n} pods in one Sync: accepted in {:.0} ms, all Running in {:.0} ms = {:.0} pods/s",
        accepted.as_secs_f64() * 1e3,
        all.as_secs_f64() * 1e3,
        n as f64 / all.as_secs_f64()
    );
}

/// Queries per second and latency of the cluster DNS with 1,000 Services: 16 clients on
/// loopback, each asking and waiting, for 3 s; every query a cluster name (answered here).
async fn dns_bench() {
    use keel_nodeagent::dns::records::{DnsPort, DnsService};
    use keel_nodeagent::dns::{ClusterDns, DnsSettings};
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dns = ClusterDns::start(DnsSettings {
        address: std::net::Ipv4Addr::LOCALHOST,
        port,
        domain: "cluster.local".into(),
    })
    .await
    .expect("dns");
    let services: Vec<DnsService> = (0..1000u32)
        .map(|i| DnsService {
            namespace: "default".into(),
            name: format!("svc-{i}"),
            cluster_ip: Some(std::net::Ipv4Addr::from(0x0a60_0000 + i)),
            headless: false,
            ports: vec![DnsPort {
                name: "http".into(),
                protocol: "tcp".into(),
                port: 80,
            }],
            endpoints: vec![],
        })
        .collect();
    dns.update(&services);
    let run_for = Duration::from_secs(3);
    let clients: Vec<_> = (0..16u16)
        .map(|c| {
            tokio::spawn(async move {
                let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
                socket.connect(("127.0.0.1", port)).await.unwrap();
                let mut times = Vec::new();
                let mut buf = [0u8; 512];
                let started = Instant::now();
                let mut i = 0u32;
                while started.elapsed() < run_for {
                    let query = dns_query(c.wrapping_mul(1000).wrapping_add(i as u16), i % 1000);
                    let t = Instant::now();
                    socket.send(&query).await.unwrap();
                    let _ = socket.recv(&mut buf).await.unwrap();
                    times.push(t.elapsed());
                    i += 1;
                }
                times
            })
        })
        .collect();
    let mut times = Vec::new();
    for c in clients {
        times.extend(c.await.unwrap());
    }
    times.sort();
    println!(
        "dns: 1,000 Services, 16 clients on loopback: {:.0} queries/s, p50 {:.0} µs, p99 {:.0} µs",
        times.len() as f64 / run_for.as_secs_f64(),
        percentile(&times, 0.5).as_secs_f64() * 1e6,
        percentile(&times, 0.99).as_secs_f64() * 1e6,
    );
}

/// An A query for `svc-N.default.svc.cluster.local`, by hand (RFC 1035's wire format).
fn dns_query(id: u16, n: u32) -> Vec<u8> {
    let mut q = Vec::new();
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in [
        format!("svc-{n}").as_str(),
        "default",
        "svc",
        "cluster",
        "local",
    ] {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    q
}

fn main() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        dns_bench().await;
        docker_bench().await;
        hollow_bench(1_000).await;
        hollow_bench(10_000).await;
    });
}
