use chrono::{Duration as Age, Utc};
use keel_schema::types::batch::Job;
use keel_schema::types::pod::Pod;
use serde_json::json;

use super::*;

fn job(spec: serde_json::Value) -> Job {
    let mut spec = spec;
    spec["template"] = json!({"spec": {"restartPolicy": spec.get("restartPolicy").cloned().unwrap_or(json!("Never")), "containers": [{"name": "c"}]}});
    serde_json::from_value(
        json!({"metadata": {"name": "migrate", "namespace": "default"}, "spec": spec}),
    )
    .unwrap()
}

/// A pod of the Job in `phase`, made `age` seconds ago, finished `ended` seconds ago (for
/// failed ones), with `restarts`.
fn pod(name: &str, phase: &str, age: i64, ended: i64, restarts: i64) -> Pod {
    let now = Utc::now();
    let at = |secs: i64| (now - Age::seconds(secs)).to_rfc3339();
    serde_json::from_value(json!({
        "metadata": {"name": name, "creationTimestamp": at(age)},
        "status": {"phase": phase, "containerStatuses": [{"name": "c", "restartCount": restarts,
            "state": if phase == "Failed" || phase == "Succeeded" {
                json!({"terminated": {"exitCode": 1, "finishedAt": at(ended)}})
            } else { json!({"running": {}}) }}]}
    }))
    .unwrap()
}

fn decide_for(job: &Job, pods: &[Pod]) -> Decision {
    let refs: Vec<(&Pod, u64)> = pods.iter().map(|p| (p, 1)).collect();
    decide(job, &refs, Utc::now())
}

fn names(pods: &[PodRef]) -> Vec<&str> {
    pods.iter().map(|p| p.name.as_str()).collect()
}

#[test]
fn jobs_run_complete_and_fail_as_kubernetes_counts() {
    struct Case {
        what: &'static str,
        spec: serde_json::Value,
        pods: Vec<Pod>,
        finished: Option<&'static str>,
        create: usize,
        delete: &'static [&'static str],
        stop: &'static [&'static str],
        counts: (i64, i64, i64),
    }
    let cases = [
        Case {
            what: "a new Job starts its parallelism",
            spec: json!({"completions": 3, "parallelism": 2}),
            pods: vec![],
            finished: None,
            create: 2,
            delete: &[],
            stop: &[],
            counts: (0, 0, 0),
        },
        Case {
            what: "no more pods than completions left",
            spec: json!({"completions": 3, "parallelism": 2}),
            pods: vec![
                pod("a", "Succeeded", 60, 30, 0),
                pod("b", "Succeeded", 60, 30, 0),
            ],
            finished: None,
            create: 1,
            delete: &[],
            stop: &[],
            counts: (0, 2, 0),
        },
        Case {
            what: "completions reached: Complete, and running pods stop",
            spec: json!({"completions": 1, "parallelism": 2}),
            pods: vec![
                pod("done", "Succeeded", 60, 30, 0),
                pod("extra", "Running", 10, 0, 0),
            ],
            finished: Some("Complete"),
            create: 0,
            delete: &[],
            stop: &["extra"],
            counts: (0, 1, 0),
        },
        Case {
            what: "a work queue finishes when one succeeded and none runs",
            spec: json!({"parallelism": 2}),
            pods: vec![pod("a", "Succeeded", 60, 30, 0)],
            finished: Some("Complete"),
            create: 0,
            delete: &[],
            stop: &[],
            counts: (0, 1, 0),
        },
        Case {
            what: "a work queue starts no worker after a success; running ones finish",
            spec: json!({"parallelism": 3}),
            pods: vec![
                pod("a", "Succeeded", 60, 30, 0),
                pod("b", "Running", 60, 0, 0),
            ],
            finished: None,
            create: 0,
            delete: &[],
            stop: &[],
            counts: (1, 1, 0),
        },
        Case {
            what: "more failures than backoffLimit: Failed",
            spec: json!({"backoffLimit": 1}),
            pods: vec![pod("a", "Failed", 90, 80, 0), pod("b", "Failed", 60, 50, 0)],
            finished: Some("BackoffLimitExceeded"),
            create: 0,
            delete: &[],
            stop: &[],
            counts: (0, 0, 2),
        },
        Case {
            what: "under OnFailure, restarts in place count as failures",
            spec: json!({"backoffLimit": 2, "restartPolicy": "OnFailure"}),
            pods: vec![pod("a", "Running", 90, 0, 3)],
            finished: Some("BackoffLimitExceeded"),
            create: 0,
            delete: &[],
            stop: &["a"],
            counts: (0, 0, 0),
        },
        Case {
            what: "parallelism lowered: the newest extra goes",
            spec: json!({"completions": 5, "parallelism": 1}),
            pods: vec![
                pod("old", "Running", 90, 0, 0),
                pod("new", "Running", 10, 0, 0),
            ],
            finished: None,
            create: 0,
            delete: &["new"],
            stop: &[],
            counts: (2, 0, 0),
        },
        Case {
            what: "past activeDeadlineSeconds: Failed",
            spec: json!({"activeDeadlineSeconds": 0}),
            pods: vec![pod("a", "Running", 10, 0, 0)],
            finished: Some("DeadlineExceeded"),
            create: 0,
            delete: &[],
            stop: &["a"],
            counts: (0, 0, 0),
        },
    ];
    for case in cases {
        let d = decide_for(&job(case.spec), &case.pods);
        let finished = d.finished.as_ref().map(|f| match f {
            Finished::Complete => "Complete",
            Finished::Failed { reason, .. } => reason.as_str(),
        });
        assert_eq!(finished, case.finished, "{}", case.what);
        assert_eq!(d.create, case.create, "{}", case.what);
        assert_eq!(names(&d.delete), case.delete, "{}", case.what);
        assert_eq!(names(&d.stop), case.stop, "{}", case.what);
        let s = &d.status;
        let counts = (s.active.unwrap(), s.succeeded.unwrap(), s.failed.unwrap());
        assert_eq!(counts, case.counts, "{}", case.what);
        assert!(!d.finished_before, "{}", case.what);
    }
}

#[test]
fn a_failed_pod_is_replaced_after_a_doubling_back_off() {
    // Two failures: 20 s since the last one, which ended 5 s ago.
    let pods = [pod("a", "Failed", 90, 60, 0), pod("b", "Failed", 30, 5, 0)];
    let d = decide_for(&job(json!({"completions": 1})), &pods);
    assert_eq!(d.create, 0);
    let wait = d.next_look.expect("waits out the back-off");
    assert!(
        wait > Duration::from_secs(13) && wait <= Duration::from_secs(15),
        "{wait:?}"
    );
    // Long after: a new pod.
    let pods = [pod("a", "Failed", 900, 600, 0)];
    assert_eq!(decide_for(&job(json!({"completions": 1})), &pods).create, 1);
}

#[test]
fn a_finished_jobs_counts_never_drop() {
    let mut finished = job(json!({"completions": 2}));
    finished.status = Some(
        serde_json::from_value(json!({
            "succeeded": 2, "failed": 1, "active": 0,
            "conditions": [{"type": "Complete", "status": "True"}]
        }))
        .unwrap(),
    );
    // Its pods were removed since (with their node).
    let d = decide_for(&finished, &[]);
    assert!(d.finished_before);
    assert_eq!(d.finished, Some(Finished::Complete));
    assert_eq!((d.status.succeeded, d.status.failed), (Some(2), Some(1)));
    assert_eq!(d.create, 0);
    assert_eq!(
        d.status.conditions.as_ref().map(Vec::len),
        Some(1),
        "the outcome is recorded once"
    );
}
