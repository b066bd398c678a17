//! One send of a desired set to an agent.

use keel_agent_protocol::NodeDesired;
use keel_agent_protocol::node_agent_client::NodeAgentClient;
use tonic::transport::Channel;

use super::SEND_TIMEOUT;
use crate::nodes::dial::AgentDialer;

/// The outcome of one send, back to the loop.
pub struct Sent {
    pub node: String,
    pub hash: u64,
    pub generation: u64,
    /// The version of the nodes list sent ([`super::peers::PeerLog`]).
    pub nodes_version: u64,
    /// Whether the agent said it takes changes to its nodes list.
    pub nodes_as_changes: bool,
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
            nodes_as_changes: false,
            client: None,
            result: Err(error),
        }
    }
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
    /// The set changed a nodes list the agent no longer has: send it whole.
    #[error("{0}")]
    NeedsWhole(String),
    #[error("{0}")]
    Failed(String),
}

/// One `Sync` call, connecting first when there is no channel yet; whether the agent takes
/// changes to its nodes list.
pub async fn send(
    dialer: &AgentDialer,
    node: &str,
    client: Option<NodeAgentClient<Channel>>,
    address: &str,
    desired: NodeDesired,
) -> (Option<NodeAgentClient<Channel>>, Result<bool, SendError>) {
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
            let takes_changes = ack.get_ref().nodes_as_changes;
            (Some(client), Ok(takes_changes))
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
