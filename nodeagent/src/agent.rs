//! One agent: the runtime, the supervisor of pod workers, the gRPC server and the connection
//! to the control plane, started together.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::grpc::client::{self, Registration};
use crate::grpc::identity::NodeIdentity;
use crate::grpc::server::{self, NodeAgentService};
use crate::network::NodeNetwork;
use crate::network::announce::Announcer;
use crate::network::overlay::{Backend, Overlay};
use crate::pod::worker::PodContext;
use crate::runtime::Runtime;
use crate::status::StatusHub;
use crate::supervisor::Supervisor;
use keel_proxy::nftables::{NftablesConfig, NftablesProxy, Ranges};

#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub node: String,
    pub listen: SocketAddr,
    /// Where the control plane reaches this agent; the listen address when `None`.
    pub advertise: Option<String>,
    /// The control plane's address; `None` runs the agent alone (tests).
    pub server: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub cpu_millis: i64,
    pub memory_bytes: i64,
    pub max_pods: i64,
    pub data_dir: PathBuf,
    pub allowed_host_paths: Vec<PathBuf>,
    /// The Service proxy; `None` runs none (hollow nodes at scale).
    pub service_proxy: Option<ServiceProxy>,
    /// The node's ingress proxy (HTTP and HTTPS for Ingresses); `None` runs none.
    pub ingress: Option<keel_proxy::ingress::IngressConfig>,
    /// The node's cluster DNS; `None` runs none, and pods get the node's resolvers.
    pub dns: Option<crate::dns::DnsSettings>,
    /// The node's certificate for mutual TLS; `None` is `--insecure` (plaintext both ways).
    pub identity: Option<Arc<NodeIdentity>>,
    /// The node's pod range, once registration gives it (shared with the runtime).
    pub network: NodeNetwork,
    /// How other nodes' pods are reached; `None` programs no routes (hollow nodes).
    pub overlay: Option<Backend>,
    /// Where `/metrics` (per-container, per-pod and node usage) is served; `None`: nowhere.
    pub metrics_listen: Option<SocketAddr>,
}

impl AgentConfig {
    /// An agent with only its pods: on `127.0.0.1:0`, no control plane, no identity,
    /// nothing of the node's networking (Service proxy, ingress, DNS, routes, metrics), and
    /// 4 CPUs, 8 GiB and 110 pods to offer. Tests, benchmarks and hollow nodes start from
    /// this and set what they need.
    pub fn bare(node: &str, data_dir: PathBuf, network: NodeNetwork) -> AgentConfig {
        AgentConfig {
            node: node.to_string(),
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            advertise: None,
            server: None,
            labels: BTreeMap::new(),
            cpu_millis: 4000,
            memory_bytes: 8 << 30,
            max_pods: 110,
            data_dir,
            allowed_host_paths: Vec::new(),
            service_proxy: None,
            ingress: None,
            dns: None,
            identity: None,
            network,
            overlay: None,
            metrics_listen: None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct ServiceProxy {
    pub mode: ProxyMode,
    /// The interface ClusterIPs are added to (userspace mode); `None` leaves host addresses
    /// alone.
    pub interface: Option<String>,
    pub node_port_address: std::net::IpAddr,
    /// A proxied TCP connection silent this long is closed.
    pub tcp_idle_timeout: std::time::Duration,
    /// Proxied TCP connections one client address may hold open.
    pub max_connections_per_client: usize,
}

/// Who carries Service traffic on this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyMode {
    /// nftables where this node can program it, else the userspace proxy.
    Auto,
    Nftables,
    Userspace,
}

/// This agent's tag on the host addresses it adds: random, kept in the data dir, so that a
/// restarted agent recognises (and cleans up) exactly its own earlier addresses and never
/// those of another agent on the same host.
fn address_owner(data_dir: &std::path::Path) -> anyhow::Result<String> {
    let path = data_dir.join("address-owner");
    if let Ok(text) = std::fs::read_to_string(&path) {
        let text = text.trim();
        if text.len() == 8 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(text.to_string());
        }
    }
    let owner = uuid_like();
    std::fs::write(&path, &owner)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    Ok(owner)
}

/// Eight random hex digits, from the standard library's randomly keyed hasher.
fn uuid_like() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    format!("{:08x}", h.finish() as u32)
}

/// A started agent. Dropping it stops its gRPC server; its pods keep running (they are the
/// runtime's), and a new agent on the same node adopts them.
pub struct RunningAgent {
    pub addr: SocketAddr,
    pub supervisor: Supervisor,
    pub hub: Arc<StatusHub>,
    pub proxy: Option<Arc<keel_proxy::ServiceProxy>>,
    /// The LoadBalancer addresses this node answers for.
    pub announcer: Option<Announcer>,
    pub dns: Option<Arc<crate::dns::ClusterDns>>,
    pub ingress: Option<Arc<keel_proxy::ingress::IngressProxy>>,
    stop: Option<oneshot::Sender<()>>,
    /// Tells pod workers to end, leaving their containers running.
    workers_stop: tokio::sync::watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl RunningAgent {
    /// Stops serving and reporting (the pods keep running).
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.workers_stop.send_replace(true);
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Drop for RunningAgent {
    fn drop(&mut self) {
        self.shutdown();
    }
}

pub async fn start(config: AgentConfig, runtime: Arc<dyn Runtime>) -> anyhow::Result<RunningAgent> {
    // Pod volumes (Secrets among them) and the node's key live here: the owner's alone.
    keel_tls::files::private_dir(&config.data_dir).map_err(|e| {
        anyhow::anyhow!(
            "cannot create the data dir {}: {e}",
            config.data_dir.display()
        )
    })?;
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.listen))?;
    let addr = listener.local_addr()?;
    let advertise = config.advertise.clone().unwrap_or_else(|| addr.to_string());
    let host_ip = advertise
        .rsplit_once(':')
        .map(|(h, _)| h.trim_matches(['[', ']']).to_string());
    let overlay = match config.overlay {
        Some(backend) => Some(overlay(&config, backend, host_ip.as_deref())?),
        None => None,
    };
    let hub = Arc::new(StatusHub::default());
    let dns = match config.dns.clone() {
        Some(settings) => Some(Arc::new(crate::dns::ClusterDns::start(settings).await?)),
        None => None,
    };
    let (workers_stop, shutdown) = tokio::sync::watch::channel(false);
    let node_ip: Option<std::net::Ipv4Addr> = host_ip.as_deref().and_then(|h| h.parse().ok());
    let ctx = Arc::new(PodContext {
        shutdown,
        runtime: runtime.clone(),
        host_ip,
        data_dir: config.data_dir.clone(),
        allowed_host_paths: config.allowed_host_paths.clone(),
        hub: hub.clone(),
        cluster_dns: dns.as_ref().map(|d| d.settings().clone()),
    });
    let supervisor = Supervisor::start(ctx);
    let proxy = start_proxy(&config).await?;
    let ingress = match config.ingress {
        Some(c) => Some(Arc::new(
            keel_proxy::ingress::IngressProxy::start(c)
                .await
                .map_err(|e| anyhow::anyhow!("{e}; choose other ports with --ingress-http-port and --ingress-https-port, or run none with --no-ingress"))?,
        )),
        None => None,
    };
    let mut tasks = Vec::new();
    // Where the node has a Service path and an IPv4 address, it may be named to answer
    // for LoadBalancer addresses.
    let announcer = match (&proxy, node_ip) {
        (Some(_), Some(node_ip)) => {
            let (announcer, task) = Announcer::start(node_ip, address_owner(&config.data_dir)?);
            tasks.push(task);
            Some(announcer)
        }
        _ => None,
    };
    let (peers, peers_rx) = tokio::sync::watch::channel(Vec::new());
    let (usage, sampling) = crate::usage::UsageSampler::start(runtime.clone());
    tasks.push(sampling);
    if let Some(address) = config.metrics_listen {
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {address} (--metrics-listen): {e}"))?;
        tasks.push(tokio::spawn(crate::usage::serve::serve(
            listener,
            usage.clone(),
        )));
    }
    let service = Arc::new(NodeAgentService {
        usage,
        node: config.node.clone(),
        supervisor: supervisor.clone(),
        runtime: runtime.clone(),
        proxy: proxy.clone(),
        announcer: announcer.clone(),
        ingress: ingress.clone(),
        dns: dns.clone(),
        peers: Arc::new(peers),
        applied: Default::default(),
        mutual_tls: config.identity.is_some(),
    });
    let tls = config
        .identity
        .as_ref()
        .map(|i| i.server_config())
        .transpose()?;
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let serving = service.clone();
    tasks.push(tokio::spawn(async move {
        let shutdown = async {
            let _ = stop_rx.await;
        };
        if let Err(e) = server::serve(listener, serving, tls, shutdown).await {
            tracing::error!(error = %e, "the agent's gRPC server stopped");
        }
    }));
    if let Some(overlay) = overlay {
        tasks.push(tokio::spawn(overlay(peers_rx).run()));
    }
    if let Some(server_addr) = config.server.clone() {
        tasks.extend(start_reporting(
            &config,
            server_addr,
            advertise,
            &runtime,
            &hub,
            &service,
        ));
    }
    tracing::info!(node = %config.node, %addr, runtime = runtime.name(), "keel-agent serving");
    Ok(RunningAgent {
        addr,
        supervisor,
        hub,
        proxy,
        announcer,
        dns,
        ingress,
        stop: Some(stop_tx),
        workers_stop,
        tasks,
    })
}

type PeersRx = tokio::sync::watch::Receiver<Vec<crate::network::overlay::Peer>>;

/// The overlay of a node at `host_ip`, waiting for its peers.
fn overlay(
    config: &AgentConfig,
    backend: Backend,
    host_ip: Option<&str>,
) -> anyhow::Result<impl FnOnce(PeersRx) -> Overlay + use<>> {
    let node_ip: std::net::Ipv4Addr = host_ip
        .and_then(|h| h.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("the pod network needs this node's IPv4 address; give --advertise-address as IP:PORT (not {host_ip:?})"))?;
    let node = config.node.clone();
    let network = config.network.clone();
    Ok(move |peers| Overlay {
        node,
        backend,
        node_ip,
        network,
        peers,
    })
}

/// The node's Service data path, when the agent runs one.
async fn start_proxy(
    config: &AgentConfig,
) -> anyhow::Result<Option<Arc<keel_proxy::ServiceProxy>>> {
    let Some(p) = &config.service_proxy else {
        return Ok(None);
    };
    let addresses = match &p.interface {
        Some(interface) => Some(
            keel_proxy::HostAddresses::new(interface, &address_owner(&config.data_dir)?)
                .map_err(|e| anyhow::anyhow!("--service-interface: {e}"))?,
        ),
        None => None,
    };
    let nftables = match p.mode {
        ProxyMode::Userspace => false,
        ProxyMode::Nftables => {
            NftablesProxy::usable()
                .await
                .map_err(|e| anyhow::anyhow!("--proxy-mode nftables: {e}"))?;
            true
        }
        ProxyMode::Auto => match NftablesProxy::usable().await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!("Service traffic goes through the userspace proxy: {e}");
                false
            }
        },
    };
    if nftables {
        // ClusterIPs need no host address in the kernel path; an earlier userspace run's
        // are this agent's to remove.
        if let Some(host) = &addresses
            && let Err(e) = host.reconcile(&Default::default()).await
        {
            tracing::warn!("cannot remove the userspace proxy's service addresses: {e}");
        }
        tracing::info!(
            table = keel_proxy::nftables::TABLE,
            "Service traffic goes through nftables"
        );
        let config = NftablesConfig {
            ranges: pod_ranges(&config.network),
            verify_every: NFTABLES_VERIFY,
        };
        return Ok(Some(Arc::new(keel_proxy::ServiceProxy::Nftables(
            NftablesProxy::start(config),
        ))));
    }
    Ok(Some(Arc::new(keel_proxy::ServiceProxy::Userspace(
        keel_proxy::Proxy::start(keel_proxy::ProxyConfig {
            addresses,
            node_port_address: p.node_port_address,
            tcp_idle_timeout: p.tcp_idle_timeout,
            max_connections_per_client: p.max_connections_per_client,
            ..keel_proxy::ProxyConfig::default()
        }),
    ))))
}

/// How often the nftables table is compared with what was applied (and repaired).
const NFTABLES_VERIFY: std::time::Duration = std::time::Duration::from_secs(10);

/// The node's pod ranges as the data path reads them, following registration.
fn pod_ranges(network: &NodeNetwork) -> tokio::sync::watch::Receiver<Option<Ranges>> {
    let ranges = |a: Option<crate::network::Assignment>| {
        a.map(|a| Ranges {
            pod_cidr: a.pod_cidr,
            cluster_cidr: a.cluster_cidr,
        })
    };
    let mut assignments = network.subscribe();
    let (tx, rx) = tokio::sync::watch::channel(ranges(*assignments.borrow_and_update()));
    tokio::spawn(async move {
        while assignments.changed().await.is_ok() {
            let now = ranges(*assignments.borrow_and_update());
            if tx.send(now).is_err() {
                return;
            }
        }
    });
    rx
}

/// Registering with the control plane and reporting to it, and renewing the node's
/// certificate: the tasks.
fn start_reporting(
    config: &AgentConfig,
    server_addr: String,
    advertise: String,
    runtime: &Arc<dyn Runtime>,
    hub: &Arc<StatusHub>,
    service: &Arc<NodeAgentService>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let me = Registration {
        node: config.node.clone(),
        address: advertise,
        cpu_millis: config.cpu_millis,
        memory_bytes: config.memory_bytes,
        max_pods: config.max_pods,
        labels: config.labels.clone(),
        runtime: runtime.name().to_string(),
    };
    let mut tasks = Vec::new();
    if let Some(identity) = &config.identity {
        tasks.push(tokio::spawn(
            identity.clone().renew_loop(server_addr.clone()),
        ));
    }
    tasks.push(tokio::spawn(client::run(
        server_addr,
        me,
        hub.clone(),
        service.clone(),
        config.identity.clone(),
        config.network.clone(),
    )));
    tasks
}
