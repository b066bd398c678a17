//! `metadata`: names, namespaces, labels, annotations, and the fields only the cluster sets.

use super::{Errors, names};
use crate::kinds::{Kind, Object};
use crate::path::FieldPath;
use crate::selector::LabelSelector;
use crate::types::meta::ObjectMeta;

const MAX_ANNOTATIONS_BYTES: usize = 256 * 1024;
/// The label keel puts on objects it applied from git.
pub const MANAGED_BY_LABEL: &str = "keel.dev/managed-by";
/// The annotation naming the revision that last changed an applied object.
pub const REVISION_ANNOTATION: &str = "keel.dev/revision";
/// The app (keel.yaml `apps:`) an object applied from git belongs to; absent for the
/// repository's own files.
pub const APP_LABEL: &str = "keel.dev/app";

pub fn validate_metadata(obj: &Object, errs: &mut Errors) {
    let info = obj.info();
    let meta = obj.meta();
    let path = FieldPath::new("metadata");
    match meta.name.as_deref() {
        None | Some("") if meta.generate_name.as_deref().is_some_and(|g| !g.is_empty()) => errs
            .required_because(
                &path.field("name"),
                "generateName makes a new object at every apply; GitOps needs a fixed name",
            ),
        None | Some("") => errs.required(&path.field("name")),
        Some(name) => {
            let rule = match info.kind {
                Kind::Service => names::dns1035_label,
                // Its pods' names are host names; the StatefulSet's own checks say so.
                Kind::StatefulSet => |_: &str| None,
                Kind::Namespace => names::dns1123_label,
                Kind::Role | Kind::ClusterRole | Kind::RoleBinding | Kind::ClusterRoleBinding => {
                    names::path_segment_name
                }
                Kind::Pod
                | Kind::ServiceAccount
                | Kind::ReplicationController
                | Kind::ConfigMap
                | Kind::Secret
                | Kind::Node
                | Kind::Endpoints
                | Kind::Event
                | Kind::Deployment
                | Kind::ReplicaSet
                | Kind::DaemonSet
                | Kind::ControllerRevision
                | Kind::PersistentVolumeClaim
                | Kind::PersistentVolume
                | Kind::NetworkPolicy
                | Kind::PodDisruptionBudget
                | Kind::HorizontalPodAutoscaler
                | Kind::ResourceQuota
                | Kind::LimitRange
                | Kind::Job
                | Kind::CronJob
                | Kind::Ingress
                | Kind::IngressClass
                | Kind::CustomResourceDefinition
                | Kind::Custom(_) => names::dns1123_subdomain,
            };
            errs.name(&path.field("name"), name, rule);
        }
    }
    match (&meta.namespace, info.namespaced) {
        (Some(ns), false) if !ns.is_empty() => errs.forbidden(
            &path.field("namespace"),
            format!("{} is cluster-scoped and has no namespace", info.kind),
        ),
        (Some(ns), true) if !ns.is_empty() => {
            errs.name(&path.field("namespace"), ns, names::dns1123_label)
        }
        _ => {}
    }
    validate_labels_and_annotations(meta, &path, errs);
    let cluster_set: [(&str, bool); 6] = [
        ("uid", meta.uid.is_some()),
        ("resourceVersion", meta.resource_version.is_some()),
        ("generation", meta.generation.is_some()),
        ("ownerReferences", meta.owner_references.is_some()),
        ("creationTimestamp", meta.creation_timestamp.is_some()),
        ("deletionTimestamp", meta.deletion_timestamp.is_some()),
    ];
    // keel's own markers: set by keel when it applies an object, never by hand.
    if meta.labels().contains_key(MANAGED_BY_LABEL) {
        errs.forbidden(
            &path.field("labels").key_name(MANAGED_BY_LABEL),
            "set by keel when it applies an object",
        );
    }
    if meta.labels().contains_key(APP_LABEL) {
        errs.forbidden(
            &path.field("labels").key_name(APP_LABEL),
            "set by keel when it applies an object of an app (keel.yaml apps:)",
        );
    }
    if meta.annotation(REVISION_ANNOTATION).is_some() {
        errs.forbidden(
            &path.field("annotations").key_name(REVISION_ANNOTATION),
            "set by keel when it applies an object",
        );
    }
    for (field, set) in cluster_set {
        if set {
            errs.forbidden(
                &path.field(field),
                "set by the cluster; remove it from the manifest",
            );
        }
    }
}

/// Labels and annotations; also used for pod template metadata.
pub fn validate_labels_and_annotations(meta: &ObjectMeta, path: &FieldPath, errs: &mut Errors) {
    if let Some(labels) = &meta.labels {
        validate_label_map(labels, &path.field("labels"), errs);
    }
    if let Some(annotations) = &meta.annotations {
        let at = path.field("annotations");
        let mut total = 0;
        for (k, v) in annotations {
            errs.name(&at.key_name(k), k, names::qualified_name);
            total += k.len() + v.len();
        }
        if total > MAX_ANNOTATIONS_BYTES {
            errs.push(
                &at,
                format!("Too long: must have at most {MAX_ANNOTATIONS_BYTES} bytes"),
            );
        }
    }
}

/// Label keys and values (labels, selectors, nodeSelector).
pub fn validate_label_map(map: &crate::selector::Labels, path: &FieldPath, errs: &mut Errors) {
    for (k, v) in map {
        if let Some(why) = names::qualified_name(k) {
            errs.invalid(&path.key_name(k), k, format!("label key: {why}"));
        }
        errs.name(&path.key(k), v, names::label_value);
    }
}

/// A label selector's `matchLabels` and `matchExpressions`, as Kubernetes checks them; true
/// when every expression is well formed.
pub fn validate_selector_parts(sel: &LabelSelector, path: &FieldPath, errs: &mut Errors) -> bool {
    let exprs = sel.match_expressions.as_deref().unwrap_or(&[]);
    let labels = sel.match_labels.as_ref();
    if let Some(labels) = labels {
        validate_label_map(labels, &path.field("matchLabels"), errs);
    }
    let mut well_formed = true;
    for (i, e) in exprs.iter().enumerate() {
        let ep = path.field("matchExpressions").index(i);
        if e.key.is_empty() {
            errs.required(&ep.field("key"));
            well_formed = false;
        } else if let Some(why) = names::qualified_name(&e.key) {
            errs.invalid(&ep.field("key"), &e.key, why);
            well_formed = false;
        }
        let values = e.values.as_deref().unwrap_or(&[]);
        match e.operator.as_str() {
            "In" | "NotIn" => {
                if values.is_empty() {
                    errs.required_because(
                        &ep.field("values"),
                        "must be specified when `operator` is 'In' or 'NotIn'",
                    );
                    well_formed = false;
                }
            }
            "Exists" | "DoesNotExist" => {
                if !values.is_empty() {
                    errs.forbidden(
                        &ep.field("values"),
                        "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                    );
                    well_formed = false;
                }
            }
            "" => {
                errs.required(&ep.field("operator"));
                well_formed = false;
            }
            other => {
                errs.unsupported(
                    &ep.field("operator"),
                    other,
                    &["In", "NotIn", "Exists", "DoesNotExist"],
                );
                well_formed = false;
            }
        }
        for (j, v) in values.iter().enumerate() {
            errs.name(&ep.field("values").index(j), v, names::label_value);
        }
    }
    well_formed
}
