//! Throughput and latency through keel's two Service paths (the nftables table and the
//! userspace proxy), side by side in one run with a direct connection and with haproxy (TCP
//! mode, round-robin) over the same three backends on loopback. `cargo bench -p keel-proxy
//! --bench proxy`; `KEEL_BENCH_SECONDS` sets each measurement's length. As root it runs in a
//! network namespace of its own (the nftables row needs one); otherwise that row is skipped.
//!
//! keel's userspace proxy runs on its own two-thread runtime, as a separate process's would,
//! so clients and backends do not lend it their threads.

#[path = "support/netns.rs"]
mod netns;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use keel_proxy::nftables::{NftablesConfig, NftablesProxy};
use keel_proxy::{Protocol, ProxiedPort, ProxiedService, Proxy, ProxyConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const MESSAGE: usize = 64;

/// Bulk bytes/s with 1 and 64 connections; p50, p99 and requests/s of small messages as
/// fast as they go; p50 and p99 at a paced 16,000 requests/s.
type Figures = (f64, f64, Duration, Duration, f64, Duration, Duration);

/// Each paced client's interval: 64 clients × 250/s = 16,000 requests/s, well below what
/// every path sustains, so the figure is the latency a hop adds rather than queueing.
const PACE: Duration = Duration::from_millis(4);

fn seconds() -> Duration {
    let s = std::env::var("KEEL_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0);
    Duration::from_secs_f64(s)
}

/// Backends that read and drop everything, counting bytes.
async fn sink(received: Arc<AtomicU64>) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut c, _)) = l.accept().await {
            let received = received.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 256 * 1024];
                while let Ok(n) = c.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    received.fetch_add(n as u64, Ordering::Relaxed);
                }
            });
        }
    });
    addr
}

/// Backends that echo fixed-size messages.
async fn echo() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut c, _)) = l.accept().await {
            let _ = c.set_nodelay(true);
            tokio::spawn(async move {
                let mut buf = [0u8; MESSAGE];
                while c.read_exact(&mut buf).await.is_ok() {
                    if c.write_all(&buf).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

/// Bytes per second pushed through `target` by `connections` clients.
async fn bulk(target: SocketAddr, connections: usize, received: &AtomicU64) -> f64 {
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let mut c = TcpStream::connect(target).await.expect("connect");
            let buf = vec![7u8; 256 * 1024];
            while !stop.load(Ordering::Relaxed) {
                if c.write_all(&buf).await.is_err() {
                    break;
                }
            }
        }));
    }
    // Let connections open and windows grow before counting.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let start_bytes = received.load(Ordering::Relaxed);
    let start = Instant::now();
    tokio::time::sleep(seconds()).await;
    let bytes = received.load(Ordering::Relaxed) - start_bytes;
    let rate = bytes as f64 / start.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    rate
}

/// p50 and p99 round-trip latency of small messages, 64 clients at once, and requests/s:
/// each client sends as soon as it has its answer (`pace` None: the path at saturation,
/// where latency is mostly queueing) or once per `pace`.
async fn latency(target: SocketAddr, pace: Option<Duration>) -> (Duration, Duration, f64) {
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let mut c = TcpStream::connect(target).await.expect("connect");
            let _ = c.set_nodelay(true);
            let mut buf = [1u8; MESSAGE];
            let mut samples = Vec::new();
            let mut ticks = pace.map(|p| {
                let mut i = tokio::time::interval(p);
                i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                i
            });
            while !stop.load(Ordering::Relaxed) {
                if let Some(t) = ticks.as_mut() {
                    t.tick().await;
                }
                let t = Instant::now();
                if c.write_all(&buf).await.is_err() || c.read_exact(&mut buf).await.is_err() {
                    break;
                }
                samples.push(t.elapsed());
            }
            samples
        }));
    }
    let start = Instant::now();
    tokio::time::sleep(seconds()).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap_or_default());
    }
    let rate = all.len() as f64 / start.elapsed().as_secs_f64();
    all.sort();
    let at = |q: f64| all.get(((all.len() as f64 * q) as usize).min(all.len().saturating_sub(1)));
    (
        at(0.50).copied().unwrap_or_default(),
        at(0.99).copied().unwrap_or_default(),
        rate,
    )
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn haproxy(
    sinks: &[SocketAddr],
    echoes: &[SocketAddr],
) -> Option<(
    std::process::Child,
    SocketAddr,
    SocketAddr,
    tempfile::TempDir,
)> {
    let dir = tempfile::tempdir().ok()?;
    let (p1, p2) = (free_port(), free_port());
    let servers = |xs: &[SocketAddr]| {
        xs.iter()
            .enumerate()
            .map(|(i, a)| format!("  server s{i} {a}\n"))
            .collect::<String>()
    };
    let config = format!(
        "global\n  maxconn 4000\n  nbthread 2\ndefaults\n  mode tcp\n  timeout connect 1s\n  timeout client 60s\n  timeout server 60s\n\
         listen sink\n  bind 127.0.0.1:{p1}\n  balance roundrobin\n{}\
         listen echo\n  bind 127.0.0.1:{p2}\n  balance roundrobin\n{}",
        servers(sinks),
        servers(echoes)
    );
    let path = dir.path().join("haproxy.cfg");
    std::fs::write(&path, config).ok()?;
    let child = std::process::Command::new("haproxy")
        .arg("-db")
        .arg("-f")
        .arg(&path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| {
            eprintln!("haproxy column skipped: cannot run haproxy ({e}); `apt-get install haproxy`")
        })
        .ok()?;
    for _ in 0..50 {
        if std::net::TcpStream::connect(("127.0.0.1", p2)).is_ok() {
            return Some((
                child,
                ([127, 0, 0, 1], p1).into(),
                ([127, 0, 0, 1], p2).into(),
                dir,
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

fn main() {
    let kernel = netns::enter();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let proxy_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("proxy runtime");
    let received = Arc::new(AtomicU64::new(0));
    let (sinks, echoes) = rt.block_on(async {
        let mut sinks = Vec::new();
        let mut echoes = Vec::new();
        for _ in 0..3 {
            sinks.push(sink(received.clone()).await);
            echoes.push(echo().await);
        }
        (sinks, echoes)
    });
    let ip = Ipv4Addr::new(127, 0, 0, 7);
    let (sink_port, echo_port) = (free_port(), free_port());
    let port = |port: u16, endpoints: &[SocketAddr]| ProxiedPort {
        name: Some(format!("p{port}")),
        protocol: Protocol::Tcp,
        port,
        node_port: None,
        endpoints: endpoints.to_vec(),
    };
    let service = ProxiedService {
        namespace: "bench".into(),
        name: "backends".into(),
        cluster_ip: Some(ip),
        affinity: None,
        external_local: false,
        external_ips: Vec::new(),
        ports: vec![port(sink_port, &sinks), port(echo_port, &echoes)],
    };
    let nft_ip = Ipv4Addr::new(127, 0, 0, 8);
    let nft_service = ProxiedService {
        cluster_ip: Some(nft_ip),
        ..service.clone()
    };
    let proxy = proxy_rt.block_on(async {
        let proxy = Proxy::start(ProxyConfig::default());
        proxy.apply(vec![service]).await;
        proxy
    });
    let nftables = kernel.and_then(|()| {
        rt.block_on(async {
            let (_keep, ranges) = tokio::sync::watch::channel(None);
            let nft = NftablesProxy::start(NftablesConfig {
                ranges,
                verify_every: Duration::from_secs(3600),
            });
            match nft.apply(vec![nft_service]).await {
                Ok(()) => Some((nft, _keep)),
                Err(e) => {
                    eprintln!("nftables row skipped: {e}");
                    None
                }
            }
        })
    });
    let keel = (
        SocketAddr::new(IpAddr::V4(ip), sink_port),
        SocketAddr::new(IpAddr::V4(ip), echo_port),
    );
    let ha = haproxy(&sinks, &echoes);
    let mut rows: Vec<(&str, (SocketAddr, SocketAddr))> = vec![("direct", (sinks[0], echoes[0]))];
    if nftables.is_some() {
        rows.push((
            "nftables",
            (
                SocketAddr::new(IpAddr::V4(nft_ip), sink_port),
                SocketAddr::new(IpAddr::V4(nft_ip), echo_port),
            ),
        ));
    }
    rows.push(("userspace", keel));
    if let Some((_, s, e, _)) = &ha {
        rows.push(("haproxy", (*s, *e)));
    } else {
        eprintln!("haproxy column skipped: haproxy did not start");
    }
    // Rounds interleave the paths, so a noisy moment on this shared machine hurts all of them
    // alike; each figure is the median over the rounds.
    let rounds: usize = std::env::var("KEEL_BENCH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let mut results: Vec<Vec<Figures>> = vec![Vec::new(); rows.len()];
    for _ in 0..rounds {
        for (i, (_, (sink_addr, echo_addr))) in rows.iter().enumerate() {
            let r = rt.block_on(async {
                let one = bulk(*sink_addr, 1, &received).await;
                let many = bulk(*sink_addr, 64, &received).await;
                let (p50, p99, rps) = latency(*echo_addr, None).await;
                let (paced50, paced99, _) = latency(*echo_addr, Some(PACE)).await;
                (one, many, p50, p99, rps, paced50, paced99)
            });
            results[i].push(r);
        }
    }
    println!(
        "{:<9} {:>14} {:>14} {:>10} {:>10} {:>12} {:>12} {:>12}   (median of {rounds} rounds)",
        "path", "bulk 1 conn", "bulk 64 conn", "p50", "p99", "req/s (64)", "paced p50", "paced p99"
    );
    for ((name, _), runs) in rows.iter().zip(&results) {
        fn median<T: PartialOrd + Copy>(mut xs: Vec<T>) -> T {
            xs.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
            xs[xs.len() / 2]
        }
        let one = median(runs.iter().map(|r| r.0).collect());
        let many = median(runs.iter().map(|r| r.1).collect());
        let p50 = median(runs.iter().map(|r| r.2).collect());
        let p99 = median(runs.iter().map(|r| r.3).collect());
        let rps = median(runs.iter().map(|r| r.4).collect());
        let paced50 = median(runs.iter().map(|r| r.5).collect());
        let paced99 = median(runs.iter().map(|r| r.6).collect());
        println!(
            "{:<9} {:>9.0} MB/s {:>9.0} MB/s {:>8}µs {:>8}µs {:>12.0} {:>10}µs {:>10}µs",
            name,
            one / 1e6,
            many / 1e6,
            p50.as_micros(),
            p99.as_micros(),
            rps,
            paced50.as_micros(),
            paced99.as_micros()
        );
    }
    if let Some((mut child, ..)) = ha {
        let _ = child.kill();
        let _ = child.wait();
    }
    drop(proxy);
}
