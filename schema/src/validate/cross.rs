//! Checks across the objects of one revision: duplicate objects, named target ports that
//! no selected pod template defines, and ServiceAccounts, PersistentVolumeClaims and
//! image pull Secrets pods name but nobody declares.

use std::collections::BTreeMap;

use super::FieldError;
use crate::intorstr::IntOrString;
use crate::object::Object;
use crate::path::FieldPath;
use crate::resource::PodTemplateRef;
use crate::selector::Selector;

/// One object of the revision and where it was declared (`file:line`), for messages.
pub struct Item<'a> {
    pub object: &'a Object,
    pub origin: String,
}

/// Problems found across objects, each tagged with the index of the object it belongs to.
pub fn validate_revision(items: &[Item<'_>]) -> Vec<(usize, FieldError)> {
    let mut out = Vec::new();
    duplicates(items, &mut out);
    named_target_ports(items, &mut out);
    service_accounts(items, &mut out);
    claims(items, &mut out);
    pull_secrets(items, &mut out);
    autoscaler_targets(items, &mut out);
    out
}

/// An autoscaler's target must be declared in its namespace, and each workload has at most
/// one autoscaler: two would fight over its replicas (Kubernetes reports it as
/// `AmbiguousSelector` and scales neither).
fn autoscaler_targets(items: &[Item<'_>], out: &mut Vec<(usize, FieldError)>) {
    let declared: BTreeMap<(&str, &str, &str), &str> = items
        .iter()
        .map(|item| {
            let o = item.object;
            (
                (o.kind().as_str(), o.namespace(), o.name()),
                item.origin.as_str(),
            )
        })
        .collect();
    let mut claimed: BTreeMap<(&str, &str, &str), &Item<'_>> = BTreeMap::new();
    for (i, item) in items.iter().enumerate() {
        let Object::HorizontalPodAutoscaler(hpa) = item.object else {
            continue;
        };
        let target = &hpa.spec.scale_target_ref;
        if !super::autoscaler::SCALABLE.contains(&target.kind.as_str()) || target.name.is_empty() {
            continue;
        }
        let key = (
            target.kind.as_str(),
            item.object.namespace(),
            target.name.as_str(),
        );
        let path = FieldPath::new("spec").field("scaleTargetRef").field("name");
        let message = if !declared.contains_key(&key) {
            format!(
                "Not found: {} {:?} is not declared in namespace {:?}; name a workload the \
                 repository declares",
                key.0, key.2, key.1
            )
        } else if let Some(first) = claimed.get(&key) {
            format!(
                "Duplicate value: {} {:?} is already scaled by HorizontalPodAutoscaler {:?} \
                 ({}); a workload takes one autoscaler",
                key.0,
                key.2,
                first.object.name(),
                first.origin
            )
        } else {
            claimed.insert(key, item);
            continue;
        };
        out.push((i, FieldError { path, message }));
    }
}

/// A pod's ServiceAccount must be declared in its namespace (every namespace has
/// `default`): Kubernetes would not create the pod, so keel refuses the revision instead of
/// leaving a workload that never starts.
fn service_accounts(items: &[Item<'_>], out: &mut Vec<(usize, FieldError)>) {
    let declared: std::collections::BTreeSet<(&str, &str)> = items
        .iter()
        .filter(|item| matches!(item.object, Object::ServiceAccount(_)))
        .map(|item| (item.object.namespace(), item.object.name()))
        .collect();
    for (i, item) in items.iter().enumerate() {
        let Some(template) = item.object.pod_template() else {
            continue;
        };
        let spec = template.spec();
        let (field, name) = match (&spec.service_account_name, &spec.service_account) {
            (Some(n), _) if !n.is_empty() => ("serviceAccountName", n),
            (_, Some(n)) if !n.is_empty() => ("serviceAccount", n),
            _ => continue,
        };
        let namespace = item.object.namespace();
        if name == "default" || declared.contains(&(namespace, name.as_str())) {
            continue;
        }
        out.push((
            i,
            FieldError {
                path: template.spec_path().field(field),
                message: format!(
                    "Not found: ServiceAccount {name:?} is not declared in namespace \
                     {namespace:?}; declare it in the repository (Kubernetes would not \
                     create the pod without it)"
                ),
            },
        ));
    }
}

/// A pod's PersistentVolumeClaim must be declared in its namespace: otherwise it would never
/// start. (A StatefulSet's own claims come from its templates and are not in its pod spec.)
fn claims(items: &[Item<'_>], out: &mut Vec<(usize, FieldError)>) {
    let declared: std::collections::BTreeSet<(&str, &str)> = items
        .iter()
        .filter(|item| matches!(item.object, Object::PersistentVolumeClaim(_)))
        .map(|item| (item.object.namespace(), item.object.name()))
        .collect();
    for (i, item) in items.iter().enumerate() {
        let Some(template) = item.object.pod_template() else {
            continue;
        };
        let namespace = item.object.namespace();
        for (j, volume) in template.spec().volumes.iter().flatten().enumerate() {
            let Some(claim) = &volume.persistent_volume_claim else {
                continue;
            };
            let name = claim.claim_name.as_str();
            if name.is_empty() || declared.contains(&(namespace, name)) {
                continue;
            }
            let path = template.spec_path().field("volumes").index(j);
            out.push((
                i,
                FieldError {
                    path: path.field("persistentVolumeClaim").field("claimName"),
                    message: format!(
                        "Not found: PersistentVolumeClaim {name:?} is not declared in \
                         namespace {namespace:?}; declare it in the repository"
                    ),
                },
            ));
        }
    }
}

/// A pod's `imagePullSecrets` must be declared in its namespace, as registry logins: the
/// kubelet would silently pull without them and fail later, far from the cause.
fn pull_secrets(items: &[Item<'_>], out: &mut Vec<(usize, FieldError)>) {
    let declared: BTreeMap<(&str, &str), &str> = items
        .iter()
        .filter_map(|item| match item.object {
            Object::Secret(s) => Some((
                (item.object.namespace(), item.object.name()),
                s.type_.as_deref().unwrap_or("Opaque"),
            )),
            _ => None,
        })
        .collect();
    for (i, item) in items.iter().enumerate() {
        // A pod's own, or a ServiceAccount's (which its pods get).
        let (refs, path) = match (item.object, item.object.pod_template()) {
            (Object::ServiceAccount(sa), _) => (
                sa.image_pull_secrets.as_deref(),
                FieldPath::new("imagePullSecrets"),
            ),
            (_, Some(template)) => (
                template.spec().image_pull_secrets.as_deref(),
                template.spec_path().field("imagePullSecrets"),
            ),
            _ => continue,
        };
        let namespace = item.object.namespace();
        for (j, r) in refs.unwrap_or_default().iter().enumerate() {
            let Some(name) = r
                .name
                .as_deref()
                .filter(|n| !n.is_empty() && super::names::dns1123_subdomain(n).is_none())
            else {
                continue;
            };
            let message = match declared.get(&(namespace, name)) {
                Some(&("kubernetes.io/dockerconfigjson" | "kubernetes.io/dockercfg")) => continue,
                Some(other) => format!(
                    "Invalid value: Secret {name:?} is of type {other:?}; registry logins are of type \
                     \"kubernetes.io/dockerconfigjson\""
                ),
                None => format!(
                    "Not found: Secret {name:?} is not declared in namespace {namespace:?}; declare \
                     it in the repository (type kubernetes.io/dockerconfigjson)"
                ),
            };
            out.push((
                i,
                FieldError {
                    path: path.index(j).field("name"),
                    message,
                },
            ));
        }
    }
}

fn duplicates(items: &[Item<'_>], out: &mut Vec<(usize, FieldError)>) {
    let mut first: BTreeMap<(&str, &str, &str, &str), usize> = BTreeMap::new();
    for (i, item) in items.iter().enumerate() {
        let info = item.object.info();
        let key = (
            info.group(),
            info.kind.as_str(),
            item.object.namespace(),
            item.object.name(),
        );
        if key.3.is_empty() {
            continue;
        }
        match first.get(&key) {
            None => {
                first.insert(key, i);
            }
            Some(&j) => out.push((
                i,
                FieldError {
                    path: FieldPath::new("metadata").field("name"),
                    message: format!(
                        "Duplicate value: {:?}: {} {} is also defined at {}",
                        key.3,
                        info.kind,
                        qualified(item.object),
                        items[j].origin
                    ),
                },
            )),
        }
    }
}

fn qualified(obj: &Object) -> String {
    if obj.info().namespaced {
        format!("{}/{}", obj.namespace(), obj.name())
    } else {
        obj.name().to_string()
    }
}

fn named_target_ports(items: &[Item<'_>], out: &mut Vec<(usize, FieldError)>) {
    let templates: Vec<(&Object, PodTemplateRef<'_>)> = items
        .iter()
        .filter_map(|item| item.object.pod_template().map(|t| (item.object, t)))
        .collect();
    for (i, item) in items.iter().enumerate() {
        let Object::Service(svc) = item.object else {
            continue;
        };
        let Some(selector) = svc.spec.selector.as_ref().filter(|s| !s.is_empty()) else {
            continue;
        };
        let selector = Selector::from_map(selector);
        let selected: Vec<&(&Object, PodTemplateRef<'_>)> = templates
            .iter()
            .filter(|(obj, t)| {
                obj.namespace() == svc.metadata.namespace()
                    && selector.matches(t.metadata().labels())
            })
            .collect();
        if selected.is_empty() {
            // Nothing in this revision to resolve against (the pods may come from elsewhere).
            continue;
        }
        for (p, port) in svc.spec.ports.iter().flatten().enumerate() {
            let Some(IntOrString::Str(name)) = &port.target_port else {
                continue;
            };
            // As in Kubernetes, pods without the port are simply left out of the endpoints;
            // it is a mistake only when no selected template defines it at all.
            let defined = selected.iter().any(|(_, t)| {
                t.spec()
                    .containers
                    .iter()
                    .flat_map(|c| c.ports.iter().flatten())
                    .any(|cp| cp.name.as_deref() == Some(name.as_str()))
            });
            if !defined {
                let which: Vec<String> = selected
                    .iter()
                    .map(|(obj, _)| format!("{} {}", obj.kind(), qualified(obj)))
                    .collect();
                out.push((
                    i,
                    FieldError {
                        path: FieldPath::new("spec").field("ports").index(p).field("targetPort"),
                        message: format!(
                            "Invalid value: {name:?}: no container port has this name in the pods this Service selects ({})",
                            which.join(", ")
                        ),
                    },
                ));
            }
        }
    }
}
