//! `keel delete node NAME`: forget a node that is gone. Its pod range is freed, every other
//! node drops its routes, and its pods run again elsewhere. Needs the server's admin token;
//! a node whose agent still sends heartbeats is refused.

use super::ServerArg;
use crate::credentials::{connect, explain};
use crate::output::runtime;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Delete a node that is not Ready (its agent stopped or its machine is gone).
    Node(NodeArgs),
}

#[derive(Debug, clap::Args)]
pub struct NodeArgs {
    /// The node's name, as `keel get nodes` shows it.
    pub name: String,
    #[command(flatten)]
    pub server: ServerArg,
}

pub fn run(command: &Command) -> i32 {
    let Command::Node(args) = command;
    if let Some(why) = keel_schema::validate::names::dns1123_subdomain(&args.name) {
        eprintln!(
            "keel delete node: {:?} is not a node name: {why}",
            args.name
        );
        return 2;
    }
    let Some(runtime) = runtime("delete") else {
        return 1;
    };
    let server = &args.server.server;
    let result = connect(server)
        .and_then(|client| runtime.block_on(async { client.delete_node(&args.name).await }));
    match result {
        Ok(()) => {
            crate::output::out(&format!("node/{} deleted\n", args.name));
            0
        }
        Err(e) => {
            eprintln!("keel delete node: {}", explain(&e, server));
            1
        }
    }
}
