//! `GET /ui/live`: server-sent events telling open pages that something changed, so they
//! fetch what they show again. An event goes out when the cache sees a change to any
//! object or the sync status moves (a commit tried, applied or failed), at most once per
//! [`QUIET`]; pages never poll whole lists.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;

use crate::http::state::AppState;

/// The least time between two events (a rollout changes many objects in a burst).
const QUIET: Duration = Duration::from_secs(1);
/// How often the sync status is looked at (it lives behind a lock, not a channel).
const STATUS_EVERY: Duration = Duration::from_millis(250);

pub async fn events(
    State(state): State<AppState>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let mut changes = state.cache.subscribe();
    let stream = async_stream(move |tx| async move {
        let mut seen = status_mark(&state).await;
        let mut tick = tokio::time::interval(STATUS_EVERY);
        loop {
            let changed = tokio::select! {
                change = changes.recv() => match change {
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => true,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                },
                _ = tick.tick() => {
                    let now = status_mark(&state).await;
                    let moved = now != seen;
                    seen = now;
                    moved
                }
            };
            if !changed {
                continue;
            }
            // One event, then quiet; changes that came meanwhile make one more.
            loop {
                if tx
                    .send(Event::default().event("changed").data("1"))
                    .await
                    .is_err()
                {
                    return;
                }
                tokio::time::sleep(QUIET).await;
                let mut more = false;
                while changes.try_recv().is_ok() {
                    more = true;
                }
                if !more {
                    break;
                }
            }
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

/// What of the sync status a page shows, to compare.
async fn status_mark(state: &AppState) -> String {
    let status = state.status.get();
    format!(
        "{:?}|{:?}|{:?}|{:?}|{:?}|{:?}",
        status.applied_commit,
        status.last_commit,
        status.last_result,
        status.last_sync,
        status.fetch_error,
        status.tip
    )
}

/// A stream fed by a task through a small channel: the task ends when the page goes.
fn async_stream<F, Fut>(body: F) -> impl Stream<Item = Result<Event, Infallible>>
where
    F: FnOnce(tokio::sync::mpsc::Sender<Event>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::spawn(body(tx));
    tokio_stream::wrappers::ReceiverStream::new(rx).map(Ok)
}

use futures_util::StreamExt;
