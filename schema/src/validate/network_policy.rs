//! NetworkPolicy and PodDisruptionBudget, checked as Kubernetes checks them (keel stores them
//! without enforcing them).

use super::meta::validate_selector_parts;
use super::{Errors, names};
use crate::intorstr::IntOrString;
use crate::path::FieldPath;
use crate::types::policy::{
    NetworkPolicyPeer, NetworkPolicyPort, NetworkPolicySpec, PodDisruptionBudgetSpec,
};

pub fn validate_network_policy(spec: &NetworkPolicySpec, path: &FieldPath, errs: &mut Errors) {
    match &spec.pod_selector {
        None => errs.required(&path.field("podSelector")),
        Some(sel) => {
            validate_selector_parts(sel, &path.field("podSelector"), errs);
        }
    }
    for (i, t) in spec.policy_types.iter().flatten().enumerate() {
        errs.one_of(
            &path.field("policyTypes").index(i),
            Some(t),
            &["Ingress", "Egress"],
        );
    }
    for (i, rule) in spec.ingress.iter().flatten().enumerate() {
        let at = path.field("ingress").index(i);
        peers(
            rule.from.as_deref().unwrap_or_default(),
            &at.field("from"),
            errs,
        );
        ports(
            rule.ports.as_deref().unwrap_or_default(),
            &at.field("ports"),
            errs,
        );
    }
    for (i, rule) in spec.egress.iter().flatten().enumerate() {
        let at = path.field("egress").index(i);
        peers(
            rule.to.as_deref().unwrap_or_default(),
            &at.field("to"),
            errs,
        );
        ports(
            rule.ports.as_deref().unwrap_or_default(),
            &at.field("ports"),
            errs,
        );
    }
}

fn peers(list: &[NetworkPolicyPeer], path: &FieldPath, errs: &mut Errors) {
    for (i, p) in list.iter().enumerate() {
        let at = path.index(i);
        let set = [
            p.pod_selector.is_some(),
            p.namespace_selector.is_some(),
            p.ip_block.is_some(),
        ];
        if !set.contains(&true) {
            errs.required_because(
                &at,
                "must specify a peer (podSelector, namespaceSelector or ipBlock)",
            );
        }
        if p.ip_block.is_some() && (set[0] || set[1]) {
            errs.forbidden(
                &at.field("ipBlock"),
                "may not be specified with other peer fields",
            );
        }
        for (field, sel) in [
            ("podSelector", &p.pod_selector),
            ("namespaceSelector", &p.namespace_selector),
        ] {
            if let Some(sel) = sel {
                validate_selector_parts(sel, &at.field(field), errs);
            }
        }
        if let Some(block) = &p.ip_block {
            let at = at.field("ipBlock");
            match block.cidr.parse::<ipnet::IpNet>() {
                Err(_) if block.cidr.is_empty() => errs.required(&at.field("cidr")),
                Err(_) => errs.invalid(
                    &at.field("cidr"),
                    block.cidr.as_str(),
                    "must be a valid CIDR",
                ),
                Ok(net) => {
                    for (j, e) in block.except.iter().flatten().enumerate() {
                        match e.parse::<ipnet::IpNet>() {
                            Ok(inner) if net.contains(&inner) && inner != net => {}
                            Ok(_) => errs.invalid(
                                &at.field("except").index(j),
                                e.as_str(),
                                "must be a strict subset of `cidr`",
                            ),
                            Err(_) => errs.invalid(
                                &at.field("except").index(j),
                                e.as_str(),
                                "must be a valid CIDR",
                            ),
                        }
                    }
                }
            }
        }
    }
}

fn ports(list: &[NetworkPolicyPort], path: &FieldPath, errs: &mut Errors) {
    for (i, p) in list.iter().enumerate() {
        let at = path.index(i);
        errs.one_of(
            &at.field("protocol"),
            p.protocol.as_deref(),
            &["TCP", "UDP", "SCTP"],
        );
        match &p.port {
            Some(IntOrString::Int(n)) if !(1..=65535).contains(n) => {
                errs.invalid(
                    &at.field("port"),
                    *n,
                    "must be between 1 and 65535, inclusive",
                );
            }
            Some(IntOrString::Str(name)) => errs.name(&at.field("port"), name, names::port_name),
            _ => {}
        }
        if let Some(end) = p.end_port {
            match &p.port {
                Some(IntOrString::Int(start)) if end >= *start && end <= 65535 => {}
                Some(IntOrString::Int(_)) => errs.invalid(
                    &at.field("endPort"),
                    end,
                    "must be greater than or equal to `port` and at most 65535",
                ),
                _ => errs.forbidden(
                    &at.field("endPort"),
                    "may only be set with a numeric `port`",
                ),
            }
        }
    }
}

pub fn validate_pdb(spec: &PodDisruptionBudgetSpec, path: &FieldPath, errs: &mut Errors) {
    if spec.min_available.is_some() && spec.max_unavailable.is_some() {
        errs.forbidden(
            &path.field("maxUnavailable"),
            "minAvailable and maxUnavailable cannot be both set",
        );
    }
    for (field, value) in [
        ("minAvailable", &spec.min_available),
        ("maxUnavailable", &spec.max_unavailable),
    ] {
        let at = path.field(field);
        match value {
            Some(IntOrString::Int(n)) if *n < 0 => errs.invalid(&at, *n, "must be greater than or equal to 0"),
            Some(IntOrString::Str(s)) => match s.strip_suffix('%').map(str::parse::<i64>) {
                Some(Ok(p)) if (0..=100).contains(&p) => {}
                Some(Ok(_)) => errs.invalid(&at, s.as_str(), "must not be greater than 100%"),
                _ => errs.invalid(&at, s.as_str(), "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%')"),
            },
            _ => {}
        }
    }
    if let Some(sel) = &spec.selector {
        validate_selector_parts(sel, &path.field("selector"), errs);
    }
    errs.one_of(
        &path.field("unhealthyPodEvictionPolicy"),
        spec.unhealthy_pod_eviction_policy.as_deref(),
        &["IfHealthyBudget", "AlwaysAllow"],
    );
}
