//! The decisions at chosen moments: the clock is the test's.

use chrono::{DateTime, Utc};
use keel_schema::types::batch::CronJob;

use super::*;

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

fn cron(schedule: &str, extra: serde_json::Value) -> CronJob {
    let mut spec = serde_json::json!({
        "schedule": schedule,
        "jobTemplate": {"spec": {"template": {"spec": {"restartPolicy": "Never",
            "containers": [{"name": "c", "image": "x:1"}]}}}}
    });
    if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
        spec.extend(extra.clone());
    }
    serde_json::from_value(serde_json::json!({
        "apiVersion": "batch/v1", "kind": "CronJob",
        "metadata": {"name": "report", "namespace": "default",
                     "creationTimestamp": "2026-01-01T10:00:10Z"},
        "spec": spec
    }))
    .unwrap()
}

fn job(name: &str, scheduled: &str, succeeded: Option<bool>, finished: Option<&str>) -> JobInfo {
    JobInfo {
        name: name.to_string(),
        uid: format!("uid-{name}"),
        version: 7,
        scheduled: Some(at(scheduled)),
        created: Some(at(scheduled)),
        succeeded,
        finished_at: finished.map(at),
    }
}

#[test]
fn a_run_is_due_at_each_scheduled_minute_and_made_once() {
    let c = cron("* * * * *", serde_json::json!({}));
    // Created at 10:00:10: nothing is due before 10:01.
    let d = decide(&c, &[], at("2026-01-01T10:00:50Z"));
    assert_eq!(d.create, None);
    assert_eq!(d.next_look, Some(std::time::Duration::from_secs(10)));
    let d = decide(&c, &[], at("2026-01-01T10:01:02Z"));
    assert_eq!(d.create, Some(at("2026-01-01T10:01:00Z")));
    assert_eq!(
        d.status.last_schedule_time,
        Some(at("2026-01-01T10:01:00Z"))
    );
    assert_eq!(
        job_name("report", at("2026-01-01T10:01:00Z")),
        "report-29454361"
    );
    // Once its Job exists, the same minute makes nothing more.
    let made = job("report-29454361", "2026-01-01T10:01:00Z", None, None);
    let d = decide(&c, std::slice::from_ref(&made), at("2026-01-01T10:01:30Z"));
    assert_eq!(d.create, None);
    assert_eq!(d.status.active.as_ref().map(Vec::len), Some(1));
}

#[test]
fn missed_times_start_only_the_most_recent_within_the_deadline() {
    let mut c = cron(
        "* * * * *",
        serde_json::json!({"startingDeadlineSeconds": 30}),
    );
    c.status = Some(keel_schema::types::batch::CronJobStatus {
        last_schedule_time: Some(at("2026-01-01T10:01:00Z")),
        ..Default::default()
    });
    // Down from 10:01 to 10:05:20: only 10:05 is within 30 s.
    let d = decide(&c, &[], at("2026-01-01T10:05:20Z"));
    assert_eq!(d.create, Some(at("2026-01-01T10:05:00Z")));
    // At 10:05:40 the 10:05 run is past its deadline: nothing starts until 10:06.
    let d = decide(&c, &[], at("2026-01-01T10:05:40Z"));
    assert_eq!(d.create, None);
}

#[test]
fn concurrency_policies_forbid_or_replace_an_active_run() {
    let active = job("report-29454361", "2026-01-01T10:01:00Z", None, None);
    let now = at("2026-01-01T10:02:01Z");
    let forbid = cron(
        "* * * * *",
        serde_json::json!({"concurrencyPolicy": "Forbid"}),
    );
    let d = decide(&forbid, std::slice::from_ref(&active), now);
    assert_eq!(d.create, None);
    assert_eq!(d.notes[0].reason, "JobAlreadyActive");
    assert_eq!(d.status.last_schedule_time, None, "the time stays due");
    let replace = cron(
        "* * * * *",
        serde_json::json!({"concurrencyPolicy": "Replace"}),
    );
    let d = decide(&replace, std::slice::from_ref(&active), now);
    assert_eq!(d.create, Some(at("2026-01-01T10:02:00Z")));
    assert_eq!(d.delete, [("report-29454361".to_string(), 7)]);
    let allow = cron("* * * * *", serde_json::json!({}));
    let d = decide(&allow, &[active], now);
    assert_eq!(d.create, Some(at("2026-01-01T10:02:00Z")));
    assert!(d.delete.is_empty());
    assert_eq!(d.status.active.as_ref().map(Vec::len), Some(1));
}

#[test]
fn history_limits_keep_the_newest_finished_jobs_and_suspend_starts_nothing() {
    let c = cron(
        "@hourly",
        serde_json::json!({"successfulJobsHistoryLimit": 2, "failedJobsHistoryLimit": 0,
                           "suspend": true}),
    );
    let jobs = [
        job(
            "r-1",
            "2026-01-01T07:00:00Z",
            Some(true),
            Some("2026-01-01T07:00:05Z"),
        ),
        job(
            "r-2",
            "2026-01-01T08:00:00Z",
            Some(true),
            Some("2026-01-01T08:00:05Z"),
        ),
        job(
            "r-3",
            "2026-01-01T09:00:00Z",
            Some(true),
            Some("2026-01-01T09:00:05Z"),
        ),
        job(
            "r-4",
            "2026-01-01T10:00:00Z",
            Some(false),
            Some("2026-01-01T10:00:05Z"),
        ),
    ];
    let d = decide(&c, &jobs, at("2026-01-01T12:30:00Z"));
    let deleted: Vec<&str> = d.delete.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(deleted, ["r-1", "r-4"]);
    assert_eq!(d.create, None, "suspended");
    assert_eq!(
        d.status.last_successful_time,
        Some(at("2026-01-01T09:00:05Z"))
    );
}

#[test]
fn time_zones_move_the_runs() {
    let c = cron(
        "30 9 * * *",
        serde_json::json!({"timeZone": "America/New_York"}),
    );
    // 09:30 in New York in January is 14:30 UTC.
    let d = decide(&c, &[], at("2026-01-01T14:30:05Z"));
    assert_eq!(d.create, Some(at("2026-01-01T14:30:00Z")));
    let d = decide(&c, &[], at("2026-01-01T14:29:00Z"));
    assert_eq!(d.create, None);
}
