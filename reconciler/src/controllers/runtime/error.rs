//! Why a reconcile failed, and how a lost race is told apart from a failure.

use keel_store::StoreError;

/// Why a reconcile failed; the runtime's policy follows from which.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// The object cannot be reconciled as it is (a spec validation did not catch, a name
    /// another object holds): retrying changes nothing until it, or what it names, changes.
    /// `reason` is the Event's and the condition's reason (`InvalidSpec`, `NameConflict`).
    #[error("{message}")]
    Invalid {
        reason: &'static str,
        message: String,
    },
    /// The store failed or refused: retried with backoff (a store refusal of the object
    /// itself, `StoreError::Invalid`, is permanent).
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ReconcileError {
    pub fn invalid(reason: &'static str, message: impl Into<String>) -> ReconcileError {
        ReconcileError::Invalid {
            reason,
            message: message.into(),
        }
    }

    /// Retrying will not help until something changes.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            ReconcileError::Invalid { .. } | ReconcileError::Store(StoreError::Invalid(_))
        )
    }

    /// The reason reported with a permanent error.
    pub fn reason(&self) -> &'static str {
        match self {
            ReconcileError::Invalid { reason, .. } => reason,
            ReconcileError::Store(_) => "StoreError",
        }
    }
}

pub type Result<T, E = ReconcileError> = std::result::Result<T, E>;

/// A write's outcome where losing a race is fine: the object changed, appeared or went
/// meanwhile, and that change queues this key again.
pub trait Raced<T> {
    /// `Some` when written, `None` when the race was lost.
    fn or_raced(self) -> Result<Option<T>>;
}

impl<T> Raced<T> for Result<T> {
    fn or_raced(self) -> Result<Option<T>> {
        match self {
            Ok(v) => Ok(Some(v)),
            Err(ReconcileError::Store(
                StoreError::Conflict { .. }
                | StoreError::NotFound(_)
                | StoreError::AlreadyExists(_),
            )) => Ok(None),
            Err(e) => Err(e),
        }
    }
}
