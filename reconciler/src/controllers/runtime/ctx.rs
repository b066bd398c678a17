//! What a reconcile gets: the cache to read, the settings, the event recorder, and writes
//! that are recorded for the runtime (which then waits for the cache to show them).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use keel_schema::Object;
use keel_store::{ObjectKey, Store, Stored};

use super::config::Config;
use super::error::Result;
use crate::cache::{Cache, Written};
use crate::events::Recorder;

/// What every pass shares: the store, the cache, the settings, and the writes the cache has
/// not shown yet, by controller and key.
pub struct Shared {
    pub store: Store,
    pub cache: Cache,
    pub config: Config,
    pub events: Recorder,
    pub(super) expectations: Mutex<HashMap<String, Vec<Written>>>,
}

impl Shared {
    pub fn new(store: Store, cache: Cache, config: Config, events: Recorder) -> Shared {
        Shared {
            store,
            cache,
            config,
            events,
            expectations: Mutex::default(),
        }
    }

    pub(super) fn expectations(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<Written>>> {
        self.expectations.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// One reconcile's context. Its writes are the runtime's to wait for.
pub struct Ctx {
    shared: Arc<Shared>,
    writes: Mutex<Vec<Written>>,
}

impl Ctx {
    pub(super) fn new(shared: Arc<Shared>) -> Ctx {
        Ctx {
            shared,
            writes: Mutex::default(),
        }
    }

    pub fn cache(&self) -> &Cache {
        &self.shared.cache
    }

    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    pub fn events(&self) -> &Recorder {
        &self.shared.events
    }

    fn record(&self, stored: &Stored, deleted: bool) -> Written {
        let written = Written {
            key: ObjectKey::of(&stored.object),
            revision: stored.resource_version,
            deleted,
        };
        self.writes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(written.clone());
        written
    }

    /// The writes made so far (the runtime's, after the pass).
    pub(super) fn take_writes(&self) -> Vec<Written> {
        std::mem::take(&mut *self.writes.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Creates `object`. A pod is admitted first, as Kubernetes admits it (see
    /// [`super::admission`]).
    pub async fn create(&self, mut object: Object) -> Result<Written> {
        if let Object::Pod(pod) = &mut object {
            super::admission::admit(pod, &self.shared.cache);
        }
        let stored = self.shared.store.create_shared(object).await?;
        Ok(self.record(&stored, false))
    }

    /// Writes `object` over the version read.
    pub async fn update(&self, object: Object, read: u64) -> Result<Written> {
        let stored = self.shared.store.update_shared(object, read).await?;
        Ok(self.record(&stored, false))
    }

    /// Deletes what was read at `read`. A lost race (gone or changed meanwhile) is an
    /// error like any other; callers for whom that is fine say so with `or_raced`.
    pub async fn delete(&self, key: &ObjectKey, read: u64) -> Result<Written> {
        let stored = self.shared.store.delete_shared(key, Some(read)).await?;
        Ok(self.record(&stored, true))
    }
}
