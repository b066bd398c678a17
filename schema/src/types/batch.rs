//! `batch/v1`: Job.

use super::meta::{Condition, ObjectMeta, Time};
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
