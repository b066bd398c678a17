//! The campaign and renewal loop: try to take the election key every `retry`; once
//! leading, renew every `retry` and step down when renewal has failed for `renew_deadline`
//! (shorter than the lease, so the old leader stops before a new one can start) or the
//! lease turns out to be gone. On shutdown the lease is revoked, so a successor takes over at
//! its next attempt instead of after the lease runs out.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use keel_store::etcd::{Campaign, Election};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{LeaderRecord, Role};
use crate::metrics::Metrics;

/// How leadership is held (`--leader-lease`, `--leader-renew-deadline`, `--leader-retry`;
/// Kubernetes' defaults: 15 s, 10 s, 2 s).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    pub lease: Duration,
    pub renew_deadline: Duration,
    pub retry: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            lease: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry: Duration::from_secs(2),
        }
    }
}

impl Timing {
    /// Why these timings cannot keep one leader, if they cannot.
    pub fn check(&self) -> Result<(), String> {
        if self.lease < Duration::from_secs(2) {
            return Err(
                "--leader-lease must be at least 2s (etcd leases count whole seconds)".into(),
            );
        }
        if self.renew_deadline >= self.lease {
            return Err(format!(
                "--leader-renew-deadline ({:?}) must be shorter than --leader-lease ({:?}): a leader must stop before its lease can pass to another",
                self.renew_deadline, self.lease
            ));
        }
        if self.retry.is_zero() || self.retry >= self.renew_deadline {
            return Err(format!(
                "--leader-retry ({:?}) must be more than zero and shorter than --leader-renew-deadline ({:?})",
                self.retry, self.renew_deadline
            ));
        }
        Ok(())
    }
}

/// Runs the election for this server (`me`) until `stop`, publishing its role on `role`.
pub async fn run(
    election: Election,
    me: String,
    timing: Timing,
    role: watch::Sender<Role>,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
) {
    let call_limit = timing.retry.max(Duration::from_secs(1));
    loop {
        let Some((fence, lease)) = campaign(&election, &me, timing, &role, &stop).await else {
            return;
        };
        tracing::info!(
            term = fence.term,
            key = election.key(),
            "this server is the leader now"
        );
        metrics.leader.set(1);
        metrics.leader_transitions.inc();
        role.send_replace(Role::Leader {
            fence: fence.clone(),
            since: Utc::now(),
        });
        let mut renewed = Instant::now();
        let stopping = loop {
            tokio::select! {
                _ = tokio::time::sleep(timing.retry) => {}
                _ = stop.cancelled() => break true,
            }
            match tokio::time::timeout(call_limit, election.renew(&fence, lease)).await {
                Ok(Ok(true)) => renewed = Instant::now(),
                Ok(Ok(false)) => {
                    tracing::warn!(
                        term = fence.term,
                        "the leader lease is gone (expired, or the key is another server's); stepping down"
                    );
                    break false;
                }
                Ok(Err(e)) if renewed.elapsed() >= timing.renew_deadline => {
                    tracing::warn!(term = fence.term, error = %e, "cannot renew the leader lease within the renew deadline; stepping down");
                    break false;
                }
                Err(_) if renewed.elapsed() >= timing.renew_deadline => {
                    tracing::warn!(
                        term = fence.term,
                        "renewing the leader lease timed out past the renew deadline; stepping down"
                    );
                    break false;
                }
                Ok(Err(e)) => tracing::debug!(error = %e, "leader lease renewal failed; retrying"),
                Err(_) => tracing::debug!("leader lease renewal timed out; retrying"),
            }
        };
        metrics.leader.set(0);
        metrics.leader_transitions.inc();
        role.send_replace(Role::Follower {
            leader: None,
            error: None,
        });
        // Stepping down for whatever reason: let a successor start now rather than when the
        // lease runs out (a lease already gone makes this a no-op).
        let _ = tokio::time::timeout(call_limit, election.resign(lease)).await;
        if stopping {
            tracing::info!(term = fence.term, "resigned the leadership");
            return;
        }
    }
}

/// Campaigns every `retry` until this server wins (its term and lease) or `stop`.
async fn campaign(
    election: &Election,
    me: &str,
    timing: Timing,
    role: &watch::Sender<Role>,
    stop: &CancellationToken,
) -> Option<(keel_store::etcd::Fence, i64)> {
    let call_limit = timing.retry.max(Duration::from_secs(1));
    let mut reported_error = false;
    loop {
        let record = LeaderRecord {
            server: me.to_string(),
            since: Utc::now(),
        };
        let bytes = serde_json::to_vec(&record).unwrap_or_default();
        let attempt = tokio::time::timeout(call_limit, election.campaign(&bytes, timing.lease));
        let outcome = tokio::select! {
            r = attempt => r,
            _ = stop.cancelled() => return None,
        };
        match outcome {
            Ok(Ok(Campaign::Won { fence, lease })) => return Some((fence, lease)),
            Ok(Ok(Campaign::Held { holder, term })) => {
                reported_error = false;
                let leader = serde_json::from_slice::<LeaderRecord>(&holder)
                    .ok()
                    .map(|r| (r, term));
                role.send_if_modified(|now| {
                    let next = Role::Follower {
                        leader: leader.clone(),
                        error: None,
                    };
                    let changed = *now != next;
                    if changed {
                        if let Some((r, term)) = &leader {
                            tracing::info!(leader = %r.server, term, "following the leader");
                        }
                        *now = next;
                    }
                    changed
                });
            }
            Ok(Err(e)) => {
                if !reported_error {
                    tracing::warn!(error = %e, "cannot run the leader election; retrying");
                    reported_error = true;
                }
                role.send_replace(Role::Follower {
                    leader: None,
                    error: Some(e.to_string()),
                });
            }
            Err(_) => {
                role.send_replace(Role::Follower {
                    leader: None,
                    error: Some(format!("the election did not answer within {call_limit:?}")),
                });
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(timing.retry) => {}
            _ = stop.cancelled() => return None,
        }
    }
}
