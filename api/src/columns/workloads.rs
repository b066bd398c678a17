//! `keel get` columns of the workload kinds: Deployment, ReplicaSet, DaemonSet,
//! StatefulSet (and its ControllerRevisions), Job, CronJob.

use keel_schema::types::apps::{
    ControllerRevision, DaemonSet, Deployment, ReplicaSet, StatefulSet,
};
use keel_schema::types::batch::{CronJob, Job};

use super::{
    Columns, age, containers, count, human_duration, images, name, or_none, selector_text,
};

pub(super) const DEPLOYMENT: Columns<Deployment> = Columns {
    normal: &[
        ("NAME", |d, _| name(&d.metadata)),
        ("READY", |d, _| {
            let ready = d.status.as_ref().and_then(|s| s.ready_replicas);
            format!("{}/{}", ready.unwrap_or(0), d.spec.replicas.unwrap_or(0))
        }),
        ("UP-TO-DATE", |d, _| {
            count(d.status.as_ref().and_then(|s| s.updated_replicas))
        }),
        ("AVAILABLE", |d, _| {
            count(d.status.as_ref().and_then(|s| s.available_replicas))
        }),
        ("AGE", |d, now| age(&d.metadata, now)),
    ],
    wide: &[
        ("CONTAINERS", |d, _| containers(d.spec.template.as_ref())),
        ("IMAGES", |d, _| images(d.spec.template.as_ref())),
        ("SELECTOR", |d, _| {
            let labels = d
                .spec
                .selector
                .as_ref()
                .and_then(|s| s.match_labels.as_ref());
            selector_text(labels.into_iter().flatten())
        }),
    ],
};

pub(super) const REPLICA_SET: Columns<ReplicaSet> = Columns {
    normal: &[
        ("NAME", |r, _| name(&r.metadata)),
        ("DESIRED", |r, _| count(r.spec.replicas)),
        ("CURRENT", |r, _| {
            count(r.status.as_ref().map(|s| s.replicas))
        }),
        ("READY", |r, _| {
            count(r.status.as_ref().and_then(|s| s.ready_replicas))
        }),
        ("AGE", |r, now| age(&r.metadata, now)),
    ],
    wide: &[
        ("CONTAINERS", |r, _| containers(r.spec.template.as_ref())),
        ("IMAGES", |r, _| images(r.spec.template.as_ref())),
        ("SELECTOR", |r, _| {
            let labels = r
                .spec
                .selector
                .as_ref()
                .and_then(|s| s.match_labels.as_ref());
            selector_text(labels.into_iter().flatten())
        }),
    ],
};

pub(super) const DAEMON_SET: Columns<DaemonSet> = Columns {
    normal: &[
        ("NAME", |d, _| name(&d.metadata)),
        ("DESIRED", |d, _| {
            count(d.status.as_ref().map(|s| s.desired_number_scheduled))
        }),
        ("CURRENT", |d, _| {
            count(d.status.as_ref().map(|s| s.current_number_scheduled))
        }),
        ("READY", |d, _| {
            count(d.status.as_ref().map(|s| s.number_ready))
        }),
        ("AGE", |d, now| age(&d.metadata, now)),
    ],
    wide: &[],
};

pub(super) const STATEFUL_SET: Columns<StatefulSet> = Columns {
    normal: &[
        ("NAME", |s, _| name(&s.metadata)),
        ("READY", |s, _| {
            let ready = s
                .status
                .as_ref()
                .and_then(|s| s.ready_replicas)
                .unwrap_or(0);
            format!("{ready}/{}", s.spec.replicas.unwrap_or(1))
        }),
        ("AGE", |s, now| age(&s.metadata, now)),
    ],
    wide: &[
        ("CONTAINERS", |s, _| containers(s.spec.template.as_ref())),
        ("IMAGES", |s, _| images(s.spec.template.as_ref())),
    ],
};

pub(super) const CONTROLLER_REVISION: Columns<ControllerRevision> = Columns {
    normal: &[
        ("NAME", |r, _| name(&r.metadata)),
        ("CONTROLLER", |r, _| {
            let owner = r.metadata.owner_references.iter().flatten().next();
            or_none(
                owner
                    .map(|o| format!("{}/{}", o.kind.to_ascii_lowercase(), o.name))
                    .unwrap_or_default(),
            )
        }),
        ("REVISION", |r, _| r.revision.to_string()),
        ("AGE", |r, now| age(&r.metadata, now)),
    ],
    wide: &[],
};

pub(super) const JOB: Columns<Job> = Columns {
    normal: &[
        ("NAME", |j, _| name(&j.metadata)),
        ("COMPLETIONS", |j, _| {
            let done = j.status.as_ref().and_then(|s| s.succeeded).unwrap_or(0);
            format!("{done}/{}", j.spec.completions.unwrap_or(1))
        }),
        ("AGE", |j, now| age(&j.metadata, now)),
    ],
    wide: &[],
};

pub(super) const CRON_JOB: Columns<CronJob> = Columns {
    normal: &[
        ("NAME", |c, _| name(&c.metadata)),
        ("SCHEDULE", |c, _| c.spec.schedule.clone()),
        ("TIMEZONE", |c, _| {
            or_none(c.spec.time_zone.clone().unwrap_or_default())
        }),
        ("SUSPEND", |c, _| {
            if c.spec.suspend == Some(true) {
                "True"
            } else {
                "False"
            }
            .to_string()
        }),
        ("ACTIVE", |c, _| {
            let active = c.status.as_ref().and_then(|s| s.active.as_ref());
            active.map_or(0, Vec::len).to_string()
        }),
        ("LAST SCHEDULE", |c, now| {
            let last = c.status.as_ref().and_then(|s| s.last_schedule_time);
            last.map_or_else(|| "<none>".into(), |t| human_duration(now - t))
        }),
        ("AGE", |c, now| age(&c.metadata, now)),
    ],
    wide: &[],
};
