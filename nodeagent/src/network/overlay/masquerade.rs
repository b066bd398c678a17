//! Pod traffic leaving the cluster goes out with the node's address; traffic between pods
//! never is translated. One nftables table of the agent's own (`ip keel`), replaced whole in
//! one transaction (`nft -j -f -`: the `nft` command's JSON input, so no rule text is ever
//! assembled from strings), and two iptables rules that let pod traffic through a FORWARD
//! chain whose policy is drop (Docker sets one on the hosts it runs on).

use ipnet::Ipv4Net;
use serde_json::{Value, json};

use crate::network::command::{self, CommandError};

/// The agent's nftables table (family `ip`).
pub const TABLE: &str = "keel";
/// The comment on the agent's iptables FORWARD rules.
pub const FORWARD_COMMENT: &str = "keel pod network";

/// The transaction that makes the table exactly this: created if missing, emptied, filled.
pub fn ruleset(cluster: Ipv4Net) -> Value {
    let prefix =
        json!({"prefix": {"addr": cluster.network().to_string(), "len": cluster.prefix_len()}});
    let field = |f: &str| json!({"payload": {"protocol": "ip", "field": f}});
    json!({"nftables": [
        {"add": {"table": {"family": "ip", "name": TABLE}}},
        {"flush": {"table": {"family": "ip", "name": TABLE}}},
        {"add": {"chain": {"family": "ip", "table": TABLE, "name": "postrouting",
            "type": "nat", "hook": "postrouting", "prio": 100, "policy": "accept"}}},
        {"add": {"rule": {"family": "ip", "table": TABLE, "chain": "postrouting", "expr": [
            {"match": {"op": "==", "left": field("saddr"), "right": prefix}},
            {"match": {"op": "!=", "left": field("daddr"), "right": prefix}},
            {"masquerade": null}
        ]}}}
    ]})
}

/// Makes the table match `cluster`, and the FORWARD rules exist.
pub async fn converge(cluster: Ipv4Net) -> Result<(), CommandError> {
    let text = serde_json::to_vec(&ruleset(cluster)).unwrap_or_default();
    command::run_with("nft", &["-j", "-f", "-"], &[], Some(&text)).await?;
    forward_rules(cluster).await
}

/// `iptables -C` then `-I`: the rules are added once, at the top of FORWARD, and only when
/// missing. Without iptables there is no such chain to get through.
async fn forward_rules(cluster: Ipv4Net) -> Result<(), CommandError> {
    let cidr = cluster.to_string();
    for side in ["-s", "-d"] {
        let rule = |op: &'static str| {
            vec![
                "-w",
                "5",
                op,
                "FORWARD",
                side,
                cidr.as_str(),
                "-m",
                "comment",
                "--comment",
                FORWARD_COMMENT,
                "-j",
                "ACCEPT",
            ]
        };
        match command::run("iptables", &rule("-C")).await {
            Ok(_) => {}
            Err(CommandError::Missing { .. }) => return Ok(()),
            Err(CommandError::Failed { .. }) => {
                command::run("iptables", &rule("-I")).await?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_traffic_from_the_cluster_to_outside_it_is_masqueraded() {
        let rules = ruleset("10.244.0.0/16".parse().unwrap());
        let cmds = rules["nftables"].as_array().unwrap();
        assert_eq!(cmds[1]["flush"]["table"]["name"], TABLE, "replaced whole");
        let expr = &cmds[3]["add"]["rule"]["expr"];
        assert_eq!(expr[0]["match"]["op"], "==");
        assert_eq!(expr[0]["match"]["right"]["prefix"]["addr"], "10.244.0.0");
        assert_eq!(expr[1]["match"]["op"], "!=");
        assert_eq!(expr[1]["match"]["left"]["payload"]["field"], "daddr");
        assert_eq!(expr[2], json!({"masquerade": null}));
    }
}
