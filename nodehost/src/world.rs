//! The LAN's way out to the world, as its router would give it: the machine forwards the
//! node hosts' traffic and masquerades what leaves through its other interfaces. An
//! nftables table of the LAN's own (replaced whole, dropped whole), and iptables FORWARD
//! rules past Docker's drop policy, each marked with the LAN's comment.

use std::io::Write;
use std::process::{Command, Stdio};

use anyhow::{Context, bail};
use ipnet::Ipv4Net;
use serde_json::{Value, json};

/// The nftables table (family `ip`) of the LAN whose machine end is `uplink`.
fn table(uplink: &str) -> String {
    format!("{uplink}-world")
}

fn comment(uplink: &str) -> String {
    format!("keel node hosts {uplink}")
}

/// Traffic from the LAN that leaves by any interface but the LAN's is masqueraded.
fn ruleset(uplink: &str, cidr: Ipv4Net) -> Value {
    let table = table(uplink);
    json!({"nftables": [
        {"add": {"table": {"family": "ip", "name": table}}},
        {"flush": {"table": {"family": "ip", "name": table}}},
        {"add": {"chain": {"family": "ip", "table": table, "name": "postrouting",
            "type": "nat", "hook": "postrouting", "prio": 100, "policy": "accept"}}},
        {"add": {"rule": {"family": "ip", "table": table, "chain": "postrouting", "expr": [
            {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}},
                "right": {"prefix": {"addr": cidr.network().to_string(), "len": cidr.prefix_len()}}}},
            {"match": {"op": "!=", "left": {"meta": {"key": "oifname"}}, "right": uplink}},
            {"masquerade": null}
        ]}}}
    ]})
}

/// The FORWARD rules: out of the LAN, and the answers back in.
fn forward_rules(uplink: &str) -> [Vec<String>; 2] {
    let comment = comment(uplink);
    let tail = ["-m", "comment", "--comment", &comment, "-j", "ACCEPT"].map(str::to_string);
    let out: Vec<String> = ["-i", uplink].iter().map(|s| s.to_string()).collect();
    let back: Vec<String> = [
        "-o",
        uplink,
        "-m",
        "conntrack",
        "--ctstate",
        "RELATED,ESTABLISHED",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    [
        out.into_iter().chain(tail.clone()).collect(),
        back.into_iter().chain(tail).collect(),
    ]
}

fn iptables(op: &str, rule: &[String]) -> anyhow::Result<bool> {
    let status = Command::new("iptables")
        .args(["-w", "5", op, "FORWARD"])
        .args(rule)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .context("cannot run iptables")?;
    Ok(status.success())
}

pub fn open(uplink: &str, cidr: Ipv4Net) -> anyhow::Result<()> {
    let mut nft = Command::new("nft")
        .args(["-j", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot run nft (install nftables)")?;
    if let Some(mut stdin) = nft.stdin.take() {
        stdin.write_all(ruleset(uplink, cidr).to_string().as_bytes())?;
    }
    let out = nft.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "nft refused the LAN's masquerade table: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    for rule in forward_rules(uplink) {
        if !iptables("-C", &rule)? && !iptables("-I", &rule)? {
            bail!("iptables refused the rule FORWARD {}", rule.join(" "));
        }
    }
    Ok(())
}

/// Removes what [`open`] made; what is gone already is skipped.
pub fn close(uplink: &str) {
    let _ = Command::new("nft")
        .args(["delete", "table", "ip", &table(uplink)])
        .stderr(Stdio::null())
        .status();
    for rule in forward_rules(uplink) {
        // A rule added twice by hand is deleted twice; the bound stops a runaway loop.
        for _ in 0..8 {
            if !matches!(iptables("-D", &rule), Ok(true)) {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_traffic_from_the_lan_leaving_elsewhere_is_masqueraded() {
        let rules = ruleset("keel-h", "10.250.0.0/24".parse().unwrap());
        let cmds = rules["nftables"].as_array().unwrap();
        assert_eq!(cmds[1]["flush"]["table"]["name"], "keel-h-world");
        let expr = &cmds[3]["add"]["rule"]["expr"];
        assert_eq!(expr[0]["match"]["right"]["prefix"]["addr"], "10.250.0.0");
        assert_eq!(expr[1]["match"]["op"], "!=");
        assert_eq!(expr[1]["match"]["right"], "keel-h");
        assert_eq!(expr[2], json!({"masquerade": null}));
    }

    #[test]
    fn the_forward_rules_let_the_lan_out_and_only_answers_in() {
        let [out, back] = forward_rules("keel-h");
        assert_eq!(out[..2], ["-i", "keel-h"]);
        assert!(back.contains(&"RELATED,ESTABLISHED".to_string()));
        assert!(out.contains(&"keel node hosts keel-h".to_string()));
    }
}
