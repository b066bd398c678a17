//! `keel-agent`: the node agent's command line.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use clap::{Parser, ValueEnum};
use keel_nodeagent::agent::{self, AgentConfig, ProxyMode};
use keel_nodeagent::capacity;
use keel_nodeagent::network::cni::{Cni, CniSettings};
use keel_nodeagent::network::overlay::{self, Backend};
use keel_nodeagent::network::{NodeNetwork, preflight};
use keel_nodeagent::runtime::Runtime;
use keel_nodeagent::runtime::docker::{DEFAULT_PAUSE_IMAGE, DockerRuntime};
use keel_nodeagent::runtime::hollow::HollowRuntime;
use keel_schema::quantity::Quantity;
use keel_telemetry::LogFormat;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum RuntimeKind {
    /// Real containers on the node's Docker engine.
    Docker,
    /// Simulated containers, for scale tests.
    Hollow,
}

#[derive(Debug, Parser)]
#[command(
    name = "keel-agent",
    version,
    about = "keel's node agent: runs this node's pods on Docker and reports their status"
)]
struct Args {
    /// This node's name (a DNS-1123 subdomain), as the cluster will know it.
    #[arg(long, env = "KEEL_NODE_NAME")]
    name: String,
    /// Address the agent's gRPC API listens on.
    #[arg(long, default_value = "127.0.0.1:7401")]
    listen: SocketAddr,
    /// Serve `/metrics` here: each container's, pod's and the node's CPU and memory use, as
    /// last sampled (every 15 s). Off by default.
    #[arg(long)]
    metrics_listen: Option<SocketAddr>,
    /// Address the control plane uses to reach this agent (default: the listen address).
    #[arg(long)]
    advertise_address: Option<String>,
    /// The control plane's address (host:port); with several servers on one etcd, all of
    /// them, comma-separated: the agent reports to whichever leads.
    #[arg(long, env = "KEEL_SERVER")]
    server: String,
    /// Which container runtime runs the pods.
    #[arg(long, value_enum, default_value = "docker")]
    runtime: RuntimeKind,
    /// Node labels, as k=v,k2=v2.
    #[arg(long, value_delimiter = ',')]
    labels: Vec<String>,
    /// CPU the node offers (a quantity: 2, 1500m); default: the machine's cores.
    #[arg(long)]
    cpu: Option<String>,
    /// Memory the node offers (a quantity: 4Gi); default: the machine's memory.
    #[arg(long)]
    memory: Option<String>,
    /// The most pods this node runs.
    #[arg(long, default_value_t = 110)]
    max_pods: i64,
    /// Where the agent keeps pods' volumes (emptyDir, ConfigMap and Secret files).
    #[arg(long, default_value = "/var/lib/keel-agent")]
    data_dir: PathBuf,
    /// Image of the pod sandbox container; the default is made locally from busybox. Another
    /// image must keep running on its own entrypoint (as registry.k8s.io/pause does).
    #[arg(long, default_value = DEFAULT_PAUSE_IMAGE)]
    pause_image: String,
    /// Who carries Service traffic: `nftables` (the kernel translates each new connection:
    /// direct-connection speed, client addresses kept), `userspace` (a proxy in this
    /// process), or `auto`: nftables where this node can program it (root, `nft`), else
    /// userspace; hollow nodes use userspace.
    #[arg(long, value_enum, default_value = "auto")]
    proxy_mode: ProxyModeArg,
    /// Userspace mode: the interface ClusterIPs are added to as /32 addresses, so this
    /// node's containers reach them through their default route.
    #[arg(long, default_value = "lo")]
    service_interface: String,
    /// Userspace mode: do not add or remove host addresses for ClusterIPs (they are routed
    /// some other way); the proxy still listens on them.
    #[arg(long)]
    no_service_addresses: bool,
    /// Userspace mode: the address NodePorts listen on (default: all of the node's
    /// addresses). In nftables mode node ports answer on every address of the node.
    #[arg(long, default_value = "0.0.0.0")]
    node_port_address: std::net::IpAddr,
    /// The node-local address of the cluster DNS this agent runs, the nameserver of its pods
    /// (`dnsPolicy: ClusterFirst`). It is added to `lo`.
    #[arg(long, default_value = "169.254.20.10")]
    cluster_dns: std::net::Ipv4Addr,
    /// The cluster's DNS domain: Services answer as `NAME.NAMESPACE.svc.DOMAIN`.
    #[arg(long, default_value = "cluster.local")]
    cluster_domain: String,
    /// The port the ingress proxy serves HTTP on, on every address of the node.
    #[arg(long, default_value_t = 80)]
    ingress_http_port: u16,
    /// The port the ingress proxy serves HTTPS on (certificates from the Ingresses' TLS
    /// Secrets, chosen by SNI).
    #[arg(long, default_value_t = 443)]
    ingress_https_port: u16,
    /// Run no ingress proxy: Ingresses are not served on this node.
    #[arg(long)]
    no_ingress: bool,
    /// Run no cluster DNS: pods get the node's resolvers.
    #[arg(long)]
    no_cluster_dns: bool,
    /// A proxied TCP connection with nothing moving either way for this long is closed.
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    proxy_idle_timeout: std::time::Duration,
    /// Proxied TCP connections one client address may hold open on this node, across all
    /// Services; past it its new connections are reset while other clients are served.
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..))]
    proxy_max_connections_per_client: u32,
    /// A directory under which hostPath volumes are allowed (repeatable; none by default).
    #[arg(long = "allowed-host-path")]
    allowed_host_paths: Vec<PathBuf>,
    /// A join token from `keel token create`, traded once for this node's certificate
    /// (kept in the data dir; later starts need no token).
    #[arg(long, env = "KEEL_JOIN_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// FOR TESTS ONLY: plaintext gRPC and no certificates. Anyone who can reach --listen can
    /// then run containers on this node as root.
    #[arg(long, conflicts_with = "token")]
    insecure: bool,
    /// How pods on other nodes are reached: `vxlan` (an overlay; UDP 8472 open between
    /// nodes) or `host-gw` (a route per node; nodes on one L2 segment).
    #[arg(long, value_enum, default_value = "vxlan")]
    network_backend: NetworkBackend,
    /// A directory holding the CNI network configuration pods join (the first *.conflist or
    /// *.conf by name). Default: keel's own chain (bridge, host-local over the node's
    /// range, portmap).
    #[arg(long)]
    cni_conf_dir: Option<PathBuf>,
    /// Where CNI plugin binaries are found, in order (repeatable).
    #[arg(long = "cni-bin-dir", default_values = keel_nodeagent::network::cni::DEFAULT_BIN_DIRS)]
    cni_bin_dirs: Vec<PathBuf>,
    /// Log format.
    #[arg(long, value_enum, default_value = "text")]
    log_format: LogFormat,
    /// Stop (as on SIGTERM) when standard input reaches its end: a supervisor that keeps
    /// the other end of a pipe open takes its agents with it when it dies, even by kill -9
    /// (`keel up` does this).
    #[arg(long)]
    exit_when_stdin_closes: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ProxyModeArg {
    Auto,
    Nftables,
    Userspace,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum NetworkBackend {
    Vxlan,
    #[value(name = "host-gw")]
    HostGw,
}

impl NetworkBackend {
    fn backend(self) -> Backend {
        match self {
            NetworkBackend::Vxlan => Backend::Vxlan,
            NetworkBackend::HostGw => Backend::HostGw,
        }
    }
}

fn parse_labels(items: &[String]) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for item in items.iter().filter(|i| !i.trim().is_empty()) {
        let (k, v) = item
            .split_once('=')
            .ok_or_else(|| format!("--labels: {item:?} is not key=value"))?;
        if let Some(why) = keel_schema::validate::names::qualified_name(k.trim()) {
            return Err(format!("--labels: key {k:?}: {why}"));
        }
        // Refused here with a clear message, not by the control plane at every Register.
        if let Some(why) = keel_schema::validate::names::reserved_node_label(k.trim()) {
            return Err(format!("--labels: key {k:?}: {why}"));
        }
        if let Some(why) = keel_schema::validate::names::label_value(v.trim()) {
            return Err(format!("--labels: value {v:?} of {k:?}: {why}"));
        }
        out.insert(k.trim().to_string(), v.trim().to_string());
    }
    Ok(out)
}

fn quantity(flag: &str, text: &str, millis: bool) -> Result<i64, String> {
    let q = Quantity::new(text);
    let v = if millis { q.millis() } else { q.value() };
    v.map_err(|e| format!("--{flag}: {text:?} is not a quantity: {e}"))
        .and_then(|v| {
            if v > 0 {
                Ok(v)
            } else {
                Err(format!("--{flag}: must be more than zero"))
            }
        })
}

fn config(args: &Args) -> Result<AgentConfig, String> {
    if let Some(why) = keel_schema::validate::names::dns1123_subdomain(&args.name) {
        return Err(format!("--name {:?}: {why}", args.name));
    }
    if args.listen.ip().is_unspecified() && args.advertise_address.is_none() {
        return Err(format!(
            "--listen {} listens on every address; give --advertise-address with the one the \
             control plane should dial",
            args.listen
        ));
    }
    // A malformed address would otherwise only show up as endless registration retries.
    let servers = keel_nodeagent::grpc::endpoint::servers(&args.server);
    if servers.is_empty() {
        return Err("--server names no address; give HOST:PORT[,HOST:PORT...]".to_string());
    }
    for server in &servers {
        if let Err(e) = keel_nodeagent::grpc::endpoint::endpoint(server) {
            return Err(format!("--server {server:?}: {e}; give HOST:PORT"));
        }
    }
    if args.max_pods < 1 {
        return Err("--max-pods: must be at least 1".to_string());
    }
    if let Some(why) =
        keel_schema::validate::names::dns1123_subdomain(args.cluster_domain.trim_matches('.'))
    {
        return Err(format!("--cluster-domain {:?}: {why}", args.cluster_domain));
    }
    let cpu_millis = match &args.cpu {
        Some(c) => quantity("cpu", c, true)?,
        None => capacity::cpu_millis(),
    };
    let memory_bytes = match &args.memory {
        Some(m) => quantity("memory", m, false)?,
        None => capacity::memory_bytes()
            .ok_or("cannot read the machine's memory from /proc/meminfo; give --memory")?,
    };
    for p in &args.allowed_host_paths {
        if !p.is_absolute() {
            return Err(format!(
                "--allowed-host-path {}: must be an absolute path",
                p.display()
            ));
        }
    }
    Ok(AgentConfig {
        node: args.name.clone(),
        listen: args.listen,
        metrics_listen: args.metrics_listen,
        advertise: args.advertise_address.clone(),
        server: Some(args.server.clone()),
        labels: parse_labels(&args.labels)?,
        cpu_millis,
        memory_bytes,
        max_pods: args.max_pods,
        data_dir: args.data_dir.join(&args.name),
        allowed_host_paths: args.allowed_host_paths.clone(),
        service_proxy: Some(agent::ServiceProxy {
            mode: match (args.proxy_mode, args.runtime) {
                (ProxyModeArg::Nftables, _) => ProxyMode::Nftables,
                (ProxyModeArg::Userspace, _) | (ProxyModeArg::Auto, RuntimeKind::Hollow) => {
                    ProxyMode::Userspace
                }
                (ProxyModeArg::Auto, RuntimeKind::Docker) => ProxyMode::Auto,
            },
            interface: (!args.no_service_addresses).then(|| args.service_interface.clone()),
            node_port_address: args.node_port_address,
            tcp_idle_timeout: args.proxy_idle_timeout,
            max_connections_per_client: args.proxy_max_connections_per_client as usize,
        }),
        identity: None,
        ingress: (args.runtime == RuntimeKind::Docker && !args.no_ingress).then(|| {
            let any = std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED);
            keel_proxy::ingress::IngressConfig {
                http: SocketAddr::new(any, args.ingress_http_port),
                https: SocketAddr::new(any, args.ingress_https_port),
            }
        }),
        dns: (args.runtime == RuntimeKind::Docker && !args.no_cluster_dns).then(|| {
            keel_nodeagent::dns::DnsSettings {
                address: args.cluster_dns,
                port: 53,
                domain: args.cluster_domain.trim_matches('.').to_string(),
            }
        }),
        network: NodeNetwork::new(),
        overlay: (args.runtime == RuntimeKind::Docker).then(|| args.network_backend.backend()),
    })
}

/// The node's IPv4 address as the control plane and other nodes reach it.
fn node_ip(config: &AgentConfig) -> Option<std::net::Ipv4Addr> {
    match &config.advertise {
        Some(a) => a.rsplit_once(':')?.0.parse().ok(),
        None => match config.listen.ip() {
            std::net::IpAddr::V4(ip) => Some(ip),
            std::net::IpAddr::V6(_) => None,
        },
    }
}

/// The CNI runner of a Docker node, after checking that the node has what pods need.
async fn pod_network(args: &Args, config: &AgentConfig) -> Result<Arc<Cni>, String> {
    let backend = args.network_backend.backend();
    let settings = CniSettings {
        bin_dirs: args.cni_bin_dirs.clone(),
        conf_dir: args.cni_conf_dir.clone(),
        state_dir: config.data_dir.join("cni"),
        bridge: "keel0".to_string(),
        mtu: overlay::pod_mtu(backend, node_ip(config)).await,
    };
    let cni = Cni::new(settings, config.network.clone());
    let plugins = cni.required_plugins()?;
    let missing = preflight::missing(&plugins, &args.cni_bin_dirs);
    if !missing.is_empty() {
        return Err(format!(
            "this node cannot run pods on the pod network; missing:\n  - {}",
            missing.join("\n  - ")
        ));
    }
    Ok(Arc::new(cni))
}

#[tokio::main]
async fn main() {
    // As the control plane does (keel's `main`): mimalloc's arenas on transparent huge pages
    // stay resident 2 MiB at a time while any object on them lives. Best effort.
    let _ = rustix::thread::disable_transparent_huge_pages(true);
    let args = Args::parse();
    keel_telemetry::init(args.log_format);
    let mut config = match config(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("keel-agent: {e}");
            std::process::exit(2);
        }
    };
    // The root of every node's dir on this machine (keys, pod volumes with Secrets): the
    // owner's alone, fixed when an older agent or a plain mkdir left it readable.
    if let Err(e) = keel_tls::files::private_dir(&args.data_dir) {
        eprintln!("keel-agent: cannot create the data dir: {e}");
        std::process::exit(2);
    }
    // Every proxied connection holds two sockets (and two pipe ends while splicing), every
    // UDP session one: the default soft limit of 1024 would cap a node at a few hundred.
    keel_tls::listen::raise_open_files_limit();
    if args.insecure {
        eprintln!(
            "keel-agent: WARNING: --insecure: the agent's API is plaintext and unauthenticated; \
             anyone who reaches {} can run containers on this node as root. Never use it \
             outside tests.",
            args.listen
        );
        tracing::warn!("--insecure: plaintext and unauthenticated gRPC, for tests only");
    } else {
        let server = config.server.clone().unwrap_or_default();
        match keel_nodeagent::grpc::identity::NodeIdentity::obtain(
            &config.data_dir,
            &config.node,
            &server,
            args.token.as_deref(),
        )
        .await
        {
            Ok(identity) => {
                tracing::info!(expires = ?identity.expires(), "node certificate loaded");
                config.identity = Some(identity);
            }
            Err(e) => {
                eprintln!("keel-agent: {e:#}");
                std::process::exit(1);
            }
        }
    }
    // Held until the process ends: no second agent runs this node on this engine.
    let mut _node_lock = None;
    let runtime: Arc<dyn Runtime> = match args.runtime {
        RuntimeKind::Docker => {
            match DockerRuntime::lock_node(&config.node).await {
                Ok(lock) => _node_lock = Some(lock),
                Err(e) => {
                    eprintln!("keel-agent: {e:#}");
                    std::process::exit(1);
                }
            }
            let cni = match pod_network(&args, &config).await {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("keel-agent: {e}");
                    std::process::exit(1);
                }
            };
            match DockerRuntime::connect(&config.node, &args.pause_image, cni).await {
                Ok(r) => Arc::new(r),
                Err(e) => {
                    eprintln!("keel-agent: {e:#}");
                    std::process::exit(1);
                }
            }
        }
        RuntimeKind::Hollow => Arc::new(HollowRuntime::new().with_network(config.network.clone())),
    };
    let running = match agent::start(config, runtime).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("keel-agent: {e:#}");
            std::process::exit(1);
        }
    };
    wait_for_stop(args.exit_when_stdin_closes).await;
    tracing::info!("keel-agent stopping; its pods keep running and are adopted on restart");
    if let Some(announcer) = &running.announcer {
        announcer.withdraw().await;
    }
    if let Some(proxy) = &running.proxy {
        proxy.shutdown().await;
    }
    running.stop();
}

/// Ctrl-C, SIGTERM, or (when asked) the end of standard input.
async fn wait_for_stop(stdin_lifeline: bool) {
    if !stdin_lifeline {
        return wait_for_stop_signal().await;
    }
    // A plain thread, not a blocking task: the runtime would wait for that at exit.
    let (closed, on_close) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        use std::io::Read;
        let mut buf = [0u8; 64];
        // Whatever is written is ignored; only the end counts.
        while matches!(std::io::stdin().read(&mut buf), Ok(n) if n > 0) {}
        let _ = closed.send(());
    });
    let lifeline = async {
        let _ = on_close.await;
        tracing::warn!("standard input closed: the process that started this agent is gone");
    };
    tokio::select! {
        _ = wait_for_stop_signal() => {}
        _ = lifeline => {}
    }
}

/// Ctrl-C, or SIGTERM from a service manager or `kill`.
async fn wait_for_stop_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch for SIGTERM; only Ctrl-C stops cleanly");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
