//! The `nft` JSON vocabulary of the Service table: the [`Rule`]s of Service, external and
//! endpoint chains (kept as data, rendered as JSON only for a transaction), and the
//! expressions and set elements they and the skeleton are made of.

use std::net::{Ipv4Addr, SocketAddr};

use ipnet::Ipv4Net;
use serde_json::{Value, json};

use crate::model::Protocol;

/// Set on traffic that entered through a node port (kube-proxy's masquerade bit).
pub(super) const EXTERNAL_MARK: u32 = 0x4000;

/// ClusterIP, protocol, port.
pub type IpKey = (Ipv4Addr, Protocol, u16);
/// Protocol, node port.
pub type PortKey = (Protocol, u16);

/// One rule of a Service, external or endpoint chain. Kept as data, not as JSON, so that
/// building and comparing 10,000 Services' rules on every update stays cheap; turned into
/// `nft` JSON only for what a transaction sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    /// With `one_in: Some(n)`, matches one new connection in n (`numgen random mod n == 0`).
    Pick {
        one_in: Option<usize>,
        action: Action,
    },
    /// A client in the affinity set goes back to its endpoint's chain.
    Affine {
        set: String,
        chain: String,
    },
    /// Records (or refreshes) the client in the affinity set.
    Remember {
        set: String,
    },
    /// Marks the connection as entered through a node port, then the Service chain.
    External {
        service: String,
    },
    /// Clients in the range (pods) or on this node use every endpoint (Service chain).
    FromRange {
        range: Ipv4Net,
        service: String,
    },
    FromNode {
        service: String,
    },
    Drop,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Dnat(Protocol, SocketAddr),
    Goto(String),
}

impl Action {
    fn exprs(&self) -> Vec<Value> {
        match self {
            Action::Dnat(protocol, e) => vec![
                json!({"match": {"op": "==", "left": {"meta": {"key": "l4proto"}}, "right": protocol_name(*protocol)}}),
                json!({"dnat": {"addr": e.ip().to_string(), "port": e.port()}}),
            ],
            Action::Goto(chain) => vec![goto(chain)],
        }
    }
}

impl Rule {
    /// The rule's expressions, as `nft -j` takes them.
    pub fn exprs(&self) -> Value {
        let exprs = match self {
            Rule::Pick { one_in, action } => {
                let mut out = Vec::new();
                if let Some(n) = one_in {
                    out.push(json!({"match": {"op": "==",
                        "left": {"numgen": {"mode": "random", "mod": n, "offset": 0}}, "right": 0}}));
                }
                out.extend(action.exprs());
                out
            }
            Rule::Affine { set, chain } => vec![
                json!({"match": {"op": "==", "left": ip_field("saddr"), "right": format!("@{set}")}}),
                goto(chain),
            ],
            Rule::Remember { set } => vec![
                json!({"set": {"op": "update", "elem": ip_field("saddr"), "set": format!("@{set}")}}),
            ],
            Rule::External { service } => vec![set_mark(EXTERNAL_MARK), goto(service)],
            Rule::FromRange { range, service } => vec![
                json!({"match": {"op": "==", "left": ip_field("saddr"), "right": prefix(*range)}}),
                goto(service),
            ],
            Rule::FromNode { service } => vec![
                json!({"match": {"op": "==", "left": {"fib": {"result": "type", "flags": ["saddr"]}}, "right": "local"}}),
                goto(service),
            ],
            Rule::Drop => vec![json!({"drop": null})],
        };
        Value::from(exprs)
    }
}

pub(super) fn protocol_name(p: Protocol) -> &'static str {
    match p {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
    }
}

pub(super) fn ip_field(field: &str) -> Value {
    json!({"payload": {"protocol": "ip", "field": field}})
}

pub(super) fn mark() -> Value {
    json!({"meta": {"key": "mark"}})
}

pub fn hairpin_value(ip: &Ipv4Addr) -> Value {
    json!({"concat": [ip.to_string(), ip.to_string()]})
}

pub fn range_value(net: &Ipv4Net) -> Value {
    prefix(*net)
}

pub(super) fn set_mark(bit: u32) -> Value {
    json!({"mangle": {"key": mark(), "value": {"|": [mark(), bit]}}})
}

pub(super) fn has_mark(bit: u32) -> Value {
    json!({"match": {"op": "==", "left": {"&": [mark(), bit]}, "right": bit}})
}

pub(super) fn goto(chain: &str) -> Value {
    json!({"goto": {"target": chain}})
}

pub(super) fn prefix(net: Ipv4Net) -> Value {
    json!({"prefix": {"addr": net.network().to_string(), "len": net.prefix_len()}})
}

/// `ip daddr . meta l4proto . th dport`, or without the address.
pub(super) fn destination(with_address: bool) -> Value {
    let mut parts = Vec::new();
    if with_address {
        parts.push(ip_field("daddr"));
    }
    parts.push(json!({"meta": {"key": "l4proto"}}));
    parts.push(json!({"payload": {"protocol": "th", "field": "dport"}}));
    json!({"concat": parts})
}

/// Loopback traffic cannot be rewritten to another source; it needs no masquerade.
pub(super) fn not_loopback() -> Value {
    json!({"match": {"op": "!=", "left": {"meta": {"key": "oifname"}}, "right": "lo"}})
}

pub(super) fn local_destination() -> Value {
    json!({"match": {"op": "==", "left": {"fib": {"result": "type", "flags": ["daddr"]}}, "right": "local"}})
}

pub fn ip_key_value(key: &IpKey) -> Value {
    json!({"concat": [key.0.to_string(), protocol_name(key.1), key.2]})
}

pub fn port_key_value(key: &PortKey) -> Value {
    json!({"concat": [protocol_name(key.0), key.1]})
}
