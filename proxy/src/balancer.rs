//! Picks the endpoint for each new connection: round-robin over the ready endpoints, or the
//! endpoint a client is pinned to under `sessionAffinity: ClientIP`. It hands out an order
//! to try rather than one endpoint, so a connection that fails on one endpoint moves to the
//! next.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

/// Most clients remembered per frontend under ClientIP affinity; past it, expired pins are
/// dropped and then the table is cleared, so a flood of clients cannot grow memory unbounded.
const MAX_PINS: usize = 65_536;

#[derive(Default)]
pub struct Balancer {
    endpoints: RwLock<Arc<[SocketAddr]>>,
    next: AtomicUsize,
    affinity: RwLock<Option<Duration>>,
    pins: Mutex<HashMap<IpAddr, (SocketAddr, Instant)>>,
}

impl Balancer {
    #[cfg(test)]
    pub fn new(endpoints: Vec<SocketAddr>, affinity: Option<Duration>) -> Balancer {
        let b = Balancer::default();
        b.set(endpoints, affinity);
        b
    }

    /// Replaces the endpoint set. Connections already open are not touched; pins to
    /// endpoints that left are dropped.
    pub fn set(&self, endpoints: Vec<SocketAddr>, affinity: Option<Duration>) {
        let endpoints: Arc<[SocketAddr]> = endpoints.into();
        {
            let mut pins = self.pins.lock().unwrap_or_else(PoisonError::into_inner);
            if affinity.is_none() {
                pins.clear();
            } else {
                pins.retain(|_, (e, _)| endpoints.contains(e));
            }
        }
        *self
            .affinity
            .write()
            .unwrap_or_else(PoisonError::into_inner) = affinity;
        *self
            .endpoints
            .write()
            .unwrap_or_else(PoisonError::into_inner) = endpoints;
    }

    pub fn endpoints(&self) -> Arc<[SocketAddr]> {
        self.endpoints
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn is_empty(&self) -> bool {
        self.endpoints().is_empty()
    }

    /// The endpoints to try for a new connection from `client`, best first: its pinned
    /// endpoint (if any, and still ready), then every other endpoint in round-robin order.
    pub fn order(&self, client: IpAddr) -> Vec<SocketAddr> {
        let endpoints = self.endpoints();
        if endpoints.is_empty() {
            return Vec::new();
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed) % endpoints.len();
        let mut order: Vec<SocketAddr> = endpoints[start..]
            .iter()
            .chain(&endpoints[..start])
            .copied()
            .collect();
        if let Some(pinned) = self.pinned(client)
            && let Some(i) = order.iter().position(|e| *e == pinned)
        {
            order[..=i].rotate_right(1);
        }
        order
    }

    fn pinned(&self, client: IpAddr) -> Option<SocketAddr> {
        let timeout = (*self.affinity.read().unwrap_or_else(PoisonError::into_inner))?;
        let pins = self.pins.lock().unwrap_or_else(PoisonError::into_inner);
        let (endpoint, last) = pins.get(&client)?;
        (last.elapsed() < timeout).then_some(*endpoint)
    }

    /// Records that `client` was served by `endpoint`: under ClientIP affinity its next
    /// connections go there too, until it has been idle for the timeout.
    pub fn served(&self, client: IpAddr, endpoint: SocketAddr) {
        let Some(timeout) = *self.affinity.read().unwrap_or_else(PoisonError::into_inner) else {
            return;
        };
        let mut pins = self.pins.lock().unwrap_or_else(PoisonError::into_inner);
        if pins.len() >= MAX_PINS && !pins.contains_key(&client) {
            pins.retain(|_, (_, last)| last.elapsed() < timeout);
            if pins.len() >= MAX_PINS {
                pins.clear();
            }
        }
        pins.insert(client, (endpoint, Instant::now()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs(ports: &[u16]) -> Vec<SocketAddr> {
        ports
            .iter()
            .map(|p| SocketAddr::from(([10, 0, 0, 1], *p)))
            .collect()
    }

    fn client(n: u8) -> IpAddr {
        IpAddr::from([192, 168, 0, n])
    }

    #[test]
    fn round_robin_starts_each_connection_at_the_next_endpoint() {
        let b = Balancer::new(addrs(&[1, 2, 3]), None);
        let firsts: Vec<u16> = (0..6).map(|_| b.order(client(1))[0].port()).collect();
        assert_eq!(firsts, vec![1, 2, 3, 1, 2, 3]);
        assert_eq!(b.order(client(1)).len(), 3, "every endpoint is a fallback");
    }

    #[test]
    fn affinity_pins_a_client_until_its_endpoint_leaves() {
        let b = Balancer::new(addrs(&[1, 2, 3]), Some(Duration::from_secs(60)));
        let first = b.order(client(1))[0];
        b.served(client(1), first);
        for _ in 0..5 {
            assert_eq!(b.order(client(1))[0], first);
        }
        assert_ne!(
            b.order(client(2))[0],
            b.order(client(2))[0],
            "others rotate"
        );
        let rest: Vec<SocketAddr> = addrs(&[1, 2, 3])
            .into_iter()
            .filter(|e| *e != first)
            .collect();
        b.set(rest.clone(), Some(Duration::from_secs(60)));
        assert!(rest.contains(&b.order(client(1))[0]));
    }

    #[test]
    fn affinity_expires_and_no_endpoints_means_no_order() {
        let b = Balancer::new(addrs(&[1, 2]), Some(Duration::ZERO));
        b.served(client(1), addrs(&[1])[0]);
        let firsts: Vec<u16> = (0..4).map(|_| b.order(client(1))[0].port()).collect();
        assert!(
            firsts.contains(&2),
            "an expired pin no longer holds: {firsts:?}"
        );
        b.set(Vec::new(), None);
        assert!(b.order(client(1)).is_empty());
    }
}
