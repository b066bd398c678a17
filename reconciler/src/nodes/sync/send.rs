//! One send of a desired set to an agent.

use keel_agent_protocol::NodeDesired;
use keel_agent_protocol::node_agent_client::NodeAgentClient;
use tonic::transport::Channel;

use super::SEND_TIMEOUT;
use super::pods::SentPods;
use crate::nodes::dial::AgentDialer;

/// The outcome of one send, back to the loop.
pub struct Sent {
    pub node: String,
    pub hash: u64,
    pub generation: u64,
    /// The version of the nodes list sent ([`super::peers::PeerLog`]).
    pub nodes_version: u64,
    /// The pods of the set sent, with their versions.
    pub pods: SentPods,
    /// What the agent said it takes changes to.
    pub takes: Takes,
    pub client: Option<NodeAgentClient<Channel>>,
    pub result: Result<(), SendError>,
}

impl Sent {
    /// A send that failed before it could say more.
    pub fn failed(node: String, error: SendError) -> Sent {
        Sent {
            node,
            hash: 0,
            generation: 0,
            nodes_version: 0,
            pods: SentPods::new(),
            takes: Takes::default(),
            client: None,
            result: Err(error),
        }
    }
}

/// Which parts of its set an agent takes as changes to the set it applied (it says so in
/// each acknowledgement).
#[derive(Debug, Default, Clone, Copy)]
pub struct Takes {
    pub nodes: bool,
    pub pods: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The agent has applied a newer set (numbered by a control plane whose count ran
    /// ahead before a restart): the next send goes above it.
    #[error("{address} ignored generation {sent}: it has applied {applied}")]
    Stale {
        address: String,
        sent: u64,
        applied: u64,
    },
    /// The set changed a nodes list or pods the agent no longer has: send it whole.
    #[error("{0}")]
    NeedsWhole(String),
    #[error("{0}")]
    Failed(String),
}

/// One `Sync` call, connecting first when there is no channel yet; what the agent takes as
/// changes.
pub async fn send(
    dialer: &AgentDialer,
    node: &str,
    client: Option<NodeAgentClient<Channel>>,
    address: &str,
    desired: NodeDesired,
) -> (Option<NodeAgentClient<Channel>>, Result<Takes, SendError>) {
    let mut client = match client {
        Some(c) => c,
        None => match dialer.connect(node, address, Some(SEND_TIMEOUT)).await {
            Ok(c) => c,
            Err(e) => return (None, Err(SendError::Failed(e))),
        },
    };
    let generation = desired.generation;
    match client.sync(desired).await {
        Ok(ack) if ack.get_ref().applied_generation == generation => {
            let takes = Takes {
                nodes: ack.get_ref().nodes_as_changes,
                pods: ack.get_ref().pods_as_changes,
            };
            (Some(client), Ok(takes))
        }
        // It has applied a newer set than this one (from before a control-plane restart
        // whose numbering ran ahead): the next send goes above it.
        Ok(ack) => (
            Some(client),
            Err(SendError::Stale {
                address: address.to_string(),
                sent: generation,
                applied: ack.get_ref().applied_generation,
            }),
        ),
        Err(status) if status.code() == tonic::Code::FailedPrecondition => (
            Some(client),
            Err(SendError::NeedsWhole(status.message().to_string())),
        ),
        Err(status) => (
            None,
            Err(SendError::Failed(format!(
                "{address}: {}: {}",
                status.code(),
                status.message()
            ))),
        ),
    }
}
