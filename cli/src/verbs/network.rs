//! The address-plan flags `keel server` and `keel up` share: Services' ClusterIPs and
//! NodePorts, and the pod network's range cut per node.

use keel_reconciler::apply::ServiceNetwork;
use keel_reconciler::controllers::loadbalancer::LoadBalancerPool;
use keel_reconciler::nodes::PodNetwork;

#[derive(Debug, Clone, clap::Args)]
pub struct NetworkArgs {
    /// The range Service ClusterIPs are allocated from. Keep it clear of the nodes' and
    /// the pods' networks.
    #[arg(long, default_value = "10.96.0.0/16")]
    pub service_cidr: String,
    /// The range NodePorts are allocated from: all or part of 30000-32767, the range
    /// manifests are checked against.
    #[arg(long, default_value = "30000-32767")]
    pub service_node_port_range: String,
    /// The pod network: every pod's address comes from here, through its node's range.
    #[arg(long, default_value = "10.244.0.0/16")]
    pub cluster_cidr: String,
    /// The size of each node's range within --cluster-cidr, as a prefix length (24: 254
    /// pods per node, 256 nodes in a /16).
    #[arg(long, default_value_t = 24)]
    pub node_cidr_mask_size: u8,
    /// Where Services of `type: LoadBalancer` get their external address: an IPv4 range on
    /// the nodes' network (`192.168.1.240/28`; one node answers for each address), or
    /// `nodes` (every Ready node's own address, as k3s's ServiceLB). Without it they work
    /// through their node ports, and `keel status` says so.
    #[arg(long = "loadbalancer-pool")]
    pub loadbalancer_pool: Option<String>,
}

impl NetworkArgs {
    /// Both plans, or what is wrong with the flags (overlapping ranges included).
    pub fn plans(&self) -> Result<(ServiceNetwork, PodNetwork), String> {
        let services = ServiceNetwork::new(&self.service_cidr, &self.service_node_port_range)?;
        let pods = PodNetwork::new(
            &self.cluster_cidr,
            self.node_cidr_mask_size,
            services.cidr(),
        )?;
        Ok((services, pods))
    }

    /// The LoadBalancer pool, or what is wrong with it.
    pub fn load_balancer_pool(&self) -> Result<Option<LoadBalancerPool>, String> {
        self.loadbalancer_pool
            .as_deref()
            .map(|p| p.parse().map_err(|e| format!("--loadbalancer-pool: {e}")))
            .transpose()
    }
}
