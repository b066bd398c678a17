use chrono::Utc;
use keel_schema::types::pod::Pod;
use serde_json::json;

use super::*;

/// Pod `web-<ordinal>` at `revision`: `running` and `ready`, or `failed`.
#[derive(Clone, Copy)]
enum State {
    Ready,
    Starting,
    Failed,
}

fn pod(name: &str, revision: &str, state: State) -> Pod {
    let (phase, ready) = match state {
        State::Ready => ("Running", "True"),
        State::Starting => ("Running", "False"),
        State::Failed => ("Failed", "False"),
    };
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {REVISION_LABEL: revision}},
        "status": {"phase": phase, "conditions": [{"type": "Ready", "status": ready}]}
    }))
    .unwrap()
}

fn members(pods: &[Pod]) -> Vec<Member<'_>> {
    pods.iter()
        .enumerate()
        .map(|(i, p)| Member::new("web", p, i as u64 + 1))
        .collect()
}

fn terminating(mut pod: Pod) -> Pod {
    pod.metadata.deletion_timestamp = Some(Utc::now());
    pod
}

fn wanted(replicas: i64, parallel: bool, partition: Option<i64>) -> Wanted {
    Wanted {
        replicas,
        start: 0,
        parallel,
        partition,
        min_ready_seconds: 0,
    }
}

fn deleted(plan: &Plan) -> Vec<&str> {
    plan.delete.iter().map(|d| d.name.as_str()).collect()
}

#[test]
fn ordered_start_makes_one_pod_at_a_time_in_order() {
    let w = wanted(3, false, Some(0));
    let plan = super::plan(&w, "r1", "r1", &[], Utc::now());
    assert_eq!(plan.create, vec![(0, From::Update)]);
    // web-0 is starting: nothing more until it is Running and Ready.
    let pods = [pod("web-0", "r1", State::Starting)];
    let plan = super::plan(&w, "r1", "r1", &members(&pods), Utc::now());
    assert!(plan.create.is_empty(), "{plan:?}");
    assert!(plan.waiting.unwrap().contains("web-0"));
    let pods = [pod("web-0", "r1", State::Ready)];
    let plan = super::plan(&w, "r1", "r1", &members(&pods), Utc::now());
    assert_eq!(plan.create, vec![(1, From::Update)]);
    // A gap is filled before anything above it: web-1 lost, web-2 there.
    let pods = [
        pod("web-0", "r1", State::Ready),
        pod("web-2", "r1", State::Ready),
    ];
    let plan = super::plan(&w, "r1", "r1", &members(&pods), Utc::now());
    assert_eq!(plan.create, vec![(1, From::Update)]);
}

#[test]
fn parallel_start_makes_every_pod_at_once() {
    let pods = [pod("web-1", "r1", State::Starting)];
    let plan = super::plan(
        &wanted(4, true, Some(0)),
        "r1",
        "r1",
        &members(&pods),
        Utc::now(),
    );
    assert_eq!(
        plan.create,
        vec![(0, From::Update), (2, From::Update), (3, From::Update)]
    );
}

#[test]
fn ordered_scale_down_removes_the_highest_ordinal_first_and_only_when_all_are_healthy() {
    let all_ready: Vec<Pod> = (0..4)
        .map(|i| pod(&format!("web-{i}"), "r1", State::Ready))
        .collect();
    let plan = super::plan(
        &wanted(2, false, Some(0)),
        "r1",
        "r1",
        &members(&all_ready),
        Utc::now(),
    );
    assert_eq!(deleted(&plan), ["web-3"]);
    assert!(plan.create.is_empty());
    // A kept pod is not ready: nothing is removed.
    let mut pods = all_ready.clone();
    pods[1] = pod("web-1", "r1", State::Starting);
    let plan = super::plan(
        &wanted(2, false, Some(0)),
        "r1",
        "r1",
        &members(&pods),
        Utc::now(),
    );
    assert!(plan.delete.is_empty(), "{plan:?}");
    // Parallel removes every surplus pod at once.
    let plan = super::plan(
        &wanted(2, true, Some(0)),
        "r1",
        "r1",
        &members(&all_ready),
        Utc::now(),
    );
    assert_eq!(deleted(&plan), ["web-3", "web-2"]);
}

#[test]
fn rolling_update_goes_down_from_the_highest_ordinal_one_ready_pod_at_a_time() {
    let w = wanted(3, false, Some(0));
    let old: Vec<Pod> = (0..3)
        .map(|i| pod(&format!("web-{i}"), "r1", State::Ready))
        .collect();
    let plan = super::plan(&w, "r1", "r2", &members(&old), Utc::now());
    assert_eq!(deleted(&plan), ["web-2"]);
    // web-2 made again at r2 but not ready yet: web-1 waits.
    let pods = [
        old[0].clone(),
        old[1].clone(),
        pod("web-2", "r2", State::Starting),
    ];
    let plan = super::plan(&w, "r1", "r2", &members(&pods), Utc::now());
    assert!(plan.delete.is_empty(), "{plan:?}");
    let pods = [
        old[0].clone(),
        old[1].clone(),
        pod("web-2", "r2", State::Ready),
    ];
    let plan = super::plan(&w, "r1", "r2", &members(&pods), Utc::now());
    assert_eq!(deleted(&plan), ["web-1"]);
    assert!(!plan.update_done);
    let new: Vec<Pod> = (0..3)
        .map(|i| pod(&format!("web-{i}"), "r2", State::Ready))
        .collect();
    let plan = super::plan(&w, "r1", "r2", &members(&new), Utc::now());
    assert!(plan.delete.is_empty() && plan.update_done, "{plan:?}");
    assert_eq!(plan.counts.updated, 3);
}

#[test]
fn a_partition_keeps_lower_ordinals_at_the_current_revision() {
    let w = wanted(3, false, Some(2));
    let pods = [
        pod("web-0", "r1", State::Ready),
        pod("web-1", "r1", State::Ready),
        pod("web-2", "r2", State::Ready),
    ];
    let plan = super::plan(&w, "r1", "r2", &members(&pods), Utc::now());
    assert!(plan.delete.is_empty(), "{plan:?}");
    assert!(!plan.update_done, "web-0 and web-1 are not updated");
    assert_eq!((plan.counts.current, plan.counts.updated), (2, 1));
    // web-1 lost: made again from the current revision, not the update.
    let pods = [
        pod("web-0", "r1", State::Ready),
        pod("web-2", "r2", State::Ready),
    ];
    let plan = super::plan(&w, "r1", "r2", &members(&pods), Utc::now());
    assert_eq!(plan.create, vec![(1, From::Current)]);
}

#[test]
fn on_delete_replaces_nothing_by_itself() {
    let w = wanted(2, false, None);
    let old: Vec<Pod> = (0..2)
        .map(|i| pod(&format!("web-{i}"), "r1", State::Ready))
        .collect();
    let plan = super::plan(&w, "r1", "r2", &members(&old), Utc::now());
    assert!(plan.delete.is_empty() && plan.create.is_empty(), "{plan:?}");
    // A deleted pod comes back at the update revision.
    let plan = super::plan(&w, "r1", "r2", &members(&old[..1]), Utc::now());
    assert_eq!(plan.create, vec![(1, From::Update)]);
}

#[test]
fn a_failed_pod_is_deleted_to_be_made_again() {
    let pods = [
        pod("web-0", "r1", State::Ready),
        pod("web-1", "r1", State::Failed),
    ];
    let plan = super::plan(
        &wanted(2, false, Some(0)),
        "r1",
        "r1",
        &members(&pods),
        Utc::now(),
    );
    assert_eq!(deleted(&plan), ["web-1"]);
    assert!(plan.create.is_empty());
}

#[test]
fn ordinals_start_where_asked_and_foreign_names_are_surplus() {
    let mut w = wanted(2, true, Some(0));
    w.start = 5;
    let pods = [
        pod("web-5", "r1", State::Ready),
        pod("web-0", "r1", State::Ready),
    ];
    let plan = super::plan(&w, "r1", "r1", &members(&pods), Utc::now());
    assert_eq!(plan.create, vec![(6, From::Update)]);
    assert_eq!(deleted(&plan), ["web-0"]);
}

#[test]
fn ordinals_are_read_only_from_the_sets_own_names() {
    assert_eq!(ordinal_of("web", "web-0"), Some(0));
    assert_eq!(ordinal_of("web", "web-12"), Some(12));
    for name in ["web-", "web-01", "web-x", "webs-1", "web-1-2", "web"] {
        assert_eq!(ordinal_of("web", name), None, "{name}");
    }
    assert_eq!(ordinal_of("web-1", "web-1-3"), Some(3));
}

#[test]
fn a_terminating_pod_holds_its_name_and_ordered_progress() {
    let w = wanted(3, false, Some(0));
    // web-2 is stopping after a scale-down to 2... then a scale back up to 3: nothing is made
    // until it is gone, and web-1 is not touched meanwhile.
    let pods = [
        pod("web-0", "r1", State::Ready),
        pod("web-1", "r1", State::Ready),
        terminating(pod("web-2", "r1", State::Ready)),
    ];
    let plan = super::plan(&w, "r1", "r1", &members(&pods), Utc::now());
    assert!(plan.create.is_empty() && plan.delete.is_empty(), "{plan:?}");
    assert_eq!(plan.counts.replicas, 2, "a terminating pod is not counted");
    // Ordered scale-down: the next pod goes only once the first has stopped.
    let plan = super::plan(
        &wanted(1, false, Some(0)),
        "r1",
        "r1",
        &members(&pods),
        Utc::now(),
    );
    assert!(plan.delete.is_empty(), "{plan:?}");
    // An update waits for the replaced pod to be made again.
    let pods = [
        pod("web-0", "r1", State::Ready),
        pod("web-1", "r1", State::Ready),
        terminating(pod("web-2", "r1", State::Ready)),
    ];
    let plan = super::plan(
        &wanted(3, true, Some(0)),
        "r1",
        "r2",
        &members(&pods),
        Utc::now(),
    );
    assert!(plan.create.is_empty() && plan.delete.is_empty(), "{plan:?}");
    // Parallel: other ordinals go on.
    let pods = [terminating(pod("web-0", "r1", State::Ready))];
    let plan = super::plan(
        &wanted(3, true, Some(0)),
        "r1",
        "r1",
        &members(&pods),
        Utc::now(),
    );
    assert_eq!(plan.create, vec![(1, From::Update), (2, From::Update)]);
}
