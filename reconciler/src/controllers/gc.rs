//! Garbage collection by ownerReferences: an object whose owners are all gone (absent, or
//! present under another uid: deleted and made again) is deleted, as Kubernetes' background
//! cascading deletion. Deleting a Deployment so removes its ReplicaSets, and they their pods.

use keel_schema::{Kind, Object};
use keel_store::ObjectKey;

use super::runtime::{Action, Controller, Ctx, Raced, Result};
use crate::cache::{Cache, Change};

pub struct GarbageCollector;

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

impl Controller for GarbageCollector {
    type Key = ObjectKey;
    const NAME: &'static str = "garbage-collector";
    const COMPONENT: &'static str = "garbage-collector";

    fn all_keys(&self, cache: &Cache) -> Vec<ObjectKey> {
        Kind::ALL
            .iter()
            .flat_map(|k| cache.list(*k, None))
            .filter(|s| s.object.meta().owner_references.is_some())
            .map(|s| ObjectKey::of(&s.object))
            .collect()
    }

    fn keys_for(&self, change: &Change, cache: &Cache, out: &mut Vec<ObjectKey>) {
        match change {
            Change::Object { old, new } => {
                if let Some(new) = new
                    && new.object.meta().owner_references.is_some()
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
        ctx.delete(key, stored.resource_version).await.or_raced()?;
        Ok(Action::Done)
    }
}
