//! ServiceAccounts and RBAC objects (Role, ClusterRole and their bindings): checked as
//! Kubernetes checks them, then stored; keel does not enforce them.

use super::{Errors, names};
use crate::path::FieldPath;
use crate::types::core::ServiceAccount;
use crate::types::pod::LocalObjectReference;
use crate::types::rbac::{PolicyRule, RoleRef, Subject};

pub const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

fn validate_references(
    list: Option<&Vec<LocalObjectReference>>,
    path: &FieldPath,
    errs: &mut Errors,
) {
    for (i, r) in list.into_iter().flatten().enumerate() {
        let at = path.index(i).field("name");
        match r.name.as_deref() {
            None | Some("") => errs.required(&at),
            Some(name) => errs.name(&at, name, names::dns1123_subdomain),
        }
    }
}

pub fn validate_service_account(sa: &ServiceAccount, errs: &mut Errors) {
    let root = FieldPath::root();
    validate_references(sa.secrets.as_ref(), &root.field("secrets"), errs);
    validate_references(
        sa.image_pull_secrets.as_ref(),
        &root.field("imagePullSecrets"),
        errs,
    );
}

/// A Role's (`cluster` false) or ClusterRole's rules.
pub fn validate_rules(rules: Option<&Vec<PolicyRule>>, cluster: bool, errs: &mut Errors) {
    let path = FieldPath::root().field("rules");
    for (i, rule) in rules.into_iter().flatten().enumerate() {
        let at = path.index(i);
        if rule.verbs.is_empty() {
            errs.required_because(&at.field("verbs"), "a rule grants at least one verb");
        }
        for (j, verb) in rule.verbs.iter().enumerate() {
            if verb.is_empty() {
                errs.required(&at.field("verbs").index(j));
            }
        }
        let urls = rule
            .non_resource_urls
            .as_ref()
            .is_some_and(|u| !u.is_empty());
        let resources = rule.resources.as_ref().is_some_and(|r| !r.is_empty());
        if urls && !cluster {
            errs.forbidden(
                &at.field("nonResourceURLs"),
                "namespaced rules cannot apply to non-resource URLs",
            );
        }
        if urls && resources {
            errs.invalid(
                &at.field("nonResourceURLs"),
                "both",
                "a rule applies to resources or to non-resource URLs, not both",
            );
        }
        if !urls && !resources {
            errs.required_because(
                &at.field("resources"),
                "a rule must apply to resources or non-resource URLs",
            );
        }
        if resources && rule.api_groups.as_ref().is_none_or(Vec::is_empty) {
            errs.required_because(
                &at.field("apiGroups"),
                "resource rules must name at least one API group (\"\" is the core group)",
            );
        }
    }
}

/// A RoleBinding's (`cluster` false) or ClusterRoleBinding's subjects and role.
pub fn validate_binding(
    subjects: Option<&Vec<Subject>>,
    role: &RoleRef,
    cluster: bool,
    errs: &mut Errors,
) {
    let root = FieldPath::root();
    let at = root.field("roleRef");
    if role.api_group != RBAC_GROUP {
        errs.unsupported(&at.field("apiGroup"), &role.api_group, &[RBAC_GROUP]);
    }
    let kinds: &[&str] = if cluster {
        &["ClusterRole"]
    } else {
        &["Role", "ClusterRole"]
    };
    if role.kind.is_empty() {
        errs.required(&at.field("kind"));
    } else if !kinds.contains(&role.kind.as_str()) {
        errs.unsupported(&at.field("kind"), &role.kind, kinds);
    }
    if role.name.is_empty() {
        errs.required(&at.field("name"));
    } else {
        errs.name(&at.field("name"), &role.name, names::path_segment_name);
    }
    for (i, s) in subjects.into_iter().flatten().enumerate() {
        let at = root.field("subjects").index(i);
        if s.name.is_empty() {
            errs.required(&at.field("name"));
        }
        let group = s.api_group.as_deref().unwrap_or("");
        match s.kind.as_str() {
            "ServiceAccount" => {
                if !group.is_empty() {
                    errs.unsupported(&at.field("apiGroup"), group, &[""]);
                }
                if !s.name.is_empty() {
                    errs.name(&at.field("name"), &s.name, names::dns1123_subdomain);
                }
                match s.namespace.as_deref() {
                    None | Some("") if cluster => errs.required_because(
                        &at.field("namespace"),
                        "a ClusterRoleBinding names the ServiceAccount's namespace",
                    ),
                    Some(ns) if !ns.is_empty() => {
                        errs.name(&at.field("namespace"), ns, names::dns1123_label)
                    }
                    _ => {}
                }
            }
            // Left out, the group is defaulted to RBAC's, as Kubernetes does.
            "User" | "Group" => {
                if !group.is_empty() && group != RBAC_GROUP {
                    errs.unsupported(&at.field("apiGroup"), group, &[RBAC_GROUP]);
                }
            }
            "" => errs.required(&at.field("kind")),
            other => errs.unsupported(
                &at.field("kind"),
                other,
                &["ServiceAccount", "User", "Group"],
            ),
        }
    }
}
