//! A Deployment's status, computed from its ReplicaSets: pure, table-tested.
//!
//! Counts are summed over its ReplicaSets; `Available` says whether at least
//! `replicas - maxUnavailable` pods are available; `Progressing` is `NewReplicaSetAvailable`
//! once the rollout is complete, `ProgressDeadlineExceeded` once nothing moved for
//! `progressDeadlineSeconds` (default 600), else `ReplicaSetUpdated`.

use chrono::{DateTime, Utc};
use keel_schema::types::apps::{Deployment, DeploymentStatus};
use keel_schema::types::meta::Condition;

use super::rollout::{BadFencepost, Rs, fenceposts, is_recreate};

/// The status `d` should have now; `None` when what it has says the same.
pub fn compute(
    d: &Deployment,
    replicas: i64,
    new: &Rs,
    old: &[Rs],
    now: DateTime<Utc>,
) -> Result<Option<DeploymentStatus>, BadFencepost> {
    let all = || std::iter::once(new).chain(old.iter());
    let total: i64 = all().map(|rs| rs.status().0).sum();
    let ready: i64 = all().map(|rs| rs.status().1).sum();
    let available: i64 = all().map(|rs| rs.status().2).sum();
    let updated = new.status().0;
    let max_unavailable = if is_recreate(d) {
        0
    } else {
        fenceposts(d, replicas)?.1
    };
    let previous = d.status.as_ref().and_then(|s| s.conditions.as_ref());
    let counts_before = d.status.as_ref().map(|s| {
        (
            s.replicas.unwrap_or(0),
            s.updated_replicas.unwrap_or(0),
            s.available_replicas.unwrap_or(0),
        )
    });
    let progressed = counts_before != Some((total, updated, available));
    let complete = updated == replicas
        && available >= replicas
        && total == replicas
        && old.iter().all(|rs| rs.status().0 == 0);
    let conditions = vec![
        available_condition(previous, available >= replicas - max_unavailable, now),
        progressing_condition(d, previous, new.name(), complete, progressed, now),
    ];
    let status = DeploymentStatus {
        observed_generation: d.metadata.generation,
        replicas: Some(total),
        updated_replicas: Some(updated),
        ready_replicas: Some(ready),
        available_replicas: Some(available),
        unavailable_replicas: Some((replicas - available).max(0)),
        conditions: Some(conditions),
    };
    Ok((!d.status.as_ref().is_some_and(|s| same(s, &status))).then_some(status))
}

fn available_condition(
    previous: Option<&Vec<Condition>>,
    ok: bool,
    now: DateTime<Utc>,
) -> Condition {
    let (reason, message) = if ok {
        (
            "MinimumReplicasAvailable",
            "Deployment has minimum availability.",
        )
    } else {
        (
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.",
        )
    };
    condition(
        previous,
        "Available",
        ok,
        reason,
        message.into(),
        false,
        now,
    )
}

fn progressing_condition(
    d: &Deployment,
    previous: Option<&Vec<Condition>>,
    rs_name: &str,
    complete: bool,
    progressed: bool,
    now: DateTime<Utc>,
) -> Condition {
    let last = previous.and_then(|cs| cs.iter().find(|c| c.type_ == "Progressing"));
    let deadline = d.spec.progress_deadline_seconds.unwrap_or(600);
    let stuck_since = last
        .filter(|c| c.reason.as_deref() == Some("ReplicaSetUpdated"))
        .and_then(|c| c.last_update_time);
    let stuck = !complete
        && !progressed
        && stuck_since
            .is_some_and(|t| chrono::Duration::try_seconds(deadline).is_some_and(|d| now - t > d));
    let already_stuck =
        last.is_some_and(|c| c.reason.as_deref() == Some("ProgressDeadlineExceeded"));
    if complete {
        let message = format!("ReplicaSet \"{rs_name}\" has successfully progressed.");
        condition(
            previous,
            "Progressing",
            true,
            "NewReplicaSetAvailable",
            message,
            false,
            now,
        )
    } else if stuck || (already_stuck && !progressed) {
        let message = format!("ReplicaSet \"{rs_name}\" has timed out progressing.");
        condition(
            previous,
            "Progressing",
            false,
            "ProgressDeadlineExceeded",
            message,
            false,
            now,
        )
    } else {
        let message = format!("ReplicaSet \"{rs_name}\" is progressing.");
        condition(
            previous,
            "Progressing",
            true,
            "ReplicaSetUpdated",
            message,
            progressed,
            now,
        )
    }
}

/// A condition that keeps its transition time while its status stays, and its update time
/// while nothing progressed and the reason stays.
fn condition(
    previous: Option<&Vec<Condition>>,
    type_: &str,
    status: bool,
    reason: &str,
    message: String,
    progressed: bool,
    now: DateTime<Utc>,
) -> Condition {
    let status = if status { "True" } else { "False" };
    let old = previous.and_then(|cs| cs.iter().find(|c| c.type_ == type_));
    let same = old.is_some_and(|c| c.status == status);
    let kept_update =
        same && !progressed && old.is_some_and(|c| c.reason.as_deref() == Some(reason));
    Condition {
        type_: type_.into(),
        status: status.into(),
        last_transition_time: if same {
            old.and_then(|c| c.last_transition_time)
        } else {
            Some(now)
        },
        last_update_time: if kept_update {
            old.and_then(|c| c.last_update_time)
        } else {
            Some(now)
        },
        last_heartbeat_time: None,
        last_probe_time: None,
        reason: Some(reason.into()),
        message: Some(message),
    }
}

/// Whether two statuses say the same: counts, and conditions by type, status, reason and
/// update time (messages and transition times follow from those).
fn same(a: &DeploymentStatus, b: &DeploymentStatus) -> bool {
    let strip = |cs: &Option<Vec<Condition>>| {
        cs.iter()
            .flatten()
            .map(|c| {
                (
                    c.type_.clone(),
                    c.status.clone(),
                    c.reason.clone(),
                    c.last_update_time,
                )
            })
            .collect::<Vec<_>>()
    };
    let counts = |s: &DeploymentStatus| {
        (
            s.observed_generation,
            s.replicas,
            s.updated_replicas,
            s.ready_replicas,
            s.available_replicas,
            s.unavailable_replicas,
        )
    };
    counts(a) == counts(b) && strip(&a.conditions) == strip(&b.conditions)
}
