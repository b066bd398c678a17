//! Programming the nftables table at 1,000 and 10,000 Services: the whole table (an agent's
//! start), then one Service changed at a time (an endpoint added, as a rollout does), each
//! timed from `apply` to the kernel holding it, `nft` included. And the drift check: the
//! table listed and read back. `cargo bench -p keel-proxy --bench nftables`, as root (it runs
//! in a network namespace of its own); `KEEL_BENCH_SERVICES` (comma-separated) sets the sizes.

#[path = "support/netns.rs"]
mod netns;

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use keel_proxy::nftables::{NftablesConfig, NftablesProxy};
use keel_proxy::{Protocol, ProxiedPort, ProxiedService};

fn service(i: usize, endpoints: usize) -> ProxiedService {
    let ip = |base: [u8; 2], n: usize| {
        Ipv4Addr::new(base[0], base[1], (n / 250) as u8, (n % 250 + 1) as u8)
    };
    ProxiedService {
        namespace: "bench".into(),
        name: format!("svc-{i}"),
        cluster_ip: Some(ip([10, 96], i)),
        affinity: None,
        external_local: false,
        external_ips: Vec::new(),
        ports: vec![ProxiedPort {
            name: None,
            protocol: Protocol::Tcp,
            port: 80,
            // Every tenth Service is also a NodePort.
            node_port: i.is_multiple_of(10).then(|| 30000 + (i / 10) as u16),
            endpoints: (0..endpoints)
                .map(|e| SocketAddr::V4(SocketAddrV4::new(ip([10, 244], i * 4 + e), 8080)))
                .collect(),
        }],
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    if netns::enter().is_none() {
        return;
    }
    let sizes: Vec<usize> = std::env::var("KEEL_BENCH_SERVICES")
        .ok()
        .map(|s| s.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1_000, 10_000]);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    for n in sizes {
        rt.block_on(async {
            let (_keep, ranges) = tokio::sync::watch::channel(None);
            let nft = NftablesProxy::start(NftablesConfig {
                ranges,
                verify_every: Duration::from_secs(3600),
            });
            let mut services: Vec<ProxiedService> = (0..n).map(|i| service(i, 2)).collect();
            let start = Instant::now();
            nft.apply(services.clone()).await.expect("the whole table");
            let whole = start.elapsed();
            let mut one = Vec::new();
            for k in 0..100 {
                let i = (k * 7919) % n;
                services[i] = service(i, 2 + usize::from(k.is_multiple_of(2)));
                let start = Instant::now();
                nft.apply(services.clone()).await.expect("one change");
                one.push(start.elapsed());
            }
            one.sort();
            let start = Instant::now();
            let listing = tokio::process::Command::new("nft")
                .args(["-j", "list", "table", "ip", keel_proxy::nftables::TABLE])
                .output()
                .await
                .expect("nft lists");
            let _: serde_json::Value = serde_json::from_slice(&listing.stdout).expect("json");
            let check = start.elapsed();
            println!(
                "{n:>6} Services: whole table {:>7.1} ms; one Service changed p50 {:>6.1} ms, p99 {:>6.1} ms; drift check {:>6.1} ms ({} chains)",
                whole.as_secs_f64() * 1e3,
                percentile(&one, 0.5).as_secs_f64() * 1e3,
                percentile(&one, 0.99).as_secs_f64() * 1e3,
                check.as_secs_f64() * 1e3,
                nft.status().chains,
            );
            let _ = nft.remove().await;
        });
    }
}
