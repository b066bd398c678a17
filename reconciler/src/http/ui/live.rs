//! `GET /ui/live`: server-sent events telling open pages that something changed, so they
//! fetch what they show again. An event goes out when the cache sees a change to any
//! object or the sync status moves (a commit tried, applied or failed), at most once per
//! [`QUIET`]; pages never poll whole lists.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::Stream;

use keel_schema::Kind;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};

use crate::cache::Change;
use crate::http::state::AppState;

/// The least time between two events (a rollout changes many objects in a burst).
const QUIET: Duration = Duration::from_secs(1);
/// A follower asks the leader for the sync status every this many ticks (2 s).
const FOLLOWER_TICKS: u64 = 8;
/// How often the sync status is looked at (it lives behind a lock, not a channel).
const STATUS_EVERY: Duration = Duration::from_millis(250);

/// Pages following the cluster at once; beyond them `/ui/live` is 503 (the page still
/// works, it only stops updating by itself).
const MAX_FOLLOWERS: usize = 512;

static FOLLOWING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(MAX_FOLLOWERS);

pub async fn events(State(state): State<AppState>) -> Response {
    let Ok(permit) = FOLLOWING.try_acquire() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{MAX_FOLLOWERS} pages follow this server already"),
        )
            .into_response();
    };
    let mut changes = state.cache.subscribe();
    let stream = async_stream(move |tx| async move {
        let _permit = permit;
        let mut seen = status_mark(&state).await;
        let mut tick = tokio::time::interval(STATUS_EVERY);
        let mut ticks: u64 = 0;
        loop {
            let mut what = What::default();
            tokio::select! {
                // The page went: nothing else would notice on a quiet cluster.
                _ = tx.closed() => return,
                change = changes.recv() => match change {
                    Ok(change) => what.add(&change),
                    Err(RecvError::Lagged(_)) => what.everything(),
                    Err(RecvError::Closed) => return,
                },
                _ = tick.tick() => {
                    ticks += 1;
                    // A follower asks the leader, so less often.
                    let follower = state.leadership.other_leader().is_some();
                    if !follower || ticks.is_multiple_of(FOLLOWER_TICKS) {
                        let now = status_mark(&state).await;
                        what.status = now != seen;
                        seen = now;
                    }
                }
            };
            // One event, then quiet; changes that came meanwhile make one more.
            while !what.is_empty() {
                let event = Event::default().event("changed").data(what.data());
                if tx.send(event).await.is_err() {
                    return;
                }
                tokio::time::sleep(QUIET).await;
                what = What::default();
                loop {
                    match changes.try_recv() {
                        Ok(change) => what.add(&change),
                        Err(TryRecvError::Lagged(_)) => what.everything(),
                        Err(_) => break,
                    }
                }
            }
        }
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

/// What changed, as an event says it: `status`, `nodes` (a heartbeat, mostly), `objects`
/// (anything else). The tree reloads only for `objects`: node heartbeats alone would
/// otherwise have it fetch every row each second.
#[derive(Default)]
struct What {
    status: bool,
    nodes: bool,
    objects: bool,
}

impl What {
    fn add(&mut self, change: &Change) {
        match change.kind() {
            Some(Kind::Node) => self.nodes = true,
            _ => self.objects = true,
        }
    }

    fn everything(&mut self) {
        (self.status, self.nodes, self.objects) = (true, true, true);
    }

    fn is_empty(&self) -> bool {
        !(self.status || self.nodes || self.objects)
    }

    fn data(&self) -> String {
        [
            (self.status, "status"),
            (self.nodes, "nodes"),
            (self.objects, "objects"),
        ]
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, name)| *name)
        .collect::<Vec<_>>()
        .join(" ")
    }
}

/// What of the sync status a page shows, to compare: the status's generation, or on a
/// follower, the leader's status as it reads.
async fn status_mark(state: &AppState) -> String {
    if state.leadership.other_leader().is_none() {
        return state.status.generation().to_string();
    }
    let status = crate::http::leader::sync_status(state).await;
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
