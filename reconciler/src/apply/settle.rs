//! Waiting for objects to be Healthy: a sync wave before the next, a hook before the sync
//! goes on.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use keel_api::health::{Health, health};
use keel_schema::{Kind, ObjectKey};
use keel_store::Store;

use super::ApplyError;

/// How often the objects are looked at while waiting.
const POLL: Duration = Duration::from_millis(500);

/// Waits until every object of `keys` is Healthy (Unknown counts). `Ok(Err(why))` when it is
/// not within `limit`, or something is Degraded for good (a failed Job).
pub async fn wait_healthy(
    store: &Store,
    keys: &BTreeSet<ObjectKey>,
    limit: Duration,
) -> Result<Result<(), String>, ApplyError> {
    let deadline = Instant::now() + limit;
    loop {
        let mut waiting = Vec::new();
        for key in keys {
            let stored = store.get(key).await?;
            let (h, why) = match stored {
                Some(s) => health(&s.object),
                None => (Health::Missing, "absent".to_string()),
            };
            if matches!(h, Health::Healthy | Health::Unknown) {
                continue;
            }
            // A failed Job or Pod will not recover by waiting.
            if h == Health::Degraded && matches!(key.kind, Kind::Job | Kind::Pod) {
                return Ok(Err(format!("{key}: {why}")));
            }
            waiting.push(format!("{key}: {} ({why})", h.as_str()));
        }
        if waiting.is_empty() {
            return Ok(Ok(()));
        }
        if Instant::now() >= deadline {
            let shown: Vec<String> = waiting.iter().take(3).cloned().collect();
            return Ok(Err(shown.join("; ")));
        }
        tokio::time::sleep(POLL).await;
    }
}
