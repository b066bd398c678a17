//! `keel-agent`: the node agent.
//!
//! Only its command line exists so far; the agent itself (gRPC service, Docker runtime, hollow
//! runtime) is built in step D (issue 5). Until then it refuses to start, saying so, rather
//! than pretending to run pods.
#![forbid(unsafe_code)]

use clap::Parser;

#[derive(Debug, Parser)]
#[command(
    name = "keel-agent",
    version,
    about = "keel's node agent: runs a node's pods on Docker"
)]
struct Args {
    /// This node's name (a DNS-1123 subdomain).
    #[arg(long)]
    name: String,
    /// Address the agent's gRPC API listens on.
    #[arg(long, default_value = "127.0.0.1:7401")]
    listen: String,
    /// The control plane's address.
    #[arg(long)]
    server: String,
}

fn main() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    tracing::error!(
        node = %args.name,
        listen = %args.listen,
        server = %args.server,
        "keel-agent cannot run pods yet: the node agent is built in step D (issue 5)"
    );
    std::process::exit(1);
}
