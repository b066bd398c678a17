//! A `Sync`'s nodes as a change to the list of the set this agent applied last
//! (`nodes_base_generation`): made whole here, before the set is read, so everything after
//! sees a whole list as before.

use std::collections::BTreeMap;

use keel_agent_protocol::{NetworkPeer, NodeDesired};

/// The nodes of the last set this agent applied, and that set's generation.
#[derive(Default)]
pub struct AppliedNodes {
    pub generation: u64,
    pub nodes: Vec<NetworkPeer>,
}

/// What a `Sync`'s nodes are, once made whole.
#[derive(Debug, PartialEq, Eq)]
pub enum Nodes {
    /// `msg.nodes` is the whole list.
    Whole,
    /// The list is the one applied last, unchanged (`msg.nodes` is left empty: with 5,000
    /// nodes, most sets change pods, not nodes, and need not read the list again).
    Unchanged,
}

/// Makes `msg.nodes` the whole list (or says it is unchanged), or says why it cannot (the
/// change is to a set this agent does not have: it restarted, or applied another since).
pub fn make_whole(msg: &mut NodeDesired, applied: &AppliedNodes) -> Result<Nodes, String> {
    if msg.nodes_base_generation == 0 {
        if !msg.removed_nodes.is_empty() {
            return Err("removed_nodes without nodes_base_generation".into());
        }
        return Ok(Nodes::Whole);
    }
    if applied.generation != msg.nodes_base_generation {
        return Err(format!(
            "the nodes are a change to the set of generation {}, but this agent last applied {}",
            msg.nodes_base_generation, applied.generation
        ));
    }
    if msg.nodes.is_empty() && msg.removed_nodes.is_empty() {
        msg.nodes_base_generation = 0;
        return Ok(Nodes::Unchanged);
    }
    let mut by_name: BTreeMap<String, NetworkPeer> = applied
        .nodes
        .iter()
        .map(|p| (p.name.clone(), p.clone()))
        .collect();
    for name in &msg.removed_nodes {
        by_name.remove(name);
    }
    for peer in msg.nodes.drain(..) {
        by_name.insert(peer.name.clone(), peer);
    }
    msg.nodes = by_name.into_values().collect();
    msg.nodes_base_generation = 0;
    msg.removed_nodes.clear();
    Ok(Nodes::Whole)
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
    fn a_change_applies_to_the_list_it_was_made_for_and_no_other() {
        let applied = AppliedNodes {
            generation: 7,
            nodes: vec![peer("a", "1"), peer("b", "2"), peer("c", "3")],
        };
        let mut msg = NodeDesired {
            generation: 9,
            nodes: vec![peer("b", "20"), peer("d", "4")],
            removed_nodes: vec!["a".into()],
            nodes_base_generation: 7,
            ..Default::default()
        };
        assert_eq!(make_whole(&mut msg, &applied), Ok(Nodes::Whole));
        assert_eq!(
            msg.nodes,
            vec![peer("b", "20"), peer("c", "3"), peer("d", "4")]
        );
        assert_eq!(msg.nodes_base_generation, 0);

        // A whole list stays as it is.
        let mut whole = NodeDesired {
            nodes: vec![peer("z", "9")],
            ..Default::default()
        };
        assert_eq!(make_whole(&mut whole, &applied), Ok(Nodes::Whole));
        assert_eq!(whole.nodes, vec![peer("z", "9")]);

        // No change at all: the applied list stands, without reading it again.
        let mut same = NodeDesired {
            nodes_base_generation: 7,
            ..Default::default()
        };
        assert_eq!(make_whole(&mut same, &applied), Ok(Nodes::Unchanged));
        assert!(same.nodes.is_empty());

        // A change to a set this agent does not have (it restarted: nothing applied).
        let mut stale = NodeDesired {
            nodes_base_generation: 7,
            ..Default::default()
        };
        let err = make_whole(&mut stale, &AppliedNodes::default()).unwrap_err();
        assert!(err.contains("generation 7"), "{err}");
        // Removals without a base are refused, not ignored.
        let mut bad = NodeDesired {
            removed_nodes: vec!["a".into()],
            ..Default::default()
        };
        assert!(make_whole(&mut bad, &applied).is_err());
    }
}
