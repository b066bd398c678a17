//! A container's use from the engine's stats (`docker stats --no-stream`, one-shot: no
//! second of sampling), for an agent that cannot see the cgroup files itself.

use bollard::Docker;
use bollard::query_parameters::StatsOptionsBuilder;
use futures_util::StreamExt;

use crate::usage::cgroup::{Reading, working_set};

pub async fn engine_stats(docker: &Docker, id: &str) -> Option<Reading> {
    let options = StatsOptionsBuilder::default()
        .stream(false)
        .one_shot(true)
        .build();
    let stats = docker.stats(id, Some(options)).next().await?.ok()?;
    let cpu_ns = stats.cpu_stats?.cpu_usage?.total_usage?;
    let memory = stats.memory_stats?;
    let usage = memory.usage.unwrap_or(0);
    // The engine names the cache the way the cgroup version does.
    let stat = memory.stats.unwrap_or_default();
    let inactive = stat
        .get("inactive_file")
        .or_else(|| stat.get("total_inactive_file"))
        .copied()
        .unwrap_or(0);
    let text = format!("inactive_file {inactive}\n");
    Some(Reading {
        cpu_ns,
        memory_bytes: working_set(usage, &text, true),
    })
}
