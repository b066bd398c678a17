//! Everything the control plane is told at start (`keel server`'s flags, or `keel up`'s
//! choices).

use std::path::PathBuf;
use std::time::Duration;

use crate::apply::ServiceNetwork;

#[derive(Debug, Clone)]
pub struct Config {
    pub repo: String,
    pub branch: Option<String>,
    pub path: Option<String>,
    pub data_dir: PathBuf,
    pub store: Option<String>,
    /// `HOST:PORT` (a name such as `localhost` is resolved).
    pub listen: String,
    /// `HOST:PORT` of the same API over HTTPS, with a certificate from the cluster CA.
    pub tls_listen: Option<String>,
    /// More names (DNS or IP) that certificate holds.
    pub tls_names: Vec<String>,
    /// `HOST:PORT` of the agents' gRPC API.
    pub agent_listen: String,
    pub node_grace: Duration,
    pub pod_eviction_timeout: Duration,
    pub poll_interval: Duration,
    pub resync_interval: Duration,
    pub webhook_secret: Option<Vec<u8>>,
    /// Where Services get their ClusterIPs and NodePorts.
    pub service_network: ServiceNetwork,
    /// Where LoadBalancer Services get external addresses (`--loadbalancer-pool`).
    pub load_balancer_pool: Option<crate::controllers::loadbalancer::LoadBalancerPool>,
    /// Where pods get their addresses: one range per node.
    pub pod_network: crate::nodes::PodNetwork,
    /// Hold the first apply until this many nodes are Ready, so a fresh cluster's pods
    /// spread over its nodes instead of all landing on the first to register (`keel up`).
    pub wait_for_nodes: usize,
    /// Plaintext gRPC with agents, no certificates (tests only; loudly warned about).
    pub insecure: bool,
    /// How long node and control-plane certificates last.
    pub cert_validity: Duration,
    /// Serve the read endpoints without the bearer token.
    pub anonymous_read: bool,
    /// Encrypt Secrets at rest with the key in this file.
    pub encryption_key_file: Option<PathBuf>,
    /// Open SOPS-encrypted manifests with the age identities in this file.
    pub sops_age_key_file: Option<PathBuf>,
    /// Where the tokens and HMAC keys keel.yaml's `notify:` names are (files by name).
    pub notify_secrets_dir: Option<PathBuf>,
    /// The first retry's delay for a failed notification (doubling after).
    pub notify_retry_delay: Duration,
    /// The HTTP address other servers and clients reach this server at (its name in the
    /// leader election); default: the listen address.
    pub advertise_address: Option<String>,
    /// How leadership is held among servers sharing an etcd.
    pub leader: crate::leader::Timing,
}
