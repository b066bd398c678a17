//! Rulesets turned into `nft -j -f -` transactions: the whole table replaced (at start, and
//! after drift), or only what changed between two rulesets. Either way one transaction, so
//! the kernel switches from the old rules to the new ones with no moment in between.
//!
//! And the other way: what `nft -j list table` shows, reduced to counts, to notice a table
//! someone changed or flushed by hand.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::expr::{hairpin_value, ip_key_value, port_key_value, range_value};
use super::ruleset::{
    FAMILY, HAIRPIN, LOCAL_PODS, NO_ENDPOINT_IPS, NO_ENDPOINT_NODE_PORTS, Ruleset, SERVICE_IPS,
    SERVICE_NODE_PORTS, TABLE,
};
use super::skeleton::{skeleton, skeleton_rule_counts};

fn table() -> Value {
    json!({"table": {"family": FAMILY, "name": TABLE}})
}

fn chain(name: &str) -> Value {
    json!({"chain": {"family": FAMILY, "table": TABLE, "name": name}})
}

fn rule(chain: &str, expr: &Value) -> Value {
    json!({"add": {"rule": {"family": FAMILY, "table": TABLE, "chain": chain, "expr": expr}}})
}

fn affinity_set(name: &str, timeout: u64) -> Value {
    json!({"set": {"family": FAMILY, "table": TABLE, "name": name, "type": "ipv4_addr",
        "flags": ["timeout"], "timeout": timeout}})
}

fn elements(op: &str, set: &str, elem: Vec<Value>) -> Option<Value> {
    (!elem.is_empty()).then(
        || json!({op: {"element": {"family": FAMILY, "table": TABLE, "name": set, "elem": elem}}}),
    )
}

fn transaction(commands: Vec<Value>) -> Value {
    json!({"nftables": commands})
}

/// The whole table, made exactly `r`: created if missing, deleted and made again, in one
/// transaction (connections already open keep their translation in conntrack).
pub fn replace(r: &Ruleset) -> Value {
    let mut cmds = vec![
        json!({"add": table()}),
        json!({"delete": table()}),
        json!({"add": table()}),
    ];
    let (objects, rules) = skeleton();
    cmds.extend(objects.into_iter().map(|o| json!({"add": o})));
    for (name, timeout) in &r.affinity_sets {
        cmds.push(json!({"add": affinity_set(name, *timeout)}));
    }
    cmds.extend(r.chains.keys().map(|c| json!({"add": chain(c)})));
    for (c, exprs) in rules {
        cmds.push(rule(c, &Value::from(exprs)));
    }
    for (c, rs) in &r.chains {
        cmds.extend(rs.iter().map(|e| rule(c, &e.exprs())));
    }
    cmds.extend(add_elements(r, &Ruleset::default()));
    transaction(cmds)
}

/// Element additions: what `new` has and `old` has not (or maps elsewhere).
fn add_elements(new: &Ruleset, old: &Ruleset) -> Vec<Value> {
    let service_ips = new
        .service_ips
        .iter()
        .filter(|(k, c)| old.service_ips.get(k) != Some(c))
        .map(|(k, c)| json!([ip_key_value(k), {"goto": {"target": c}}]))
        .collect();
    let node_ports = new
        .node_ports
        .iter()
        .filter(|(k, c)| old.node_ports.get(k) != Some(c))
        .map(|(k, c)| json!([port_key_value(k), {"goto": {"target": c}}]))
        .collect();
    let no_ips = new
        .no_endpoint_ips
        .difference(&old.no_endpoint_ips)
        .map(ip_key_value)
        .collect();
    let no_ports = new
        .no_endpoint_node_ports
        .difference(&old.no_endpoint_node_ports)
        .map(port_key_value)
        .collect();
    let hairpin = new
        .hairpin
        .difference(&old.hairpin)
        .map(hairpin_value)
        .collect();
    let local = new
        .local_pods
        .filter(|n| old.local_pods != Some(*n))
        .iter()
        .map(range_value)
        .collect();
    [
        elements("add", SERVICE_IPS, service_ips),
        elements("add", SERVICE_NODE_PORTS, node_ports),
        elements("add", NO_ENDPOINT_IPS, no_ips),
        elements("add", NO_ENDPOINT_NODE_PORTS, no_ports),
        elements("add", HAIRPIN, hairpin),
        elements("add", LOCAL_PODS, local),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// Element removals: what `old` has and `new` has not (or maps elsewhere: removed first,
/// then added with its new target).
fn delete_elements(old: &Ruleset, new: &Ruleset) -> Vec<Value> {
    let service_ips = old
        .service_ips
        .iter()
        .filter(|(k, c)| new.service_ips.get(k) != Some(c))
        .map(|(k, _)| ip_key_value(k))
        .collect();
    let node_ports = old
        .node_ports
        .iter()
        .filter(|(k, c)| new.node_ports.get(k) != Some(c))
        .map(|(k, _)| port_key_value(k))
        .collect();
    let no_ips = old
        .no_endpoint_ips
        .difference(&new.no_endpoint_ips)
        .map(ip_key_value)
        .collect();
    let no_ports = old
        .no_endpoint_node_ports
        .difference(&new.no_endpoint_node_ports)
        .map(port_key_value)
        .collect();
    let hairpin = old
        .hairpin
        .difference(&new.hairpin)
        .map(hairpin_value)
        .collect();
    let local = old
        .local_pods
        .filter(|n| new.local_pods != Some(*n))
        .iter()
        .map(range_value)
        .collect();
    [
        elements("delete", SERVICE_IPS, service_ips),
        elements("delete", SERVICE_NODE_PORTS, node_ports),
        elements("delete", NO_ENDPOINT_IPS, no_ips),
        elements("delete", NO_ENDPOINT_NODE_PORTS, no_ports),
        elements("delete", HAIRPIN, hairpin),
        elements("delete", LOCAL_PODS, local),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// Only what changed from `old` to `new`, or `None` when nothing did. The order keeps every
/// step valid inside the transaction: what is referenced exists before the reference, and
/// a chain or set is emptied of references before it is deleted.
pub fn delta(old: &Ruleset, new: &Ruleset) -> Option<Value> {
    if old == new {
        return None;
    }
    let mut cmds = Vec::new();
    for (name, timeout) in &new.affinity_sets {
        if !old.affinity_sets.contains_key(name) {
            cmds.push(json!({"add": affinity_set(name, *timeout)}));
        }
    }
    for c in new.chains.keys().filter(|c| !old.chains.contains_key(*c)) {
        cmds.push(json!({"add": chain(c)}));
    }
    for (c, rules) in &new.chains {
        match old.chains.get(c) {
            Some(before) if before == rules => continue,
            Some(_) => cmds.push(json!({"flush": chain(c)})),
            None => {}
        }
        cmds.extend(rules.iter().map(|e| rule(c, &e.exprs())));
    }
    let removed: Vec<&String> = old
        .chains
        .keys()
        .filter(|c| !new.chains.contains_key(*c))
        .collect();
    cmds.extend(removed.iter().map(|c| json!({"flush": chain(c)})));
    cmds.extend(delete_elements(old, new));
    cmds.extend(add_elements(new, old));
    cmds.extend(removed.iter().map(|c| json!({"delete": chain(c)})));
    for name in old.affinity_sets.keys() {
        if !new.affinity_sets.contains_key(name) {
            cmds.push(json!({"delete": {"set": {"family": FAMILY, "table": TABLE, "name": name}}}));
        }
    }
    Some(transaction(cmds))
}

/// The table deleted (clean shutdown).
pub fn delete_table() -> Value {
    transaction(vec![json!({"delete": table()})])
}

/// A table reduced to what drift would change: each chain's rule count and each map's or
/// set's element count (affinity sets fill themselves, so only their existence counts).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Shape {
    pub chains: BTreeMap<String, usize>,
    pub sets: BTreeMap<String, usize>,
}

impl Shape {
    /// What the table holds when it is exactly `r`.
    pub fn expected(r: &Ruleset) -> Shape {
        let mut chains = skeleton_rule_counts();
        chains.extend(r.chains.iter().map(|(c, rules)| (c.clone(), rules.len())));
        let mut sets = BTreeMap::from([
            (SERVICE_IPS.to_string(), r.service_ips.len()),
            (SERVICE_NODE_PORTS.to_string(), r.node_ports.len()),
            (NO_ENDPOINT_IPS.to_string(), r.no_endpoint_ips.len()),
            (
                NO_ENDPOINT_NODE_PORTS.to_string(),
                r.no_endpoint_node_ports.len(),
            ),
            (HAIRPIN.to_string(), r.hairpin.len()),
            (LOCAL_PODS.to_string(), usize::from(r.local_pods.is_some())),
        ]);
        sets.extend(r.affinity_sets.keys().map(|s| (s.clone(), 0)));
        Shape { chains, sets }
    }

    /// Reads `nft -j list table` output.
    pub fn observed(listing: &Value) -> Shape {
        let mut shape = Shape::default();
        for item in listing["nftables"].as_array().into_iter().flatten() {
            if let Some(c) = item.get("chain") {
                let name = c["name"].as_str().unwrap_or_default().to_string();
                shape.chains.entry(name).or_default();
            } else if let Some(r) = item.get("rule") {
                let name = r["chain"].as_str().unwrap_or_default().to_string();
                *shape.chains.entry(name).or_default() += 1;
            } else if let Some(s) = item.get("map").or_else(|| item.get("set")) {
                let name = s["name"].as_str().unwrap_or_default().to_string();
                let count = if name.starts_with("aff") {
                    0
                } else {
                    s["elem"].as_array().map_or(0, Vec::len)
                };
                shape.sets.insert(name, count);
            }
        }
        shape
    }
}

#[cfg(test)]
mod tests {
    use super::super::ruleset::Ranges;
    use super::*;
    use crate::model::{Protocol, ProxiedPort, ProxiedService};
    use std::net::Ipv4Addr;

    fn services(endpoints: &[&str]) -> Vec<ProxiedService> {
        vec![ProxiedService {
            namespace: "shop".into(),
            name: "web".into(),
            cluster_ip: Some(Ipv4Addr::new(10, 96, 0, 7)),
            affinity: None,
            external_local: false,
            external_ips: Vec::new(),
            ports: vec![ProxiedPort {
                name: None,
                protocol: Protocol::Tcp,
                port: 80,
                node_port: Some(30080),
                endpoints: endpoints.iter().map(|e| e.parse().unwrap()).collect(),
            }],
        }]
    }

    fn ops(t: &Value) -> Vec<String> {
        t["nftables"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                let (op, body) = c.as_object().unwrap().iter().next().unwrap();
                let (kind, obj) = body.as_object().unwrap().iter().next().unwrap();
                let name = obj
                    .get("name")
                    .or_else(|| obj.get("chain"))
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                format!("{op} {kind} {name}")
            })
            .collect()
    }

    #[test]
    fn nothing_changed_is_no_transaction() {
        let r = Ruleset::build(&services(&["10.244.1.5:80"]), None);
        assert!(delta(&r, &r.clone()).is_none());
    }

    #[test]
    fn an_endpoint_added_touches_its_chains_only() {
        let old = Ruleset::build(&services(&["10.244.1.5:80"]), None);
        let new = Ruleset::build(&services(&["10.244.1.5:80", "10.244.1.6:80"]), None);
        let ops = ops(&delta(&old, &new).unwrap());
        assert_eq!(
            ops,
            vec![
                "flush chain svc-shop/web/tcp/80",
                "add rule svc-shop/web/tcp/80",
                "add rule svc-shop/web/tcp/80",
                "add element hairpin",
            ],
            "no map element and no other chain is touched"
        );
    }

    #[test]
    fn the_last_endpoint_gone_moves_the_service_to_the_reject_sets() {
        let old = Ruleset::build(&services(&["10.244.1.5:80"]), None);
        let new = Ruleset::build(&services(&[]), None);
        let ops = ops(&delta(&old, &new).unwrap());
        let position = |s: &str| ops.iter().position(|o| o == s).unwrap();
        assert!(
            position("flush chain svc-shop/web/tcp/80") < position("delete element service-ips")
        );
        assert!(
            position("delete element service-ips") < position("delete chain svc-shop/web/tcp/80")
        );
        assert!(ops.contains(&"add element no-endpoint-ips".to_string()));
        assert!(ops.contains(&"add element no-endpoint-nodeports".to_string()));
        assert!(ops.contains(&"delete chain ext-shop/web/tcp/80".to_string()));
        assert!(ops.contains(&"delete element hairpin".to_string()));
    }

    #[test]
    fn a_replacement_recreates_the_table_in_one_transaction() {
        let r = Ruleset::build(&services(&["10.244.1.5:80"]), None);
        let ops = ops(&replace(&r));
        assert_eq!(
            ops[..3],
            [
                "add table keel-services",
                "delete table keel-services",
                "add table keel-services"
            ]
        );
        assert!(ops.contains(&"add element service-nodeports".to_string()));
    }

    /// The table `nft -j list table` shows once `t` (a replacement) is applied: each added
    /// chain, rule and set, with its added elements (affinity sets fill themselves).
    fn listed_after(t: &Value) -> Value {
        let mut items: Vec<Value> = Vec::new();
        for cmd in t["nftables"].as_array().unwrap() {
            let Some(added) = cmd.get("add") else {
                continue;
            };
            if let Some(e) = added.get("element") {
                let set = items
                    .iter_mut()
                    .filter_map(|i| {
                        let kind = if i.get("set").is_some() { "set" } else { "map" };
                        i.get_mut(kind)
                    })
                    .find(|s| s["name"] == e["name"])
                    .expect("elements go into a set or map made before them");
                let mut elem = set["elem"].as_array().cloned().unwrap_or_default();
                elem.extend(e["elem"].as_array().unwrap().iter().cloned());
                set["elem"] = Value::from(elem);
            } else if added.get("table").is_none() {
                items.push(added.clone());
            }
        }
        json!({"nftables": items})
    }

    #[test]
    fn a_table_made_exactly_has_the_expected_shape() {
        let ranges = Ranges {
            pod_cidr: "10.244.1.0/24".parse().unwrap(),
            cluster_cidr: "10.244.0.0/16".parse().unwrap(),
        };
        let r = Ruleset::build(&services(&["10.244.1.5:80", "10.244.2.7:80"]), Some(ranges));
        assert_eq!(r.hairpin.len(), 2);
        assert!(r.local_pods.is_some());
        // Every set the table holds counts, or an untouched table looks changed by hand at
        // each check and is replaced whole (ClientIP affinity lost each time).
        assert_eq!(
            Shape::observed(&listed_after(&replace(&r))),
            Shape::expected(&r)
        );
    }

    #[test]
    fn a_flushed_table_does_not_have_the_expected_shape() {
        let r = Ruleset::build(&services(&["10.244.1.5:80"]), None);
        let expected = Shape::expected(&r);
        assert_eq!(expected.chains["services"], 2);
        assert_eq!(expected.sets[SERVICE_IPS], 1);
        let listing = json!({"nftables": [
            {"metainfo": {}},
            {"table": {"family": "ip", "name": TABLE}},
            {"chain": {"name": "services"}},
            {"map": {"name": SERVICE_IPS}},
        ]});
        assert_ne!(Shape::observed(&listing), expected);
    }
}
