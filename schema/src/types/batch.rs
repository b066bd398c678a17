//! `batch/v1`: Job and CronJob.

use super::meta::{Condition, ObjectMeta, ObjectReference, Time};
use super::pod::PodTemplateSpec;

model! {
    pub struct Job {
        #[serde(default)]
        pub api_version: String,
        #[serde(default)]
        pub kind: String,
        #[serde(default)]
        pub metadata: ObjectMeta,
        #[serde(default)]
        pub spec: JobSpec,
        pub status: Option<JobStatus>,
    }
}

model! {
    pub struct JobSpec {
        /// Default 1.
        pub completions: Option<i64>,
        /// Default 1.
        pub parallelism: Option<i64>,
        /// Default 6.
        pub backoff_limit: Option<i64>,
        pub active_deadline_seconds: Option<i64>,
        pub template: Option<PodTemplateSpec>,
    }
}

model! {
    pub struct JobStatus {
        pub active: Option<i64>,
        pub succeeded: Option<i64>,
        pub failed: Option<i64>,
        pub start_time: Option<Time>,
        pub completion_time: Option<Time>,
        pub conditions: Option<Vec<Condition>>,
    }
}

model! {
    /// Jobs made from `jobTemplate` on a cron schedule.
    pub struct CronJob {
        #[serde(default)]
        pub api_version: String,
        #[serde(default)]
        pub kind: String,
        #[serde(default)]
        pub metadata: ObjectMeta,
        #[serde(default)]
        pub spec: CronJobSpec,
        pub status: Option<CronJobStatus>,
    }
}

model! {
    pub struct CronJobSpec {
        /// Five-field cron, or `@hourly`, `@daily` (`@midnight`), `@weekly`, `@monthly`,
        /// `@yearly` (`@annually`), or `@every DURATION`.
        #[serde(default)]
        pub schedule: String,
        /// An IANA time zone (`Europe/Berlin`); UTC when unset.
        pub time_zone: Option<String>,
        /// A run that cannot start within this many seconds of its time is skipped.
        pub starting_deadline_seconds: Option<i64>,
        /// `Allow` (default), `Forbid` (skip a run while one is active) or `Replace` (stop
        /// the active one).
        #[schemars(extend("enum" = ["Allow", "Forbid", "Replace", null]))]
        pub concurrency_policy: Option<String>,
        /// No new runs while true; active ones go on.
        pub suspend: Option<bool>,
        /// Boxed: inline, it made CronJob the largest kind, and every decoded object (each of
        /// 100,000 pods) is as large as the largest kind.
        #[serde(default)]
        pub job_template: Box<JobTemplateSpec>,
        /// Finished Jobs kept (default 3 successful, 1 failed).
        pub successful_jobs_history_limit: Option<i64>,
        pub failed_jobs_history_limit: Option<i64>,
    }
}

model! {
    pub struct JobTemplateSpec {
        #[serde(default)]
        pub metadata: ObjectMeta,
        #[serde(default)]
        pub spec: JobSpec,
    }
}

model! {
    pub struct CronJobStatus {
        pub active: Option<Vec<ObjectReference>>,
        pub last_schedule_time: Option<Time>,
        pub last_successful_time: Option<Time>,
    }
}
