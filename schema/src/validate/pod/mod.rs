//! Pod specs: containers, ports, env, resources, probes, volumes, tolerations.

mod container;
mod values;
mod volumes;

use std::collections::BTreeSet;

use super::meta::validate_label_map;
use super::{Errors, names};
use crate::path::FieldPath;
use crate::types::pod::{PodSpec, Toleration};
use container::validate_container;
use volumes::validate_volumes;

pub const ANY_RESTART: &[&str] = &["Always", "OnFailure", "Never"];
/// Jobs run pods to completion.
pub const JOB_RESTART: &[&str] = &["OnFailure", "Never"];
pub const PROTOCOLS: &[&str] = &["TCP", "UDP"];
pub(super) const RESOURCES: &[&str] = &["cpu", "memory"];

/// Validates a pod spec. `restart` lists the restart policies the owning kind allows
/// (`Always` only for controllers that keep pods running; `OnFailure`/`Never` for Jobs).
pub fn validate_pod_spec(spec: &PodSpec, path: &FieldPath, errs: &mut Errors, restart: &[&str]) {
    let volumes = validate_volumes(
        spec.volumes.as_deref().unwrap_or(&[]),
        &path.field("volumes"),
        errs,
    );
    if spec.containers.is_empty() {
        errs.required(&path.field("containers"));
    }
    // Names are unique across init and app containers: they share status, logs and events.
    let mut container_names = BTreeSet::new();
    for (field, i, c) in spec.all_containers() {
        let cp = path.field(field).index(i);
        if field == "initContainers" {
            // An init container runs to completion: nothing waits on it being ready or alive.
            let probes = [
                ("livenessProbe", c.liveness_probe.is_some()),
                ("readinessProbe", c.readiness_probe.is_some()),
                ("startupProbe", c.startup_probe.is_some()),
            ];
            for (probe, set) in probes {
                if set {
                    errs.forbidden(
                        &cp.field(probe),
                        "may not be set for init containers, which run to completion",
                    );
                }
            }
        }
        if c.name.is_empty() {
            errs.required(&cp.field("name"));
        } else {
            errs.name(&cp.field("name"), &c.name, names::dns1123_label);
            if !container_names.insert(c.name.as_str()) {
                errs.duplicate(&cp.field("name"), &c.name);
            }
        }
        validate_container(c, &cp, errs, &volumes);
        if spec.host_network == Some(true) {
            // The pod has the node's ports: a host port can only be the container's own.
            for (j, p) in c.ports.iter().flatten().enumerate() {
                if let Some(hp) = p.host_port.filter(|h| *h != 0 && *h != p.container_port) {
                    errs.invalid(
                        &cp.field("ports").index(j).field("hostPort"),
                        hp,
                        "must match `containerPort` when `hostNetwork` is true",
                    );
                }
            }
        }
        if let Some(sc) = &c.security_context {
            validate_security_context(sc, &cp.field("securityContext"), errs);
        }
    }
    match spec.restart_policy.as_deref() {
        None if restart == JOB_RESTART => errs.required_because(
            &path.field("restartPolicy"),
            "a Job's pods must set restartPolicy to \"OnFailure\" or \"Never\"",
        ),
        value => errs.one_of(&path.field("restartPolicy"), value, restart),
    }
    if let Some(sel) = &spec.node_selector {
        validate_label_map(sel, &path.field("nodeSelector"), errs);
    }
    if let Some(node) = spec.node_name.as_deref().filter(|n| !n.is_empty()) {
        errs.name(&path.field("nodeName"), node, names::dns1123_subdomain);
    }
    errs.non_negative(
        &path.field("terminationGracePeriodSeconds"),
        spec.termination_grace_period_seconds,
    );
    for (i, t) in spec.tolerations.iter().flatten().enumerate() {
        validate_toleration(t, &path.field("tolerations").index(i), errs);
    }
    validate_dns(spec, path, errs);
}

/// The most nameservers and search domains a resolver reads (glibc's limits, as Kubernetes
/// enforces them).
const MAX_NAMESERVERS: usize = 3;
const MAX_SEARCHES: usize = 32;

fn validate_dns(spec: &PodSpec, path: &FieldPath, errs: &mut Errors) {
    for field in ["hostname", "subdomain"] {
        let value = if field == "hostname" {
            &spec.hostname
        } else {
            &spec.subdomain
        };
        if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
            errs.name(&path.field(field), v, names::dns1123_label);
        }
    }
    let policy = spec.dns_policy.as_deref();
    errs.one_of(
        &path.field("dnsPolicy"),
        policy,
        &["ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"],
    );
    let config = spec.dns_config.as_ref();
    let at = path.field("dnsConfig");
    let nameservers = config.and_then(|c| c.nameservers.as_deref()).unwrap_or(&[]);
    if policy == Some("None") && nameservers.is_empty() {
        errs.required_because(
            &at.field("nameservers"),
            "with dnsPolicy \"None\" the pod has only the nameservers dnsConfig gives",
        );
    }
    if nameservers.len() > MAX_NAMESERVERS {
        errs.invalid(
            &at.field("nameservers"),
            format!("{} nameservers", nameservers.len()).as_str(),
            "at most 3 nameservers",
        );
    }
    for (i, ns) in nameservers.iter().enumerate() {
        if ns.parse::<std::net::IpAddr>().is_err() {
            errs.invalid(
                &at.field("nameservers").index(i),
                ns,
                "must be an IP address",
            );
        }
    }
    let searches = config.and_then(|c| c.searches.as_deref()).unwrap_or(&[]);
    if searches.len() > MAX_SEARCHES {
        errs.invalid(
            &at.field("searches"),
            format!("{} domains", searches.len()).as_str(),
            "at most 32 search domains",
        );
    }
    for (i, domain) in searches.iter().enumerate() {
        errs.name(
            &at.field("searches").index(i),
            domain.trim_end_matches('.'),
            names::dns1123_subdomain,
        );
    }
    for (i, option) in config
        .and_then(|c| c.options.as_deref())
        .unwrap_or(&[])
        .iter()
        .enumerate()
    {
        if option.name.is_empty() {
            errs.required(&at.field("options").index(i).field("name"));
        }
    }
}

fn validate_security_context(
    sc: &crate::types::pod::SecurityContext,
    path: &FieldPath,
    errs: &mut Errors,
) {
    errs.non_negative(&path.field("runAsUser"), sc.run_as_user);
    errs.non_negative(&path.field("runAsGroup"), sc.run_as_group);
    if sc.run_as_group.is_some() && sc.run_as_user.is_none() {
        errs.required_because(
            &path.field("runAsUser"),
            "keel sets the group together with the user (Docker's user:group)",
        );
    }
    if sc.privileged == Some(true) && sc.allow_privilege_escalation == Some(false) {
        errs.invalid(
            &path.field("allowPrivilegeEscalation"),
            "false",
            "cannot set allowPrivilegeEscalation to false and privileged to true",
        );
    }
    if let Some(caps) = &sc.capabilities {
        for (field, list) in [("add", &caps.add), ("drop", &caps.drop)] {
            for (i, cap) in list.iter().flatten().enumerate() {
                let name = cap.strip_prefix("CAP_").unwrap_or(cap);
                let ok =
                    !name.is_empty() && name.bytes().all(|b| b.is_ascii_uppercase() || b == b'_');
                if !ok {
                    errs.invalid(
                        &path.field("capabilities").field(field).index(i),
                        cap.as_str(),
                        "a capability is upper case letters and underscores, as NET_ADMIN or CAP_NET_ADMIN",
                    );
                }
            }
        }
    }
}

fn validate_toleration(t: &Toleration, path: &FieldPath, errs: &mut Errors) {
    let key = t.key.as_deref().unwrap_or("");
    if !key.is_empty() {
        errs.name(&path.field("key"), key, names::qualified_name);
    }
    let op = t.operator.as_deref().unwrap_or("Equal");
    match op {
        "Equal" => {
            if key.is_empty() {
                errs.invalid(
                    &path.field("operator"),
                    op,
                    "operator must be Exists when `key` is empty, which means \"match all values and all keys\"",
                );
            }
        }
        "Exists" => {
            if let Some(v) = t.value.as_deref().filter(|v| !v.is_empty()) {
                errs.invalid(
                    &path.field("value"),
                    v,
                    "value must be empty when `operator` is 'Exists'",
                );
            }
        }
        other => errs.unsupported(&path.field("operator"), other, &["Equal", "Exists"]),
    }
    let effect = t.effect.as_deref().filter(|e| !e.is_empty());
    errs.one_of(
        &path.field("effect"),
        effect,
        &["NoSchedule", "PreferNoSchedule", "NoExecute"],
    );
    if t.toleration_seconds.is_some() && effect != Some("NoExecute") {
        errs.invalid(
            &path.field("effect"),
            effect.unwrap_or(""),
            "effect must be 'NoExecute' when `tolerationSeconds` is set",
        );
    }
}
