//! `keel server`: the control plane. Follows a git branch and applies each revision whole.

use std::path::PathBuf;
use std::time::Duration;

use keel_reconciler::{Config, ControlPlane};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The manifest repository: a local path (working copy or bare) or a URL (file://,
    /// https://, ssh://) that keel mirrors into the data dir.
    #[arg(long, env = "KEEL_REPO")]
    pub repo: String,
    /// The branch to follow (default: the repository's HEAD branch, else main).
    #[arg(long)]
    pub branch: Option<String>,
    /// Only manifests under this folder of the repository.
    #[arg(long)]
    pub path: Option<String>,
    /// Where keel keeps its state (the embedded store, the repository mirror).
    #[arg(long, env = "KEEL_DATA_DIR", default_value = "/var/lib/keel")]
    pub data_dir: PathBuf,
    /// The store: `redb` (embedded, in the data dir; the default) or etcd://HOST:PORT[,...].
    #[arg(long, env = "KEEL_STORE")]
    pub store: Option<String>,
    /// Address of the HTTP API (health, webhook, status, history).
    #[arg(long, default_value = "127.0.0.1:7400")]
    pub listen: String,
    /// Also serve the API over HTTPS at this address, with a certificate from the cluster
    /// CA (kubectl sends tokens only over HTTPS; `keel kubeconfig` points at it).
    #[arg(long)]
    pub tls_listen: Option<String>,
    /// Another name (DNS name or IP address) clients reach the HTTPS API at, for its
    /// certificate (loopback, this machine's name and the listen and advertised addresses
    /// are always in it). Repeatable.
    #[arg(long = "tls-san", value_name = "NAME")]
    pub tls_names: Vec<String>,
    /// Address node agents join, register at and report to (their `keel-agent --server`),
    /// over mutual TLS.
    #[arg(long, default_value = "127.0.0.1:7402")]
    pub agent_listen: String,
    /// A node without a heartbeat for this long is marked not ready. Agents beat four
    /// times within it (every 2.5 s by default).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub node_grace: Duration,
    /// A node not ready for this long has its pods deleted, so their controllers replace
    /// them on other nodes. With the default --node-grace a dead node's pods run elsewhere
    /// within about 26 s; shorter times replace pods sooner but also after shorter network
    /// blips (the pods of a node that comes back are stopped there).
    #[arg(long, default_value = "15s", value_parser = humantime::parse_duration)]
    pub pod_eviction_timeout: Duration,
    /// The address other servers and clients reach this server's HTTP API at: its name in
    /// the leader election, where followers pass webhooks on to (default: --listen, or this
    /// machine's name when --listen is a wildcard).
    #[arg(long)]
    pub advertise_address: Option<String>,
    /// With several servers on one etcd: how long a leader's lease lasts without renewal
    /// (how long a dead leader's absence lasts before another takes over).
    #[arg(long, default_value = "15s", value_parser = humantime::parse_duration)]
    pub leader_lease: Duration,
    /// A leader that could not renew its lease for this long stops leading (shorter than
    /// --leader-lease, so it stops before another can start).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub leader_renew_deadline: Duration,
    /// How often the leader renews its lease and the others try to take it.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    pub leader_retry: Duration,
    /// How often a remote repository is fetched (a webhook fetches at once).
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub poll_interval: Duration,
    /// How often the applied revision is compared with the store again, correcting drift.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub resync_interval: Duration,
    /// Secret for GitHub webhook signatures (X-Hub-Signature-256); without it, any POST to
    /// /api/webhook triggers a fetch (it never carries content keel trusts).
    #[arg(
        long,
        env = "KEEL_WEBHOOK_SECRET",
        hide_env_values = true,
        conflicts_with = "webhook_secret_file"
    )]
    pub webhook_secret: Option<String>,
    /// File holding the webhook secret.
    #[arg(long)]
    pub webhook_secret_file: Option<PathBuf>,
    #[command(flatten)]
    pub network: super::network::NetworkArgs,
    /// Serve the read endpoints (get, describe, logs, status, history, plan, metrics) without
    /// the bearer token. Creating join tokens always needs it.
    #[arg(long)]
    pub anonymous_read: bool,
    /// How long node and control-plane certificates last; each is renewed when a third of
    /// this is left.
    #[arg(long, default_value = "8760h", value_parser = humantime::parse_duration)]
    pub cert_validity: Duration,
    /// Encrypt Secrets at rest (AES-256-GCM) with the key in this file: 32 bytes, base64
    /// (`head -c 32 /dev/urandom | base64`). A store with encrypted Secrets needs the same key
    /// on every start.
    #[arg(long)]
    pub encryption_key_file: Option<PathBuf>,
    #[command(flatten)]
    pub sops: super::SopsArg,
    /// Where the tokens and HMAC keys of keel.yaml's `notify:` are: keel.yaml names a
    /// file here (`token: github-token`), never a path, so a commit cannot send other
    /// files of this machine anywhere.
    #[arg(long)]
    pub notify_secrets_dir: Option<PathBuf>,
    /// The first retry of a failed notification waits this long; each next one twice as
    /// long (5 retries).
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub notify_retry_delay: Duration,
    /// FOR TESTS ONLY: talk to agents in plaintext, without certificates or join tokens.
    /// Anyone who can reach --agent-listen can then register a node.
    #[arg(long)]
    pub insecure: bool,
}

pub fn run(args: &Args) -> i32 {
    let secret = match (&args.webhook_secret, &args.webhook_secret_file) {
        (Some(s), _) => Some(s.trim().as_bytes().to_vec()),
        (None, Some(file)) => match std::fs::read_to_string(file) {
            Ok(s) => Some(s.trim().as_bytes().to_vec()),
            Err(e) => {
                eprintln!("keel server: cannot read {}: {e}", file.display());
                return 2;
            }
        },
        (None, None) => None,
    };
    if args.node_grace < Duration::from_secs(1) {
        eprintln!(
            "keel server: --node-grace must be at least 1s (agents beat four times within it, at most every 250ms)"
        );
        return 2;
    }
    if args.cert_validity < Duration::from_secs(30) {
        eprintln!("keel server: --cert-validity must be at least 30s");
        return 2;
    }
    if args.insecure {
        eprintln!(
            "keel server: WARNING: --insecure: agents connect without TLS or certificates; \
             anyone who reaches --agent-listen can register a node. Never use it outside tests."
        );
    }
    if secret.as_ref().is_some_and(|s| s.is_empty()) {
        // An empty secret would silently turn signature checks off.
        eprintln!("keel server: the webhook secret is empty; give a real secret or none at all");
        return 2;
    }
    let (service_network, pod_network) = match args.network.plans() {
        Ok(n) => n,
        Err(e) => {
            eprintln!("keel server: {e}");
            return 2;
        }
    };
    let load_balancer_pool = match args.network.load_balancer_pool() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("keel server: {e}");
            return 2;
        }
    };
    let config = Config {
        repo: args.repo.clone(),
        branch: args.branch.clone(),
        path: args.path.clone(),
        data_dir: args.data_dir.clone(),
        store: args.store.clone(),
        listen: args.listen.clone(),
        tls_listen: args.tls_listen.clone(),
        tls_names: args.tls_names.clone(),
        agent_listen: args.agent_listen.clone(),
        node_grace: args.node_grace,
        pod_eviction_timeout: args.pod_eviction_timeout,
        poll_interval: args.poll_interval,
        resync_interval: args.resync_interval,
        webhook_secret: secret,
        service_network,
        load_balancer_pool,
        pod_network,
        wait_for_nodes: 0,
        insecure: args.insecure,
        cert_validity: args.cert_validity,
        anonymous_read: args.anonymous_read,
        encryption_key_file: args.encryption_key_file.clone(),
        sops_age_key_file: args.sops.sops_age_key_file.clone(),
        notify_secrets_dir: args.notify_secrets_dir.clone(),
        notify_retry_delay: args.notify_retry_delay,
        advertise_address: args.advertise_address.clone(),
        leader: keel_reconciler::leader::Timing {
            lease: args.leader_lease,
            renew_deadline: args.leader_renew_deadline,
            retry: args.leader_retry,
        },
    };
    if let Err(e) = config.leader.check() {
        eprintln!("keel server: {e}");
        return 2;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("keel server: cannot start the runtime: {e}");
            return 1;
        }
    };
    match runtime.block_on(serve(config)) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("keel server: {e:#}");
            1
        }
    }
}

/// Runs the control plane until a signal (or a part of it failing), then stops it.
async fn serve(config: Config) -> anyhow::Result<()> {
    let mut control_plane = ControlPlane::start(config).await?;
    let failure = tokio::select! {
        () = crate::signal::shutdown_signal() => None,
        failure = control_plane.failed() => Some(failure),
    };
    control_plane.shutdown().await;
    match failure {
        None => Ok(()),
        Some(failure) => anyhow::bail!(failure),
    }
}
