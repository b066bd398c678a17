//! LoadBalancer Services: an external address from the pool the operator configured
//! (`--loadbalancer-pool`), written to `status.loadBalancer.ingress` as a cloud's controller
//! would, with a `LoadBalancerReady` condition that says why when there is none.
//!
//! - A range (`10.0.0.240/28`): each Service gets one address of it, kept across restarts
//!   and spec changes; `spec.loadBalancerIP` asks for a given one. The agents announce it on
//!   their network (one node answers for it) and translate its traffic like a node port's.
//! - `nodes`: every Ready node's address is the Service's, as k3s's ServiceLB does; its
//!   ports answer on each node's own address.
//! - No pool: the Service works through its node ports, and says so in its condition, so
//!   `keel status` shows it Progressing with the reason rather than silently waiting.
//!
//! One worker, and a memory of what it handed out that the cache may not show yet: two
//! Services never get one address.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::str::FromStr;
use std::sync::Mutex;

use ipnet::Ipv4Net;
use keel_schema::types::core::{LoadBalancerIngress, LoadBalancerStatus, Service, ServiceStatus};
use keel_schema::types::meta::Condition;
use keel_schema::{Kind, Object};
use keel_store::ObjectKey;
use sha2::{Digest, Sha256};

use super::keys_of_kind;
use super::runtime::{Action, Controller, Ctx, Raced, Result};
use crate::cache::{Cache, Change};

pub const CONDITION: &str = "LoadBalancerReady";

/// Where LoadBalancer Services get their external addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadBalancerPool {
    Range(Ipv4Net),
    Nodes,
}

impl FromStr for LoadBalancerPool {
    type Err = String;

    fn from_str(text: &str) -> std::result::Result<Self, String> {
        if text == "nodes" {
            return Ok(LoadBalancerPool::Nodes);
        }
        let net: Ipv4Net = text.parse().map_err(|_| {
            format!("{text:?} is neither an IPv4 range (such as 192.168.1.240/28) nor `nodes`")
        })?;
        if net.prefix_len() < 16 {
            return Err(format!(
                "{net}: at most 65,536 addresses (a /16); a LoadBalancer pool is a handful of addresses on the nodes' network"
            ));
        }
        Ok(LoadBalancerPool::Range(net.trunc()))
    }
}

#[derive(Default)]
pub struct LoadBalancerController {
    pool: Option<LoadBalancerPool>,
    /// Addresses handed out, by Service, until the cache shows them.
    given: Mutex<BTreeMap<ObjectKey, Ipv4Addr>>,
    /// Under the `nodes` pool: the ports each Service holds on the nodes' addresses.
    given_ports: Mutex<BTreeMap<ObjectKey, BTreeSet<(i64, String)>>>,
}

impl LoadBalancerController {
    pub fn new(pool: Option<LoadBalancerPool>) -> Self {
        LoadBalancerController {
            pool,
            given: Mutex::default(),
            given_ports: Mutex::default(),
        }
    }
}

pub fn is_load_balancer(s: &Service) -> bool {
    s.spec.type_.as_deref() == Some("LoadBalancer")
}

/// The external addresses a Service's status holds.
pub fn ingress_ips(s: &Service) -> Vec<Ipv4Addr> {
    s.load_balancer_ips()
        .into_iter()
        .filter_map(|ip| ip.parse().ok())
        .collect()
}

fn condition(ready: bool, reason: &str, message: String) -> Condition {
    Condition {
        type_: CONDITION.to_string(),
        status: if ready { "True" } else { "False" }.to_string(),
        reason: Some(reason.to_string()),
        message: Some(message),
        ..Default::default()
    }
}

/// The status a Service should have: its addresses, and the condition.
fn status(ips: &[Ipv4Addr], ready: Condition) -> ServiceStatus {
    ServiceStatus {
        load_balancer: (!ips.is_empty()).then(|| LoadBalancerStatus {
            ingress: Some(
                ips.iter()
                    .map(|ip| LoadBalancerIngress {
                        ip: Some(ip.to_string()),
                        hostname: None,
                    })
                    .collect(),
            ),
        }),
        conditions: Some(vec![ready]),
    }
}

/// An address of `pool` for `key`: the one it has if still its to keep, the one it asks
/// for if free, else the first free one from a point hashed from its name.
pub fn pick(
    pool: Ipv4Net,
    key: &ObjectKey,
    current: &[Ipv4Addr],
    asked: Option<&str>,
    taken: &BTreeSet<Ipv4Addr>,
) -> std::result::Result<Ipv4Addr, String> {
    let usable = |ip: &Ipv4Addr| pool.contains(ip) && !taken.contains(ip);
    if let Some(ip) = current.iter().find(|ip| usable(ip)) {
        return Ok(*ip);
    }
    if let Some(text) = asked.filter(|t| !t.is_empty()) {
        let ip: Ipv4Addr = text
            .parse()
            .map_err(|_| format!("spec.loadBalancerIP {text:?} is not an IPv4 address"))?;
        if !pool.contains(&ip) {
            return Err(format!(
                "spec.loadBalancerIP {ip} is outside the pool {pool}"
            ));
        }
        if taken.contains(&ip) {
            return Err(format!(
                "spec.loadBalancerIP {ip} is taken by another Service"
            ));
        }
        return Ok(ip);
    }
    let size = 1u64 << (32 - pool.prefix_len());
    let base = u32::from(pool.network()) as u64;
    let digest = Sha256::digest(format!("{}/{}", key.namespace, key.name).as_bytes());
    let start = u64::from(u32::from_be_bytes([
        digest[0], digest[1], digest[2], digest[3],
    ])) % size;
    (0..size)
        .map(|i| Ipv4Addr::from(((base + (start + i) % size) & 0xffff_ffff) as u32))
        .find(|ip| usable(ip))
        .ok_or_else(|| format!("the pool {pool} has no free address"))
}

impl LoadBalancerController {
    fn forget(&self, key: &ObjectKey) {
        self.given
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
        self.given_ports
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }

    /// Addresses other LoadBalancer Services hold (or were just given).
    fn taken(&self, cache: &Cache, key: &ObjectKey) -> BTreeSet<Ipv4Addr> {
        let mut taken = BTreeSet::new();
        for s in cache.list(Kind::Service, None) {
            if let Object::Service(svc) = &s.object
                && is_load_balancer(svc)
                && ObjectKey::of(&s.object) != *key
            {
                taken.extend(ingress_ips(svc));
            }
        }
        let given = self.given.lock().unwrap_or_else(|e| e.into_inner());
        taken.extend(given.iter().filter(|(k, _)| *k != key).map(|(_, ip)| *ip));
        taken
    }

    fn wanted(&self, cache: &Cache, key: &ObjectKey, svc: &Service) -> ServiceStatus {
        match self.pool {
            None => status(
                &[],
                condition(
                    false,
                    "NoPool",
                    "keel server runs without --loadbalancer-pool: reachable through its node ports only".to_string(),
                ),
            ),
            Some(LoadBalancerPool::Nodes) => {
                let ips = super::ready_node_ips(cache);
                let ports = ports_of(svc);
                if let Some(clash) = self.port_taken(cache, key, &ports) {
                    return status(&[], condition(false, "PortTaken", clash));
                }
                self.given_ports.lock().unwrap_or_else(|e| e.into_inner()).insert(key.clone(), ports);
                if ips.is_empty() {
                    status(&[], condition(false, "NoReadyNode", "no node is Ready to answer for it".to_string()))
                } else {
                    status(&ips, condition(true, "NodeAddresses", "answers on every Ready node's address".to_string()))
                }
            }
            Some(LoadBalancerPool::Range(pool)) => {
                let taken = self.taken(cache, key);
                match pick(pool, key, &ingress_ips(svc), svc.spec.load_balancer_ip.as_deref(), &taken) {
                    Ok(ip) => {
                        self.given.lock().unwrap_or_else(|e| e.into_inner()).insert(key.clone(), ip);
                        status(&[ip], condition(true, "Assigned", format!("{ip} from the pool {pool}")))
                    }
                    Err(why) => status(&[], condition(false, "NoAddress", why)),
                }
            }
        }
    }
}

/// A Service's (port, protocol) pairs.
fn ports_of(svc: &Service) -> BTreeSet<(i64, String)> {
    svc.spec
        .ports
        .iter()
        .flatten()
        .map(|p| {
            (
                p.port,
                p.protocol.clone().unwrap_or_else(|| "TCP".to_string()),
            )
        })
        .collect()
}

impl LoadBalancerController {
    /// Under the `nodes` pool every LoadBalancer Service answers on the same addresses: a
    /// port another one holds (it got there first) is refused, with its name.
    fn port_taken(
        &self,
        cache: &Cache,
        key: &ObjectKey,
        ports: &BTreeSet<(i64, String)>,
    ) -> Option<String> {
        let mut holders: Vec<(ObjectKey, BTreeSet<(i64, String)>)> = Vec::new();
        for s in cache.list(Kind::Service, None) {
            if let Object::Service(svc) = &s.object
                && is_load_balancer(svc)
                && ObjectKey::of(&s.object) != *key
                && !ingress_ips(svc).is_empty()
            {
                holders.push((ObjectKey::of(&s.object), ports_of(svc)));
            }
        }
        let given = self.given_ports.lock().unwrap_or_else(|e| e.into_inner());
        holders.extend(
            given
                .iter()
                .filter(|(k, _)| *k != key)
                .map(|(k, p)| (k.clone(), p.clone())),
        );
        holders.iter().find_map(|(other, theirs)| {
            let (port, protocol) = ports.intersection(theirs).next()?;
            Some(format!(
                "port {port}/{protocol} on the nodes' addresses is taken by Service {}/{}",
                other.namespace, other.name
            ))
        })
    }
}

/// Conditions compared without their times.
fn same_status(a: Option<&ServiceStatus>, b: &ServiceStatus) -> bool {
    a.is_some_and(|a| a == b)
}

impl Controller for LoadBalancerController {
    type Key = ObjectKey;
    const NAME: &'static str = "loadbalancer";
    const COMPONENT: &'static str = "service-lb-controller";

    fn all_keys(&self, cache: &Cache) -> Vec<ObjectKey> {
        keys_of_kind(cache, Kind::Service)
    }

    fn keys_for(&self, change: &Change, cache: &Cache, out: &mut Vec<ObjectKey>) {
        match change.kind() {
            Some(Kind::Service) => out.extend(change.objects().map(ObjectKey::of).take(1)),
            // Node addresses and readiness make the `nodes` pool.
            Some(Kind::Node) if self.pool == Some(LoadBalancerPool::Nodes) => {
                for s in cache.list(Kind::Service, None) {
                    if matches!(&s.object, Object::Service(svc) if is_load_balancer(svc)) {
                        out.push(ObjectKey::of(&s.object));
                    }
                }
            }
            Some(_) => {}
            None => out.extend(self.all_keys(cache)),
        }
    }

    fn subject(&self, key: &ObjectKey) -> Option<ObjectKey> {
        Some(key.clone())
    }

    async fn reconcile(&self, key: &ObjectKey, ctx: &Ctx) -> Result<Action> {
        let Some(stored) = ctx.cache().get(key) else {
            self.forget(key);
            return Ok(Action::Done);
        };
        let Object::Service(svc) = &stored.object else {
            return Ok(Action::Done);
        };
        let wanted = if is_load_balancer(svc) {
            Some(self.wanted(ctx.cache(), key, svc))
        } else {
            // No longer a LoadBalancer: its address goes back to the pool.
            self.forget(key);
            None
        };
        let unchanged = match &wanted {
            Some(w) => same_status(svc.status.as_ref(), w),
            None => svc
                .status
                .as_ref()
                .is_none_or(|s| s.load_balancer.is_none() && s.conditions.is_none()),
        };
        if unchanged {
            return Ok(Action::Done);
        }
        let mut updated = svc.clone();
        // Empty rather than absent: the store keeps the old status when a write has none.
        updated.status = Some(wanted.unwrap_or_default());
        ctx.update(Object::Service(updated), stored.resource_version)
            .await
            .or_raced()?;
        Ok(Action::Done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> ObjectKey {
        ObjectKey::new(Kind::Service, "default", name)
    }

    #[test]
    fn a_service_keeps_its_address_asks_for_one_or_gets_a_free_one() {
        let pool: Ipv4Net = "10.0.0.240/30".parse().unwrap();
        let ip = |s: &str| s.parse::<Ipv4Addr>().unwrap();
        let none = BTreeSet::new();
        assert_eq!(
            pick(pool, &key("a"), &[ip("10.0.0.242")], None, &none),
            Ok(ip("10.0.0.242"))
        );
        assert_eq!(
            pick(pool, &key("a"), &[], Some("10.0.0.241"), &none),
            Ok(ip("10.0.0.241"))
        );
        let err = pick(pool, &key("a"), &[], Some("10.0.1.1"), &none).unwrap_err();
        assert!(err.contains("outside the pool"), "{err}");
        let taken: BTreeSet<Ipv4Addr> =
            [ip("10.0.0.240"), ip("10.0.0.241"), ip("10.0.0.242")].into();
        assert_eq!(
            pick(pool, &key("b"), &[ip("10.0.0.241")], None, &taken),
            Ok(ip("10.0.0.243")),
            "a taken address is not kept"
        );
        let all: BTreeSet<Ipv4Addr> = pool
            .hosts()
            .chain([pool.network(), pool.broadcast()])
            .collect();
        let err = pick(pool, &key("c"), &[], None, &all).unwrap_err();
        assert!(err.contains("no free address"), "{err}");
    }

    #[test]
    fn pools_parse_from_a_range_or_nodes() {
        assert_eq!(
            "nodes".parse::<LoadBalancerPool>(),
            Ok(LoadBalancerPool::Nodes)
        );
        assert_eq!(
            "10.0.0.241/28".parse::<LoadBalancerPool>(),
            Ok(LoadBalancerPool::Range("10.0.0.240/28".parse().unwrap()))
        );
        assert!("10.0.0.0/8".parse::<LoadBalancerPool>().is_err());
        assert!(
            "somewhere"
                .parse::<LoadBalancerPool>()
                .unwrap_err()
                .contains("nodes")
        );
    }
}
