//! Between Docker's types and the runtime's: inspect answers read into the runtime's own
//! types, and a container's security settings written as Docker's options.

use bollard::models::ContainerInspectResponse;
use chrono::{DateTime, Utc};

use crate::runtime::{ContainerInfo, ContainerState, labels};

/// Docker writes `0001-01-01T00:00:00Z` for "never".
fn time(text: Option<&str>) -> Option<DateTime<Utc>> {
    let t = DateTime::parse_from_rfc3339(text?)
        .ok()?
        .with_timezone(&Utc);
    (t.timestamp() > 0).then_some(t)
}

/// `None` when the container is not one of `node`'s (no keel labels, or another node's).
pub fn container_info(info: &ContainerInspectResponse, node: &str) -> Option<ContainerInfo> {
    let config = info.config.as_ref()?;
    let l = config.labels.as_ref()?;
    if l.get(labels::NODE).map(String::as_str) != Some(node) {
        return None;
    }
    let label = |k: &str| l.get(k).cloned().unwrap_or_default();
    let state = info.state.as_ref();
    let started_at = time(state.and_then(|s| s.started_at.as_deref()));
    let running = state.and_then(|s| s.running).unwrap_or(false);
    let state = match state {
        _ if running => ContainerState::Running {
            started_at: started_at.unwrap_or_else(Utc::now),
        },
        Some(s) if finished(s) => ContainerState::Exited {
            exit_code: s.exit_code.unwrap_or(-1),
            oom_killed: s.oom_killed.unwrap_or(false),
            started_at,
            finished_at: time(s.finished_at.as_deref()),
            error: s.error.clone().filter(|e| !e.is_empty()),
        },
        _ => ContainerState::Created,
    };
    let ip = info
        .network_settings
        .as_ref()
        .and_then(|n| n.networks.as_ref())
        .and_then(|nets| {
            nets.values()
                .filter_map(|n| n.ip_address.clone())
                .find(|ip| !ip.is_empty())
        });
    Some(ContainerInfo {
        id: info.id.clone().unwrap_or_default(),
        pod_uid: label(labels::POD_UID),
        pod_namespace: label(labels::POD_NAMESPACE),
        pod_name: label(labels::POD_NAME),
        pod_hash: label(labels::POD_HASH),
        grace_seconds: label(labels::GRACE).parse().unwrap_or(30),
        container: l.get(labels::CONTAINER).cloned(),
        attempt: label(labels::ATTEMPT).parse().unwrap_or(0),
        image: config.image.clone().unwrap_or_default(),
        state,
        ip,
    })
}

fn finished(s: &bollard::models::ContainerState) -> bool {
    use bollard::models::ContainerStateStatusEnum as S;
    matches!(s.status, Some(S::EXITED | S::DEAD)) || time(s.finished_at.as_deref()).is_some()
}

/// Docker's `--security-opt`s for a container's `securityContext`.
pub fn security_options(security: &crate::runtime::ContainerSecurity) -> Option<Vec<String>> {
    let mut out = Vec::new();
    if security.no_new_privileges {
        out.push("no-new-privileges".to_string());
    }
    if security.seccomp_unconfined {
        out.push("seccomp=unconfined".to_string());
    }
    (!out.is_empty()).then_some(out)
}
