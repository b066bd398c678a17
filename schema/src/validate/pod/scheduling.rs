//! `affinity` and `topologySpreadConstraints`, with Kubernetes' rules and wording.

use super::super::meta::validate_selector_parts;
use super::super::{Errors, names};
use crate::path::FieldPath;
use crate::selector::LabelSelector;
use crate::types::pod::PodSpec;
use crate::types::scheduling::{PodAffinity, PodAffinityTerm};
use crate::types::storage::{NodeSelectorRequirement, NodeSelectorTerm};

pub(super) fn validate_scheduling(spec: &PodSpec, path: &FieldPath, errs: &mut Errors) {
    if let Some(affinity) = &spec.affinity {
        let at = path.field("affinity");
        if let Some(node) = &affinity.node_affinity {
            let at = at.field("nodeAffinity");
            if let Some(required) = &node.required_during_scheduling_ignored_during_execution {
                let at = at
                    .field("requiredDuringSchedulingIgnoredDuringExecution")
                    .field("nodeSelectorTerms");
                if required.node_selector_terms.is_empty() {
                    errs.required_because(&at, "must have at least one node selector term");
                }
                for (i, term) in required.node_selector_terms.iter().enumerate() {
                    node_term(term, &at.index(i), errs);
                }
            }
            let preferred = node
                .preferred_during_scheduling_ignored_during_execution
                .iter()
                .flatten();
            for (i, p) in preferred.enumerate() {
                let at = at
                    .field("preferredDuringSchedulingIgnoredDuringExecution")
                    .index(i);
                weight(p.weight, &at.field("weight"), errs);
                node_term(&p.preference, &at.field("preference"), errs);
            }
        }
        for (field, pods) in [
            ("podAffinity", &affinity.pod_affinity),
            ("podAntiAffinity", &affinity.pod_anti_affinity),
        ] {
            if let Some(pods) = pods {
                pod_affinity(pods, &at.field(field), errs);
            }
        }
    }
    for (i, c) in spec
        .topology_spread_constraints
        .iter()
        .flatten()
        .enumerate()
    {
        let at = path.field("topologySpreadConstraints").index(i);
        if c.max_skew <= 0 {
            errs.invalid(
                &at.field("maxSkew"),
                c.max_skew,
                "must be greater than zero",
            );
        }
        topology_key(&c.topology_key, &at.field("topologyKey"), errs);
        match c.when_unsatisfiable.as_str() {
            "" => errs.required(&at.field("whenUnsatisfiable")),
            w => errs.one_of(
                &at.field("whenUnsatisfiable"),
                Some(w),
                &["DoNotSchedule", "ScheduleAnyway"],
            ),
        }
        if let Some(min) = c.min_domains {
            if min <= 0 {
                errs.invalid(&at.field("minDomains"), min, "must be greater than zero");
            } else if c.when_unsatisfiable != "DoNotSchedule" {
                errs.invalid(
                    &at.field("minDomains"),
                    min,
                    "can only use minDomains if whenUnsatisfiable=DoNotSchedule",
                );
            }
        }
        if let Some(sel) = &c.label_selector {
            validate_selector_parts(sel, &at.field("labelSelector"), errs);
        }
        for (j, key) in c.match_label_keys.iter().flatten().enumerate() {
            errs.name(
                &at.field("matchLabelKeys").index(j),
                key,
                names::qualified_name,
            );
        }
        for (field, value) in [
            ("nodeAffinityPolicy", &c.node_affinity_policy),
            ("nodeTaintsPolicy", &c.node_taints_policy),
        ] {
            errs.one_of(&at.field(field), value.as_deref(), &["Honor", "Ignore"]);
        }
    }
}

fn weight(w: i64, at: &FieldPath, errs: &mut Errors) {
    if !(1..=100).contains(&w) {
        errs.invalid(at, w, "must be in the range 1-100");
    }
}

fn topology_key(key: &str, at: &FieldPath, errs: &mut Errors) {
    if key.is_empty() {
        errs.required_because(at, "can not be empty");
    } else {
        errs.name(at, key, names::qualified_name);
    }
}

fn node_term(term: &NodeSelectorTerm, at: &FieldPath, errs: &mut Errors) {
    for (i, r) in term.match_expressions.iter().flatten().enumerate() {
        requirement(r, &at.field("matchExpressions").index(i), false, errs);
    }
    for (i, r) in term.match_fields.iter().flatten().enumerate() {
        requirement(r, &at.field("matchFields").index(i), true, errs);
    }
}

fn requirement(r: &NodeSelectorRequirement, at: &FieldPath, field: bool, errs: &mut Errors) {
    if field {
        if r.key != "metadata.name" {
            errs.unsupported(&at.field("key"), &r.key, &["metadata.name"]);
        }
    } else if r.key.is_empty() {
        errs.required(&at.field("key"));
    } else {
        errs.name(&at.field("key"), &r.key, names::qualified_name);
    }
    let values = r.values.as_deref().unwrap_or_default();
    let operators: &[&str] = if field {
        &["In", "NotIn"]
    } else {
        &["In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"]
    };
    match r.operator.as_str() {
        "" => errs.required(&at.field("operator")),
        "In" | "NotIn" if values.is_empty() => errs.required_because(
            &at.field("values"),
            "must be specified when `operator` is 'In' or 'NotIn'",
        ),
        "In" | "NotIn" if field && values.len() != 1 => errs.invalid(
            &at.field("values"),
            values.len() as i64,
            "must have one element for a field selector",
        ),
        "Exists" | "DoesNotExist" if !field && !values.is_empty() => errs.forbidden(
            &at.field("values"),
            "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
        ),
        "Gt" | "Lt" if !field => {
            if values.len() != 1 || values[0].parse::<i64>().is_err() {
                errs.required_because(
                    &at.field("values"),
                    "must be specified single value when `operator` is 'Lt' or 'Gt', an integer",
                );
            }
        }
        op if operators.contains(&op) => {}
        other => errs.unsupported(&at.field("operator"), other, operators),
    }
}

fn pod_affinity(a: &PodAffinity, at: &FieldPath, errs: &mut Errors) {
    let required = a
        .required_during_scheduling_ignored_during_execution
        .iter()
        .flatten();
    for (i, term) in required.enumerate() {
        let at = at
            .field("requiredDuringSchedulingIgnoredDuringExecution")
            .index(i);
        pod_term(term, &at, errs);
    }
    let preferred = a
        .preferred_during_scheduling_ignored_during_execution
        .iter()
        .flatten();
    for (i, w) in preferred.enumerate() {
        let at = at
            .field("preferredDuringSchedulingIgnoredDuringExecution")
            .index(i);
        weight(w.weight, &at.field("weight"), errs);
        pod_term(&w.pod_affinity_term, &at.field("podAffinityTerm"), errs);
    }
}

fn pod_term(term: &PodAffinityTerm, at: &FieldPath, errs: &mut Errors) {
    topology_key(&term.topology_key, &at.field("topologyKey"), errs);
    if let Some(sel) = &term.label_selector {
        validate_selector_parts(sel, &at.field("labelSelector"), errs);
    }
    for (i, ns) in term.namespaces.iter().flatten().enumerate() {
        errs.name(&at.field("namespaces").index(i), ns, names::dns1123_label);
    }
    if let Some(sel) = &term.namespace_selector
        && *sel != LabelSelector::default()
    {
        errs.forbidden(
            &at.field("namespaceSelector"),
            "keel reads no namespace labels: use `{}` (every namespace) or list `namespaces`",
        );
    }
}
