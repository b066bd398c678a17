//! Objects kept out of the decoded read cache and read from the file when asked for:
//! Events. One is written for nearly every change (a pod's Scheduled, Pulled, Created and
//! Started), and they are read only by kind (`kubectl get events`, an object's page in the
//! web UI). At 100,000 pods the cache would otherwise hold some 400,000 of them decoded,
//! more memory than the pods themselves.

use ::redb::ReadableDatabase;
use keel_schema::Kind;
use keel_schema::selector::Selector;

use super::{Inner, META, OBJECTS, backend, split_record};
use crate::codec::decode;
use crate::{ListResult, Result, Stored};

/// True for a key (`kind/namespace/name`) whose objects are read from the file, not the
/// cache.
pub(super) fn on_disk_only(path: &str) -> bool {
    path.split_once('/')
        .is_some_and(|(kind, _)| kind == Kind::Event.as_str())
}

/// The object at `path`, read from the file.
pub(super) fn read_one(inner: &Inner, path: &str) -> Result<Option<Stored>> {
    inner.check()?;
    let txn = inner.db.begin_read().map_err(backend)?;
    let objects = txn.open_table(OBJECTS).map_err(backend)?;
    let Some(value) = objects.get(path).map_err(backend)? else {
        return Ok(None);
    };
    let (revision, json) = split_record(path, value.value())?;
    Ok(Some(decode(path, json, revision, inner.cipher.as_deref())?))
}

/// The objects under `prefix` that `selector` matches, read from the file at one revision.
pub(super) fn read_under(
    inner: &Inner,
    prefix: &str,
    selector: Option<&Selector>,
) -> Result<ListResult> {
    inner.check()?;
    let txn = inner.db.begin_read().map_err(backend)?;
    let revision = txn
        .open_table(META)
        .map_err(backend)?
        .get("revision")
        .map_err(backend)?
        .map_or(0, |v| v.value());
    let objects = txn.open_table(OBJECTS).map_err(backend)?;
    let mut items = Vec::new();
    for entry in objects.range(prefix..).map_err(backend)? {
        let (key, value) = entry.map_err(backend)?;
        let path = key.value();
        if !path.starts_with(prefix) {
            break;
        }
        let (rev, json) = split_record(path, value.value())?;
        let stored = decode(path, json, rev, inner.cipher.as_deref())?;
        if selector.is_none_or(|s| s.matches(stored.object.meta().labels())) {
            items.push(stored);
        }
    }
    Ok(ListResult { items, revision })
}

/// Up to `limit` objects under `prefix` whose paths come after `after`, read from the file.
pub(super) fn read_page(
    inner: &Inner,
    prefix: &str,
    after: Option<&str>,
    limit: usize,
) -> Result<Vec<Stored>> {
    use std::ops::Bound;
    inner.check()?;
    let txn = inner.db.begin_read().map_err(backend)?;
    let objects = txn.open_table(OBJECTS).map_err(backend)?;
    // A cursor before the kind (only a made-up one) starts at its first object.
    let start = match after {
        Some(a) if a >= prefix => Bound::Excluded(a),
        _ => Bound::Included(prefix),
    };
    let mut items = Vec::new();
    for entry in objects
        .range::<&str>((start, Bound::Unbounded))
        .map_err(backend)?
    {
        let (key, value) = entry.map_err(backend)?;
        let path = key.value();
        if !path.starts_with(prefix) || items.len() >= limit {
            break;
        }
        let (rev, json) = split_record(path, value.value())?;
        items.push(decode(path, json, rev, inner.cipher.as_deref())?);
    }
    Ok(items)
}
