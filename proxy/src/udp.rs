//! A UDP frontend. UDP has no connections, so the proxy keeps a session per client address:
//! the client's datagrams go to one endpoint through a socket connected to it, and that
//! endpoint's replies go back to the client from the frontend's address. A session ends after
//! an idle minute, when its endpoint refuses (ICMP port unreachable) or when its endpoint
//! leaves the ready set; the client's next datagram then starts a session on a ready
//! endpoint. Each session holds a permit of the proxy's connection budget (it holds a socket),
//! so a flood of client addresses cannot exhaust the agent's file descriptors.

use std::collections::HashMap;
use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};

use crate::balancer::Balancer;

const IDLE: Duration = Duration::from_secs(60);
/// Sessions per frontend; past it the least recently used is dropped.
const MAX_SESSIONS: usize = 4096;
const DATAGRAM: usize = 65_536;

struct Session {
    endpoint: SocketAddr,
    upstream: Arc<UdpSocket>,
    _permit: OwnedSemaphorePermit,
    /// Milliseconds since the frontend started, at the client's last datagram.
    last: Arc<AtomicU64>,
    dead: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub async fn serve(
    socket: UdpSocket,
    balancer: Arc<Balancer>,
    connections: Arc<Semaphore>,
    mut stop: watch::Receiver<bool>,
) {
    let socket = Arc::new(socket);
    let epoch = Instant::now();
    let now = move || u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
    let mut sessions: HashMap<SocketAddr, Session> = HashMap::new();
    let mut buf = vec![0u8; DATAGRAM];
    let mut sweep = tokio::time::interval(Duration::from_secs(5));
    loop {
        let (len, client) = tokio::select! {
            r = socket.recv_from(&mut buf) => match r {
                Ok(r) => r,
                // ICMP errors for earlier replies surface here on some kernels; not fatal.
                Err(e) => {
                    tracing::debug!(error = %e, "udp receive failed");
                    continue;
                }
            },
            _ = sweep.tick() => {
                let now = now();
                sessions.retain(|_, s| {
                    !s.dead.load(Ordering::Relaxed)
                        && now.saturating_sub(s.last.load(Ordering::Relaxed)) < millis(IDLE)
                });
                continue;
            }
            _ = stop.wait_for(|s| *s) => return,
        };
        let datagram = &buf[..len];
        if sessions.get(&client).is_some_and(|s| {
            s.dead.load(Ordering::Relaxed) || !balancer.endpoints().contains(&s.endpoint)
        }) {
            sessions.remove(&client);
        }
        if !sessions.contains_key(&client) {
            let mut permit = connections.clone().try_acquire_owned().ok();
            if (permit.is_none() || sessions.len() >= MAX_SESSIONS)
                && let Some(oldest) = sessions
                    .iter()
                    .min_by_key(|(_, s)| s.last.load(Ordering::Relaxed))
                    .map(|(a, _)| *a)
            {
                sessions.remove(&oldest);
                if permit.is_none() {
                    permit = connections.clone().try_acquire_owned().ok();
                }
            }
            // Out of budget with nothing of this frontend's to give back: the datagram is
            // dropped, as a full conntrack table would.
            let Some(permit) = permit else {
                continue;
            };
            match open(&socket, client, &balancer, now(), permit).await {
                Some(s) => {
                    sessions.insert(client, s);
                }
                None => continue,
            }
        }
        if let Some(session) = sessions.get(&client) {
            session.last.store(now(), Ordering::Relaxed);
            if let Err(e) = session.upstream.send(datagram).await {
                tracing::debug!(%client, error = %e, "udp endpoint refused; session ends");
                sessions.remove(&client);
            }
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A session for `client` on the first endpoint that a socket can be connected to.
async fn open(
    frontend: &Arc<UdpSocket>,
    client: SocketAddr,
    balancer: &Balancer,
    now: u64,
    permit: OwnedSemaphorePermit,
) -> Option<Session> {
    for endpoint in balancer.order(client.ip()) {
        let any: SocketAddr = match endpoint {
            SocketAddr::V4(_) => SocketAddrV4::new([0, 0, 0, 0].into(), 0).into(),
            SocketAddr::V6(_) => SocketAddrV6::new([0; 8].into(), 0, 0, 0).into(),
        };
        let Ok(upstream) = UdpSocket::bind(any).await else {
            return None;
        };
        if upstream.connect(endpoint).await.is_err() {
            continue;
        }
        balancer.served(client.ip(), endpoint);
        let upstream = Arc::new(upstream);
        let last = Arc::new(AtomicU64::new(now));
        let dead = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn(replies(
            upstream.clone(),
            frontend.clone(),
            client,
            dead.clone(),
        ));
        return Some(Session {
            endpoint,
            upstream,
            _permit: permit,
            last,
            dead,
            task,
        });
    }
    None
}

/// Sends the endpoint's replies back to the client until the endpoint refuses.
async fn replies(
    upstream: Arc<UdpSocket>,
    frontend: Arc<UdpSocket>,
    client: SocketAddr,
    dead: Arc<AtomicBool>,
) {
    let mut buf = vec![0u8; DATAGRAM];
    loop {
        match upstream.recv(&mut buf).await {
            Ok(len) => {
                let _ = frontend.send_to(&buf[..len], client).await;
            }
            Err(e) => {
                tracing::debug!(%client, error = %e, "udp endpoint refused; session ends");
                dead.store(true, Ordering::Relaxed);
                return;
            }
        }
    }
}
