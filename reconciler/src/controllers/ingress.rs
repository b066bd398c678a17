//! Ingresses keel serves, and their status. Every agent answers HTTP and HTTPS for them on
//! its node's address, so an Ingress's `status.loadBalancer.ingress` is the Ready nodes'
//! addresses, kept current as nodes come and go.
//!
//! Which Ingresses are keel's, as Kubernetes decides it: `ingressClassName` names an
//! IngressClass whose controller is `keel.dev/ingress`; without a class name, the default
//! IngressClass (annotation `ingressclass.kubernetes.io/is-default-class: "true"`) decides,
//! and when no class is the default, keel takes it (a cluster with one ingress controller).

use std::sync::Arc;

use keel_schema::types::networking::{
    Ingress, IngressClass, IngressLoadBalancerIngress, IngressLoadBalancerStatus, IngressStatus,
};
use keel_schema::validate::ingress::CONTROLLER;
use keel_schema::{Kind, Object};
use keel_store::{ObjectKey, Stored};

use super::keys_of_kind;
use super::runtime::{Action, Controller, Ctx, Raced, Result};
use crate::cache::{Cache, Change};

pub const DEFAULT_CLASS_ANNOTATION: &str = "ingressclass.kubernetes.io/is-default-class";

fn classes(cache: &Cache) -> Vec<IngressClass> {
    cache
        .list(Kind::IngressClass, None)
        .iter()
        .filter_map(|s| match &s.object {
            Object::IngressClass(c) => Some(c.clone()),
            _ => None,
        })
        .collect()
}

/// Whether keel's agents serve `ingress`, given the cluster's IngressClasses.
pub fn served(ingress: &Ingress, classes: &[IngressClass]) -> bool {
    let ours = |c: &IngressClass| c.spec.controller.as_deref() == Some(CONTROLLER);
    match ingress
        .spec
        .ingress_class_name
        .as_deref()
        .filter(|n| !n.is_empty())
    {
        Some(name) => classes.iter().any(|c| c.metadata.name() == name && ours(c)),
        None => {
            let default = classes
                .iter()
                .find(|c| c.metadata.annotation(DEFAULT_CLASS_ANNOTATION) == Some("true"));
            default.is_none_or(ours)
        }
    }
}

/// Every Ingress keel serves, in key order.
pub fn served_ingresses(cache: &Cache) -> Vec<Arc<Stored>> {
    let classes = classes(cache);
    cache
        .list(Kind::Ingress, None)
        .iter()
        .filter(|s| matches!(&s.object, Object::Ingress(i) if served(i, &classes)))
        .cloned()
        .collect()
}

pub struct IngressStatusController;

impl Controller for IngressStatusController {
    type Key = ObjectKey;
    const NAME: &'static str = "ingress";
    const COMPONENT: &'static str = "ingress-controller";

    fn all_keys(&self, cache: &Cache) -> Vec<ObjectKey> {
        keys_of_kind(cache, Kind::Ingress)
    }

    fn keys_for(&self, change: &Change, cache: &Cache, out: &mut Vec<ObjectKey>) {
        match change.kind() {
            Some(Kind::Ingress) => out.extend(change.objects().map(ObjectKey::of).take(1)),
            Some(Kind::Node | Kind::IngressClass) | None => out.extend(self.all_keys(cache)),
            Some(_) => {}
        }
    }

    fn subject(&self, key: &ObjectKey) -> Option<ObjectKey> {
        Some(key.clone())
    }

    async fn reconcile(&self, key: &ObjectKey, ctx: &Ctx) -> Result<Action> {
        let Some(stored) = ctx.cache().get(key) else {
            return Ok(Action::Done);
        };
        let Object::Ingress(ingress) = &stored.object else {
            return Ok(Action::Done);
        };
        let ips = if served(ingress, &classes(ctx.cache())) {
            super::ready_node_ips(ctx.cache())
        } else {
            // Another controller's: its status is that controller's to write.
            return Ok(Action::Done);
        };
        let wanted = IngressStatus {
            load_balancer: Some(IngressLoadBalancerStatus {
                ingress: (!ips.is_empty()).then(|| {
                    ips.iter()
                        .map(|ip| IngressLoadBalancerIngress {
                            ip: Some(ip.to_string()),
                            hostname: None,
                        })
                        .collect()
                }),
            }),
        };
        if ingress.status.as_ref() == Some(&wanted) {
            return Ok(Action::Done);
        }
        let mut updated = ingress.clone();
        updated.status = Some(wanted);
        ctx.update(Object::Ingress(updated), stored.resource_version)
            .await
            .or_raced()?;
        Ok(Action::Done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(name: &str, controller: &str, default: bool) -> IngressClass {
        let mut c = IngressClass::default();
        c.metadata.name = Some(name.into());
        c.spec.controller = Some(controller.into());
        if default {
            c.metadata.annotations =
                Some([(DEFAULT_CLASS_ANNOTATION.to_string(), "true".to_string())].into());
        }
        c
    }

    fn ingress(class: Option<&str>) -> Ingress {
        let mut i = Ingress::default();
        i.spec.ingress_class_name = class.map(str::to_string);
        i
    }

    #[test]
    fn keel_serves_its_classes_and_classless_ingresses_unless_another_is_default() {
        let keel = class("keel", CONTROLLER, false);
        let nginx = class("nginx", "k8s.io/ingress-nginx", false);
        assert!(served(
            &ingress(Some("keel")),
            &[keel.clone(), nginx.clone()]
        ));
        assert!(!served(
            &ingress(Some("nginx")),
            &[keel.clone(), nginx.clone()]
        ));
        assert!(!served(
            &ingress(Some("missing")),
            std::slice::from_ref(&keel)
        ));
        assert!(served(&ingress(None), &[]), "no classes at all");
        assert!(
            served(&ingress(None), &[keel.clone(), nginx.clone()]),
            "no default"
        );
        let nginx_default = class("nginx", "k8s.io/ingress-nginx", true);
        assert!(!served(&ingress(None), &[keel.clone(), nginx_default]));
        let keel_default = class("keel", CONTROLLER, true);
        assert!(served(&ingress(None), &[keel_default, nginx]));
    }
}
