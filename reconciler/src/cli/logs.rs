//! `keel logs POD`: a container's logs from a running server (which asks the pod's agent).

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
    /// The keel server's API.
    #[arg(long, env = "KEEL_SERVER", default_value = "http://127.0.0.1:7400")]
    pub server: String,
}

pub fn run(args: &Args) -> i32 {
    let Some(runtime) = super::runtime("logs") else {
        return 1;
    };
    match runtime.block_on(stream(args)) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("{e:#}");
            1
        }
    }
}

async fn stream(args: &Args) -> anyhow::Result<()> {
    use std::io::Write;
    let mut url = reqwest::Url::parse(args.server.trim_end_matches('/'))
        .map_err(|e| anyhow::anyhow!("--server {:?}: {e}", args.server))?;
    url.path_segments_mut()
        .map_err(|()| anyhow::anyhow!("--server {:?} cannot take a path", args.server))?
        .extend([
            "api",
            "v1",
            "namespaces",
            &args.namespace,
            "pods",
            &args.pod,
            "log",
        ]);
    {
        let mut q = url.query_pairs_mut();
        if let Some(c) = &args.container {
            q.append_pair("container", c);
        }
        if args.follow {
            q.append_pair("follow", "true");
        }
        if args.previous {
            q.append_pair("previous", "true");
        }
        if let Some(n) = args.tail {
            q.append_pair("tailLines", &n.to_string());
        }
    }
    let mut resp = super::http::client_for(&args.server)
        .get(url)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("cannot reach the keel server at {}: {e}", args.server))?;
    if !resp.status().is_success() {
        let status = resp.status();
        let body: serde_json::Value = resp.json().await.unwrap_or_default();
        return Err(super::get::server_error(&args.server, status, &body));
    }
    let mut stdout = std::io::stdout();
    while let Some(chunk) = resp.chunk().await? {
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
