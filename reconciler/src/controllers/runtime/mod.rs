//! The controller runtime: what every controller is run by.
//!
//! A controller is `reconcile(key, ctx) -> Result<Action, ReconcileError>` over the current
//! state in the shared [`Cache`](crate::cache::Cache), never over the event that queued the
//! key. The runtime feeds a [`WorkQueue`] from the cache's changes and a periodic resync, and
//! runs a few workers.
//!
//! # Guarantees
//! - One key is never reconciled twice at once; a key changed meanwhile runs once more after.
//! - A reconcile's writes are recorded by its [`Ctx`]; the runtime then waits (a little) for
//!   the cache to show them, and a key whose writes the cache did not show in time is not
//!   reconciled again until it does: a slow cache never makes a controller act twice on the
//!   same missing pods.
//! - Errors follow one policy ([`policy`]): a permanent error ([`ReconcileError::Invalid`])
//!   is reported on its object (a Warning Event and a `ReconcileError` status condition) and
//!   not retried until something changes or the periodic resync; a transient one (the store)
//!   is retried with exponential backoff; a panic is logged as a bug and retried likewise.
//!   The condition goes once the object reconciles again.
//! - Shutdown stops taking keys; reconciles in flight finish (and their writes are not
//!   waited for), then the runner and its timers end.
//!
//! # Layout
//! - [`controller`]: the contract (`Controller`, `Action`); [`error`]: `ReconcileError`;
//!   [`config`]: the settings.
//! - [`ctx`]: what a reconcile gets, recording its writes; [`admission`]: what a pod it
//!   makes is given before it is stored.
//! - [`runner`]: feeding the queue and running workers; [`queue`]: the work queue.
//! - [`policy`]: what happens after each reconcile, by outcome.

pub mod admission;
pub mod config;
pub mod controller;
pub mod ctx;
pub mod error;
pub mod policy;
pub mod queue;
pub mod runner;

pub use config::Config;
pub use controller::{Action, Controller};
pub use ctx::{Ctx, Shared};
pub use error::{Raced, ReconcileError, Result};
pub use queue::WorkQueue;
