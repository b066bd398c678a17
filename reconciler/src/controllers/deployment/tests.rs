//! The rollout's decisions and the status, as tables.

use std::collections::BTreeMap;

use chrono::{Duration as Age, Utc};
use keel_schema::types::apps::{Deployment, ReplicaSet};
use serde_json::json;

use super::rollout::{self, Rs};
use super::status;

fn deployment(replicas: i64, strategy: serde_json::Value) -> Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": "default", "generation": 2},
        "spec": {"replicas": replicas, "strategy": strategy, "revisionHistoryLimit": 1,
                 "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}}}}
    }))
    .unwrap()
}

/// A ReplicaSet `name` at revision `revision`, sized `spec`, with `current` pods of which
/// `available` are available.
fn rs(name: &str, revision: i64, spec: i64, current: i64, available: i64) -> Rs {
    let rs: ReplicaSet = serde_json::from_value(json!({
        "metadata": {"name": name, "annotations": {rollout::REVISION_ANNOTATION: revision.to_string()}},
        "spec": {"replicas": spec},
        "status": {"replicas": current, "readyReplicas": available, "availableReplicas": available}
    }))
    .unwrap();
    Rs::new(rs, 7)
}

fn rolling(surge: serde_json::Value, unavailable: serde_json::Value) -> serde_json::Value {
    json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}})
}

#[test]
fn rolling_updates_stay_within_surge_and_availability() {
    struct Case {
        what: &'static str,
        strategy: serde_json::Value,
        new: Rs,
        old: Vec<Rs>,
        old_active_pods: usize,
        expect: &'static [(&'static str, i64)],
    }
    let cases = [
        Case {
            what: "the new set grows by the surge; nothing old goes while the new is unavailable",
            strategy: rolling(json!(1), json!(0)),
            new: rs("new", 2, 0, 0, 0),
            old: vec![rs("old", 1, 3, 3, 3)],
            old_active_pods: 3,
            expect: &[("new", 1)],
        },
        Case {
            what: "an available new pod lets one old one go",
            strategy: rolling(json!(1), json!(0)),
            new: rs("new", 2, 1, 1, 1),
            old: vec![rs("old", 1, 3, 3, 3)],
            old_active_pods: 3,
            expect: &[("old", 2)],
        },
        Case {
            what: "maxUnavailable lets old pods go before new ones are up",
            strategy: rolling(json!(0), json!(1)),
            new: rs("new", 2, 0, 0, 0),
            old: vec![rs("old", 1, 3, 3, 3)],
            old_active_pods: 3,
            expect: &[("old", 2)],
        },
        Case {
            what: "unhealthy old pods go first, oldest set first, beyond the budget too",
            strategy: rolling(json!(0), json!(1)),
            new: rs("new", 3, 1, 1, 1),
            old: vec![rs("older", 1, 1, 1, 0), rs("old", 2, 2, 2, 2)],
            old_active_pods: 3,
            expect: &[("old", 1), ("older", 0)],
        },
        Case {
            what: "a new set above the target shrinks to it",
            strategy: rolling(json!("25%"), json!("25%")),
            new: rs("new", 2, 5, 5, 5),
            old: vec![],
            old_active_pods: 0,
            expect: &[("new", 3)],
        },
        Case {
            what: "Recreate empties old sets first",
            strategy: json!({"type": "Recreate"}),
            new: rs("new", 2, 0, 0, 0),
            old: vec![rs("old", 1, 3, 3, 3)],
            old_active_pods: 3,
            expect: &[("old", 0)],
        },
        Case {
            what: "Recreate grows the new set only once the old pods are gone",
            strategy: json!({"type": "Recreate"}),
            new: rs("new", 2, 0, 0, 0),
            old: vec![rs("old", 1, 0, 0, 0)],
            old_active_pods: 0,
            expect: &[("new", 3)],
        },
        Case {
            what: "Recreate waits while old pods still run",
            strategy: json!({"type": "Recreate"}),
            new: rs("new", 2, 0, 0, 0),
            old: vec![rs("old", 1, 0, 1, 0)],
            old_active_pods: 1,
            expect: &[],
        },
    ];
    for case in cases {
        let d = deployment(3, case.strategy);
        let plan = rollout::plan_rollout(&d, 3, &case.new, &case.old, case.old_active_pods)
            .expect("valid fenceposts");
        let expect: BTreeMap<String, i64> = case
            .expect
            .iter()
            .map(|(n, r)| (n.to_string(), *r))
            .collect();
        assert_eq!(plan, expect, "{}", case.what);
    }
}

#[test]
fn fenceposts_follow_kubernetes() {
    for (surge, unavailable, replicas, expect) in [
        (json!("25%"), json!("25%"), 10, Ok((3, 2))),
        (json!(0), json!(0), 3, Ok((0, 1))),
        (json!(5), json!(0), 3, Ok((3, 0))),
        (
            json!("x%"),
            json!(0),
            3,
            Err(rollout::BadFencepost("maxSurge")),
        ),
    ] {
        let d = deployment(replicas, rolling(surge.clone(), unavailable));
        assert_eq!(rollout::fenceposts(&d, replicas), expect, "{surge}");
    }
}

#[test]
fn a_new_template_starts_as_the_strategy_allows() {
    let old = [rs("old", 1, 3, 3, 3)];
    let surge_one = deployment(3, rolling(json!(1), json!(0)));
    assert_eq!(
        rollout::first_size(&surge_one, 3, &[]),
        Ok(3),
        "the first template"
    );
    assert_eq!(
        rollout::first_size(&surge_one, 3, &old),
        Ok(1),
        "within the surge"
    );
    let recreate = deployment(3, json!({"type": "Recreate"}));
    assert_eq!(rollout::first_size(&recreate, 3, &old), Ok(0));
}

#[test]
fn history_beyond_the_limit_goes_oldest_first() {
    let d = deployment(3, rolling(json!(1), json!(0)));
    let old = [
        rs("r1", 1, 0, 0, 0),
        rs("r3", 3, 0, 0, 0),
        rs("r2", 2, 0, 0, 0),
        rs("busy", 4, 1, 1, 1),
    ];
    let names: Vec<&str> = rollout::excess_history(&d, &old, &BTreeMap::new())
        .iter()
        .map(|r| r.name())
        .collect();
    assert_eq!(
        names,
        ["r1", "r2"],
        "the limit is 1: the newest idle one stays"
    );
    let resizing = BTreeMap::from([("r1".to_string(), 1)]);
    let names: Vec<&str> = rollout::excess_history(&d, &old, &resizing)
        .iter()
        .map(|r| r.name())
        .collect();
    assert_eq!(names, ["r2"], "a set being resized is not history");
}

#[test]
fn status_counts_and_conditions() {
    let now = Utc::now();
    let mut d = deployment(3, rolling(json!(1), json!(0)));
    let status = status::compute(&d, 3, &rs("new", 2, 3, 3, 3), &[], now)
        .unwrap()
        .expect("a first status");
    assert_eq!(status.replicas, Some(3));
    assert_eq!(status.unavailable_replicas, Some(0));
    assert_eq!(status.observed_generation, Some(2));
    let reasons: Vec<&str> = status
        .conditions
        .iter()
        .flatten()
        .map(|c| c.reason.as_deref().unwrap_or(""))
        .collect();
    assert_eq!(
        reasons,
        ["MinimumReplicasAvailable", "NewReplicaSetAvailable"]
    );
    // The same again: nothing to write.
    d.status = Some(status);
    assert!(
        status::compute(&d, 3, &rs("new", 2, 3, 3, 3), &[], now)
            .unwrap()
            .is_none()
    );
}

#[test]
fn a_rollout_that_stops_moving_exceeds_its_deadline() {
    let now = Utc::now();
    let mut d = deployment(3, rolling(json!(1), json!(0)));
    d.spec.progress_deadline_seconds = Some(60);
    let (new, old) = (rs("new", 2, 1, 1, 0), [rs("old", 1, 3, 3, 3)]);
    let first = status::compute(&d, 3, &new, &old, now - Age::seconds(120))
        .unwrap()
        .unwrap();
    let progressing = |s: &keel_schema::types::apps::DeploymentStatus| {
        let c = s
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == "Progressing")
            .unwrap();
        (c.status.clone(), c.reason.clone().unwrap_or_default())
    };
    assert_eq!(
        progressing(&first),
        ("True".into(), "ReplicaSetUpdated".into())
    );
    d.status = Some(first);
    // Two minutes on, the same counts: past the 60 s deadline.
    let later = status::compute(&d, 3, &new, &old, now).unwrap().unwrap();
    assert_eq!(
        progressing(&later),
        ("False".into(), "ProgressDeadlineExceeded".into())
    );
}
