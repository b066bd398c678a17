//! Endpoints: for each Service with a selector, the matching pods' IPs (ready ones, or all
//! with `publishNotReadyAddresses`, under `addresses`, others under `notReadyAddresses`) and each Service port's target port
//! resolved per pod (a named `targetPort` is looked up in the pod's container ports; pods
//! that do not define it are left out of that port, as Kubernetes does by grouping pods with
//! the same resolved ports into one subset).
//!
//! Services without a selector are left alone: their Endpoints, if any, come from git.

use std::collections::BTreeMap;

use keel_schema::intorstr::IntOrString;
use keel_schema::selector::Selector;
use keel_schema::types::core::{EndpointAddress, EndpointPort, EndpointSubset, Endpoints, Service};
use keel_schema::types::meta::ObjectReference;
use keel_schema::types::pod::Pod;
use keel_schema::{Kind, Object};
use keel_store::ObjectKey;

use super::runtime::{Action, Controller, Ctx, Raced, ReconcileError, Result};
use super::{keys_of_kind, pods};
use crate::cache::{Cache, Change};

/// Marks Endpoints this controller wrote (others, from git, are never touched).
pub const MANAGED_LABEL: &str = "endpoints.keel.dev/managed";

pub struct EndpointsController;

/// The port a Service port reaches on `pod`, or none when the pod has no such named port.
fn resolve(port: &keel_schema::types::core::ServicePort, pod: &Pod) -> Option<i64> {
    match &port.target_port {
        None => Some(port.port),
        Some(IntOrString::Int(n)) => Some(*n),
        Some(IntOrString::Str(name)) => {
            let protocol = port.protocol.as_deref().unwrap_or("TCP");
            pod.spec
                .containers
                .iter()
                .flat_map(|c| c.ports.iter().flatten())
                .find(|p| {
                    p.name.as_deref() == Some(name.as_str())
                        && p.protocol.as_deref().unwrap_or("TCP") == protocol
                })
                .map(|p| p.container_port)
        }
    }
}

/// The Endpoints subsets for `service` over `candidates` (pods of its namespace).
pub fn subsets_for<'p>(
    service: &Service,
    candidates: impl Iterator<Item = &'p Pod>,
) -> Vec<EndpointSubset> {
    let selector = Selector::from_map(&service.spec.selector.clone().unwrap_or_default());
    let service_ports = service.spec.ports.clone().unwrap_or_default();
    // Pods grouped by their resolved port list.
    type PortKey = Vec<(Option<String>, i64, String)>;
    let mut groups: BTreeMap<PortKey, (Vec<EndpointAddress>, Vec<EndpointAddress>)> =
        BTreeMap::new();
    for pod in candidates {
        let Some(ip) = pod
            .status
            .as_ref()
            .and_then(|s| s.pod_ip.as_deref())
            .filter(|ip| !ip.is_empty())
        else {
            continue;
        };
        if !pods::is_active(pod) || !selector.matches(pod.metadata.labels()) {
            continue;
        }
        let ports: PortKey = service_ports
            .iter()
            .filter_map(|sp| {
                resolve(sp, pod).map(|port| {
                    let protocol = sp.protocol.clone().unwrap_or_else(|| "TCP".into());
                    (sp.name.clone(), port, protocol)
                })
            })
            .collect();
        if ports.is_empty() && !service_ports.is_empty() {
            continue;
        }
        // As Kubernetes: a pod names itself in a Service's DNS when its subdomain is that
        // Service.
        let hostname = pod
            .spec
            .hostname
            .clone()
            .filter(|h| !h.is_empty())
            .filter(|_| pod.spec.subdomain.as_deref() == service.metadata.name.as_deref());
        let address = EndpointAddress {
            ip: ip.to_string(),
            hostname,
            node_name: pod.spec.node_name.clone(),
            target_ref: Some(ObjectReference {
                api_version: None,
                kind: Some("Pod".into()),
                namespace: pod.metadata.namespace.clone(),
                name: pod.metadata.name.clone(),
                uid: pod.metadata.uid.clone(),
                resource_version: None,
                field_path: None,
            }),
        };
        let group = groups.entry(ports).or_default();
        if pod.is_ready() || service.spec.publish_not_ready_addresses == Some(true) {
            group.0.push(address);
        } else {
            group.1.push(address);
        }
    }
    groups
        .into_iter()
        .map(|(ports, (mut ready, mut not_ready))| {
            ready.sort_by(|a, b| a.ip.cmp(&b.ip));
            not_ready.sort_by(|a, b| a.ip.cmp(&b.ip));
            let ports: Vec<EndpointPort> = ports
                .into_iter()
                .map(|(name, port, protocol)| EndpointPort {
                    name,
                    port,
                    protocol: Some(protocol),
                })
                .collect();
            EndpointSubset {
                addresses: (!ready.is_empty()).then_some(ready),
                not_ready_addresses: (!not_ready.is_empty()).then_some(not_ready),
                ports: (!ports.is_empty()).then_some(ports),
            }
        })
        .collect()
}

/// The Endpoints `service` should have over `pods` (its namespace's).
fn endpoints_for(service: &Service, pods: &[std::sync::Arc<keel_store::Stored>]) -> Endpoints {
    let subsets = subsets_for(
        service,
        pods.iter().filter_map(|s| match &s.object {
            Object::Pod(p) => Some(p),
            _ => None,
        }),
    );
    let mut ep = Endpoints::default();
    ep.metadata.name = service.metadata.name.clone();
    ep.metadata.namespace = service.metadata.namespace.clone();
    let mut labels = service.metadata.labels.clone().unwrap_or_default();
    labels.insert(MANAGED_LABEL.into(), "true".into());
    ep.metadata.labels = Some(labels);
    pods::without_git_markers(&mut ep.metadata);
    ep.subsets = (!subsets.is_empty()).then_some(subsets);
    ep
}

impl Controller for EndpointsController {
    type Key = ObjectKey;
    const NAME: &'static str = "endpoints";
    const COMPONENT: &'static str = "endpoint-controller";

    fn all_keys(&self, cache: &Cache) -> Vec<ObjectKey> {
        let mut keys = keys_of_kind(cache, Kind::Service);
        // Endpoints this controller made whose Service went while nobody watched.
        keys.extend(
            cache
                .list(Kind::Endpoints, None)
                .iter()
                .filter(|s| s.object.meta().labels().contains_key(MANAGED_LABEL))
                .map(|s| ObjectKey::new(Kind::Service, s.object.namespace(), s.object.name())),
        );
        keys.sort();
        keys.dedup();
        keys
    }

    fn keys_for(&self, change: &Change, cache: &Cache, out: &mut Vec<ObjectKey>) {
        match change.kind() {
            Some(Kind::Service | Kind::Endpoints) => {
                for o in change.objects().take(1) {
                    out.push(ObjectKey::new(Kind::Service, o.namespace(), o.name()));
                }
            }
            Some(Kind::Pod) => {
                for o in change.objects() {
                    for s in cache.list(Kind::Service, Some(o.namespace())) {
                        if let Object::Service(svc) = &s.object
                            && let Some(sel) = &svc.spec.selector
                            && Selector::from_map(sel).matches(o.meta().labels())
                        {
                            out.push(ObjectKey::of(&s.object));
                        }
                    }
                }
            }
            Some(_) => {}
            None => out.extend(self.all_keys(cache)),
        }
    }

    fn subject(&self, key: &ObjectKey) -> Option<ObjectKey> {
        Some(key.clone())
    }

    async fn reconcile(&self, key: &ObjectKey, ctx: &Ctx) -> Result<Action> {
        let ep_key = ObjectKey::new(Kind::Endpoints, &key.namespace, &key.name);
        let current = ctx.cache().get(&ep_key);
        let ours = current
            .as_ref()
            .is_some_and(|s| s.object.meta().labels().contains_key(MANAGED_LABEL));
        let service = match ctx.cache().get(key).map(|s| s.object.clone()) {
            Some(Object::Service(s)) if s.spec.selector.is_some() => s,
            // Gone, or without a selector: Endpoints we wrote go; others stay.
            _ => {
                if let Some(current) = current.filter(|_| ours) {
                    ctx.delete(&ep_key, current.resource_version)
                        .await
                        .or_raced()?;
                }
                return Ok(Action::Done);
            }
        };
        let ep = endpoints_for(&service, &ctx.cache().list(Kind::Pod, Some(&key.namespace)));
        match &current {
            None => {
                ctx.create(Object::Endpoints(ep)).await.or_raced()?;
            }
            Some(s) => {
                let Object::Endpoints(old) = &s.object else {
                    return Ok(Action::Done);
                };
                if !ours {
                    return Err(ReconcileError::invalid(
                        "NameConflict",
                        format!(
                            "{ep_key} exists but was not made for the Service's selector (it is \
                             declared in git?); remove it or the Service's selector"
                        ),
                    ));
                }
                if old.subsets != ep.subsets || old.metadata.labels != ep.metadata.labels {
                    ctx.update(Object::Endpoints(ep), s.resource_version)
                        .await
                        .or_raced()?;
                }
            }
        }
        Ok(Action::Done)
    }
}
