//! The proxy of one node: turns the full Service set it is given into running frontends.
//! Level-triggered like everything else in keel: each update is the whole set, a background
//! loop makes the listeners and host addresses match it, and a periodic pass retries whatever
//! failed (a port in use, an address that could not be added) and repairs drift.

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::addresses::{AddressError, HostAddresses};
use crate::balancer::Balancer;
use crate::limits::{FrontendLimit, Limits};
use crate::model::{Protocol, ProxiedService};
use crate::splice::Timeouts;
use crate::{socket, tcp, udp};

/// How often failed frontends are retried.
const RETRY: Duration = Duration::from_secs(2);
/// How often host addresses are checked again when nothing changed.
const ADDRESS_RESYNC: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// Where ClusterIPs are added as host addresses; `None` leaves the host's addresses
    /// alone (an operator who routes ClusterIPs some other way, or tests on 127.0.0.0/8).
    pub addresses: Option<HostAddresses>,
    /// The address NodePorts listen on: all of the node's addresses by default.
    pub node_port_address: IpAddr,
    /// Open TCP connections and UDP sessions across all frontends: each holds sockets. TCP
    /// clients past it are reset; UDP sessions past it end the frontend's oldest.
    pub max_connections: usize,
    /// Open TCP connections per frontend (a Service port on one address): past it, that
    /// frontend's new clients are reset and the others' are still served.
    pub max_connections_per_frontend: usize,
    /// Open TCP connections per client address, across all frontends.
    pub max_connections_per_client: usize,
    /// A TCP connection with nothing moving either way for this long is closed.
    pub tcp_idle_timeout: Duration,
    /// Once one side of a TCP connection has finished sending (a client that closed), the
    /// other has this long of silence before both are closed.
    pub tcp_fin_timeout: Duration,
}

impl Default for ProxyConfig {
    fn default() -> ProxyConfig {
        ProxyConfig {
            addresses: None,
            node_port_address: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            max_connections: 16_384,
            max_connections_per_frontend: 4_096,
            max_connections_per_client: 1_024,
            tcp_idle_timeout: Duration::from_secs(3600),
            tcp_fin_timeout: Duration::from_secs(30),
        }
    }
}

/// What one frontend is doing, for status and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrontendStatus {
    pub address: SocketAddr,
    pub protocol: Protocol,
    /// `namespace/name:port` of the Service port it serves.
    pub service: String,
    pub endpoints: usize,
    /// Listening now. A frontend without ready endpoints does not listen, so clients are
    /// refused at once instead of hanging.
    pub listening: bool,
    pub error: Option<String>,
}

#[derive(Debug, Default, Clone)]
pub struct ProxyStatus {
    pub frontends: Vec<FrontendStatus>,
    /// The last problem with host addresses, if the last attempt failed.
    pub address_error: Option<String>,
}

type Key = (SocketAddr, Protocol);

/// What every frontend serves with: the budgets and the TCP timeouts.
struct Serving {
    limits: Arc<Limits>,
    timeouts: Timeouts,
}

/// One wanted frontend, as read from the Service set.
struct Wanted {
    service: String,
    endpoints: Vec<SocketAddr>,
    affinity: Option<Duration>,
    /// ClusterIP frontends bind before their address is on the host.
    freebind: bool,
}

struct Frontend {
    service: String,
    balancer: Arc<Balancer>,
    /// Its TCP connection budget, kept across stops and starts of listening.
    limit: Arc<FrontendLimit>,
    /// Set while listening; sending `true` stops the accept loop.
    stop: Option<watch::Sender<bool>>,
    error: Option<String>,
}

/// A running proxy. Dropping it stops every frontend; connections already open finish.
pub struct Proxy {
    updates: watch::Sender<(u64, Arc<Vec<ProxiedService>>)>,
    applied: watch::Receiver<u64>,
    status: Arc<Mutex<ProxyStatus>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Proxy {
    pub fn start(config: ProxyConfig) -> Proxy {
        let (updates, rx) = watch::channel((0, Arc::new(Vec::new())));
        let (applied_tx, applied) = watch::channel(0);
        let status = Arc::new(Mutex::new(ProxyStatus::default()));
        let task = tokio::spawn(run(config, rx, applied_tx, status.clone()));
        Proxy {
            updates,
            applied,
            status,
            task,
        }
    }

    /// Hands the proxy the node's full Service set; returns at once.
    pub fn update(&self, services: Vec<ProxiedService>) -> u64 {
        let mut generation = 0;
        self.updates.send_modify(|(g, s)| {
            *g += 1;
            generation = *g;
            *s = Arc::new(services);
        });
        generation
    }

    /// Hands the proxy the set and waits until its frontends match it.
    pub async fn apply(&self, services: Vec<ProxiedService>) {
        let generation = self.update(services);
        let mut applied = self.applied.clone();
        let _ = applied.wait_for(|g| *g >= generation).await;
    }

    pub fn status(&self) -> ProxyStatus {
        self.status
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

async fn run(
    config: ProxyConfig,
    mut updates: watch::Receiver<(u64, Arc<Vec<ProxiedService>>)>,
    applied: watch::Sender<u64>,
    status: Arc<Mutex<ProxyStatus>>,
) {
    let limits = Limits::new(
        config.max_connections,
        config.max_connections_per_frontend,
        config.max_connections_per_client,
    );
    let timeouts = Timeouts {
        idle: config.tcp_idle_timeout,
        fin: config.tcp_fin_timeout,
    };
    let serving = Serving { limits, timeouts };
    let mut frontends: HashMap<Key, Frontend> = HashMap::new();
    let mut addresses = AddressSync::default();
    let mut retry = tokio::time::interval(RETRY);
    retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            r = updates.changed() => {
                if r.is_err() {
                    return;
                }
            }
            _ = retry.tick() => {}
        }
        let (generation, services) = updates.borrow_and_update().clone();
        // Host addresses wait for the first real set: removing this agent's leftovers against
        // an empty one would pull addresses from under other agents on the host that still
        // serve them.
        if let Some(host) = config.addresses.as_ref().filter(|_| generation > 0) {
            addresses.sync(host, &services).await;
        }
        let wanted = wanted_frontends(&services, config.node_port_address);
        reconcile_frontends(&mut frontends, wanted, &serving);
        publish(&frontends, &addresses.error, &status);
        applied.send_replace(generation);
    }
}

/// Keeps the host's Service addresses in step with the Services that have ports.
#[derive(Default)]
struct AddressSync {
    /// The last failure, said once and shown in the status until it clears.
    error: Option<String>,
    /// The last failure was a lack of rights, which only an operator fixes.
    denied: bool,
    checked: Option<Instant>,
    wanted: BTreeSet<Ipv4Addr>,
}

impl AddressSync {
    /// Reconciles when the wanted set changes, after a failure (a lack of rights at the
    /// slower resync pace), and every resync.
    async fn sync(&mut self, host: &HostAddresses, services: &[ProxiedService]) {
        let addresses: BTreeSet<Ipv4Addr> = services
            .iter()
            .filter(|s| !s.ports.is_empty())
            .filter_map(|s| s.cluster_ip)
            .collect();
        let due = addresses != self.wanted
            || (self.error.is_some() && !self.denied)
            || self.checked.is_none_or(|t| t.elapsed() >= ADDRESS_RESYNC);
        if !due {
            return;
        }
        let result = host.reconcile(&addresses).await;
        self.denied = matches!(result, Err(AddressError::Denied { .. }));
        self.checked = Some(Instant::now());
        self.wanted = addresses;
        report_address_result(result, &mut self.error);
    }
}

/// Removes frontends no Service wants, gives the rest their endpoints, and listens only
/// while there is an endpoint to send to.
fn reconcile_frontends(
    frontends: &mut HashMap<Key, Frontend>,
    wanted: HashMap<Key, Wanted>,
    serving: &Serving,
) {
    frontends.retain(|key, f| {
        let keep = wanted.contains_key(key);
        if !keep {
            tracing::info!(address = %key.0, protocol = key.1.as_str(), service = %f.service, "frontend removed");
        }
        keep
    });
    for (key, want) in wanted {
        let frontend = frontends.entry(key).or_insert_with(|| Frontend {
            service: want.service.clone(),
            balancer: Arc::new(Balancer::default()),
            limit: Arc::new(serving.limits.frontend(&want.service)),
            stop: None,
            error: None,
        });
        frontend.service = want.service;
        frontend.balancer.set(want.endpoints, want.affinity);
        let has_endpoints = !frontend.balancer.is_empty();
        match (has_endpoints, frontend.stop.is_some()) {
            (true, false) => {
                frontend.error = listen(key, want.freebind, frontend, serving).err();
            }
            (false, true) => {
                if let Some(stop) = frontend.stop.take() {
                    let _ = stop.send(true);
                }
                frontend.error = None;
            }
            (false, false) => frontend.error = None,
            (true, true) => {}
        }
    }
}

fn report_address_result(result: Result<(), AddressError>, last: &mut Option<String>) {
    match result {
        Ok(()) => {
            if last.take().is_some() {
                tracing::info!("service addresses are in place again");
            }
        }
        Err(e) => {
            let text = e.to_string();
            // Said once per distinct problem, not on every retry.
            if last.as_deref() != Some(text.as_str()) {
                tracing::warn!("{text}");
            }
            *last = Some(text);
        }
    }
}

/// Starts the accept loop of `frontend` on `key`.
fn listen(
    key: Key,
    freebind: bool,
    frontend: &mut Frontend,
    serving: &Serving,
) -> Result<(), String> {
    let (address, protocol) = key;
    let (stop_tx, stop_rx) = watch::channel(false);
    let balancer = frontend.balancer.clone();
    let bound = match protocol {
        Protocol::Tcp => socket::tcp_listener(address, freebind).map(|listener| {
            tokio::spawn(tcp::serve(
                listener,
                balancer,
                frontend.limit.clone(),
                serving.timeouts,
                stop_rx,
            ));
        }),
        Protocol::Udp => socket::udp_socket(address, freebind).map(|socket| {
            tokio::spawn(udp::serve(socket, balancer, serving.limits.node(), stop_rx));
        }),
    };
    match bound {
        Ok(()) => {
            tracing::info!(%address, protocol = protocol.as_str(), service = %frontend.service, "frontend listening");
            frontend.stop = Some(stop_tx);
            Ok(())
        }
        Err(e) => {
            let text = format!("cannot listen on {address}/{}: {e}", protocol.as_str());
            if frontend.error.as_deref() != Some(text.as_str()) {
                tracing::warn!(service = %frontend.service, "{text}");
            }
            Err(text)
        }
    }
}

fn wanted_frontends(
    services: &[ProxiedService],
    node_port_address: IpAddr,
) -> HashMap<Key, Wanted> {
    let mut wanted = HashMap::new();
    for s in services {
        for p in &s.ports {
            let service = format!("{}/{}:{}", s.namespace, s.name, p.port);
            let mut add = |address: SocketAddr, freebind: bool| {
                let key = (address, p.protocol);
                if let Some(other) = wanted.get(&key).map(|w: &Wanted| w.service.clone()) {
                    // The control plane allocates without overlaps; two Services on one
                    // address can only come from a bug, and the first one keeps it.
                    tracing::warn!(%address, first = %other, second = %service, "two services on one frontend; ignoring the second");
                    return;
                }
                wanted.insert(
                    key,
                    Wanted {
                        service: service.clone(),
                        endpoints: p.endpoints.clone(),
                        affinity: s.affinity,
                        freebind,
                    },
                );
            };
            if let Some(ip) = s.cluster_ip {
                add(SocketAddr::new(IpAddr::V4(ip), p.port), true);
            }
            if let Some(node_port) = p.node_port {
                add(SocketAddr::new(node_port_address, node_port), false);
            }
            for ip in &s.external_ips {
                add(SocketAddr::new(IpAddr::V4(*ip), p.port), true);
            }
        }
    }
    wanted
}

fn publish(
    frontends: &HashMap<Key, Frontend>,
    address_error: &Option<String>,
    status: &Mutex<ProxyStatus>,
) {
    let mut list: Vec<FrontendStatus> = frontends
        .iter()
        .map(|((address, protocol), f)| FrontendStatus {
            address: *address,
            protocol: *protocol,
            service: f.service.clone(),
            endpoints: f.balancer.endpoints().len(),
            listening: f.stop.is_some(),
            error: f.error.clone(),
        })
        .collect();
    list.sort_by_key(|a| (a.address, a.protocol));
    *status.lock().unwrap_or_else(PoisonError::into_inner) = ProxyStatus {
        frontends: list,
        address_error: address_error.clone(),
    };
}
