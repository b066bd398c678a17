//! `keel get` columns of NetworkPolicies and PodDisruptionBudgets, as kubectl shows them.

use keel_schema::intorstr::IntOrString;
use keel_schema::types::policy::{LimitRange, NetworkPolicy, PodDisruptionBudget, ResourceQuota};

use super::{Columns, age, created_at, name, selector_text};

fn or_na(v: Option<&IntOrString>) -> String {
    v.map_or_else(|| "N/A".to_string(), |v| v.to_string())
}

pub(super) const NETWORK_POLICY: Columns<NetworkPolicy> = Columns {
    normal: &[
        ("NAME", |p, _| name(&p.metadata)),
        ("POD-SELECTOR", |p, _| {
            let labels = p
                .spec
                .pod_selector
                .as_ref()
                .and_then(|s| s.match_labels.as_ref());
            let text = selector_text(labels.into_iter().flatten());
            if text.is_empty() {
                "<none>".to_string()
            } else {
                text
            }
        }),
        ("AGE", |p, now| age(&p.metadata, now)),
    ],
    wide: &[],
};

pub(super) const QUOTA: Columns<ResourceQuota> = Columns {
    normal: &[
        ("NAME", |q, _| name(&q.metadata)),
        ("HARD", |q, _| {
            q.spec
                .hard
                .iter()
                .flatten()
                .map(|(k, v)| format!("{k}: {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        }),
        ("AGE", |q, now| age(&q.metadata, now)),
    ],
    wide: &[],
};

pub(super) const LIMIT_RANGE: Columns<LimitRange> = Columns {
    normal: &[
        ("NAME", |r, _| name(&r.metadata)),
        ("CREATED AT", |r, _| created_at(&r.metadata)),
    ],
    wide: &[],
};

pub(super) const BUDGET: Columns<PodDisruptionBudget> = Columns {
    normal: &[
        ("NAME", |b, _| name(&b.metadata)),
        ("MIN AVAILABLE", |b, _| or_na(b.spec.min_available.as_ref())),
        ("MAX UNAVAILABLE", |b, _| {
            or_na(b.spec.max_unavailable.as_ref())
        }),
        ("ALLOWED DISRUPTIONS", |_, _| "N/A".to_string()),
        ("AGE", |b, now| age(&b.metadata, now)),
    ],
    wide: &[],
};
