//! The fixed part of the Service table, the same whatever the Services: the hooks, the
//! dispatch chain, the verdict maps, the reject, hairpin and local-pods sets, and the
//! masquerade rules.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::expr::{
    EXTERNAL_MARK, destination, has_mark, ip_field, local_destination, not_loopback,
};
use super::ruleset::{
    FAMILY, HAIRPIN, LOCAL_PODS, NO_ENDPOINT_IPS, NO_ENDPOINT_NODE_PORTS, SERVICE_IPS,
    SERVICE_NODE_PORTS, TABLE,
};

/// The fixed part of the table: hooks, the dispatch chain, the maps and the reject sets.
/// Returned as (`add` objects for maps, sets and chains; rules as (chain, expressions)).
pub fn skeleton() -> (Vec<Value>, Vec<(&'static str, Vec<Value>)>) {
    let base = |name: &str, kind: &str, hook: &str, prio: i32| {
        json!({"chain": {"family": FAMILY, "table": TABLE, "name": name,
            "type": kind, "hook": hook, "prio": prio, "policy": "accept"}})
    };
    let ip_type = json!(["ipv4_addr", "inet_proto", "inet_service"]);
    let port_type = json!(["inet_proto", "inet_service"]);
    let objects = vec![
        json!({"map": {"family": FAMILY, "table": TABLE, "name": SERVICE_IPS, "type": ip_type, "map": "verdict"}}),
        json!({"map": {"family": FAMILY, "table": TABLE, "name": SERVICE_NODE_PORTS, "type": port_type, "map": "verdict"}}),
        json!({"set": {"family": FAMILY, "table": TABLE, "name": NO_ENDPOINT_IPS, "type": ip_type}}),
        json!({"set": {"family": FAMILY, "table": TABLE, "name": NO_ENDPOINT_NODE_PORTS, "type": port_type}}),
        json!({"set": {"family": FAMILY, "table": TABLE, "name": HAIRPIN, "type": ["ipv4_addr", "ipv4_addr"]}}),
        json!({"set": {"family": FAMILY, "table": TABLE, "name": LOCAL_PODS, "type": "ipv4_addr", "flags": ["interval"]}}),
        json!({"chain": {"family": FAMILY, "table": TABLE, "name": "services"}}),
        base("nat-prerouting", "nat", "prerouting", -100),
        base("nat-output", "nat", "output", -100),
        base("nat-postrouting", "nat", "postrouting", 100),
        // Just before the filter priority: refusals come before anyone's accept or drop.
        base("filter-input", "filter", "input", -10),
        base("filter-forward", "filter", "forward", -10),
        base("filter-output", "filter", "output", -10),
    ];
    let new_connection =
        json!({"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": "new"}});
    let reject = json!({"reject": {"type": "icmp", "expr": "port-unreachable"}});
    let reject_ips = vec![
        new_connection.clone(),
        json!({"match": {"op": "==", "left": destination(true), "right": format!("@{NO_ENDPOINT_IPS}")}}),
        reject.clone(),
    ];
    let reject_node_ports = vec![
        new_connection,
        local_destination(),
        json!({"match": {"op": "==", "left": destination(false), "right": format!("@{NO_ENDPOINT_NODE_PORTS}")}}),
        reject,
    ];
    let rules = vec![
        (
            "services",
            vec![json!({"vmap": {"key": destination(true), "data": format!("@{SERVICE_IPS}")}})],
        ),
        (
            "services",
            vec![
                local_destination(),
                // 127.0.0.0/8 is never routed to a pod (that would need route_localnet).
                json!({"match": {"op": "!=", "left": ip_field("daddr"), "right": json!({"prefix": {"addr": "127.0.0.0", "len": 8}})}}),
                json!({"vmap": {"key": destination(false), "data": format!("@{SERVICE_NODE_PORTS}")}}),
            ],
        ),
        (
            "nat-prerouting",
            vec![json!({"jump": {"target": "services"}})],
        ),
        ("nat-output", vec![json!({"jump": {"target": "services"}})]),
        (
            "nat-postrouting",
            vec![
                not_loopback(),
                json!({"match": {"op": "in", "left": {"ct": {"key": "status"}}, "right": "dnat"}}),
                json!({"match": {"op": "==", "left": {"concat": [ip_field("saddr"), ip_field("daddr")]}, "right": format!("@{HAIRPIN}")}}),
                json!({"masquerade": null}),
            ],
        ),
        (
            "nat-postrouting",
            vec![
                not_loopback(),
                has_mark(EXTERNAL_MARK),
                json!({"match": {"op": "!=", "left": ip_field("daddr"), "right": format!("@{LOCAL_PODS}")}}),
                json!({"masquerade": null}),
            ],
        ),
        ("filter-input", reject_ips.clone()),
        ("filter-input", reject_node_ports.clone()),
        ("filter-forward", reject_ips.clone()),
        ("filter-output", reject_ips),
        ("filter-output", reject_node_ports),
    ];
    (objects, rules)
}

/// The rule count of each fixed chain, to notice when someone changed them.
pub fn skeleton_rule_counts() -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for (chain, _) in skeleton().1 {
        *out.entry(chain.to_string()).or_default() += 1;
    }
    out
}
