//! Similar events combined, as Kubernetes' event aggregator does: events about one object
//! with the same type, reason and source but different messages ("Created pod: web-x",
//! "Created pod: web-y", …) are each their own Event for the first [`MAX_DISTINCT`] messages
//! within [`WINDOW`]; after that they become one Event, "(combined from similar events):"
//! with the latest message and a count. A 100,000-replica ReplicaSet then has 11 Events
//! about it, not 100,000.

use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::time::{Duration, Instant};

use super::Record;

/// Distinct messages kept as their own Events per similar group and window.
pub const MAX_DISTINCT: usize = 10;
/// How long a group remembers its messages.
pub const WINDOW: Duration = Duration::from_secs(600);
/// Groups remembered at once; beyond this the stalest are forgotten (their next events
/// start a new group, so nothing is lost, only combined later).
const MAX_GROUPS: usize = 4096;

pub const COMBINED_PREFIX: &str = "(combined from similar events): ";

struct Group {
    messages: HashSet<u64>,
    last: Instant,
}

#[derive(Default)]
pub struct Aggregator {
    groups: HashMap<u64, Group>,
}

fn hash(value: impl Hash) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    value.hash(&mut h);
    h.finish()
}

/// What makes events similar: everything but the message.
pub fn similarity(r: &Record) -> u64 {
    hash((
        &r.involved.uid,
        &r.involved.kind,
        &r.involved.namespace,
        &r.involved.name,
        r.type_,
        &r.reason,
        r.component,
        &r.host,
    ))
}

impl Aggregator {
    /// Whether `record` is to be combined with its similar events (its message then says
    /// so); otherwise it stays an Event of its own.
    pub fn combine(&mut self, record: &mut Record, now: Instant) -> bool {
        let key = similarity(record);
        if self.groups.len() >= MAX_GROUPS && !self.groups.contains_key(&key) {
            self.groups
                .retain(|_, g| now.duration_since(g.last) < WINDOW);
            if self.groups.len() >= MAX_GROUPS {
                // All recent: forget the stalest half.
                let mut ages: Vec<Instant> = self.groups.values().map(|g| g.last).collect();
                ages.sort();
                let cutoff = ages[ages.len() / 2];
                self.groups.retain(|_, g| g.last > cutoff);
            }
        }
        let group = self.groups.entry(key).or_insert_with(|| Group {
            messages: HashSet::new(),
            last: now,
        });
        if now.duration_since(group.last) >= WINDOW {
            group.messages.clear();
        }
        group.last = now;
        let message = hash(&record.message);
        if group.messages.contains(&message) || group.messages.len() < MAX_DISTINCT {
            group.messages.insert(message);
            return false;
        }
        record.message = format!("{COMBINED_PREFIX}{}", record.message);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_schema::types::core::EventType;
    use keel_schema::types::meta::ObjectReference;

    fn created(owner: &str, pod: usize) -> Record {
        Record {
            involved: ObjectReference {
                kind: Some("ReplicaSet".into()),
                namespace: Some("default".into()),
                name: Some(owner.into()),
                uid: Some(format!("uid-{owner}")),
                ..Default::default()
            },
            type_: EventType::Normal,
            reason: "SuccessfulCreate".into(),
            message: format!("Created pod: {owner}-{pod}"),
            component: "replicaset-controller",
            host: None,
        }
    }

    #[test]
    fn the_first_ten_messages_stay_apart_then_they_combine() {
        let mut a = Aggregator::default();
        let now = Instant::now();
        let combined: Vec<bool> = (0..15)
            .map(|i| a.combine(&mut created("web", i), now))
            .collect();
        assert_eq!(combined.iter().filter(|c| !**c).count(), MAX_DISTINCT);
        assert!(combined[MAX_DISTINCT..].iter().all(|c| *c));
        let mut late = created("web", 99);
        assert!(a.combine(&mut late, now));
        assert_eq!(
            late.message,
            "(combined from similar events): Created pod: web-99"
        );
        // A message seen before stays its own Event (it counts up there).
        assert!(!a.combine(&mut created("web", 3), now));
        // Another object is another group.
        assert!(!a.combine(&mut created("api", 0), now));
        // After the window the group starts again.
        assert!(!a.combine(&mut created("web", 50), now + WINDOW));
    }

    #[test]
    fn many_groups_stay_bounded() {
        let mut a = Aggregator::default();
        let now = Instant::now();
        for i in 0..(MAX_GROUPS * 3) {
            a.combine(&mut created(&format!("rs{i}"), 0), now);
        }
        assert!(a.groups.len() <= MAX_GROUPS);
    }
}
