//! The kind table's lookups, serde and custom kinds.

use super::*;

#[test]
fn kinds_by_name_plural_and_short_name() {
    for (typed, kind) in [
        ("deploy", Kind::Deployment),
        ("Pods", Kind::Pod),
        ("ep", Kind::Endpoints),
        ("rc", Kind::ReplicationController),
        ("SECRET", Kind::Secret),
    ] {
        assert_eq!(Kind::lookup(typed), Some(kind), "{typed}");
    }
    assert_eq!(Kind::lookup("ing"), Some(Kind::Ingress));
    assert_eq!(Kind::lookup("cj"), Some(Kind::CronJob));
    assert_eq!(Kind::lookup("sts"), Some(Kind::StatefulSet));
    assert_eq!(Kind::lookup("widget"), None);
    assert_eq!(
        Kind::served_at("apps/v1", "deployments"),
        Some(Kind::Deployment)
    );
    assert_eq!(Kind::served_at("v1", "deployments"), None);
    assert_eq!(Kind::Deployment.info().resource(), "deployments.apps");
    assert_eq!(Kind::Pod.info().resource(), "pods");
}

#[test]
fn every_kind_round_trips_through_json_with_its_api_version() {
    for kind in Kind::ALL {
        let info = kind.info();
        assert_eq!(info.kind, *kind);
        assert_eq!(Kind::from_name(kind.as_str()), Some(*kind));
        let mut obj = Object::from_json(serde_json::json!({"kind": kind.as_str()})).unwrap();
        assert_eq!(obj.kind(), *kind);
        obj.set_type_meta();
        let json = serde_json::to_value(&obj).unwrap();
        assert_eq!(json["apiVersion"], info.api_version);
        assert_eq!(serde_json::to_value(kind).unwrap(), kind.as_str());
    }
}

#[test]
fn custom_objects_are_one_kind_across_versions_but_a_new_version_is_a_change() {
    let object = |version: &str, kind: &str| {
        Object::from_json(serde_json::json!({
            "apiVersion": format!("stable.example.com/{version}"), "kind": kind,
            "metadata": {"name": "n", "namespace": "default"}, "spec": {"a": 1}}))
        .unwrap()
    };
    let (v1, v2) = (object("v1", "CronTab"), object("v2", "CronTab"));
    assert_eq!(v1.kind(), v2.kind());
    assert!(v1.same_body(&v1.clone()));
    assert!(!v1.same_body(&v2));
    // A built-in kind's name in a custom group is a custom kind.
    let deployment = object("v1", "Deployment");
    assert!(matches!(deployment, Object::Custom(_)));
    assert_ne!(deployment.kind(), Kind::Deployment);
    assert_eq!(
        deployment.kind().to_string(),
        "Deployment.stable.example.com"
    );
    // A kind name with a dot would make `Kind.group` ambiguous.
    assert!(
        Object::from_json(serde_json::json!({"apiVersion": "c.d/v1", "kind": "A.b",
            "metadata": {"name": "n"}}))
        .is_err()
    );
}

#[test]
fn kinds_order_by_name_as_store_keys_do() {
    let mut kinds = Kind::ALL.to_vec();
    kinds.sort();
    let names: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
    let mut sorted = names.clone();
    sorted.sort_unstable();
    assert_eq!(names, sorted);
}

/// Every decoded object is as large as the largest kind, and a control plane holds one per
/// pod (100,000 of them at scale): templates, probes and hooks are boxed to keep it so.
#[test]
fn decoded_objects_stay_small() {
    use crate::types::pod::{Container, Pod};
    let object = std::mem::size_of::<Object>();
    assert!(object <= 1_100, "Object is {object} bytes");
    assert!(
        object <= std::mem::size_of::<Pod>() + 200,
        "Object is {object} bytes"
    );
    let container = std::mem::size_of::<Container>();
    assert!(container <= 400, "Container is {container} bytes");
}

#[test]
fn no_kind_makes_every_object_larger_than_a_pod() {
    // Every decoded object is as large as the largest kind, and pods are nearly all of a
    // large cluster's objects (100,000 in the store's cache): a kind that outgrows Pod
    // should box its rare parts, as CronJob's template and StatefulSet's status are.
    assert_eq!(
        std::mem::size_of::<Object>(),
        std::mem::size_of::<crate::types::pod::Pod>(),
        "a kind is larger than Pod"
    );
}
