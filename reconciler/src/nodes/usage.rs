//! The nodes' latest resource-use samples, asked of their agents at once (each agent takes
//! one every 15 s from its containers' cgroups): for `metrics.k8s.io` and the autoscaler.

use std::time::Duration;

use keel_agent_protocol::{MetricsReport, MetricsRequest};
use keel_schema::Object;

use super::dial::AgentDialer;

/// How long an agent may take to answer.
pub const ASK_TIMEOUT: Duration = Duration::from_secs(5);

/// Each answering node's latest sample. A node whose agent cannot be reached, or does not
/// answer within [`ASK_TIMEOUT`], is left out, as metrics-server leaves out a node it cannot
/// scrape.
pub async fn samples<'a>(
    dialer: &AgentDialer,
    nodes: impl IntoIterator<Item = &'a Object>,
) -> Vec<(String, MetricsReport)> {
    let asks = nodes.into_iter().filter_map(|node| {
        let name = node.meta().name().to_string();
        let address = node.meta().annotation(super::AGENT_ADDRESS)?.to_string();
        let dialer = dialer.clone();
        Some(async move {
            let mut client = dialer
                .connect(&name, &address, Some(ASK_TIMEOUT))
                .await
                .ok()?;
            let ask = client.metrics(MetricsRequest {});
            let report = tokio::time::timeout(ASK_TIMEOUT, ask)
                .await
                .ok()?
                .ok()?
                .into_inner();
            Some((name, report))
        })
    });
    futures_util::future::join_all(asks)
        .await
        .into_iter()
        .flatten()
        .collect()
}
