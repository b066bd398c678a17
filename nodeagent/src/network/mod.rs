//! The pod network on this node, Kubernetes' model: every pod has its own address from the
//! node's range (`spec.podCIDR`), reachable from every pod and node without NAT.
//!
//! # Layout
//! - this file: [`NodeNetwork`], the node's range and the cluster's as the control plane
//!   gave them at registration, shared by the runtime and the overlay.
//! - [`cni`]: pods attached through CNI plugins, as the CNI spec runs them (ADD, DEL,
//!   CHECK), with each attachment's result kept in the data dir.
//! - [`overlay`]: routes to the other nodes' ranges (`vxlan` or `host-gw`) and masquerade
//!   for traffic leaving the cluster, converged from the node list the control plane sends.
//! - [`announce`]: LoadBalancer addresses this node answers for, held on its interface.
//! - [`preflight`]: what the agent needs before it starts pods (rights, tools, plugins).
//! - [`command`]: the one place tools (`ip`, `bridge`, `nft`, `iptables`, plugins) run;
//!   [`links`]: iproute2's view of links, addresses, routes, neighbours and FDB entries.
//!
//! # Invariants
//! - A pod is never started on a network that would misroute it: without a range, rights
//!   or plugins the sandbox fails with the reason, and there is no fallback to Docker's
//!   bridge.
//! - Everything is level-triggered: routes, neighbour and FDB entries and the masquerade
//!   table are computed from the desired state and converged, on every change and
//!   periodically; running it twice changes nothing.
//! - The agent touches only what it made: its bridge, its VXLAN device, routes it tagged
//!   with [`overlay::ROUTE_PROTOCOL`], its own nftables table, and the two iptables rules it
//!   comments `keel pod network`.

pub mod announce;
pub mod cni;
pub mod command;
pub mod links;
pub mod overlay;
pub mod preflight;

use std::sync::Arc;

use ipnet::Ipv4Net;
use tokio::sync::watch;

/// The pod ranges the control plane assigned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Assignment {
    /// This node's range: its pods' addresses.
    pub pod_cidr: Ipv4Net,
    /// The whole pod network (`--cluster-cidr`): traffic leaving it is masqueraded.
    pub cluster_cidr: Ipv4Net,
}

impl Assignment {
    /// Reads the Register answer's two ranges; an empty or malformed one is an error naming
    /// it (an agent never guesses its range).
    pub fn parse(pod_cidr: &str, cluster_cidr: &str) -> Result<Assignment, String> {
        let parse = |what: &str, text: &str| -> Result<Ipv4Net, String> {
            text.parse::<Ipv4Net>().map(|n| n.trunc()).map_err(|_| {
                format!("the control plane sent {what} {text:?}, not an IPv4 range; is it older than this agent?")
            })
        };
        let a = Assignment {
            pod_cidr: parse("podCIDR", pod_cidr)?,
            cluster_cidr: parse("clusterCIDR", cluster_cidr)?,
        };
        if !a.cluster_cidr.contains(&a.pod_cidr) {
            return Err(format!(
                "the control plane sent podCIDR {} outside its clusterCIDR {}",
                a.pod_cidr, a.cluster_cidr
            ));
        }
        Ok(a)
    }
}

/// The node's [`Assignment`], once registration gave it; watched by the runtime and the
/// overlay.
#[derive(Clone, Debug)]
pub struct NodeNetwork {
    tx: Arc<watch::Sender<Option<Assignment>>>,
}

impl Default for NodeNetwork {
    fn default() -> Self {
        Self::new()
    }
}

impl NodeNetwork {
    pub fn new() -> NodeNetwork {
        NodeNetwork {
            tx: Arc::new(watch::channel(None).0),
        }
    }

    /// A network already assigned (tests, and agents run without a control plane).
    pub fn assigned(assignment: Assignment) -> NodeNetwork {
        let n = NodeNetwork::new();
        n.assign(assignment);
        n
    }

    pub fn assign(&self, assignment: Assignment) {
        self.tx.send_if_modified(|current| {
            let changed = *current != Some(assignment);
            if changed {
                if let Some(old) = current {
                    // Only after `keel delete node` and a new registration: pods keep the
                    // addresses they have until their sandboxes are made again.
                    tracing::warn!(old = %old.pod_cidr, new = %assignment.pod_cidr, "this node's pod range changed");
                }
                *current = Some(assignment);
            }
            changed
        });
    }

    pub fn current(&self) -> Option<Assignment> {
        *self.tx.borrow()
    }

    pub fn subscribe(&self) -> watch::Receiver<Option<Assignment>> {
        self.tx.subscribe()
    }
}
