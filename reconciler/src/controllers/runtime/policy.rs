//! The error policy: what a permanent error leaves on its object, and how it goes again.
//!
//! A permanent error is told where `kubectl describe` and `keel describe` look: a Warning
//! Event about the object, and (for kinds whose status has conditions) a `ReconcileError`
//! condition, `True`, with the error's reason and message. The condition is removed by the
//! first pass that succeeds.

use chrono::Utc;
use keel_schema::types::core::EventType;
use keel_schema::types::meta::Condition;
use keel_store::{ObjectKey, StoreError};

use super::ctx::Shared;
use super::error::ReconcileError;

/// The condition a permanent error sets.
pub const CONDITION: &str = "ReconcileError";

/// Reports `error` on `subject` (which may be gone: then there is nobody to tell).
pub async fn report(
    shared: &Shared,
    component: &'static str,
    subject: &ObjectKey,
    error: &ReconcileError,
) {
    let Some(stored) = shared.cache.get(subject) else {
        return;
    };
    let message = error.to_string();
    shared.events.object(
        &stored.object,
        EventType::Warning,
        error.reason(),
        message.clone(),
        component,
    );
    let mut object = stored.object.clone();
    let Some(conditions) = object.conditions_mut() else {
        return;
    };
    let same = conditions.iter().any(|c| {
        c.type_ == CONDITION
            && c.status == "True"
            && c.reason.as_deref() == Some(error.reason())
            && c.message.as_deref() == Some(message.as_str())
    });
    if same {
        return;
    }
    conditions.retain(|c| c.type_ != CONDITION);
    conditions.push(Condition {
        type_: CONDITION.into(),
        status: "True".into(),
        last_transition_time: Some(Utc::now()),
        reason: Some(error.reason().into()),
        message: Some(message),
        ..Default::default()
    });
    write(shared, object, stored.resource_version).await;
}

/// Removes the condition of an earlier permanent error once `subject` reconciles again.
pub async fn clear(shared: &Shared, subject: &ObjectKey) {
    let Some(stored) = shared.cache.get(subject) else {
        return;
    };
    if !stored
        .object
        .conditions()
        .iter()
        .any(|c| c.type_ == CONDITION)
    {
        return;
    }
    let mut object = stored.object.clone();
    if let Some(conditions) = object.conditions_mut() {
        conditions.retain(|c| c.type_ != CONDITION);
    }
    write(shared, object, stored.resource_version).await;
}

/// A status write of the runtime's own; losing a race is fine (the change queues the key
/// again, and the next pass decides anew).
async fn write(shared: &Shared, object: keel_schema::Object, read: u64) {
    match shared.store.update(object, read).await {
        Ok(_) | Err(StoreError::Conflict { .. } | StoreError::NotFound(_)) => {}
        Err(e) => tracing::warn!(error = %e, "cannot write a ReconcileError condition"),
    }
}
