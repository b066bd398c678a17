//! A container: image, ports, env, resources, volume mounts and probes.

use std::collections::{BTreeMap, BTreeSet};

use super::super::{Errors, names};
use super::values::{check_quantity, check_relative_path};
use super::{PROTOCOLS, RESOURCES};
use crate::intorstr::IntOrString;
use crate::path::FieldPath;
use crate::types::pod::{Container, Probe};

const PULL_POLICIES: &[&str] = &["Always", "IfNotPresent", "Never"];

pub(super) fn validate_container(
    c: &Container,
    path: &FieldPath,
    errs: &mut Errors,
    volumes: &BTreeSet<&str>,
) {
    match c.image.as_deref() {
        None | Some("") => errs.required(&path.field("image")),
        Some(image) if image.trim() != image => errs.invalid(
            &path.field("image"),
            image,
            "must not have leading or trailing whitespace",
        ),
        Some(_) => {}
    }
    errs.one_of(
        &path.field("imagePullPolicy"),
        c.image_pull_policy.as_deref(),
        PULL_POLICIES,
    );
    validate_ports(c, path, errs);
    validate_env(c, path, errs);
    validate_resources(c, &path.field("resources"), errs);
    validate_mounts(c, path, errs, volumes);
    errs.one_of(
        &path.field("terminationMessagePolicy"),
        c.termination_message_policy.as_deref(),
        &["File", "FallbackToLogsOnError"],
    );
    if let Some(p) = c.termination_message_path.as_deref() {
        let at = path.field("terminationMessagePath");
        if !p.starts_with('/') || p == "/" {
            errs.invalid(&at, p, "must be an absolute path to a file");
        } else if p.split('/').any(|e| e == "..") {
            errs.invalid(&at, p, "must not contain '..'");
        }
    }
    let ports: BTreeSet<&str> = c
        .ports
        .iter()
        .flatten()
        .filter_map(|p| p.name.as_deref())
        .collect();
    let probes = [
        ("livenessProbe", &c.liveness_probe, true),
        ("readinessProbe", &c.readiness_probe, false),
        ("startupProbe", &c.startup_probe, true),
    ];
    for (field, probe, success_must_be_one) in probes {
        if let Some(probe) = probe {
            validate_probe(probe, &path.field(field), errs, &ports, success_must_be_one);
        }
    }
    if let Some(lifecycle) = &c.lifecycle {
        let at = path.field("lifecycle");
        let hooks = [
            ("postStart", &lifecycle.post_start),
            ("preStop", &lifecycle.pre_stop),
        ];
        for (field, hook) in hooks {
            if let Some(hook) = hook {
                validate_hook(hook, &at.field(field), errs, &ports);
            }
        }
    }
}

/// A lifecycle hook: one handler, checked as a probe's.
fn validate_hook(
    hook: &crate::types::pod::LifecycleHandler,
    path: &FieldPath,
    errs: &mut Errors,
    ports: &BTreeSet<&str>,
) {
    let handlers = [
        ("exec", hook.exec.is_some()),
        ("httpGet", hook.http_get.is_some()),
        ("sleep", hook.sleep.is_some()),
    ];
    let set: Vec<&str> = handlers
        .iter()
        .filter(|(_, s)| *s)
        .map(|(n, _)| *n)
        .collect();
    if set.is_empty() {
        errs.required_because(path, "must specify a handler type (exec, httpGet or sleep)");
    }
    for extra in set.iter().skip(1) {
        errs.forbidden(
            &path.field(extra),
            "may not specify more than 1 handler type",
        );
    }
    if let Some(h) = &hook.http_get {
        let hp = path.field("httpGet");
        validate_probe_port(h.port.as_ref(), &hp.field("port"), errs, ports);
        errs.one_of(&hp.field("scheme"), h.scheme.as_deref(), &["HTTP", "HTTPS"]);
        if let Some(p) = h
            .path
            .as_deref()
            .filter(|p| !p.is_empty() && !p.starts_with('/'))
        {
            errs.invalid(&hp.field("path"), p, "must start with '/'");
        }
    }
    if let Some(e) = &hook.exec
        && e.command.as_ref().is_none_or(Vec::is_empty)
    {
        errs.required(&path.field("exec").field("command"));
    }
    if let Some(s) = &hook.sleep {
        errs.non_negative(&path.field("sleep").field("seconds"), Some(s.seconds));
    }
}

/// Container ports: in range, protocols known, names unique within the container.
fn validate_ports(c: &Container, path: &FieldPath, errs: &mut Errors) {
    let mut port_names = BTreeSet::new();
    for (i, p) in c.ports.iter().flatten().enumerate() {
        let pp = path.field("ports").index(i);
        if p.container_port == 0 {
            errs.required(&pp.field("containerPort"));
        } else {
            errs.range(&pp.field("containerPort"), p.container_port, 1, 65535);
        }
        if let Some(host) = p.host_port.filter(|h| *h != 0) {
            errs.range(&pp.field("hostPort"), host, 1, 65535);
        }
        errs.one_of(&pp.field("protocol"), p.protocol.as_deref(), PROTOCOLS);
        if let Some(name) = p.name.as_deref() {
            errs.name(&pp.field("name"), name, names::port_name);
            if !port_names.insert(name) {
                errs.duplicate(&pp.field("name"), name);
            }
        }
        if let Some(ip) = p.host_ip.as_deref().filter(|ip| !ip.is_empty())
            && ip.parse::<std::net::IpAddr>().is_err()
        {
            errs.invalid(&pp.field("hostIP"), ip, "must be a valid IP address");
        }
    }
}

/// Volume mounts: of a volume the pod has, at paths unique within the container.
fn validate_mounts(c: &Container, path: &FieldPath, errs: &mut Errors, volumes: &BTreeSet<&str>) {
    let mut mount_paths = BTreeSet::new();
    for (i, m) in c.volume_mounts.iter().flatten().enumerate() {
        let mp = path.field("volumeMounts").index(i);
        if m.name.is_empty() {
            errs.required(&mp.field("name"));
        } else if !volumes.contains(m.name.as_str()) {
            errs.push(&mp.field("name"), format!("Not found: {:?}", m.name));
        }
        if m.mount_path.is_empty() {
            errs.required(&mp.field("mountPath"));
        } else if !mount_paths.insert(m.mount_path.as_str()) {
            errs.invalid(&mp.field("mountPath"), &m.mount_path, "must be unique");
        }
        if let Some(sub) = m.sub_path.as_deref() {
            check_relative_path(sub, &mp.field("subPath"), errs);
        }
    }
}

fn validate_env(c: &Container, path: &FieldPath, errs: &mut Errors) {
    for (i, e) in c.env.iter().flatten().enumerate() {
        let ep = path.field("env").index(i);
        if e.name.is_empty() {
            errs.required(&ep.field("name"));
        } else {
            errs.name(&ep.field("name"), &e.name, names::env_var_name);
        }
        let Some(from) = &e.value_from else { continue };
        let fp = ep.field("valueFrom");
        if e.value.as_deref().is_some_and(|v| !v.is_empty()) {
            errs.invalid(&fp, "", "may not be specified when `value` is not empty");
        }
        let refs = [
            ("configMapKeyRef", &from.config_map_key_ref),
            ("secretKeyRef", &from.secret_key_ref),
        ];
        let set = exactly_one(&refs, &fp, errs);
        for (field, r) in set {
            let rp = fp.field(field);
            errs.required_name(
                &rp.field("name"),
                r.name.as_deref(),
                names::dns1123_subdomain,
            );
            errs.required_name(&rp.field("key"), r.key.as_deref(), names::config_key);
        }
    }
    for (i, e) in c.env_from.iter().flatten().enumerate() {
        let ep = path.field("envFrom").index(i);
        let refs = [
            ("configMapRef", &e.config_map_ref),
            ("secretRef", &e.secret_ref),
        ];
        let set = exactly_one(&refs, &ep, errs);
        for (field, r) in set {
            let at = ep.field(field).field("name");
            errs.required_name(&at, r.name.as_deref(), names::dns1123_subdomain);
        }
        if let Some(prefix) = e.prefix.as_deref().filter(|p| !p.is_empty()) {
            errs.name(&ep.field("prefix"), prefix, names::env_var_name);
        }
    }
}

/// Of mutually exclusive sources (`configMapRef` / `secretRef`), exactly one must be set:
/// none is an error at `path`, each extra one an error at its own field. Returns the set ones.
fn exactly_one<'a, T>(
    refs: &[(&'a str, &'a Option<T>)],
    path: &FieldPath,
    errs: &mut Errors,
) -> Vec<(&'a str, &'a T)> {
    let set: Vec<(&str, &T)> = refs
        .iter()
        .filter_map(|(field, r)| r.as_ref().map(|r| (*field, r)))
        .collect();
    if set.is_empty() {
        let names: Vec<String> = refs.iter().map(|(f, _)| format!("`{f}`")).collect();
        errs.invalid(
            path,
            "",
            format!("must specify one of: {}", names.join(" or ")),
        );
    }
    for (field, _) in set.iter().skip(1) {
        errs.invalid(
            &path.field(field),
            "",
            "may not have more than one field specified at a time",
        );
    }
    set
}

fn validate_resources(c: &Container, path: &FieldPath, errs: &mut Errors) {
    let Some(res) = &c.resources else { return };
    let mut parsed: BTreeMap<(&str, &str), i64> = BTreeMap::new();
    for (field, map) in [("requests", &res.requests), ("limits", &res.limits)] {
        for (name, q) in map.iter().flatten() {
            let at = path.field(field).key(name);
            if !RESOURCES.contains(&name.as_str()) {
                errs.unsupported(&path.field(field).key_name(name), name, RESOURCES);
                continue;
            }
            if let Some(v) = check_quantity(q, name, &at, errs) {
                parsed.insert((field, name.as_str()), v);
            }
        }
    }
    for name in RESOURCES {
        if let (Some(req), Some(lim)) = (
            parsed.get(&("requests", name)),
            parsed.get(&("limits", name)),
        ) && req > lim
        {
            let q = res
                .requests
                .as_ref()
                .and_then(|m| m.get(*name))
                .map(|q| q.as_str())
                .unwrap_or("");
            let limit = res
                .limits
                .as_ref()
                .and_then(|m| m.get(*name))
                .map(|q| q.as_str())
                .unwrap_or("");
            errs.invalid(
                &path.field("requests").key(name),
                q,
                format!("must be less than or equal to {name} limit of {limit}"),
            );
        }
    }
}

fn validate_probe_port(
    port: Option<&IntOrString>,
    path: &FieldPath,
    errs: &mut Errors,
    ports: &BTreeSet<&str>,
) {
    match port {
        None => errs.required(path),
        Some(IntOrString::Int(p)) => errs.range(path, *p, 1, 65535),
        Some(IntOrString::Str(name)) => {
            if let Some(why) = names::port_name(name) {
                errs.invalid(path, name, why);
            } else if !ports.contains(name.as_str()) {
                errs.invalid(path, name, "no container port has this name");
            }
        }
    }
}

fn validate_probe(
    p: &Probe,
    path: &FieldPath,
    errs: &mut Errors,
    ports: &BTreeSet<&str>,
    success_must_be_one: bool,
) {
    // Kubernetes' order: the first handler set is kept, each further one is the error.
    let handlers = [
        ("exec", p.exec.is_some()),
        ("httpGet", p.http_get.is_some()),
        ("tcpSocket", p.tcp_socket.is_some()),
        ("grpc", p.grpc.is_some()),
    ];
    let set: Vec<&str> = handlers
        .iter()
        .filter(|(_, s)| *s)
        .map(|(n, _)| *n)
        .collect();
    if set.is_empty() {
        errs.required_because(
            path,
            "must specify a handler type (httpGet, tcpSocket, grpc or exec)",
        );
    }
    for extra in set.iter().skip(1) {
        errs.forbidden(
            &path.field(extra),
            "may not specify more than 1 handler type",
        );
    }
    if let Some(h) = &p.http_get {
        let hp = path.field("httpGet");
        validate_probe_port(h.port.as_ref(), &hp.field("port"), errs, ports);
        errs.one_of(&hp.field("scheme"), h.scheme.as_deref(), &["HTTP", "HTTPS"]);
        if let Some(p) = h
            .path
            .as_deref()
            .filter(|p| !p.is_empty() && !p.starts_with('/'))
        {
            errs.invalid(&hp.field("path"), p, "must start with '/'");
        }
    }
    if let Some(g) = &p.grpc {
        let at = path.field("grpc").field("port");
        if g.port == 0 {
            errs.required(&at);
        } else {
            errs.range(&at, g.port, 1, 65535);
        }
    }
    if let Some(t) = &p.tcp_socket {
        validate_probe_port(
            t.port.as_ref(),
            &path.field("tcpSocket").field("port"),
            errs,
            ports,
        );
    }
    if let Some(e) = &p.exec
        && e.command.as_ref().is_none_or(|c| c.is_empty())
    {
        errs.required(&path.field("exec").field("command"));
    }
    errs.non_negative(&path.field("initialDelaySeconds"), p.initial_delay_seconds);
    errs.positive(&path.field("periodSeconds"), p.period_seconds);
    errs.positive(&path.field("timeoutSeconds"), p.timeout_seconds);
    errs.positive(&path.field("failureThreshold"), p.failure_threshold);
    errs.positive(&path.field("successThreshold"), p.success_threshold);
    if success_must_be_one && let Some(s) = p.success_threshold.filter(|s| *s > 1) {
        errs.invalid(&path.field("successThreshold"), s, "must be 1");
    }
}
