//! `keel top pods|nodes`: CPU and memory use as the agents last sampled it (every 15 s), as
//! `kubectl top` prints it, from the server's `metrics.k8s.io`.

use keel_api::metrics::{bytes, millicores};
use keel_schema::Object;

use super::ServerArg;
use crate::credentials::{connect, explain};
use crate::output::{out, runtime};

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Each pod's use (its containers' summed).
    #[command(alias = "pod", alias = "po")]
    Pods(PodArgs),
    /// Each node's use, and the share of what it can give pods.
    #[command(alias = "node", alias = "no")]
    Nodes(ServerArg),
}

#[derive(Debug, clap::Args)]
pub struct PodArgs {
    #[arg(short, long, default_value = "default")]
    pub namespace: String,
    /// Every namespace.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// Each container on its own line.
    #[arg(long)]
    pub containers: bool,
    #[command(flatten)]
    pub server: ServerArg,
}

/// kubectl's memory column: whole MiB.
fn mebibytes(bytes: i64) -> String {
    format!("{}Mi", bytes / (1024 * 1024))
}

pub fn run(command: &Command) -> i32 {
    let Some(runtime) = runtime("top") else {
        return 1;
    };
    let server = match command {
        Command::Pods(args) => &args.server.server,
        Command::Nodes(args) => &args.server,
    };
    let result = connect(server).and_then(|client| {
        runtime.block_on(async {
            match command {
                Command::Pods(args) => pods(&client, args).await,
                Command::Nodes(_) => nodes(&client).await,
            }
        })
    });
    match result {
        Ok(text) => {
            out(&text);
            0
        }
        Err(e) => {
            eprintln!("keel top: {}", explain(&e, server));
            1
        }
    }
}

async fn pods(
    client: &keel_api::client::Client,
    args: &PodArgs,
) -> Result<String, keel_api::client::ClientError> {
    let namespace = (!args.all_namespaces).then_some(args.namespace.as_str());
    let metrics = client.pod_metrics(namespace).await?;
    if metrics.is_empty() {
        return Ok(match namespace {
            Some(ns) => format!("No resources found in {ns} namespace.\n"),
            None => "No resources found\n".into(),
        });
    }
    let mut header = vec!["NAME"];
    if args.all_namespaces {
        header.insert(0, "NAMESPACE");
    }
    if args.containers {
        header.push("CONTAINER");
    }
    header.extend(["CPU(cores)", "MEMORY(bytes)"]);
    let mut rows = Vec::new();
    for pod in &metrics {
        let mut lead = vec![pod.sampled.metadata.name.clone()];
        if args.all_namespaces {
            lead.insert(
                0,
                pod.sampled.metadata.namespace.clone().unwrap_or_default(),
            );
        }
        if args.containers {
            for c in &pod.containers {
                let mut row = lead.clone();
                row.push(c.name.clone());
                row.push(format!("{}m", millicores(&c.usage)));
                row.push(mebibytes(bytes(&c.usage)));
                rows.push(row);
            }
        } else {
            let cpu: i64 = pod.containers.iter().map(|c| millicores(&c.usage)).sum();
            let memory: i64 = pod.containers.iter().map(|c| bytes(&c.usage)).sum();
            lead.push(format!("{cpu}m"));
            lead.push(mebibytes(memory));
            rows.push(lead);
        }
    }
    Ok(crate::table::render(&header, &rows))
}

async fn nodes(client: &keel_api::client::Client) -> Result<String, keel_api::client::ClientError> {
    let metrics = client.node_metrics().await?;
    let nodes = client.list(keel_schema::Kind::Node, None).await?;
    let allocatable = |name: &str, resource: &str| -> Option<i64> {
        nodes.iter().find_map(|o| match o {
            Object::Node(n) if n.metadata.name() == name => {
                let q = n.status.as_ref()?.allocatable.as_ref()?.get(resource)?;
                if resource == "cpu" {
                    q.millis().ok()
                } else {
                    q.value().ok()
                }
            }
            _ => None,
        })
    };
    let percent = |used: i64, of: Option<i64>| match of {
        Some(total) if total > 0 => format!("{}%", used * 100 / total),
        _ => "<unknown>".to_string(),
    };
    let rows: Vec<Vec<String>> = metrics
        .iter()
        .map(|m| {
            let name = &m.sampled.metadata.name;
            let (cpu, memory) = (millicores(&m.usage), bytes(&m.usage));
            vec![
                name.clone(),
                format!("{cpu}m"),
                percent(cpu, allocatable(name, "cpu")),
                mebibytes(memory),
                percent(memory, allocatable(name, "memory")),
            ]
        })
        .collect();
    if rows.is_empty() {
        return Ok("No resources found\n".into());
    }
    Ok(crate::table::render(
        &["NAME", "CPU(cores)", "CPU(%)", "MEMORY(bytes)", "MEMORY(%)"],
        &rows,
    ))
}
