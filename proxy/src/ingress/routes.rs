//! The routing table of the node's ingress proxy, built whole from the served Ingresses and
//! the Service set (pure), with Kubernetes' matching rules:
//! - hosts: an exact host beats a one-label wildcard (`*.example.com`), which beats rules
//!   without a host; a request is routed by the most specific host that has rules;
//! - paths: the longest match wins, and an `Exact` path beats a `Prefix` one of the same
//!   length; `Prefix` matches whole path elements (`/foo` matches `/foo/bar`, not `/foobar`);
//!   `ImplementationSpecific` is `Prefix`;
//! - no match: the default backend (of the oldest Ingress that has one), else 404.
//!
//! When Ingresses declare the same host, path and type, the oldest one keeps it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use keel_schema::types::networking::{Ingress, IngressBackend};

use crate::model::{Protocol, ProxiedService};

/// Where a route sends requests: a Service port and its ready endpoints.
#[derive(Debug)]
pub struct Backend {
    /// `namespace/name:port`, for errors and logs.
    pub service: String,
    pub endpoints: Vec<SocketAddr>,
    next: AtomicUsize,
}

impl Backend {
    /// The next endpoint, round robin; `None` without ready endpoints.
    pub fn pick(&self) -> Option<SocketAddr> {
        if self.endpoints.is_empty() {
            return None;
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        Some(self.endpoints[i % self.endpoints.len()])
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostMatch {
    Exact(String),
    /// `*.example.com`, kept as `.example.com`: one more label in front.
    Wildcard(String),
    Any,
}

impl HostMatch {
    fn parse(host: Option<&str>) -> HostMatch {
        match host.map(str::to_ascii_lowercase) {
            None => HostMatch::Any,
            Some(h) if h.is_empty() => HostMatch::Any,
            Some(h) => match h.strip_prefix('*') {
                Some(suffix) => HostMatch::Wildcard(suffix.to_string()),
                None => HostMatch::Exact(h),
            },
        }
    }

    /// 0 when it does not match `host`, else how specific the match is.
    fn rank(&self, host: &str) -> u8 {
        match self {
            HostMatch::Exact(h) if h == host => 3,
            HostMatch::Wildcard(suffix) => {
                let label = host.strip_suffix(suffix.as_str()).unwrap_or("");
                if !label.is_empty() && !label.contains('.') {
                    2
                } else {
                    0
                }
            }
            HostMatch::Any => 1,
            HostMatch::Exact(_) => 0,
        }
    }
}

#[derive(Debug)]
struct PathRule {
    host: HostMatch,
    exact: bool,
    /// Without a trailing slash (except `/` itself).
    path: String,
    backend: Arc<Backend>,
}

impl PathRule {
    fn matches(&self, path: &str) -> bool {
        if self.exact {
            return path == self.path;
        }
        if self.path == "/" {
            return true;
        }
        path == self.path
            || path
                .strip_prefix(self.path.as_str())
                .is_some_and(|rest| rest.starts_with('/'))
    }
}

/// The table: every path rule of every served Ingress, and the default backend.
#[derive(Debug, Default)]
pub struct Routes {
    rules: Vec<PathRule>,
    default: Option<Arc<Backend>>,
}

/// What a request resolved to.
#[derive(Debug)]
pub enum Resolved {
    Backend(Arc<Backend>),
    NotFound,
}

fn backend(
    namespace: &str,
    b: &IngressBackend,
    services: &[ProxiedService],
) -> Option<Arc<Backend>> {
    let s = b.service.as_ref()?;
    let port = s.port.as_ref()?;
    let service = services
        .iter()
        .find(|p| p.namespace == namespace && p.name == s.name);
    let found = service.and_then(|svc| {
        svc.ports.iter().find(|p| {
            p.protocol == Protocol::Tcp
                && match (&port.name, port.number) {
                    (Some(name), _) if !name.is_empty() => p.name.as_deref() == Some(name),
                    (_, Some(n)) => i64::from(p.port) == n,
                    _ => false,
                }
        })
    });
    let shown_port = port
        .name
        .clone()
        .filter(|n| !n.is_empty())
        .or(port.number.map(|n| n.to_string()))
        .unwrap_or_default();
    Some(Arc::new(Backend {
        service: format!("{namespace}/{}:{shown_port}", s.name),
        endpoints: found.map(|p| p.endpoints.clone()).unwrap_or_default(),
        next: AtomicUsize::new(0),
    }))
}

fn normalise(path: &str) -> String {
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() {
        "/".to_string()
    } else {
        trimmed.to_string()
    }
}

impl Routes {
    /// The table for `ingresses` (any order; the oldest wins a tie) over `services`.
    pub fn build(ingresses: &[Ingress], services: &[ProxiedService]) -> Routes {
        let mut ordered: Vec<&Ingress> = ingresses.iter().collect();
        ordered.sort_by(|a, b| {
            (
                a.metadata.creation_timestamp,
                a.metadata.namespace(),
                a.metadata.name(),
            )
                .cmp(&(
                    b.metadata.creation_timestamp,
                    b.metadata.namespace(),
                    b.metadata.name(),
                ))
        });
        let mut routes = Routes::default();
        for ing in ordered {
            let ns = ing.metadata.namespace();
            if routes.default.is_none()
                && let Some(b) = &ing.spec.default_backend
            {
                routes.default = backend(ns, b, services);
            }
            for rule in ing.spec.rules.iter().flatten() {
                let host = HostMatch::parse(rule.host.as_deref());
                for p in rule.http.iter().flat_map(|h| &h.paths) {
                    let exact = p.path_type.as_deref() == Some("Exact");
                    let path = normalise(p.path.as_deref().unwrap_or("/"));
                    let taken = routes
                        .rules
                        .iter()
                        .any(|r| r.host == host && r.exact == exact && r.path == path);
                    if taken {
                        continue;
                    }
                    if let Some(b) = backend(ns, &p.backend, services) {
                        routes.rules.push(PathRule {
                            host: host.clone(),
                            exact,
                            path,
                            backend: b,
                        });
                    }
                }
            }
        }
        routes
    }

    /// Where a request for `host` (no port) and `path` goes.
    pub fn resolve(&self, host: &str, path: &str) -> Resolved {
        let host = host.to_ascii_lowercase();
        let best_host = self
            .rules
            .iter()
            .map(|r| r.host.rank(&host))
            .max()
            .unwrap_or(0);
        let found = (best_host > 0)
            .then(|| {
                self.rules
                    .iter()
                    .filter(|r| r.host.rank(&host) == best_host && r.matches(path))
                    .max_by_key(|r| (r.path.len(), r.exact))
            })
            .flatten();
        match found
            .map(|r| r.backend.clone())
            .or_else(|| self.default.clone())
        {
            Some(b) => Resolved::Backend(b),
            None => Resolved::NotFound,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ProxiedPort;

    fn services() -> Vec<ProxiedService> {
        ["shop", "api", "blog", "fallback", "wild"]
            .iter()
            .enumerate()
            .map(|(i, name)| ProxiedService {
                namespace: "default".into(),
                name: (*name).into(),
                cluster_ip: None,
                affinity: None,
                external_local: false,
                external_ips: Vec::new(),
                ports: vec![ProxiedPort {
                    name: Some("http".into()),
                    protocol: Protocol::Tcp,
                    port: 80,
                    node_port: None,
                    endpoints: vec![format!("10.244.1.{}:8080", i + 1).parse().unwrap()],
                }],
            })
            .collect()
    }

    fn ingress(yaml: &str) -> Ingress {
        serde_yaml::from_str(yaml).expect("an Ingress")
    }

    fn to(routes: &Routes, host: &str, path: &str) -> String {
        match routes.resolve(host, path) {
            Resolved::Backend(b) => b.service.clone(),
            Resolved::NotFound => "404".into(),
        }
    }

    #[test]
    fn hosts_and_paths_route_as_kubernetes_specifies() {
        let routes = Routes::build(
            &[ingress(
                "metadata: {name: web, namespace: default}
spec:
  rules:
  - host: shop.example.com
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: shop, port: {number: 80}}}}
      - {path: /api/, pathType: Prefix, backend: {service: {name: api, port: {name: http}}}}
      - {path: /api/v1, pathType: Exact, backend: {service: {name: blog, port: {number: 80}}}}
  - host: '*.example.com'
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: wild, port: {number: 80}}}}
  - http:
      paths:
      - {path: /blog, pathType: ImplementationSpecific, backend: {service: {name: blog, port: {number: 80}}}}",
            )],
            &services(),
        );
        assert_eq!(to(&routes, "shop.example.com", "/cart"), "default/shop:80");
        assert_eq!(to(&routes, "SHOP.example.com", "/api"), "default/api:http");
        assert_eq!(
            to(&routes, "shop.example.com", "/api/v1"),
            "default/blog:80",
            "Exact beats Prefix"
        );
        assert_eq!(
            to(&routes, "shop.example.com", "/api/v1/x"),
            "default/api:http"
        );
        assert_eq!(
            to(&routes, "shop.example.com", "/apix"),
            "default/shop:80",
            "whole elements"
        );
        assert_eq!(to(&routes, "blog.example.com", "/"), "default/wild:80");
        assert_eq!(
            to(&routes, "a.b.example.com", "/blog/post"),
            "default/blog:80",
            "one label only"
        );
        assert_eq!(to(&routes, "other.org", "/blog"), "default/blog:80");
        assert_eq!(to(&routes, "other.org", "/"), "404");
    }

    #[test]
    fn the_oldest_ingress_keeps_a_path_and_gives_the_default_backend() {
        let old = ingress(
            "metadata: {name: a, namespace: default, creationTimestamp: '2026-01-01T00:00:00Z'}
spec:
  defaultBackend: {service: {name: fallback, port: {number: 80}}}
  rules: [{http: {paths: [{path: /x, pathType: Prefix, backend: {service: {name: shop, port: {number: 80}}}}]}}]",
        );
        let new = ingress(
            "metadata: {name: b, namespace: default, creationTimestamp: '2026-02-01T00:00:00Z'}
spec:
  defaultBackend: {service: {name: api, port: {number: 80}}}
  rules: [{http: {paths: [{path: /x, pathType: Prefix, backend: {service: {name: blog, port: {number: 80}}}}]}}]",
        );
        let routes = Routes::build(&[new, old], &services());
        assert_eq!(to(&routes, "any", "/x"), "default/shop:80");
        assert_eq!(to(&routes, "any", "/elsewhere"), "default/fallback:80");
    }

    #[test]
    fn a_backend_without_endpoints_is_still_routed_and_picks_nothing() {
        let routes = Routes::build(
            &[ingress(
                "metadata: {name: a, namespace: default}
spec: {defaultBackend: {service: {name: missing, port: {number: 80}}}}",
            )],
            &services(),
        );
        match routes.resolve("x", "/") {
            Resolved::Backend(b) => assert!(b.pick().is_none()),
            Resolved::NotFound => panic!("routed to the default backend"),
        }
    }
}
