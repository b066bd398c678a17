//! A limit on Normal events per namespace, as Kubernetes' `EventRateLimit` admission plugin
//! sets one: a burst of [`BURST`], then [`PER_SECOND`]. Beyond it Normal events are
//! dropped; Warnings always pass.
//!
//! A rollout of 100,000 pods records four Normal events per pod (Scheduled, Pulled,
//! Created, Started): about half of all the store's writes, and each lands on its own page
//! of the store's file. Nobody reads 400,000 "Started" events; a Warning is what an
//! operator looks for on a bad day, and those are never limited. A rollout of a few
//! hundred pods stays within the burst and keeps every event.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use keel_schema::types::core::EventType;

use super::Record;

/// Normal events a namespace may record at once.
pub const BURST: f64 = 2000.0;
/// Normal events a namespace may record per second, after its burst.
pub const PER_SECOND: f64 = 100.0;
/// How often a namespace that dropped events says how many.
const REPORT_EVERY: Duration = Duration::from_secs(60);
/// Namespaces remembered at once; past this the full (idle) ones are forgotten, which
/// changes nothing for them.
const MAX_NAMESPACES: usize = 4096;

struct Bucket {
    tokens: f64,
    at: Instant,
    dropped: u64,
    reported: Option<Instant>,
}

/// The writer's limiter (one task, so no locks).
#[derive(Default)]
pub struct Limiter {
    buckets: HashMap<String, Bucket>,
}

impl Limiter {
    /// Whether `record` is written, at `now`.
    pub fn admit(&mut self, record: &Record, now: Instant) -> bool {
        if record.type_ != EventType::Normal {
            return true;
        }
        let namespace = record.involved.namespace.as_deref().unwrap_or_default();
        if !self.buckets.contains_key(namespace) {
            if self.buckets.len() >= MAX_NAMESPACES {
                self.forget_full(now);
            }
            let bucket = Bucket {
                tokens: BURST,
                at: now,
                dropped: 0,
                reported: None,
            };
            self.buckets.insert(namespace.to_string(), bucket);
        }
        let Some(bucket) = self.buckets.get_mut(namespace) else {
            return true;
        };
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * PER_SECOND).min(BURST);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return true;
        }
        bucket.dropped += 1;
        if bucket
            .reported
            .is_none_or(|t| now.saturating_duration_since(t) >= REPORT_EVERY)
        {
            tracing::warn!(
                namespace,
                dropped = bucket.dropped,
                "more Normal events than {PER_SECOND}/s (after a burst of {BURST}): dropping \
                 some (Warnings are all kept)"
            );
            bucket.dropped = 0;
            bucket.reported = Some(now);
        }
        false
    }

    fn forget_full(&mut self, now: Instant) {
        self.buckets.retain(|_, b| {
            let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
            b.tokens + elapsed * PER_SECOND < BURST
        });
    }
}

#[cfg(test)]
mod tests {
    use keel_schema::types::meta::ObjectReference;

    use super::*;

    fn record(namespace: &str, type_: EventType) -> Record {
        Record {
            involved: ObjectReference {
                namespace: Some(namespace.into()),
                ..Default::default()
            },
            type_,
            reason: "Started".into(),
            message: "Started container c".into(),
            component: "kubelet",
            host: None,
        }
    }

    #[test]
    fn a_burst_passes_then_the_rate_and_warnings_always() {
        let mut limiter = Limiter::default();
        let start = Instant::now();
        let admitted = |limiter: &mut Limiter, namespace, type_, n, at| {
            (0..n)
                .filter(|_| limiter.admit(&record(namespace, type_), at))
                .count()
        };
        let burst = BURST as usize;
        assert_eq!(
            admitted(&mut limiter, "busy", EventType::Normal, burst + 500, start),
            burst
        );
        assert_eq!(
            admitted(&mut limiter, "busy", EventType::Warning, 500, start),
            500,
            "Warnings are never limited"
        );
        assert_eq!(
            admitted(&mut limiter, "quiet", EventType::Normal, 10, start),
            10,
            "one namespace's burst leaves others alone"
        );
        let later = start + Duration::from_secs(2);
        assert_eq!(
            admitted(&mut limiter, "busy", EventType::Normal, 1000, later),
            2 * PER_SECOND as usize
        );
        let much_later = later + Duration::from_secs(3600);
        assert_eq!(
            admitted(
                &mut limiter,
                "busy",
                EventType::Normal,
                burst + 1,
                much_later
            ),
            burst,
            "the bucket refills to its burst, not beyond"
        );
    }
}
