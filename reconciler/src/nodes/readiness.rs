//! A Node's `Ready` condition as the registry writes it (`Node::is_ready` reads it).

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

pub(super) fn set_ready(node: &mut Node, ready: bool) {
    let cond = ready_condition(ready, node.ready_condition());
    let status = node.status.get_or_insert_with(NodeStatus::default);
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    conditions.retain(|c| c.type_ != "Ready");
    conditions.push(cond);
}
