//! Ingresses and IngressClasses: hosts, paths and path types, backends, TLS.

use super::{Errors, names};
use crate::path::FieldPath;
use crate::types::networking::{IngressBackend, IngressClassSpec, IngressSpec};

const PATH_TYPES: &[&str] = &["Exact", "Prefix", "ImplementationSpecific"];
/// The controller keel's agents answer for.
pub const CONTROLLER: &str = "keel.dev/ingress";

pub fn validate_ingress(spec: &IngressSpec, path: &FieldPath, errs: &mut Errors) {
    if let Some(class) = spec.ingress_class_name.as_deref() {
        errs.name(
            &path.field("ingressClassName"),
            class,
            names::dns1123_subdomain,
        );
    }
    if let Some(b) = &spec.default_backend {
        validate_backend(b, &path.field("defaultBackend"), errs);
    }
    let rules = spec.rules.as_deref().unwrap_or_default();
    if rules.is_empty() && spec.default_backend.is_none() {
        errs.required_because(
            &path.field("rules"),
            "either `defaultBackend` or `rules` must be specified",
        );
    }
    for (i, rule) in rules.iter().enumerate() {
        let at = path.field("rules").index(i);
        if let Some(host) = rule.host.as_deref() {
            validate_host(host, &at.field("host"), errs);
        }
        let Some(http) = &rule.http else {
            continue;
        };
        if http.paths.is_empty() {
            errs.required(&at.field("http").field("paths"));
        }
        for (j, p) in http.paths.iter().enumerate() {
            let pp = at.field("http").field("paths").index(j);
            let path_type = p.path_type.as_deref();
            match path_type {
                None => errs.required(&pp.field("pathType")),
                Some(t) => errs.one_of(&pp.field("pathType"), Some(t), PATH_TYPES),
            }
            match p.path.as_deref() {
                None | Some("") if path_type == Some("ImplementationSpecific") => {}
                Some(text) if text.starts_with('/') => {}
                other => errs.invalid(
                    &pp.field("path"),
                    other.unwrap_or(""),
                    "must be an absolute path",
                ),
            }
            validate_backend(&p.backend, &pp.field("backend"), errs);
        }
    }
    for (i, tls) in spec.tls.iter().flatten().enumerate() {
        let at = path.field("tls").index(i);
        for (j, host) in tls.hosts.iter().flatten().enumerate() {
            validate_host(host, &at.field("hosts").index(j), errs);
        }
        if let Some(secret) = tls.secret_name.as_deref() {
            errs.name(&at.field("secretName"), secret, names::dns1123_subdomain);
        }
    }
}

/// A host name, or a wildcard for one leading label (`*.example.com`); never an address.
fn validate_host(host: &str, at: &FieldPath, errs: &mut Errors) {
    if host.parse::<std::net::IpAddr>().is_ok() {
        errs.invalid(at, host, "must be a DNS name, not an IP address");
        return;
    }
    let name = host.strip_prefix("*.").unwrap_or(host);
    errs.name(at, name, names::dns1123_subdomain);
}

fn validate_backend(b: &IngressBackend, at: &FieldPath, errs: &mut Errors) {
    let Some(service) = &b.service else {
        errs.required_because(
            &at.field("service"),
            "keel serves Service backends only (resource backends are not supported)",
        );
        return;
    };
    let sat = at.field("service");
    errs.name(&sat.field("name"), &service.name, names::dns1035_label);
    let port = service.port.as_ref();
    match (
        port.and_then(|p| p.name.as_deref())
            .filter(|n| !n.is_empty()),
        port.and_then(|p| p.number),
    ) {
        (Some(_), Some(_)) => errs.invalid(
            &sat.field("port"),
            "name and number",
            "may specify a port name or number, not both",
        ),
        (Some(name), None) => errs.name(&sat.field("port").field("name"), name, names::port_name),
        (None, Some(n)) => errs.range(&sat.field("port").field("number"), n, 1, 65535),
        (None, None) => errs.required(&sat.field("port")),
    }
}

pub fn validate_ingress_class(spec: &IngressClassSpec, path: &FieldPath, errs: &mut Errors) {
    match spec.controller.as_deref() {
        None | Some("") => errs.required(&path.field("controller")),
        Some(c) if c.len() > 250 => errs.invalid(
            &path.field("controller"),
            c,
            "must be no more than 250 characters",
        ),
        Some(_) => {}
    }
}
