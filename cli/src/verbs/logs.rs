//! `keel logs POD`: a container's logs from a running server (which asks the pod's agent).

use keel_api::client::LogOptions;

use super::ServerArg;
use crate::credentials::{connect, explain};
use crate::output::runtime;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The pod.
    pub pod: String,
    /// The container (needed when the pod has more than one).
    #[arg(short, long)]
    pub container: Option<String>,
    /// Keep printing new output until interrupted.
    #[arg(short, long)]
    pub follow: bool,
    /// Only the last N lines.
    #[arg(long)]
    pub tail: Option<u32>,
    /// The previous run's logs (after a restart).
    #[arg(short, long)]
    pub previous: bool,
    #[arg(short, long, default_value = "default")]
    pub namespace: String,
    #[command(flatten)]
    pub server: ServerArg,
}

pub fn run(args: &Args) -> i32 {
    let Some(runtime) = runtime("logs") else {
        return 1;
    };
    let server = &args.server.server;
    match connect(server).and_then(|client| runtime.block_on(stream(&client, args))) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("{}", explain(&e, server));
            1
        }
    }
}

async fn stream(
    client: &keel_api::client::Client,
    args: &Args,
) -> Result<(), keel_api::client::ClientError> {
    use std::io::Write;
    let options = LogOptions {
        container: args.container.clone(),
        follow: args.follow,
        previous: args.previous,
        tail_lines: args.tail,
    };
    let mut log = client.pod_log(&args.namespace, &args.pod, &options).await?;
    let mut stdout = std::io::stdout();
    while let Some(chunk) = log.next().await? {
        if stdout
            .write_all(&chunk)
            .and_then(|()| stdout.flush())
            .is_err()
        {
            // A closed pipe (`keel logs web | head`): done.
            return Ok(());
        }
    }
    Ok(())
}
