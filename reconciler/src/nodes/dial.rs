//! The one place the control plane's channels to agents are built: mutual TLS with the
//! control plane's certificate, and the agent's certificate must name the node dialed (so an
//! address taken over by another machine, or another node's agent, fails the handshake).
//! `--insecure` dials plaintext.

use std::sync::Arc;
use std::time::Duration;

use keel_agent_protocol::node_agent_client::NodeAgentClient;
use tonic::transport::Channel;

use crate::auth::pki::ControlPlanePki;

#[derive(Clone)]
pub struct AgentDialer {
    pki: Option<Arc<ControlPlanePki>>,
}

impl AgentDialer {
    pub fn new(pki: Option<Arc<ControlPlanePki>>) -> AgentDialer {
        AgentDialer { pki }
    }

    /// A client of `node`'s agent at `address` (host:port), each call bounded by `timeout`.
    pub async fn connect(
        &self,
        node: &str,
        address: &str,
        timeout: Option<Duration>,
    ) -> Result<NodeAgentClient<Channel>, String> {
        let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{address}"))
            .map_err(|e| format!("bad agent address {address:?}: {e}"))?
            .connect_timeout(Duration::from_secs(2))
            // A peer that vanishes (a partitioned node) ends open streams such as `logs -f`.
            .http2_keep_alive_interval(Duration::from_secs(10))
            .keep_alive_timeout(Duration::from_secs(10))
            .keep_alive_while_idle(true);
        let endpoint = match timeout {
            Some(t) => endpoint.timeout(t),
            None => endpoint,
        };
        let tls = match &self.pki {
            Some(pki) => Some(pki.agent_tls(node).map_err(|e| format!("{e:#}"))?),
            None => None,
        };
        let channel = keel_tls::transport::connect(endpoint, tls)
            .await
            .map_err(|e| {
                let detail = std::error::Error::source(&e)
                    .map(|s| format!(": {s}"))
                    .unwrap_or_default();
                format!("cannot connect to the agent of node {node:?} at {address}: {e}{detail}")
            })?;
        Ok(NodeAgentClient::new(channel).max_decoding_message_size(1 << 20))
    }
}
