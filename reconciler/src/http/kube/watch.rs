//! `?watch=1` on any list path: a stream of `{"type", "object"}` lines, as kube-apiserver
//! sends them.
//!
//! - Without `resourceVersion` (or with `0`, or `sendInitialEvents=true`) the watch starts
//!   with an `ADDED` event per current object; with `sendInitialEvents` a bookmark
//!   annotated `k8s.io/initial-events-end` follows them.
//! - With a `resourceVersion`, every change from that revision on, from the store's
//!   history; when that history is compacted, one `ERROR` event with a 410 `Expired`
//!   Status, and the client lists again. The changes *of* that revision come again: keel
//!   writes a whole git revision as one store revision, so a stream that ended between two
//!   objects of one revision (a bookmark, a timeout, a dropped connection) resumes without
//!   losing the rest. Clients take the repeats as updates.
//! - Selectors are followed across changes: an object that stops matching is `DELETED`
//!   for this watch, one that starts is `ADDED`. Changes replayed from before the watch
//!   began are judged without what the client saw then: a deletion of an object that
//!   matched, or a change leaving the selector, is `DELETED` whenever it may have matched.
//! - A client that reads nothing for [`STALLED`] is let go (its watch ends).
//! - `allowWatchBookmarks`: a `BOOKMARK` every [`BOOKMARK_EVERY`] with the revision the
//!   client may resume from.
//! - Each object is shaped as the `Accept` header asks (a one-row Table for `kubectl get
//!   -w`), Secret values redacted.

use std::collections::HashSet;
use std::convert::Infallible;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use keel_schema::Object;
use keel_store::{ObjectKey, StoreError, WatchEventType};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::super::errors::internal;
use super::super::state::AppState;
use super::query::{ListOptions, MAX_WATCH, Shape};
use super::resources::Resolved;
use super::table::{partial_metadata, table};
use super::view::{selected, shown};

/// How often a bookmark is sent to a client that allows them.
pub const BOOKMARK_EVERY: Duration = Duration::from_secs(30);
/// Lines waiting for a slow client before the watch waits for it.
const LINES_BUFFERED: usize = 64;
/// How long a watch waits for a client that reads nothing before ending.
pub const STALLED: Duration = Duration::from_secs(60);

/// What one watch follows, and how it shapes each object.
struct Watch {
    resolved: Resolved,
    namespace: Option<String>,
    options: ListOptions,
    shape: Shape,
}

impl Watch {
    fn in_scope(&self, object: &Object) -> bool {
        self.namespace
            .as_deref()
            .is_none_or(|ns| object.meta().namespace() == ns)
    }

    fn tracks_matches(&self) -> bool {
        self.options.labels.is_some() || !self.options.fields.is_empty()
    }

    fn line(&self, kind: &str, object: &Object) -> Bytes {
        let object = match self.shape {
            Shape::Objects => shown(object),
            Shape::Metadata => partial_metadata(object),
            Shape::Table => table(
                self.resolved.info.kind,
                &self.resolved.columns,
                std::slice::from_ref(object),
                self.options.include,
            ),
        };
        event_line(kind, &object)
    }

    fn bookmark(&self, revision: u64, initial_end: bool) -> Bytes {
        let mut metadata = json!({"resourceVersion": revision.to_string()});
        if initial_end {
            metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        // Of the kind the client decodes: metadata-only clients know no other.
        let (kind, api_version) = match self.shape {
            Shape::Metadata => ("PartialObjectMetadata", "meta.k8s.io/v1"),
            _ => (
                self.resolved.info.kind.as_str(),
                self.resolved.info.api_version,
            ),
        };
        let object = json!({
            "kind": kind,
            "apiVersion": api_version,
            "metadata": metadata,
        });
        event_line("BOOKMARK", &object)
    }
}

fn event_line(kind: &str, object: &Value) -> Bytes {
    let mut line = serde_json::to_vec(&json!({"type": kind, "object": object})).unwrap_or_default();
    line.push(b'\n');
    Bytes::from(line)
}

/// The `ERROR` event that ends a watch whose history is gone.
fn expired_line(error: &StoreError) -> Bytes {
    let status = keel_api::errors::Status::failure(
        410,
        "Expired",
        format!("too old resource version: {error}"),
    );
    event_line("ERROR", &serde_json::to_value(status).unwrap_or_default())
}

/// Starts the watch and answers with its stream.
pub async fn serve(
    state: AppState,
    resolved: Resolved,
    namespace: Option<String>,
    options: ListOptions,
    shape: Shape,
) -> Response {
    let kind = resolved.info.kind;
    let watch = Watch {
        resolved,
        namespace,
        options,
        shape,
    };
    let initial =
        watch.options.initial_events || watch.options.resource_version.is_none_or(|rv| rv == 0);
    // The current objects: sent first when the watch starts from now, and otherwise what
    // the selectors matched, to follow objects across them.
    let current = if initial || watch.tracks_matches() {
        match state
            .store
            .list(kind, watch.namespace.as_deref(), None)
            .await
        {
            Ok(listed) => Some(listed),
            Err(e) => return internal(e.to_string()),
        }
    } else {
        None
    };
    // The store watch delivers changes after `from`: after a list, the list's revision;
    // resuming from a revision, that revision's own changes too (see above).
    let from = match (&current, watch.options.resource_version) {
        (Some(listed), _) if initial => listed.revision,
        (_, Some(rv)) => rv.saturating_sub(1),
        (_, None) => 0,
    };
    // Changes at or before this revision were made before the watch began.
    let seeded_at = current.as_ref().map_or(0, |l| l.revision);
    let (tx, rx) = mpsc::channel::<Result<Bytes, Infallible>>(LINES_BUFFERED);
    let mut matching: HashSet<ObjectKey> = HashSet::new();
    let mut first_lines = Vec::new();
    for stored in current.iter().flat_map(|l| &l.items) {
        if !selected(&watch.options, &stored.object) {
            continue;
        }
        if watch.tracks_matches() {
            matching.insert(ObjectKey::of(&stored.object));
        }
        if initial {
            first_lines.push(watch.line("ADDED", &stored.object));
        }
    }
    if initial && watch.options.initial_events && watch.options.bookmarks {
        first_lines.push(watch.bookmark(from, true));
    }
    let store_watch = state.store.watch(Some(kind), from).await;
    let timeout = watch.options.timeout.unwrap_or(MAX_WATCH).min(MAX_WATCH);
    let metrics = state.metrics.clone();
    tokio::spawn(async move {
        let _open = OpenWatch::count(metrics);
        // A client that reads nothing for STALLED is let go.
        let send = |line: Bytes| {
            let tx = &tx;
            async move {
                match tokio::time::timeout(STALLED, tx.send(Ok(line))).await {
                    Ok(Ok(())) => Ok(()),
                    _ => Err(()),
                }
            }
        };
        for line in first_lines {
            if send(line).await.is_err() {
                return;
            }
        }
        let mut events = match store_watch {
            Ok(w) => w,
            Err(e) => {
                let _ = send(expired_line(&e)).await;
                return;
            }
        };
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let mut bookmarks = tokio::time::interval(BOOKMARK_EVERY);
        bookmarks.tick().await;
        let mut last = from;
        loop {
            let event = tokio::select! {
                event = events.next() => event,
                _ = &mut deadline => return,
                _ = bookmarks.tick(), if watch.options.bookmarks => {
                    if send(watch.bookmark(last, false)).await.is_err() {
                        return;
                    }
                    continue;
                }
                _ = tx.closed() => return,
            };
            let event = match event {
                Some(Ok(event)) => event,
                Some(Err(e)) => {
                    let _ = send(expired_line(&e)).await;
                    return;
                }
                None => return,
            };
            last = event.revision;
            if !watch.in_scope(event.object()) {
                continue;
            }
            // The object is shared with the store's cache and other watchers: copied only
            // when its resourceVersion must be set to the event's.
            let version = event.revision.to_string();
            let copy;
            let object = if event.object().meta().resource_version.as_deref() == Some(&version) {
                event.object()
            } else {
                let mut o = event.object().clone();
                o.meta_mut().resource_version = Some(version);
                copy = o;
                &copy
            };
            let replayed = event.revision <= seeded_at;
            let change = (event.event_type, replayed);
            let Some(kind) = transition(&watch, &mut matching, change, object) else {
                continue;
            };
            if send(watch.line(kind, object)).await.is_err() {
                return;
            }
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|line| (line, rx))
    });
    let mut response = (StatusCode::OK, Body::from_stream(stream)).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// The event this watch sends for a change (`replayed`: made before the watch began),
/// following selectors: `None` when the object neither matches now nor did before.
fn transition(
    watch: &Watch,
    matching: &mut HashSet<ObjectKey>,
    (change, replayed): (WatchEventType, bool),
    object: &Object,
) -> Option<&'static str> {
    let matches = selected(&watch.options, object);
    if !watch.tracks_matches() {
        return Some(match change {
            WatchEventType::Added => "ADDED",
            WatchEventType::Modified => "MODIFIED",
            WatchEventType::Deleted => "DELETED",
        });
    }
    let key = ObjectKey::of(object);
    let was = matching.remove(&key);
    match change {
        // The deleted object is its last state: it matched if that does.
        WatchEventType::Deleted => (was || matches).then_some("DELETED"),
        _ if matches => {
            matching.insert(key);
            Some(if was { "MODIFIED" } else { "ADDED" })
        }
        // Before the watch began the client may have seen it match.
        _ => (was || replayed).then_some("DELETED"),
    }
}

/// One open watch in `keel_api_watches`, until dropped.
struct OpenWatch(std::sync::Arc<crate::metrics::Metrics>);

impl OpenWatch {
    fn count(metrics: std::sync::Arc<crate::metrics::Metrics>) -> OpenWatch {
        metrics.watches.inc();
        OpenWatch(metrics)
    }
}

impl Drop for OpenWatch {
    fn drop(&mut self) {
        self.0.watches.dec();
    }
}
