//! Kubemark's hollow node for keel: one process running many hollow agents (the hollow
//! runtime: pods "run" without containers), each with its own gRPC server, joining the
//! control plane with a join token over mutual TLS as a real node does. The cluster bench
//! starts several of these, so the control plane's process is measured alone.
//!
//! `hollow-nodes SERVER JOIN_TOKEN PREFIX COUNT DATA_DIR` runs nodes `PREFIX-0` …
//! `PREFIX-(COUNT-1)` until killed, and prints `ready` once every agent has started. The
//! agents' log (`RUST_LOG`) goes to `DATA_DIR/PREFIX.log`.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::sync::Arc;

use keel_nodeagent::agent::{self, AgentConfig};
use keel_nodeagent::grpc::identity::NodeIdentity;
use keel_nodeagent::network::NodeNetwork;
use keel_nodeagent::runtime::Runtime;
use keel_nodeagent::runtime::hollow::HollowRuntime;

// As `keel-agent` itself: 100 agents decoding sets and encoding reports, and glibc's
// allocator took an eighth of the process's time at 100,000 pods.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const USAGE: &str = "usage: hollow-nodes SERVER JOIN_TOKEN PREFIX COUNT DATA_DIR";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [server, token, prefix, count, data_dir] = args.as_slice() else {
        eprintln!("{USAGE}");
        std::process::exit(2);
    };
    let Ok(count) = count.parse::<usize>() else {
        eprintln!("hollow-nodes: COUNT {count:?} is not a number\n{USAGE}");
        std::process::exit(2);
    };
    let log = PathBuf::from(data_dir).join(format!("{prefix}.log"));
    if let Err(e) = keel_telemetry::init_file(&log) {
        eprintln!("hollow-nodes: cannot write the log {}: {e}", log.display());
    }
    // Hundreds of agents, each with a listener and connections both ways.
    keel_tls::listen::raise_open_files_limit();
    // As `keel-agent` itself: small pages only (60-70 MiB of each process was huge pages).
    let _ = rustix::thread::disable_transparent_huge_pages(true);
    // One thread for all of this process's agents: the bench runs 50 of these processes on
    // a 2-core machine, and with two worker threads about a third of an idle process's
    // samples were the threads parking and waking each other (futex waits, task switches).
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(async {
        let mut agents = Vec::with_capacity(count);
        for i in 0..count {
            let node = format!("{prefix}-{i}");
            let dir = PathBuf::from(data_dir).join(&node);
            let identity =
                match NodeIdentity::obtain(&dir, &node, server, Some(token.as_str())).await {
                    Ok(identity) => identity,
                    Err(e) => {
                        eprintln!("hollow-nodes: {node}: cannot join: {e:#}");
                        std::process::exit(1);
                    }
                };
            let network = NodeNetwork::new();
            let hollow: Arc<dyn Runtime> =
                Arc::new(HollowRuntime::new().with_network(network.clone()));
            // Every agent of this process shares one network namespace: no routes.
            let config = AgentConfig {
                server: Some(server.clone()),
                identity: Some(identity),
                ..AgentConfig::bare(&node, dir, network)
            };
            match agent::start(config, hollow).await {
                Ok(a) => agents.push(a),
                Err(e) => {
                    eprintln!("hollow-nodes: {node}: cannot start: {e:#}");
                    std::process::exit(1);
                }
            }
        }
        println!("ready");
        std::future::pending::<()>().await;
        drop(agents);
    });
}
