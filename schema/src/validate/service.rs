//! Services: type, ports, node ports, cluster IP, session affinity.

use std::collections::BTreeSet;

use super::meta::validate_label_map;
use super::pod::PROTOCOLS;
use super::{Errors, names};
use crate::intorstr::IntOrString;
use crate::path::FieldPath;
use crate::types::core::{ServicePort, ServiceSpec};

pub const NODE_PORT_RANGE: (i64, i64) = (30000, 32767);
const TYPES: &[&str] = &["ClusterIP", "NodePort", "LoadBalancer"];
/// The types reached from outside the cluster, through node ports.
pub const EXTERNAL_TYPES: &[&str] = &["NodePort", "LoadBalancer"];

pub fn validate_service(spec: &ServiceSpec, path: &FieldPath, errs: &mut Errors) {
    let kind = spec.type_.as_deref().unwrap_or("ClusterIP");
    if !TYPES.contains(&kind) {
        errs.unsupported(&path.field("type"), kind, TYPES);
    }
    let headless = validate_cluster_ip(spec, kind, path, errs);
    if let Some(sel) = &spec.selector {
        validate_label_map(sel, &path.field("selector"), errs);
    }
    let ports = spec.ports.as_deref().unwrap_or(&[]);
    if ports.is_empty() && !headless {
        errs.required(&path.field("ports"));
    }
    let mut seen = SeenPorts::default();
    for (i, p) in ports.iter().enumerate() {
        let pp = path.field("ports").index(i);
        validate_port(p, ports.len(), kind, &pp, &mut seen, errs);
    }
    validate_affinity(spec, path, errs);
    validate_external_policy(spec, kind, path, errs);
    if let Some(ip) = spec.load_balancer_ip.as_deref().filter(|ip| !ip.is_empty()) {
        let at = path.field("loadBalancerIP");
        if kind != "LoadBalancer" {
            errs.forbidden(
                &at,
                format!("may only be set when `type` is 'LoadBalancer', not '{kind}'"),
            );
        } else if ip.parse::<std::net::Ipv4Addr>().is_err() {
            errs.invalid(&at, ip, "must be a valid IPv4 address");
        }
    }
}

/// `externalTrafficPolicy` only where traffic comes from outside: node ports.
fn validate_external_policy(spec: &ServiceSpec, kind: &str, path: &FieldPath, errs: &mut Errors) {
    let Some(policy) = spec.external_traffic_policy.as_deref() else {
        return;
    };
    let at = path.field("externalTrafficPolicy");
    errs.one_of(&at, Some(policy), &["Cluster", "Local"]);
    if !EXTERNAL_TYPES.contains(&kind) {
        errs.forbidden(
            &at,
            format!("may only be set when `type` is one of {EXTERNAL_TYPES:?}, not '{kind}'"),
        );
    }
}

/// `clusterIP`: empty, `None` (headless, not for NodePort) or an IPv4 address. True when
/// headless.
fn validate_cluster_ip(
    spec: &ServiceSpec,
    kind: &str,
    path: &FieldPath,
    errs: &mut Errors,
) -> bool {
    let cluster_ip = spec.cluster_ip.as_deref().unwrap_or("");
    let headless = cluster_ip == "None";
    if !cluster_ip.is_empty() && !headless && cluster_ip.parse::<std::net::Ipv4Addr>().is_err() {
        errs.invalid(
            &path.field("clusterIP"),
            cluster_ip,
            "must be empty, 'None', or a valid IPv4 address",
        );
    }
    if headless && EXTERNAL_TYPES.contains(&kind) {
        errs.invalid(
            &path.field("clusterIP"),
            cluster_ip,
            format!("may not be set to 'None' for {kind} services"),
        );
    }
    headless
}

/// What earlier ports of the Service took.
#[derive(Default)]
struct SeenPorts<'a> {
    names: BTreeSet<&'a str>,
    protocols: BTreeSet<(i64, &'a str)>,
    node_ports: BTreeSet<(i64, &'a str)>,
}

fn validate_port<'a>(
    p: &'a ServicePort,
    count: usize,
    kind: &str,
    pp: &FieldPath,
    seen: &mut SeenPorts<'a>,
    errs: &mut Errors,
) {
    match p.name.as_deref().filter(|n| !n.is_empty()) {
        None if count > 1 => errs.required_because(
            &pp.field("name"),
            "must be specified when there is more than one port",
        ),
        None => {}
        Some(name) => {
            errs.name(&pp.field("name"), name, names::dns1123_label);
            if !seen.names.insert(name) {
                errs.duplicate(&pp.field("name"), name);
            }
        }
    }
    errs.range(&pp.field("port"), p.port, 1, 65535);
    let protocol = p.protocol.as_deref().unwrap_or("TCP");
    errs.one_of(&pp.field("protocol"), Some(protocol), PROTOCOLS);
    if !seen.protocols.insert((p.port, protocol)) {
        errs.duplicate(pp, format!("{}/{protocol}", p.port).as_str());
    }
    match &p.target_port {
        // Kubernetes reads 0 and "" as "same as port".
        None | Some(IntOrString::Int(0)) => {}
        Some(IntOrString::Str(s)) if s.is_empty() => {}
        Some(IntOrString::Int(t)) => errs.range(&pp.field("targetPort"), *t, 1, 65535),
        Some(IntOrString::Str(name)) => errs.name(&pp.field("targetPort"), name, names::port_name),
    }
    if let Some(np) = p.node_port.filter(|n| *n != 0) {
        let at = pp.field("nodePort");
        if !EXTERNAL_TYPES.contains(&kind) {
            errs.forbidden(&at, format!("may not be used when `type` is '{kind}'"));
        } else if np < NODE_PORT_RANGE.0 || np > NODE_PORT_RANGE.1 {
            errs.invalid(
                &at,
                np,
                format!(
                    "provided port is not in the valid range. The range of valid ports is {}-{}",
                    NODE_PORT_RANGE.0, NODE_PORT_RANGE.1
                ),
            );
        } else if !seen.node_ports.insert((np, protocol)) {
            errs.duplicate(&at, np);
        }
    }
}

fn validate_affinity(spec: &ServiceSpec, path: &FieldPath, errs: &mut Errors) {
    let affinity = spec.session_affinity.as_deref().unwrap_or("None");
    errs.one_of(
        &path.field("sessionAffinity"),
        Some(affinity),
        &["None", "ClientIP"],
    );
    if let Some(config) = &spec.session_affinity_config {
        let at = path.field("sessionAffinityConfig");
        if affinity != "ClientIP" {
            errs.forbidden(&at, "may only be set when `sessionAffinity` is 'ClientIP'");
        }
        if let Some(t) = config.client_ip.as_ref().and_then(|c| c.timeout_seconds) {
            errs.range(&at.field("clientIP").field("timeoutSeconds"), t, 1, 86400);
        }
    }
}
