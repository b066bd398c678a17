//! The pod network's speed, in one run (`cargo bench -p keel-e2e --bench network`; root and a
//! Docker engine, skipped with a note without them). For each backend, a server and two
//! agents in node hosts on a LAN of their own; pods measure TCP throughput and request
//! latency to a pod on the same node and to a pod on the other node, and the two node hosts
//! measure the same between themselves over the same LAN bridge, as the reference.
//!
//! This bench is also its own measuring tool: the pods run this very program
//! (`net-bench serve PORT`, `net-bench measure IP:PORT`), copied into their image.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use keel_e2e::{Server, binary, commit, docker_available, free_port, git, import_image, write};
use keel_nodehost::{Lan, NodeHost};
use serde_json::Value;

const IMAGE: &str = "keel-bench/net:1";
const PORT: u16 = 5201;
/// How long the throughput test sends.
const SEND_FOR: Duration = Duration::from_secs(3);
/// Request/response round trips per latency test.
const ROUND_TRIPS: usize = 5_000;

// ---- the measuring tool ------------------------------------------------------------------

/// Answers each connection by its first byte: `T` reads until the sender closes and answers
/// with the byte count; `R` answers every byte with one byte.
fn serve(port: u16) {
    let listener = TcpListener::bind(("0.0.0.0", port)).expect("net-bench: bind");
    for conn in listener.incoming().flatten() {
        std::thread::spawn(move || {
            let mut conn = conn;
            let _ = conn.set_nodelay(true);
            let mut kind = [0u8; 1];
            if conn.read_exact(&mut kind).is_err() {
                return;
            }
            let mut buf = vec![0u8; 1 << 16];
            if kind[0] == b'T' {
                let mut total: u64 = 0;
                while let Ok(n) = conn.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    total += n as u64;
                }
                let _ = conn.write_all(&total.to_be_bytes());
            } else {
                while conn.read_exact(&mut buf[..1]).is_ok() {
                    if conn.write_all(&buf[..1]).is_err() {
                        break;
                    }
                }
            }
        });
    }
}

/// One line of JSON: throughput in Gbit/s, round-trip p50/p99 in microseconds.
fn measure(addr: &str) {
    let mut conn = TcpStream::connect(addr).expect("net-bench: connect");
    conn.write_all(b"T").unwrap();
    let buf = vec![7u8; 1 << 16];
    let started = Instant::now();
    let mut sent: u64 = 0;
    while started.elapsed() < SEND_FOR {
        conn.write_all(&buf).unwrap();
        sent += buf.len() as u64;
    }
    conn.shutdown(std::net::Shutdown::Write).unwrap();
    let mut count = [0u8; 8];
    conn.read_exact(&mut count).unwrap();
    let elapsed = started.elapsed();
    assert_eq!(u64::from_be_bytes(count), sent, "every byte arrived");
    let gbits = sent as f64 * 8.0 / elapsed.as_secs_f64() / 1e9;

    let mut conn = TcpStream::connect(addr).expect("net-bench: connect");
    conn.set_nodelay(true).unwrap();
    conn.write_all(b"R").unwrap();
    let mut times = Vec::with_capacity(ROUND_TRIPS);
    let mut one = [0u8; 1];
    for _ in 0..ROUND_TRIPS {
        let t = Instant::now();
        conn.write_all(b"x").unwrap();
        conn.read_exact(&mut one).unwrap();
        times.push(t.elapsed());
    }
    times.sort();
    let us = |p: f64| times[((times.len() - 1) as f64 * p) as usize].as_secs_f64() * 1e6;
    println!(
        "{}",
        serde_json::json!({"gbits": gbits, "p50_us": us(0.5), "p99_us": us(0.99)})
    );
}

// ---- the bench ------------------------------------------------------------------------------

fn manifests(node1: &str, node2: &str) -> String {
    let pod = |name: &str, node: &str, command: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  terminationGracePeriodSeconds: 1\n  nodeSelector: {{kubernetes.io/hostname: {node}}}\n  containers:\n  - name: net\n    image: {IMAGE}\n    imagePullPolicy: Never\n    command: [{command}]\n"
        )
    };
    [
        pod("near", node1, &format!("net-bench, serve, \"{PORT}\"")),
        pod("far", node2, &format!("net-bench, serve, \"{PORT}\"")),
        pod("client", node1, "sleep, \"3600\""),
    ]
    .join("---\n")
}

/// A running pod's address and its container's id.
fn pod(server: &Server, name: &str) -> Option<(String, String)> {
    let pod = server.get(&format!("/api/v1/namespaces/default/pods/{name}"))?;
    if pod["status"]["phase"] != "Running" {
        return None;
    }
    let ip = pod["status"]["podIP"].as_str()?.to_string();
    let out = Command::new("docker")
        .args(["ps", "-q", "--filter"])
        .arg(format!(
            "label=keel.dev/pod-uid={}",
            pod["metadata"]["uid"].as_str()?
        ))
        .args(["--filter", "label=keel.dev/role=app"])
        .output()
        .ok()?;
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (!id.is_empty()).then_some((ip, id))
}

fn parse(out: std::process::Output, what: &str) -> Value {
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.trim()).unwrap_or_else(|_| {
        panic!(
            "{what}: {text} {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )
    })
}

fn report(what: &str, m: &Value) {
    println!(
        "{what:<34} {:>6.2} Gbit/s   round trip p50 {:>5.0} µs, p99 {:>5.0} µs",
        m["gbits"].as_f64().unwrap_or(0.0),
        m["p50_us"].as_f64().unwrap_or(0.0),
        m["p99_us"].as_f64().unwrap_or(0.0)
    );
}

/// Kills the processes and removes the LAN, whatever happens.
struct Cleanup {
    children: Vec<Child>,
    lan: Lan,
    nodes: Vec<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        for node in &self.nodes {
            keel_cli::up::remove_containers(node);
        }
        self.lan.remove(2);
    }
}

fn agent(host: &NodeHost, name: &str, server: &Server, data: &Path, backend: &str) -> Child {
    host.command(binary("keel-agent"))
        .args(["--name", name, "--server", &server.agents])
        .args(["--listen", &format!("{}:{}", host.ip, free_port())])
        .args(["--network-backend", backend])
        .arg("--data-dir")
        .arg(data)
        .env("KEEL_JOIN_TOKEN", server.join_token())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("keel-agent")
}

fn backend_run(index: u8, backend: &str, tool: &Path) {
    let lan = Lan::create(
        format!("10.77.{}.0/24", 252 + index).parse().unwrap(),
        &format!("kbench{index}"),
    )
    .expect("the LAN");
    let names = [format!("bench{index}-1"), format!("bench{index}-2")];
    let mut cleanup = Cleanup {
        children: Vec::new(),
        lan: lan.clone(),
        nodes: names.to_vec(),
    };
    let hosts = [lan.host(1).unwrap(), lan.host(2).unwrap()];
    let repo = tempfile::tempdir().unwrap();
    git(repo.path(), &["init", "-q"]);
    write(repo.path(), "pods.yaml", &manifests(&names[0], &names[1]));
    commit(repo.path(), "bench pods");
    let agents_at = format!("{}:{}", lan.gateway(), free_port());
    let server = Server::start(
        repo.path().to_str().unwrap(),
        &["--agent-listen", &agents_at],
    );
    let data = tempfile::tempdir().unwrap();
    for (host, name) in hosts.iter().zip(&names) {
        cleanup
            .children
            .push(agent(host, name, &server, data.path(), backend));
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    let (near, far, client) = loop {
        if let (Some(n), Some(f), Some(c)) = (
            pod(&server, "near"),
            pod(&server, "far"),
            pod(&server, "client"),
        ) {
            break (n, f, c);
        }
        assert!(Instant::now() < deadline, "the bench pods never ran");
        std::thread::sleep(Duration::from_millis(250));
    };
    // The servers listen a moment after their containers start.
    std::thread::sleep(Duration::from_secs(1));
    let from_client = |ip: &str| {
        Command::new("docker")
            .args(["exec", &client.1, "net-bench", "measure"])
            .arg(format!("{ip}:{PORT}"))
            .output()
            .expect("docker exec")
    };
    if index == 0 {
        report(
            "pod → pod, same node",
            &parse(from_client(&near.0), "same node"),
        );
        // The reference: the node hosts themselves, over the same LAN bridge.
        let mut serving = hosts[1]
            .command(tool)
            .args(["serve", &PORT.to_string()])
            .stdout(Stdio::null())
            .spawn()
            .expect("net-bench serve");
        std::thread::sleep(Duration::from_millis(300));
        let out = hosts[0]
            .command(tool)
            .args(["measure", &format!("{}:{PORT}", hosts[1].ip)])
            .output()
            .expect("net-bench measure");
        let _ = serving.kill();
        let _ = serving.wait();
        report("node host → node host (reference)", &parse(out, "hosts"));
    }
    report(
        &format!("pod → pod, across nodes, {backend}"),
        &parse(from_client(&far.0), backend),
    );
    drop(server);
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("serve") => return serve(args[2].parse().expect("a port")),
        Some("measure") => return measure(&args[2]),
        _ => {}
    }
    if !docker_available() {
        println!("network: skipped (no Docker engine)");
        return;
    }
    // This program, as `net-bench`, into the pods' image.
    let dir = tempfile::tempdir().unwrap();
    let tool = dir.path().join("net-bench");
    std::fs::copy(std::env::current_exe().unwrap(), &tool).unwrap();
    import_image(IMAGE, &[], std::slice::from_ref(&tool));
    println!(
        "TCP, one stream, {} s of 64 KiB writes; {ROUND_TRIPS} 1-byte round trips on one connection",
        SEND_FOR.as_secs()
    );
    backend_run(0, "vxlan", &tool);
    backend_run(1, "host-gw", &tool);
}
