//! One send of a desired set to an agent: a `Sync` call, or left for the agent's `NextSet`.

use keel_agent_protocol::node_agent_client::NodeAgentClient;
use keel_agent_protocol::{NodeDesired, SyncAck};
use tonic::transport::Channel;

use super::SEND_TIMEOUT;
use super::pods::SentPods;
use crate::nodes::dial::AgentDialer;
use crate::nodes::handoff::{NoOutcome, SetHandoff, TAKEN_WITHIN};

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
    #[error("{agent} ignored generation {sent}: it has applied {applied}")]
    Stale {
        /// Its address, or its node's name when it asks for its sets.
        agent: String,
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
    let answer = client.sync(desired).await.map(|ack| ack.into_inner());
    let result = outcome(address, generation, answer);
    // A refusal came on a working connection; anything else may have broken it.
    let keep = matches!(
        result,
        Ok(_) | Err(SendError::Stale { .. } | SendError::NeedsWhole(_))
    );
    (keep.then_some(client), result)
}

/// One set left for an agent that asks for its sets (`NextSet`), and its outcome.
pub async fn hand_over(
    handoff: &SetHandoff,
    node: &str,
    desired: NodeDesired,
) -> Result<Takes, SendError> {
    let generation = desired.generation;
    let taken = handoff.send(desired, SEND_TIMEOUT).await.map_err(|e| {
        SendError::Failed(match e {
            NoOutcome::NotConnected => format!(
                "the agent of node {node:?} is not connected (it is not asking for its set)"
            ),
            NoOutcome::NotTaken => format!(
                "the agent of node {node:?} did not ask for its set within {TAKEN_WITHIN:?}"
            ),
            NoOutcome::NotAnswered => format!(
                "the agent of node {node:?} took its set but did not say how it went within {SEND_TIMEOUT:?}"
            ),
            NoOutcome::Lost => format!(
                "the agent of node {node:?} asked again without saying how its set went (it restarted)"
            ),
        })
    })?;
    let answer = match taken.ack {
        Some(ack) => Ok(ack),
        None => Err(tonic::Status::new(
            tonic::Code::from_i32(taken.refused_code),
            taken.refused_message,
        )),
    };
    outcome(&format!("node {node:?}"), generation, answer)
}

/// What an agent's answer to set `generation` means for node sync.
fn outcome(
    agent: &str,
    generation: u64,
    answer: Result<SyncAck, tonic::Status>,
) -> Result<Takes, SendError> {
    match answer {
        Ok(ack) if ack.applied_generation == generation => Ok(Takes {
            nodes: ack.nodes_as_changes,
            pods: ack.pods_as_changes,
        }),
        // It has applied a newer set than this one (from before a control-plane restart
        // whose numbering ran ahead): the next send goes above it.
        Ok(ack) => Err(SendError::Stale {
            agent: agent.to_string(),
            sent: generation,
            applied: ack.applied_generation,
        }),
        Err(status) if status.code() == tonic::Code::FailedPrecondition => {
            Err(SendError::NeedsWhole(status.message().to_string()))
        }
        Err(status) => Err(SendError::Failed(format!(
            "{agent}: {}: {}",
            status.code(),
            status.message()
        ))),
    }
}
