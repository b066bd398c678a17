//! A `Sync` as a change to the set this agent applied last (`nodes_base_generation`,
//! `pods_base_generation`): its nodes made whole here, before the set is read, so everything
//! after sees a whole list as before; its pods resolved to those kept from the applied set,
//! which the read takes as they were decoded and checked then.

use std::collections::BTreeMap;
use std::sync::Arc;

use keel_agent_protocol::{NetworkPeer, NodeDesired};

use crate::desired::DesiredPod;

/// The last set this agent applied: its generation, its nodes as the control plane sent
/// them, and its pods by "namespace/name".
#[derive(Default)]
pub struct AppliedSet {
    pub generation: u64,
    pub nodes: Vec<NetworkPeer>,
    pub pods: BTreeMap<String, Arc<DesiredPod>>,
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
pub fn make_whole(msg: &mut NodeDesired, applied: &AppliedSet) -> Result<Nodes, String> {
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

/// The applied set's pods that a `Sync` whose pods are a change keeps (all but those it
/// names in `removed_pods`), to be read with the pods it carries; empty for a whole list.
/// Refused, so the control plane sends the whole set, when the change is to a set this
/// agent does not have, or removes a pod that set does not hold (the two disagree on it).
pub fn kept_pods(msg: &NodeDesired, applied: &AppliedSet) -> Result<Vec<Arc<DesiredPod>>, String> {
    if msg.pods_base_generation == 0 {
        if !msg.removed_pods.is_empty() {
            return Err("removed_pods without pods_base_generation".into());
        }
        return Ok(Vec::new());
    }
    if applied.generation != msg.pods_base_generation {
        return Err(format!(
            "the pods are a change to the set of generation {}, but this agent last applied {}",
            msg.pods_base_generation, applied.generation
        ));
    }
    let mut kept = applied.pods.clone();
    for key in &msg.removed_pods {
        if kept.remove(key).is_none() {
            return Err(format!(
                "removed_pods: {key:?} is not a pod of the set of generation {}",
                applied.generation
            ));
        }
    }
    Ok(kept.into_values().collect())
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
        let applied = AppliedSet {
            generation: 7,
            nodes: vec![peer("a", "1"), peer("b", "2"), peer("c", "3")],
            ..Default::default()
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
        let err = make_whole(&mut stale, &AppliedSet::default()).unwrap_err();
        assert!(err.contains("generation 7"), "{err}");
        // Removals without a base are refused, not ignored.
        let mut bad = NodeDesired {
            removed_nodes: vec!["a".into()],
            ..Default::default()
        };
        assert!(make_whole(&mut bad, &applied).is_err());
    }

    fn pod(name: &str) -> Arc<DesiredPod> {
        let pod: keel_schema::types::pod::Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": "default", "uid": name},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "busybox"}]},
        }))
        .expect("a pod");
        Arc::new(DesiredPod {
            pod,
            uid: name.into(),
            namespace: "default".into(),
            name: name.into(),
            hash: "h".into(),
            config_maps: Default::default(),
            secrets: Default::default(),
            claims: Default::default(),
            service_env: Default::default(),
        })
    }

    fn names(pods: &[Arc<DesiredPod>]) -> Vec<&str> {
        pods.iter().map(|p| p.name.as_str()).collect()
    }

    #[test]
    fn a_change_to_the_pods_keeps_the_applied_ones_it_does_not_remove() {
        let applied = AppliedSet {
            generation: 7,
            pods: ["a", "b", "c"]
                .into_iter()
                .map(|n| (format!("default/{n}"), pod(n)))
                .collect(),
            ..Default::default()
        };
        let change = NodeDesired {
            pods_base_generation: 7,
            removed_pods: vec!["default/a".into(), "default/c".into()],
            ..Default::default()
        };
        assert_eq!(names(&kept_pods(&change, &applied).unwrap()), ["b"]);
        // A whole list keeps nothing.
        let whole = NodeDesired::default();
        assert!(kept_pods(&whole, &applied).unwrap().is_empty());
        // A change to another set, or one removing a pod the set does not hold, is
        // refused: the control plane and this agent disagree on what it has.
        let other = NodeDesired {
            pods_base_generation: 6,
            ..Default::default()
        };
        let err = kept_pods(&other, &applied).unwrap_err();
        assert!(
            err.contains("generation 6") && err.contains("applied 7"),
            "{err}"
        );
        let unknown = NodeDesired {
            pods_base_generation: 7,
            removed_pods: vec!["default/z".into()],
            ..Default::default()
        };
        let err = kept_pods(&unknown, &applied).unwrap_err();
        assert!(err.contains("\"default/z\""), "{err}");
        let loose = NodeDesired {
            removed_pods: vec!["default/a".into()],
            ..Default::default()
        };
        assert!(kept_pods(&loose, &applied).is_err());
    }
}
