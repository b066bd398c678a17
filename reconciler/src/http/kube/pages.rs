//! Paged lists (`limit` and `continue`), each page from one snapshot.
//!
//! Kubernetes serves every page of a list at the first page's revision, so a list read in
//! pages is consistent even while objects change. keel's stores read only the newest state,
//! so the first page keeps the whole filtered list here, and the continue token names it.
//! A token is good for [`KEPT`] on the server that gave it, until its last page is served;
//! after that, on another server, or once newer snapshots pushed it out (past 200,000
//! objects kept, oldest first), it is 410 Expired with Kubernetes' message, and the client
//! lists again.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use keel_store::Stored;

/// How long a snapshot stays (Kubernetes' continue tokens last until etcd compacts, about
/// five minutes).
pub const KEPT: Duration = Duration::from_secs(5 * 60);
/// Objects kept across all snapshots; the oldest snapshot goes first beyond it.
const MAX_KEPT_OBJECTS: usize = 200_000;

struct Snapshot {
    id: String,
    /// What was listed (path and selectors): a token is good only for the same list.
    scope: String,
    taken: Instant,
    revision: u64,
    items: Arc<Vec<Arc<Stored>>>,
}

#[derive(Default)]
pub struct Pages {
    snapshots: Mutex<VecDeque<Snapshot>>,
}

/// One page of a list.
pub struct Page {
    pub items: Vec<Arc<Stored>>,
    /// The revision of the whole list.
    pub revision: u64,
    /// Where the next page starts, when there is one.
    pub continue_token: Option<String>,
    pub remaining: Option<usize>,
}

#[derive(Debug, PartialEq)]
pub enum PageError {
    /// Not a token this server wrote, or one for another list: 400.
    Invalid(String),
    /// The snapshot is gone: 410.
    Expired,
}

impl Pages {
    /// The first page of `items` (a list taken at `revision`), keeping the rest when there
    /// is more than one page.
    pub fn first(&self, scope: &str, items: Vec<Arc<Stored>>, revision: u64, limit: usize) -> Page {
        if items.len() <= limit {
            return Page {
                items,
                revision,
                continue_token: None,
                remaining: None,
            };
        }
        let id = uuid::Uuid::new_v4().simple().to_string();
        let items = Arc::new(items);
        let page = page_of(&id, &items, revision, 0, limit);
        let mut snapshots = self.lock();
        snapshots.retain(|s| s.taken.elapsed() < KEPT);
        snapshots.push_back(Snapshot {
            id,
            scope: scope.to_string(),
            taken: Instant::now(),
            revision,
            items,
        });
        while snapshots.iter().map(|s| s.items.len()).sum::<usize>() > MAX_KEPT_OBJECTS
            && snapshots.len() > 1
        {
            snapshots.pop_front();
        }
        page
    }

    /// The page `token` names, of at most `limit` items (`None`: all that remain).
    pub fn next(&self, scope: &str, token: &str, limit: Option<usize>) -> Result<Page, PageError> {
        let (id, offset) = decode(token)?;
        let mut snapshots = self.lock();
        let Some(at) = snapshots
            .iter()
            .position(|s| s.id == id && s.taken.elapsed() < KEPT)
        else {
            return Err(PageError::Expired);
        };
        let snapshot = &snapshots[at];
        if snapshot.scope != scope {
            return Err(PageError::Invalid(
                "the continue token was given for another list (other resource, namespace \
                 or selectors)"
                    .into(),
            ));
        }
        let limit = limit.unwrap_or(usize::MAX);
        let page = page_of(
            &snapshot.id,
            &snapshot.items,
            snapshot.revision,
            offset,
            limit,
        );
        // The last page served, the snapshot has done its work.
        if page.continue_token.is_none() {
            snapshots.remove(at);
        }
        Ok(page)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Snapshot>> {
        self.snapshots.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn page_of(id: &str, items: &[Arc<Stored>], revision: u64, offset: usize, limit: usize) -> Page {
    let start = offset.min(items.len());
    let end = start.saturating_add(limit).min(items.len());
    let more = end < items.len();
    Page {
        items: items[start..end].to_vec(),
        revision,
        continue_token: more.then(|| URL_SAFE_NO_PAD.encode(format!("keel:{id}:{end}"))),
        remaining: more.then(|| items.len() - end),
    }
}

/// The text of a continue token, or why it is not one this server gave.
pub(super) fn token_text(token: &str) -> Result<String, PageError> {
    URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(|| not_ours(token))
}

pub(super) fn not_ours(token: &str) -> PageError {
    PageError::Invalid(format!(
        "continue {token:?} is not a token this server gave"
    ))
}

fn decode(token: &str) -> Result<(String, usize), PageError> {
    let invalid = || not_ours(token);
    let text = token_text(token)?;
    let mut parts = text.splitn(3, ':');
    match (parts.next(), parts.next(), parts.next()) {
        (Some("keel"), Some(id), Some(offset)) => {
            Ok((id.to_string(), offset.parse().map_err(|_| invalid())?))
        }
        _ => Err(invalid()),
    }
}

#[cfg(test)]
mod tests {
    use super::{PageError, Pages};
    use keel_schema::Object;
    use keel_schema::types::core::ConfigMap;
    use keel_store::Stored;

    fn items(n: usize) -> Vec<std::sync::Arc<Stored>> {
        (0..n)
            .map(|i| {
                let mut cm = ConfigMap::default();
                cm.metadata.name = Some(format!("cm-{i:02}"));
                std::sync::Arc::new(Stored {
                    object: Object::ConfigMap(cm),
                    resource_version: 1,
                })
            })
            .collect()
    }

    fn names(page: &super::Page) -> Vec<String> {
        page.items
            .iter()
            .map(|s| s.object.meta().name().to_string())
            .collect()
    }

    #[test]
    fn pages_cover_the_snapshot_once_in_order() {
        let pages = Pages::default();
        let first = pages.first("pods", items(5), 7, 2);
        assert_eq!(names(&first), ["cm-00", "cm-01"]);
        assert_eq!(first.remaining, Some(3));
        let token = first.continue_token.unwrap();
        let second = pages.next("pods", &token, Some(2)).unwrap();
        assert_eq!(names(&second), ["cm-02", "cm-03"]);
        assert_eq!(second.revision, 7);
        let last = pages
            .next("pods", &second.continue_token.unwrap(), Some(2))
            .unwrap();
        assert_eq!(names(&last), ["cm-04"]);
        assert!(last.continue_token.is_none());
        // A small list needs no snapshot.
        assert!(pages.first("pods", items(2), 7, 2).continue_token.is_none());
    }

    #[test]
    fn foreign_and_unknown_tokens_are_refused() {
        let pages = Pages::default();
        let token = pages.first("pods", items(3), 1, 1).continue_token.unwrap();
        assert!(matches!(
            pages.next("services", &token, Some(1)),
            Err(PageError::Invalid(_))
        ));
        assert!(matches!(
            pages.next("pods", "garbage!", None),
            Err(PageError::Invalid(_))
        ));
        let unknown = Pages::default();
        assert!(matches!(
            unknown.next("pods", &token, None),
            Err(PageError::Expired)
        ));
    }
}
