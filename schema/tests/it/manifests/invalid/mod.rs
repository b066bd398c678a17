//! Invalid manifests, one table per topic: each case is one file's text and the exact
//! `(line, field)` of every error expected, with a fragment of each message.

mod autoscalers;
mod claims;
mod definitions;
mod documents;
mod metadata;
mod pods;
mod rbac;
mod services;
mod workloads;

use super::Case;

fn all_cases() -> impl Iterator<Item = &'static Case> {
    [
        documents::CASES,
        metadata::CASES,
        pods::CASES,
        workloads::CASES,
        services::CASES,
        rbac::CASES,
        claims::CASES,
        definitions::CASES,
        autoscalers::CASES,
    ]
    .into_iter()
    .flatten()
}

#[test]
fn invalid_manifests_report_exact_fields_and_lines() {
    assert!(
        all_cases().count() >= 70,
        "the tables keep at least 70 invalid cases"
    );
    let failures: Vec<String> = all_cases().filter_map(|c| super::check(c).err()).collect();
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        all_cases().count(),
        failures.join("\n")
    );
}
