//! The health of what the applied revision declares, as it changes: Healthy once everything
//! is (Argo CD's rules, `keel_api::health`), Degraded when something stops being so after
//! that, or has not become Healthy within [`SETTLE`] of the apply.

use std::time::{Duration, Instant};

use keel_api::health::{Health, health};
use keel_schema::repo_config::NotifyEvent;
use keel_schema::{Object, ObjectKey};

/// How long an applied revision may take to become Healthy before it counts as Degraded.
pub const SETTLE: Duration = Duration::from_secs(600);

/// The health of a set of declared objects (each with what the store holds, if anything):
/// Degraded (or Missing) wins, then Progressing; Unknown counts as Healthy. With it, what is
/// not Healthy, for messages.
pub fn aggregate(objects: &[(ObjectKey, Option<Object>)]) -> (Health, String) {
    let mut worst = Health::Healthy;
    let mut why = Vec::new();
    for (key, object) in objects {
        let (h, reason) = match object {
            Some(o) => health(o),
            None => (
                Health::Missing,
                "declared in git, absent from the cluster".to_string(),
            ),
        };
        let h = if h == Health::Missing {
            Health::Degraded
        } else {
            h
        };
        let rank = |h: Health| match h {
            Health::Degraded => 2,
            Health::Progressing => 1,
            _ => 0,
        };
        if rank(h) > 0 && why.len() < 3 {
            why.push(format!("{key}: {reason}"));
        }
        if rank(h) > rank(worst) {
            worst = h;
        }
    }
    (worst, why.join("; "))
}

/// What has been said of the applied revision's health.
#[derive(Debug, Default)]
pub struct Tracker {
    commit: Option<String>,
    applied_at: Option<Instant>,
    /// The last state announced (Healthy or Degraded).
    said: Option<NotifyEvent>,
}

impl Tracker {
    /// `commit` was applied: nothing said of it yet.
    pub fn applied(&mut self, commit: &str) {
        if self.commit.as_deref() != Some(commit) {
            *self = Tracker {
                commit: Some(commit.to_string()),
                applied_at: Some(Instant::now()),
                said: None,
            };
        }
    }

    /// The event to send now that the revision's health is `now`, if it changed.
    pub fn observe(&mut self, now: Health) -> Option<NotifyEvent> {
        self.commit.as_ref()?;
        let settled = self.applied_at.is_some_and(|t| t.elapsed() >= SETTLE);
        let event = match (now, self.said) {
            (Health::Healthy, Some(NotifyEvent::Healthy)) => None,
            (Health::Healthy, _) => Some(NotifyEvent::Healthy),
            (Health::Degraded, Some(NotifyEvent::Healthy)) => Some(NotifyEvent::Degraded),
            (Health::Degraded | Health::Progressing, None) if settled => {
                Some(NotifyEvent::Degraded)
            }
            _ => None,
        };
        if event.is_some() {
            self.said = event;
        }
        event
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn healthy_is_said_once_then_degraded_and_recovered() {
        let mut t = Tracker::default();
        assert_eq!(t.observe(Health::Healthy), None, "nothing applied yet");
        t.applied("abc");
        assert_eq!(t.observe(Health::Progressing), None);
        assert_eq!(
            t.observe(Health::Degraded),
            None,
            "a rollout may pass through Degraded"
        );
        assert_eq!(t.observe(Health::Healthy), Some(NotifyEvent::Healthy));
        assert_eq!(t.observe(Health::Healthy), None);
        assert_eq!(t.observe(Health::Degraded), Some(NotifyEvent::Degraded));
        assert_eq!(t.observe(Health::Degraded), None);
        assert_eq!(t.observe(Health::Healthy), Some(NotifyEvent::Healthy));
        t.applied("abc");
        assert_eq!(
            t.observe(Health::Healthy),
            None,
            "the same commit again says nothing new"
        );
        t.applied("def");
        assert_eq!(t.observe(Health::Healthy), Some(NotifyEvent::Healthy));
    }
}
