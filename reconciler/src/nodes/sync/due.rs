//! When a node's set is due: whether a change goes out at once or with the next window's
//! ([`at_once`]), which dirty nodes go now ([`pick`]), whether an agent's
//! heartbeat says it no longer has its set ([`disagrees`]), and which slice of the periodic
//! resend a node is in ([`resend_slice`]).

use std::collections::{HashMap, HashSet};

use tokio::time::Instant;

use super::{DEBOUNCE, HEARD_AFTER_ACK, NodeState, RESEND_SLICES};
use crate::nodes::registry::Applied;

/// Whether what is dirty goes out now rather than at the next tick: only when no pass had
/// anything to do within the last window (`last_pass`). A lone change (a pod deleted, a
/// scale by one) then reaches its agent at once; under a stream of changes every tick's
/// pass has work, so they still go out a window at a time, together.
pub(super) fn at_once(dirty: bool, last_pass: Option<Instant>, now: Instant) -> bool {
    dirty && last_pass.is_none_or(|t| now.saturating_duration_since(t) >= DEBOUNCE)
}

/// The dirty nodes to send now, at most `room`, each with whether to send it even unchanged:
/// those whose pods changed first, then the rest (resends, other kinds' changes).
pub(super) fn pick(
    dirty: &HashMap<String, bool>,
    urgent: &HashSet<String>,
    room: usize,
    can_send: impl Fn(&str) -> bool,
) -> Vec<(String, bool)> {
    let mut ready: Vec<(String, bool)> = urgent
        .iter()
        .filter(|n| can_send(n))
        .filter_map(|n| Some((n.clone(), *dirty.get(n)?)))
        .take(room)
        .collect();
    let left = room - ready.len();
    ready.extend(
        dirty
            .iter()
            .filter(|(n, _)| !urgent.contains(*n) && can_send(n))
            .map(|(n, f)| (n.clone(), *f))
            .take(left),
    );
    ready
}

/// Whether an agent's heartbeat, heard well after it acknowledged its last set, names
/// another set: it restarted or lost it without registering again.
pub(super) fn disagrees(state: &NodeState, applied: Applied) -> bool {
    state.acked_at.is_some_and(|at| {
        !state.in_flight
            && applied.heard >= at + HEARD_AFTER_ACK
            && applied.generation != state.last_generation
    })
}

/// Which check's slice resends `node`: a hash of its name, so each node is resent once per
/// [`super::RESEND`] and the nodes spread evenly over it.
pub(super) fn resend_slice(node: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::hash::DefaultHasher::new();
    node.hash(&mut h);
    h.finish() % RESEND_SLICES
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_change_after_a_quiet_window_goes_at_once_and_one_within_it_waits() {
        let now = Instant::now();
        assert!(at_once(true, None, now), "nothing sent yet");
        assert!(
            at_once(true, Some(now - DEBOUNCE), now),
            "quiet for a window"
        );
        assert!(
            !at_once(true, Some(now - DEBOUNCE / 5), now),
            "a pass 10 ms ago: wait for the window"
        );
        assert!(!at_once(false, None, now), "nothing to send");
    }

    /// Every node's periodic resend queued, slots for 64: a node whose pod changed goes in
    /// the next batch, not after a random share of the other 4,999.
    #[test]
    fn a_pods_change_goes_before_resends() {
        let mut dirty: HashMap<String, bool> =
            (0..5000).map(|i| (format!("node-{i}"), true)).collect();
        let mut urgent = HashSet::new();
        for node in ["node-4321", "node-17"] {
            dirty.insert(node.into(), true);
            urgent.insert(node.to_string());
        }
        // A node already sending is left for later, whatever its priority.
        let ready = pick(&dirty, &urgent, 64, |n| n != "node-17");
        assert_eq!(ready.len(), 64);
        assert_eq!(ready[0], ("node-4321".to_string(), true));
        assert!(ready.iter().all(|(n, _)| n != "node-17"));
        // Urgent names no longer dirty are skipped; fewer nodes than room all go.
        urgent.insert("gone".into());
        let few: HashMap<String, bool> = [("a".to_string(), false)].into();
        assert_eq!(
            pick(&few, &urgent, 64, |_| true),
            vec![("a".to_string(), false)]
        );
    }

    /// Heartbeats come every second on another connection than the sends: one heard soon
    /// after an acknowledgement may predate it, one heard later says what the agent has.
    #[test]
    fn only_a_later_heartbeat_naming_another_set_resends_it() {
        let at = Instant::now();
        let acked = NodeState {
            last_generation: 7,
            acked_at: Some(at),
            ..NodeState::default()
        };
        let beat = |generation, after: u64| Applied {
            generation,
            heard: at + Duration::from_secs(after),
        };
        // The acknowledged set: nothing to do.
        assert!(!disagrees(&acked, beat(7, 10)));
        // An older set, heard right after the ack: a heartbeat sent before it.
        assert!(!disagrees(&acked, beat(6, 1)));
        // An older set (or none: the agent restarted), heard well after the ack.
        assert!(disagrees(&acked, beat(6, 3)));
        assert!(disagrees(&acked, beat(0, 30)));
        // A newer one than this control plane sent (numbered before a restart).
        assert!(disagrees(&acked, beat(9, 3)));
        // A send under way, or nothing acknowledged yet: the send decides.
        let sending = NodeState {
            in_flight: true,
            last_generation: 7,
            acked_at: Some(at),
            ..NodeState::default()
        };
        assert!(!disagrees(&sending, beat(0, 30)));
        assert!(!disagrees(&NodeState::default(), beat(0, 30)));
    }

    /// Each node is resent once per period, and 5,000 nodes spread over it rather than
    /// going out in a few bursts.
    #[test]
    fn resends_spread_over_the_period() {
        let mut per_slice = vec![0usize; RESEND_SLICES as usize];
        for i in 0..5000 {
            per_slice[resend_slice(&format!("hollow-{}-{}", i / 100, i % 100)) as usize] += 1;
        }
        let mean = 5000 / RESEND_SLICES as usize;
        let busiest = per_slice.iter().copied().max().unwrap_or(0);
        let empty = per_slice.iter().filter(|n| **n == 0).count();
        assert!(busiest <= 3 * mean, "{busiest} nodes in one slice");
        assert_eq!(empty, 0, "slices with no node");
    }
}
