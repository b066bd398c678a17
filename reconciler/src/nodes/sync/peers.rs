//! Every node's overlay entry (`NetworkPeer`), numbered as it changes, so an agent is sent
//! only what changed since the list it has: with 5,000 nodes, one node joining costs each
//! agent one entry, not 5,000.

use std::collections::{BTreeMap, HashMap};

use keel_agent_protocol::NetworkPeer;

/// Removed entries remembered for agents that are behind; an agent further behind than
/// that gets the whole list again.
const REMOVED_KEPT: usize = 10_000;

#[derive(Default)]
pub struct PeerLog {
    /// The latest change's number (0: none yet).
    version: u64,
    /// By node name: its entry (`None` once removed) and the change that made it so.
    entries: HashMap<String, (Option<NetworkPeer>, u64)>,
    /// Change number → node name, for what changed since a number.
    changes: BTreeMap<u64, String>,
    removed: usize,
    /// Changes after this number are all still known.
    floor: u64,
    /// The whole list in name order, as of `version`: built once per version, not once per
    /// agent that needs it (every agent's first set carries all 5,000 entries).
    whole: Option<(u64, Vec<NetworkPeer>)>,
}

/// What an agent that has the list as of some version needs to be current.
pub struct PeerChanges {
    pub changed: Vec<NetworkPeer>,
    pub removed: Vec<String>,
}

impl PeerLog {
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Takes the current list (every node with a range and an address), numbering what
    /// differs from the last one.
    pub fn refresh(&mut self, current: Vec<NetworkPeer>) {
        let mut seen = std::collections::HashSet::with_capacity(current.len());
        for peer in current {
            seen.insert(peer.name.clone());
            if let Some((Some(old), _)) = self.entries.get(&peer.name)
                && *old == peer
            {
                continue;
            }
            let name = peer.name.clone();
            self.record(name, Some(peer));
        }
        let gone: Vec<String> = self
            .entries
            .iter()
            .filter(|(name, (entry, _))| entry.is_some() && !seen.contains(*name))
            .map(|(name, _)| name.clone())
            .collect();
        for name in gone {
            self.record(name, None);
        }
        self.trim();
    }

    fn record(&mut self, name: String, entry: Option<NetworkPeer>) {
        self.version += 1;
        if let Some((old, old_version)) = self.entries.get(&name) {
            self.changes.remove(old_version);
            if old.is_none() {
                self.removed -= 1;
            }
        }
        if entry.is_none() {
            self.removed += 1;
        }
        self.changes.insert(self.version, name.clone());
        self.entries.insert(name, (entry, self.version));
    }

    /// Forgets the oldest removals beyond [`REMOVED_KEPT`].
    fn trim(&mut self) {
        while self.removed > REMOVED_KEPT {
            let Some((&version, name)) = self
                .changes
                .iter()
                .find(|(_, name)| self.entries.get(*name).is_some_and(|(e, _)| e.is_none()))
            else {
                break;
            };
            let name = name.clone();
            self.changes.remove(&version);
            self.entries.remove(&name);
            self.removed -= 1;
            self.floor = self.floor.max(version);
        }
    }

    /// The whole list, in name order.
    pub fn all(&mut self) -> Vec<NetworkPeer> {
        if let Some((version, all)) = &self.whole
            && *version == self.version
        {
            return all.clone();
        }
        let mut all: Vec<NetworkPeer> = self
            .entries
            .values()
            .filter_map(|(e, _)| e.clone())
            .collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        self.whole = Some((self.version, all.clone()));
        all
    }

    /// What changed after `version`; `None` when that is too old to know.
    pub fn since(&self, version: u64) -> Option<PeerChanges> {
        if version < self.floor || version > self.version {
            return None;
        }
        let mut out = PeerChanges {
            changed: Vec::new(),
            removed: Vec::new(),
        };
        for name in self.changes.range(version + 1..).map(|(_, n)| n) {
            match self.entries.get(name) {
                Some((Some(peer), _)) => out.changed.push(peer.clone()),
                Some((None, _)) => out.removed.push(name.clone()),
                None => {}
            }
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(name: &str, ip: &str) -> NetworkPeer {
        NetworkPeer {
            name: name.into(),
            node_ip: ip.into(),
            pod_cidr: "10.0.0.0/24".into(),
        }
    }

    #[test]
    fn an_agent_gets_what_changed_since_its_list() {
        let mut log = PeerLog::default();
        log.refresh(vec![peer("a", "1"), peer("b", "2")]);
        let v1 = log.version();
        assert_eq!(log.all(), vec![peer("a", "1"), peer("b", "2")]);
        // Nothing changed: nothing to send, the same version, the same list.
        log.refresh(vec![peer("a", "1"), peer("b", "2")]);
        assert_eq!(log.version(), v1);
        assert_eq!(log.all(), vec![peer("a", "1"), peer("b", "2")]);
        let none = log.since(v1).unwrap();
        assert!(none.changed.is_empty() && none.removed.is_empty());
        // b moves, c joins, a leaves.
        log.refresh(vec![peer("b", "9"), peer("c", "3")]);
        let d = log.since(v1).unwrap();
        let mut changed: Vec<String> = d.changed.iter().map(|p| p.name.clone()).collect();
        changed.sort();
        assert_eq!(changed, ["b", "c"]);
        assert_eq!(d.removed, ["a"]);
        assert_eq!(log.all(), vec![peer("b", "9"), peer("c", "3")]);
        // From the start: everything there is, and the removal.
        let all = log.since(0).unwrap();
        assert_eq!(all.changed.len(), 2);
        // a comes back: no longer removed.
        log.refresh(vec![peer("a", "1"), peer("b", "9"), peer("c", "3")]);
        let back = log.since(v1).unwrap();
        assert!(back.removed.is_empty());
        assert_eq!(back.changed.len(), 3);
        assert!(log.since(log.version() + 1).is_none());
    }

    #[test]
    fn removals_are_forgotten_beyond_a_bound_and_old_versions_then_get_none() {
        let mut log = PeerLog::default();
        let many: Vec<NetworkPeer> = (0..REMOVED_KEPT + 5)
            .map(|i| peer(&format!("n{i}"), "1"))
            .collect();
        log.refresh(many);
        let before = log.version();
        log.refresh(Vec::new());
        assert!(log.removed <= REMOVED_KEPT);
        assert!(log.since(0).is_none(), "too old to know what was removed");
        assert!(
            log.since(before).is_none(),
            "the first removals were forgotten"
        );
        let d = log.since(log.floor).unwrap();
        assert_eq!(d.removed.len(), REMOVED_KEPT);
    }
}
