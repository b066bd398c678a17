//! Garbage collection by ownerReferences: an object whose owners are all gone (absent, or
//! present under another uid: deleted and made again) is deleted, as Kubernetes' background
//! cascading deletion. Deleting a Deployment so removes its ReplicaSets, and they their pods.
//!
//! As Kubernetes' collector, it acts on changes to the ownership graph only: an object that
//! appears, one whose ownerReferences change, and the dependents of one deleted. A pod's
//! status write leaves its owners as they were, so it needs no pass; at 100,000 pods a pass
//! per write, and per object at every resync, kept a core busy for over a second every 30 s.

use std::sync::Arc;
use std::time::Duration;

use keel_schema::types::meta::OwnerReference;
use keel_schema::{Kind, Object};
use keel_store::{ObjectKey, Stored};

use super::runtime::{Action, Controller, Ctx, Raced, Result};
use crate::cache::{Cache, Change};

pub struct GarbageCollector;

/// How soon an orphan whose delete lost a race is looked at again.
const RACED_RETRY: Duration = Duration::from_millis(200);

/// True when `object` names owners and none of them exists any more.
fn orphaned(object: &Object, cache: &Cache) -> bool {
    let owners = object
        .meta()
        .owner_references
        .as_deref()
        .unwrap_or_default();
    !owners.is_empty() && !has_live_owner(object, cache)
}

/// True when at least one of `object`'s owners still exists.
fn has_live_owner(object: &Object, cache: &Cache) -> bool {
    object.meta().owner_references.iter().flatten().any(|r| {
        let Some(kind) = Kind::from_name(&r.kind) else {
            // A kind keel does not know cannot be checked: keep the dependent.
            return true;
        };
        let namespace = if kind.info().namespaced {
            object.namespace()
        } else {
            ""
        };
        cache
            .get(&ObjectKey::new(kind, namespace, &r.name))
            .is_some_and(|o| o.object.meta().uid.as_deref() == Some(r.uid.as_str()))
    })
}

/// The owners `stored` names, if any.
fn owners(stored: &Arc<Stored>) -> Option<&[OwnerReference]> {
    stored.object.meta().owner_references.as_deref()
}

impl Controller for GarbageCollector {
    type Key = ObjectKey;
    const NAME: &'static str = "garbage-collector";
    const COMPONENT: &'static str = "garbage-collector";

    /// The objects orphaned now, checked in one scan: the pass would leave every other
    /// object as it is, so queueing them all would only cost a pass each.
    fn all_keys(&self, cache: &Cache) -> Vec<ObjectKey> {
        Kind::ALL
            .iter()
            .flat_map(|k| cache.list(*k, None))
            .filter(|s| orphaned(&s.object, cache))
            .map(|s| ObjectKey::of(&s.object))
            .collect()
    }

    fn keys_for(&self, change: &Change, cache: &Cache, out: &mut Vec<ObjectKey>) {
        match change {
            Change::Object { old, new } => {
                // New, or its owners changed (a status write leaves them as they were).
                if let Some(new) = new
                    && owners(new).is_some()
                    && old.as_ref().and_then(owners) != owners(new)
                {
                    out.push(ObjectKey::of(&new.object));
                }
                // A deletion: look at everything that named it.
                if new.is_none()
                    && let Some(old) = old
                    && let Some(uid) = old.object.meta().uid.as_deref()
                {
                    out.extend(
                        cache
                            .dependents(uid)
                            .iter()
                            .map(|s| ObjectKey::of(&s.object)),
                    );
                }
            }
            Change::Relisted => out.extend(self.all_keys(cache)),
        }
    }

    fn subject(&self, key: &ObjectKey) -> Option<ObjectKey> {
        Some(key.clone())
    }

    async fn reconcile(&self, key: &ObjectKey, ctx: &Ctx) -> Result<Action> {
        let Some(stored) = ctx.cache().get(key) else {
            return Ok(Action::Done);
        };
        if !orphaned(&stored.object, ctx.cache()) {
            return Ok(Action::Done);
        }
        tracing::info!(object = %key, "garbage collection: its owners are gone");
        // A lost race is most often a status report, which changes no owner and so queues
        // no pass here (`keys_for`): look again shortly rather than at the next resync.
        match ctx.delete(key, stored.resource_version).await.or_raced()? {
            Some(_) => Ok(Action::Done),
            None => Ok(Action::RequeueAfter(RACED_RETRY)),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn object(value: Value) -> Object {
        Object::from_json(value).unwrap()
    }

    fn replica_set(uid: &str) -> Object {
        object(json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": "web", "namespace": "default", "uid": uid},
            "spec": {"selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "c", "image": "i"}]}}}}))
    }

    /// A pod named `name` owned by the ReplicaSet `web` with `owner_uid`, in `phase`.
    fn pod(name: &str, owner_kind: &str, owner_uid: &str, phase: &str) -> Object {
        object(json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default", "uid": format!("{name}-uid"),
                         "ownerReferences": [{"apiVersion": "apps/v1", "kind": owner_kind,
                                              "name": "web", "uid": owner_uid, "controller": true}]},
            "spec": {"containers": [{"name": "c", "image": "i"}]},
            "status": {"phase": phase}}))
    }

    fn stored(object: Object) -> Option<Arc<Stored>> {
        Some(Arc::new(Stored {
            object,
            resource_version: 2,
        }))
    }

    fn keys(change: Change, cache: &Cache) -> Vec<String> {
        let mut out = Vec::new();
        GarbageCollector.keys_for(&change, cache, &mut out);
        out.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn a_resync_queues_only_what_is_orphaned_now() {
        let cache = Cache::holding([
            replica_set("rs-1"),
            pod("owned", "ReplicaSet", "rs-1", "Running"),
            // The owner's name is there, but it was deleted and made again.
            pod("stale", "ReplicaSet", "rs-0", "Running"),
            // A kind keel does not know cannot be checked: kept.
            pod("unknown", "Widget", "w-1", "Running"),
            object(json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "gone-owner", "namespace": "default",
                             "ownerReferences": [{"kind": "Deployment", "name": "web", "uid": "d-1"}]}})),
        ]);
        let mut orphans: Vec<String> = GarbageCollector
            .all_keys(&cache)
            .iter()
            .map(ToString::to_string)
            .collect();
        orphans.sort();
        assert_eq!(
            orphans,
            [
                ObjectKey::new(Kind::ConfigMap, "default", "gone-owner").to_string(),
                ObjectKey::new(Kind::Pod, "default", "stale").to_string(),
            ]
        );
        let mut relisted = keys(Change::Relisted, &cache);
        relisted.sort();
        assert_eq!(relisted, orphans);
    }

    #[test]
    fn only_changes_to_ownership_queue_a_pass() {
        let cache = Cache::holding([replica_set("rs-1")]);
        let key = ObjectKey::new(Kind::Pod, "default", "p").to_string();
        let pending = pod("p", "ReplicaSet", "rs-1", "Pending");
        let running = pod("p", "ReplicaSet", "rs-1", "Running");
        // A new object with owners is looked at.
        let added = Change::Object {
            old: None,
            new: stored(pending.clone()),
        };
        assert_eq!(keys(added, &cache), std::slice::from_ref(&key));
        // A status write leaves its owners as they were: no pass.
        let status = Change::Object {
            old: stored(pending.clone()),
            new: stored(running.clone()),
        };
        assert!(keys(status, &cache).is_empty());
        // Its owners changed: looked at again.
        let moved = Change::Object {
            old: stored(running.clone()),
            new: stored(pod("p", "ReplicaSet", "rs-2", "Running")),
        };
        assert_eq!(keys(moved, &cache), std::slice::from_ref(&key));
        // Without owners there is nothing to collect.
        let mut released = running.clone();
        released.meta_mut().owner_references = None;
        let released = Change::Object {
            old: stored(running.clone()),
            new: stored(released),
        };
        assert!(keys(released, &cache).is_empty());
        // An owner deleted: everything that named it.
        let cache = Cache::holding([replica_set("rs-1"), running]);
        let deleted = Change::Object {
            old: stored(replica_set("rs-1")),
            new: None,
        };
        assert_eq!(keys(deleted, &cache), [key]);
    }
}
