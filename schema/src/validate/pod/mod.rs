//! Pod specs: containers, ports, env, resources, probes, volumes, tolerations.

mod container;
mod scheduling;
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
    scheduling::validate_scheduling(spec, path, errs);
    for (i, r) in spec.image_pull_secrets.iter().flatten().enumerate() {
        let at = path.field("imagePullSecrets").index(i).field("name");
        errs.required_name(
            &at,
            r.name.as_deref().filter(|n| !n.is_empty()),
            names::dns1123_subdomain,
        );
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
                ("lifecycle", c.lifecycle.is_some()),
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
        let pod_sc = spec.security_context.as_deref();
        if let Some(sc) = &c.security_context {
            validate_security_context(sc, pod_sc, &cp.field("securityContext"), errs);
        } else if let Some(pod_sc) = pod_sc
            && pod_sc.run_as_group.is_some()
            && pod_sc.run_as_user.is_none()
        {
            errs.required_because(
                &path.field("securityContext").field("runAsUser"),
                &format!(
                    "container {:?} sets no runAsUser, and keel sets the group together with \
                     the user (Docker's user:group)",
                    c.name
                ),
            );
        }
    }
    if let Some(sc) = &spec.security_context {
        validate_pod_security_context(spec, sc, &path.field("securityContext"), errs);
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
    if let Some(name) = spec
        .priority_class_name
        .as_deref()
        .filter(|n| !n.is_empty())
    {
        errs.name(
            &path.field("priorityClassName"),
            name,
            names::dns1123_subdomain,
        );
    }
    if spec.share_process_namespace == Some(true) && spec.host_pid == Some(true) {
        errs.invalid(
            &path.field("shareProcessNamespace"),
            "true",
            "ShareProcessNamespace and HostPID cannot both be enabled",
        );
    }
    for (i, alias) in spec.host_aliases.iter().flatten().enumerate() {
        let at = path.field("hostAliases").index(i);
        if alias.ip.is_empty() {
            errs.required(&at.field("ip"));
        } else if alias.ip.parse::<std::net::IpAddr>().is_err() {
            errs.invalid(
                &at.field("ip"),
                alias.ip.as_str(),
                "must be a valid IP address",
            );
        }
        for (j, host) in alias.hostnames.iter().flatten().enumerate() {
            errs.name(
                &at.field("hostnames").index(j),
                host,
                names::dns1123_subdomain,
            );
        }
    }
    for field in ["serviceAccountName", "serviceAccount"] {
        let value = if field == "serviceAccountName" {
            &spec.service_account_name
        } else {
            &spec.service_account
        };
        if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
            errs.name(&path.field(field), v, names::dns1123_subdomain);
        }
    }
    if let (Some(a), Some(b)) = (&spec.service_account_name, &spec.service_account)
        && !a.is_empty()
        && !b.is_empty()
        && a != b
    {
        errs.invalid(
            &path.field("serviceAccount"),
            b.as_str(),
            "must match serviceAccountName, of which it is the older name",
        );
    }
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

/// Kubernetes' safe sysctls: namespaced, and harmless to the node and its other pods.
pub const SAFE_SYSCTLS: &[&str] = &[
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
];

/// Whether `name` (dotted, or with slashes) is one of [`SAFE_SYSCTLS`].
pub fn is_safe_sysctl(name: &str) -> bool {
    SAFE_SYSCTLS.contains(&name.replace('/', ".").as_str())
}

/// Whether `name` is a sysctl of a pod's own namespaces.
pub fn is_namespaced_sysctl(name: &str) -> bool {
    let name = name.replace('/', ".");
    NAMESPACED_SYSCTL_PREFIXES
        .iter()
        .any(|p| name.starts_with(p))
}

/// The sysctls of a pod's own namespaces (the others would change the node).
const NAMESPACED_SYSCTL_PREFIXES: &[&str] = &[
    "kernel.shm",
    "kernel.msg",
    "kernel.sem",
    "fs.mqueue.",
    "net.",
];

/// An id Linux takes: 0 to 2^31 - 1, as Kubernetes bounds them.
fn validate_id(path: &FieldPath, value: Option<i64>, errs: &mut Errors) {
    if let Some(v) = value {
        errs.range(path, v, 0, i64::from(i32::MAX));
    }
}

fn validate_seccomp(
    profile: Option<&crate::types::pod::SeccompProfile>,
    path: &FieldPath,
    errs: &mut Errors,
) {
    let Some(profile) = profile else { return };
    let at = path.field("seccompProfile");
    match profile.type_.as_str() {
        "" => errs.required(&at.field("type")),
        "RuntimeDefault" | "Unconfined" => {}
        "Localhost" => errs.invalid(
            &at.field("type"),
            "Localhost",
            "keel nodes do not load seccomp profiles from files; use RuntimeDefault or Unconfined",
        ),
        other => errs.unsupported(
            &at.field("type"),
            other,
            &["RuntimeDefault", "Unconfined", "Localhost"],
        ),
    }
    if profile.localhost_profile.is_some() && profile.type_ != "Localhost" {
        errs.forbidden(
            &at.field("localhostProfile"),
            "may only be set when type is Localhost",
        );
    }
}

fn validate_pod_security_context(
    spec: &PodSpec,
    sc: &crate::types::pod::PodSecurityContext,
    path: &FieldPath,
    errs: &mut Errors,
) {
    validate_id(&path.field("runAsUser"), sc.run_as_user, errs);
    validate_id(&path.field("runAsGroup"), sc.run_as_group, errs);
    validate_id(&path.field("fsGroup"), sc.fs_group, errs);
    for (i, g) in sc.supplemental_groups.iter().flatten().enumerate() {
        validate_id(&path.field("supplementalGroups").index(i), Some(*g), errs);
    }
    if sc.run_as_non_root == Some(true) && sc.run_as_user == Some(0) {
        errs.invalid(
            &path.field("runAsUser"),
            0,
            "runAsNonRoot is true: the pod cannot run as root (user 0)",
        );
    }
    errs.one_of(
        &path.field("fsGroupChangePolicy"),
        sc.fs_group_change_policy.as_deref(),
        &["Always", "OnRootMismatch"],
    );
    let mut seen = BTreeSet::new();
    for (i, s) in sc.sysctls.iter().flatten().enumerate() {
        let at = path.field("sysctls").index(i);
        let name = s.name.replace('/', ".");
        let well_formed = !name.is_empty()
            && name.split('.').all(|part| {
                !part.is_empty()
                    && part
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            });
        if !well_formed {
            errs.invalid(
                &at.field("name"),
                s.name.as_str(),
                "a sysctl name is dot-separated words, as net.ipv4.tcp_syncookies",
            );
            continue;
        }
        if !seen.insert(name.clone()) {
            errs.duplicate(&at.field("name"), s.name.as_str());
        }
        if !NAMESPACED_SYSCTL_PREFIXES
            .iter()
            .any(|p| name.starts_with(p))
        {
            errs.forbidden(
                &at.field("name"),
                format!("{name} is not namespaced: setting it for a pod would change the node"),
            );
        } else if name.starts_with("net.") && spec.host_network == Some(true) {
            errs.forbidden(
                &at.field("name"),
                "a hostNetwork pod shares the node's network settings",
            );
        }
    }
    validate_seccomp(sc.seccomp_profile.as_ref(), path, errs);
}

fn validate_security_context(
    sc: &crate::types::pod::SecurityContext,
    pod: Option<&crate::types::pod::PodSecurityContext>,
    path: &FieldPath,
    errs: &mut Errors,
) {
    validate_id(&path.field("runAsUser"), sc.run_as_user, errs);
    validate_id(&path.field("runAsGroup"), sc.run_as_group, errs);
    let pod_user = pod.and_then(|p| p.run_as_user);
    let group = sc.run_as_group.or(pod.and_then(|p| p.run_as_group));
    if group.is_some() && sc.run_as_user.is_none() && pod_user.is_none() {
        errs.required_because(
            &path.field("runAsUser"),
            "keel sets the group together with the user (Docker's user:group)",
        );
    }
    let non_root = sc
        .run_as_non_root
        .or(pod.and_then(|p| p.run_as_non_root))
        .unwrap_or(false);
    // Said once, where it is decided: here only when the container sets either field.
    let own = sc.run_as_user.is_some() || sc.run_as_non_root.is_some();
    if own && non_root && sc.run_as_user.or(pod_user) == Some(0) {
        errs.invalid(
            &path.field("runAsUser"),
            0,
            "runAsNonRoot is true: the container cannot run as root (user 0)",
        );
    }
    validate_seccomp(sc.seccomp_profile.as_ref(), path, errs);
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
