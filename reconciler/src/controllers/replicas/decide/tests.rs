use chrono::{Duration as Age, Utc};
use keel_schema::types::pod::Pod;
use serde_json::json;

use super::*;

fn owner(replicas: i64) -> Owner {
    Owner {
        uid: "rs-1".into(),
        selector: Selector::from_map(&[("app".to_string(), "web".to_string())].into()),
        replicas,
        template: serde_json::from_value(
            json!({"metadata": {"labels": {"app": "web", "tier": "front"}}}),
        )
        .unwrap(),
        min_ready_seconds: 0,
        generation: 3,
    }
}

/// A pod named `name` labelled `app: web`, owned by `owner` (a uid) or none, in `state`:
/// `pending`, `unscheduled`, `running`, `ready`, `ready-restarted`, `failed`, `unknown`.
fn pod(name: &str, owner: Option<&str>, state: &str, age_secs: i64) -> Pod {
    let created = (Utc::now() - Age::seconds(age_secs)).to_rfc3339();
    let refs = owner
        .map(|uid| json!([{"kind": "ReplicaSet", "name": "web", "uid": uid, "controller": true}]));
    let (node, phase, ready, restarts) = match state {
        "unscheduled" => (None, "Pending", false, 0),
        "pending" => (Some("n1"), "Pending", false, 0),
        "unknown" => (Some("n1"), "Unknown", false, 0),
        "running" => (Some("n1"), "Running", false, 0),
        "ready" => (Some("n1"), "Running", true, 0),
        "ready-restarted" => (Some("n1"), "Running", true, 5),
        "failed" => (Some("n1"), "Failed", false, 0),
        other => panic!("no state {other}"),
    };
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "default", "labels": {"app": "web"},
                     "creationTimestamp": created, "ownerReferences": refs},
        "spec": {"nodeName": node, "containers": [{"name": "c"}]},
        "status": {"phase": phase,
                   "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}],
                   "containerStatuses": [{"name": "c", "restartCount": restarts}]}
    }))
    .unwrap()
}

#[test]
fn extra_pods_go_in_kubernetes_order() {
    // (name, state, age): the expected order is the order of this table.
    let table = [
        ("unscheduled", "unscheduled", 50),
        ("pending", "pending", 50),
        ("unknown", "unknown", 50),
        ("not-ready", "running", 50),
        ("restarted", "ready-restarted", 50),
        ("ready-newer", "ready", 10),
        ("ready-older", "ready", 100),
    ];
    let mut pods: Vec<Pod> = table
        .iter()
        .rev()
        .map(|(name, state, age)| pod(name, Some("rs-1"), state, *age))
        .collect();
    pods.sort_by_cached_key(deletion_rank);
    let order: Vec<&str> = pods.iter().map(|p| p.metadata.name()).collect();
    let expected: Vec<&str> = table.iter().map(|(name, _, _)| *name).collect();
    assert_eq!(order, expected);
}

#[test]
fn plans_adopt_release_create_and_delete() {
    struct Case {
        what: &'static str,
        replicas: i64,
        pods: Vec<Pod>,
        adopt: &'static [&'static str],
        release: &'static [&'static str],
        create: usize,
        delete: &'static [&'static str],
        counted: i64,
    }
    let mut released = pod("moved", Some("rs-1"), "ready", 10);
    released.metadata.labels = Some([("app".to_string(), "api".to_string())].into());
    let mut from_git = pod("declared", None, "ready", 10);
    from_git
        .metadata
        .labels
        .get_or_insert_with(Default::default)
        .insert(MANAGED_BY_LABEL.into(), "git".into());
    let cases = [
        Case {
            what: "an empty owner makes all it wants",
            replicas: 3,
            pods: vec![],
            adopt: &[],
            release: &[],
            create: 3,
            delete: &[],
            counted: 0,
        },
        Case {
            what: "matching orphans are adopted and counted; git's pods and finished ones are not",
            replicas: 2,
            pods: vec![
                pod("orphan", None, "ready", 10),
                from_git,
                pod("done", None, "failed", 10),
            ],
            adopt: &["orphan"],
            release: &[],
            create: 1,
            delete: &[],
            counted: 1,
        },
        Case {
            what: "a pod that stopped matching is released and replaced",
            replicas: 1,
            pods: vec![released],
            adopt: &[],
            release: &["moved"],
            create: 1,
            delete: &[],
            counted: 0,
        },
        Case {
            what: "extras go, the least useful first; another owner's pods are left alone",
            replicas: 1,
            pods: vec![
                pod("good", Some("rs-1"), "ready", 100),
                pod("new", Some("rs-1"), "pending", 5),
                pod("theirs", Some("rs-2"), "pending", 5),
            ],
            adopt: &[],
            release: &[],
            create: 0,
            delete: &["new"],
            counted: 2,
        },
    ];
    for case in cases {
        let refs: Vec<&Pod> = case.pods.iter().collect();
        let plan = plan(&owner(case.replicas), &refs, Utc::now());
        assert_eq!(plan.adopt, case.adopt, "{}", case.what);
        assert_eq!(plan.release, case.release, "{}", case.what);
        assert_eq!(plan.create, case.create, "{}", case.what);
        assert_eq!(plan.delete, case.delete, "{}", case.what);
        assert_eq!(plan.counts.replicas, case.counted, "{}", case.what);
        assert_eq!(plan.counts.generation, 3, "{}", case.what);
    }
}

#[test]
fn one_pass_creates_at_most_a_burst() {
    let plan = plan(&owner(10_000), &[], Utc::now());
    assert_eq!(plan.create, BURST);
}

#[test]
fn a_large_owner_gets_a_fiftieth_per_pass() {
    let plan = plan(&owner(100_000), &[], Utc::now());
    assert_eq!(plan.create, 2_000);
    assert_eq!(burst(1), BURST);
    assert_eq!(burst(25_000), BURST);
    assert_eq!(burst(1_000_000), 20_000);
}

#[test]
fn status_counts_ready_available_and_fully_labeled() {
    let mut owner = owner(3);
    owner.min_ready_seconds = 30;
    let mut old = pod("old", Some("rs-1"), "ready", 100);
    let mut young = pod("young", Some("rs-1"), "ready", 100);
    let since = |secs: i64| Some(Utc::now() - Age::seconds(secs));
    for (p, ready_for) in [(&mut old, 60), (&mut young, 10)] {
        p.status.as_mut().unwrap().conditions.as_mut().unwrap()[0].last_transition_time =
            since(ready_for);
    }
    // Fully labeled means every template label: `tier` is missing on both.
    old.metadata
        .labels
        .get_or_insert_with(Default::default)
        .insert("tier".into(), "front".into());
    let starting = pod("starting", Some("rs-1"), "running", 5);
    let plan = plan(&owner, &[&old, &young, &starting], Utc::now());
    assert_eq!(
        plan.counts,
        Counts {
            replicas: 3,
            ready: 2,
            available: 1,
            fully_labeled: 1,
            generation: 3
        }
    );
    // Ready 10 s ago to the nanosecond: counted from the next whole second, so 20-21 s.
    let next = plan.next_look.expect("the young pod becomes available");
    assert!(
        next <= Duration::from_secs(21) && next >= Duration::from_secs(19),
        "{next:?}"
    );
}

#[test]
fn owners_without_a_template_or_selector_cannot_be_reconciled() {
    let rs = |spec: serde_json::Value| {
        Object::from_json(json!({"kind": "ReplicaSet", "metadata": {"name": "x"}, "spec": spec}))
            .unwrap()
    };
    let no_template = rs(json!({"selector": {"matchLabels": {"app": "web"}}}));
    assert_eq!(
        owner_of(&no_template).err().as_deref(),
        Some("spec.template: Required value")
    );
    let empty_selector = rs(json!({"selector": {}, "template": {}}));
    assert!(
        owner_of(&empty_selector)
            .unwrap_err()
            .contains("empty selectors")
    );
    let deployment =
        Object::from_json(json!({"kind": "Deployment", "metadata": {"name": "x"}})).unwrap();
    assert!(owner_of(&deployment).unwrap().is_none());
}

/// A bind and a node's reports wait for the owner's next counting pass; a change to what
/// the owner decides on (labels, owners) is looked at at once.
#[test]
fn binds_and_reports_leave_the_owners_decision_alone() {
    let mut unscheduled = pod("a", Some("rs-1"), "unscheduled", 10);
    unscheduled.metadata.generation = Some(1);
    // As the store writes a bind: a new version, and the generation bumped with the spec.
    let mut bound = unscheduled.clone();
    bound.spec.node_name = Some("n1".into());
    bound.metadata.resource_version = Some("7".into());
    bound.metadata.generation = Some(2);
    let mut ready = bound.clone();
    ready.status = pod("a", Some("rs-1"), "ready", 10).status;
    assert!(unscheduled.same_but_status_and_node(&bound));
    assert!(bound.same_but_status_and_node(&ready));
    assert!(!unscheduled.same_but_status(&bound));
    let mut relabelled = bound.clone();
    relabelled
        .metadata
        .labels
        .get_or_insert_default()
        .insert("app".into(), "other".into());
    assert!(!unscheduled.same_but_status_and_node(&relabelled));
    let mut orphaned = bound.clone();
    orphaned.metadata.owner_references = None;
    assert!(!unscheduled.same_but_status_and_node(&orphaned));
    let mut restarted = bound.clone();
    restarted.spec.restart_policy = Some("Never".into());
    assert!(!unscheduled.same_but_status_and_node(&restarted));
}

/// Pods of `rs-1`, of another owner or of none, with label sets that match, match without
/// every template label, stop matching, or are git's; in every state, ready at various
/// times.
fn any_pods() -> impl proptest::strategy::Strategy<Value = Vec<Pod>> {
    use proptest::prelude::*;
    let one = (
        prop::option::of(prop::sample::select(vec!["rs-1", "rs-2"])),
        0..4usize,
        prop::sample::select(vec![
            "unscheduled",
            "pending",
            "running",
            "ready",
            "ready-restarted",
            "failed",
            "unknown",
        ]),
        0..120i64,
        prop::option::of(0..90i64),
    );
    prop::collection::vec(one, 0..12).prop_map(|pods| {
        pods.into_iter()
            .enumerate()
            .map(|(i, (owner, labels, state, age, ready_for))| {
                let mut p = pod(&format!("p{i:02}"), owner, state, age);
                let labels_of = p.metadata.labels.get_or_insert_with(Default::default);
                match labels {
                    0 => {}
                    1 => {
                        labels_of.insert("tier".into(), "front".into());
                    }
                    2 => {
                        labels_of.insert("app".into(), "api".into());
                    }
                    _ => {
                        labels_of.insert(MANAGED_BY_LABEL.into(), "git".into());
                    }
                }
                // Whole seconds, as agents report them.
                if let Some(secs) = ready_for {
                    let at = (Utc::now() - Age::seconds(secs)).timestamp();
                    p.status.as_mut().unwrap().conditions.as_mut().unwrap()[0]
                        .last_transition_time = chrono::DateTime::from_timestamp(at, 0);
                }
                p
            })
            .collect()
    })
}

proptest::proptest! {
    /// Deciding from the tally and the orphans is deciding from each pod: the same plan
    /// whenever the tally is enough, and the tally is enough unless something is to be
    /// released or deleted.
    #[test]
    fn the_tally_decides_as_each_pod_does(
        pods in any_pods(),
        replicas in 0..8i64,
        min_ready in proptest::sample::select(vec![0i64, 30, 60]),
    ) {
        let mut owner = owner(replicas);
        owner.min_ready_seconds = min_ready;
        let now = Utc::now();
        let all: Vec<&Pod> = pods.iter().collect();
        let controlled = all.iter().copied().filter(|p| pods::controlled_by(&p.metadata, "rs-1"));
        let orphans: Vec<&Pod> = all
            .iter()
            .copied()
            .filter(|p| pods::controller_of(&p.metadata).is_none())
            .collect();
        let each = plan(&owner, &all, now);
        // Available as each pod's own check has it, over the pods the owner counts.
        let counted = all.iter().filter(|p| {
            pods::is_active(p)
                && owner.selector.matches(p.metadata.labels())
                && match pods::controller_of(&p.metadata) {
                    Some(r) => r.uid == "rs-1",
                    None => !p.metadata.labels().contains_key(MANAGED_BY_LABEL),
                }
        });
        let available = counted
            .filter(|p| pods::available(p, min_ready, now) == pods::Availability::Yes)
            .count();
        proptest::prop_assert_eq!(each.counts.available, available as i64);
        match plan_from_tally(&owner, &PodTally::of(controlled), &orphans, now) {
            Some(tallied) => proptest::prop_assert_eq!(tallied, each),
            None => proptest::prop_assert!(
                !each.release.is_empty() || !each.delete.is_empty(),
                "the tally sent a plan with nothing to release or delete to each pod: {each:?}"
            ),
        }
    }
}
