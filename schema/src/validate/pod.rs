//! Pod specs: containers, ports, env, resources, probes, volumes, tolerations.

use std::collections::{BTreeMap, BTreeSet};

use super::meta::validate_label_map;
use super::{Errors, names};
use crate::intorstr::IntOrString;
use crate::path::FieldPath;
use crate::quantity::{Quantity, QuantityError};
use crate::types::pod::{Container, KeyToPath, PodSpec, Probe, Toleration, Volume};

pub const ANY_RESTART: &[&str] = &["Always", "OnFailure", "Never"];
/// Jobs run pods to completion.
pub const JOB_RESTART: &[&str] = &["OnFailure", "Never"];
pub const PROTOCOLS: &[&str] = &["TCP", "UDP"];
const PULL_POLICIES: &[&str] = &["Always", "IfNotPresent", "Never"];
const RESOURCES: &[&str] = &["cpu", "memory"];

/// Validates a pod spec. `restart` lists the restart policies the owning kind allows
/// (`Always` only for controllers that keep pods running; `OnFailure`/`Never` for Jobs).
pub fn validate_pod_spec(spec: &PodSpec, path: &FieldPath, errs: &mut Errors, restart: &[&str]) {
    let volumes = validate_volumes(
        spec.volumes.as_deref().unwrap_or(&[]),
        &path.field("volumes"),
        errs,
    );
    let at = path.field("containers");
    if spec.containers.is_empty() {
        errs.required(&at);
    }
    let mut container_names = BTreeSet::new();
    for (i, c) in spec.containers.iter().enumerate() {
        let cp = at.index(i);
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

fn validate_container(
    c: &Container,
    path: &FieldPath,
    errs: &mut Errors,
    volumes: &BTreeSet<&str>,
) {
    // Port names are unique within a container, as in Kubernetes.
    let mut port_names = BTreeSet::new();
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
    validate_env(c, path, errs);
    validate_resources(c, &path.field("resources"), errs);
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

/// Parses a quantity for validation: CPU in millicores, anything else in whole units.
pub fn check_quantity(
    q: &Quantity,
    resource: &str,
    path: &FieldPath,
    errs: &mut Errors,
) -> Option<i64> {
    let parsed = if resource == "cpu" {
        q.millis()
    } else {
        q.value()
    };
    match parsed {
        Ok(v) if v < 0 => {
            errs.invalid(path, q.as_str(), "must be greater than or equal to 0");
            None
        }
        Ok(v) => Some(v),
        Err(e @ (QuantityError::Malformed | QuantityError::TooLarge)) => {
            errs.invalid(path, q.as_str(), e);
            None
        }
    }
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
    ];
    let set: Vec<&str> = handlers
        .iter()
        .filter(|(_, s)| *s)
        .map(|(n, _)| *n)
        .collect();
    if set.is_empty() {
        errs.required_because(
            path,
            "must specify a handler type (httpGet, tcpSocket or exec)",
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

fn check_relative_path(p: &str, path: &FieldPath, errs: &mut Errors) {
    if p.starts_with('/') {
        errs.invalid(path, p, "must be a relative path");
    } else if p.split('/').any(|part| part == "..") {
        errs.invalid(path, p, "must not contain '..'");
    }
}

fn check_mode(mode: Option<i64>, path: &FieldPath, errs: &mut Errors) {
    if let Some(m) = mode.filter(|m| !(0..=0o777).contains(m)) {
        errs.invalid(
            path,
            m,
            "must be a number between 0 and 0777 (octal), both inclusive",
        );
    }
}

/// Validates volumes and returns their names, for `volumeMounts` to refer to.
fn validate_volumes<'a>(
    volumes: &'a [Volume],
    path: &FieldPath,
    errs: &mut Errors,
) -> BTreeSet<&'a str> {
    let mut seen = BTreeSet::new();
    for (i, v) in volumes.iter().enumerate() {
        let vp = path.index(i);
        if v.name.is_empty() {
            errs.required(&vp.field("name"));
        } else {
            errs.name(&vp.field("name"), &v.name, names::dns1123_label);
            if !seen.insert(v.name.as_str()) {
                errs.duplicate(&vp.field("name"), &v.name);
            }
        }
        // Kubernetes' order: the first source set is kept, each further one is the error.
        let sources = [
            ("hostPath", v.host_path.is_some()),
            ("emptyDir", v.empty_dir.is_some()),
            ("secret", v.secret.is_some()),
            ("configMap", v.config_map.is_some()),
        ];
        let set: Vec<&str> = sources
            .iter()
            .filter(|(_, s)| *s)
            .map(|(n, _)| *n)
            .collect();
        if set.is_empty() {
            errs.required_because(
                &vp,
                "must specify a volume type (emptyDir, configMap, secret or hostPath)",
            );
        }
        for extra in set.iter().skip(1) {
            errs.forbidden(&vp.field(extra), "may not specify more than 1 volume type");
        }
        if let Some(e) = &v.empty_dir {
            let ep = vp.field("emptyDir");
            errs.one_of(
                &ep.field("medium"),
                e.medium.as_deref().filter(|m| !m.is_empty()),
                &["Memory"],
            );
            if let Some(q) = &e.size_limit {
                check_quantity(q, "memory", &ep.field("sizeLimit"), errs);
            }
        }
        if let Some(c) = &v.config_map {
            let files = (c.default_mode, c.items.as_deref().unwrap_or(&[]));
            validate_projected(
                &vp.field("configMap"),
                ("name", c.name.as_deref()),
                files,
                errs,
            );
        }
        if let Some(s) = &v.secret {
            let files = (s.default_mode, s.items.as_deref().unwrap_or(&[]));
            validate_projected(
                &vp.field("secret"),
                ("secretName", s.secret_name.as_deref()),
                files,
                errs,
            );
        }
        if let Some(h) = &v.host_path {
            let hp = vp.field("hostPath");
            if h.path.is_empty() {
                errs.required(&hp.field("path"));
            } else if !h.path.starts_with('/') {
                errs.invalid(&hp.field("path"), &h.path, "must be an absolute path");
            } else if h.path.split('/').any(|p| p == "..") {
                errs.invalid(&hp.field("path"), &h.path, "must not contain '..'");
            }
            errs.one_of(
                &hp.field("type"),
                h.type_.as_deref().filter(|t| !t.is_empty()),
                &[
                    "Directory",
                    "DirectoryOrCreate",
                    "File",
                    "FileOrCreate",
                    "Socket",
                    "CharDevice",
                    "BlockDevice",
                ],
            );
        }
    }
    seen
}

/// A configMap or secret volume: the object it names, its file mode and its items.
fn validate_projected(
    path: &FieldPath,
    (name_field, name): (&str, Option<&str>),
    (default_mode, items): (Option<i64>, &[KeyToPath]),
    errs: &mut Errors,
) {
    errs.required_name(&path.field(name_field), name, names::dns1123_subdomain);
    check_mode(default_mode, &path.field("defaultMode"), errs);
    for (j, item) in items.iter().enumerate() {
        validate_key_to_path(
            &item.key,
            &item.path,
            item.mode,
            &path.field("items").index(j),
            errs,
        );
    }
}

fn validate_key_to_path(
    key: &str,
    rel: &str,
    mode: Option<i64>,
    path: &FieldPath,
    errs: &mut Errors,
) {
    if key.is_empty() {
        errs.required(&path.field("key"));
    } else {
        errs.name(&path.field("key"), key, names::config_key);
    }
    if rel.is_empty() {
        errs.required(&path.field("path"));
    } else {
        check_relative_path(rel, &path.field("path"), errs);
    }
    check_mode(mode, &path.field("mode"), errs);
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
