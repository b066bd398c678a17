//! A Node's `Ready` condition: how the registry writes it, and how others read it.

use chrono::Utc;
use keel_schema::types::core::{Node, NodeStatus};
use keel_schema::types::meta::Condition;

fn ready_condition(ready: bool, previous: Option<&Condition>) -> Condition {
    let now = Utc::now();
    let status = if ready { "True" } else { "Unknown" };
    // Unknown keeps the time of the last heartbeat that was written.
    let heartbeat = if ready {
        Some(now)
    } else {
        previous.and_then(|c| c.last_heartbeat_time)
    };
    let since = previous
        .filter(|c| c.status == status)
        .and_then(|c| c.last_transition_time);
    Condition {
        type_: "Ready".into(),
        status: status.into(),
        last_heartbeat_time: heartbeat,
        last_transition_time: Some(since.unwrap_or(now)),
        reason: Some(
            if ready {
                "KeelAgentReady"
            } else {
                "NodeStatusUnknown"
            }
            .into(),
        ),
        message: Some(
            if ready {
                "keel-agent is posting ready status"
            } else {
                "keel-agent stopped posting node status."
            }
            .into(),
        ),
        ..Default::default()
    }
}

/// Whether the node's Ready condition is True.
pub fn is_ready(node: &Node) -> bool {
    ready_of(node).is_some_and(|c| c.status == "True")
}

/// Whether the node's agent registered or was last written ready at or after `since`.
pub fn heard_since(node: &Node, since: chrono::DateTime<chrono::Utc>) -> bool {
    ready_of(node)
        .and_then(|c| c.last_heartbeat_time)
        .is_some_and(|t| t >= since)
}

pub(super) fn ready_of(node: &Node) -> Option<&Condition> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
}

pub(super) fn set_ready(node: &mut Node, ready: bool) {
    let cond = ready_condition(ready, ready_of(node));
    let status = node.status.get_or_insert_with(NodeStatus::default);
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    conditions.retain(|c| c.type_ != "Ready");
    conditions.push(cond);
}
