//! Paged lists of Events, read from the store a page at a time.
//!
//! Other kinds are paged from one snapshot ([`super::pages`]), which for a kind in the
//! controllers' cache costs pointers. Events are not in that cache: a snapshot of them is
//! every Event decoded, some 400,000 in a cluster of 100,000 pods, over 500 MiB kept for
//! minutes by one `kubectl get events -A` (kubectl asks in pages of 500). Their pages are
//! read by key instead, each at the store's newest state, as Kubernetes itself serves a
//! continue token whose revision is gone (`resourceVersionMatch` aside): an Event written
//! between two pages may be missed or seen, none is seen twice.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use keel_schema::Kind;
use keel_store::{Store, Stored};

use super::pages::{Page, PageError, not_ours, token_text};

/// The kinds listed this way.
pub fn walked(kind: Kind) -> bool {
    kind == Kind::Event
}

/// True for a continue token this module wrote.
pub fn is_walk_token(token: &str) -> bool {
    decode(token).is_ok_and(|(scope, _)| !scope.is_empty())
}

/// Objects read from the store per read, however few a page keeps.
const READ: usize = 500;

/// The page of at most `limit` objects of `kind` (in `namespace`, or all) that `keep`
/// accepts, after the object `token` names (none: the first page).
pub async fn page(
    store: &Store,
    (kind, namespace): (Kind, Option<&str>),
    scope: &str,
    token: Option<&str>,
    limit: usize,
    keep: impl Fn(&Stored) -> bool,
) -> Result<Result<Page, PageError>, keel_store::StoreError> {
    let mut after = match token.map(decode) {
        None => None,
        Some(Err(e)) => return Ok(Err(e)),
        Some(Ok((given, _))) if given != scope => {
            return Ok(Err(PageError::Invalid(
                "the continue token was given for another list (other resource, namespace \
                 or selectors)"
                    .into(),
            )));
        }
        Some(Ok((_, after))) => Some(after),
    };
    let limit = limit.max(1);
    // Read first: every object served is at least this new.
    let revision = store.revision().await?;
    let mut items = Vec::new();
    loop {
        let read = store
            .list_page(kind, namespace, after.as_deref(), READ)
            .await?;
        let last_read = read.next.is_none();
        for stored in read.items {
            after = Some(keel_store::ObjectKey::of(&stored.object).path());
            if keep(&stored) {
                items.push(Arc::new(stored));
                if items.len() == limit {
                    return Ok(Ok(Page {
                        items,
                        revision,
                        continue_token: after.map(|a| encode(scope, &a)),
                        remaining: None,
                    }));
                }
            }
        }
        if last_read {
            return Ok(Ok(Page {
                items,
                revision,
                continue_token: None,
                remaining: None,
            }));
        }
    }
}

fn encode(scope: &str, after: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("keel-walk\n{scope}\n{after}"))
}

/// The scope and the key path after which the next page starts.
fn decode(token: &str) -> Result<(String, String), PageError> {
    let text = token_text(token)?;
    let mut parts = text.splitn(3, '\n');
    match (parts.next(), parts.next(), parts.next()) {
        (Some("keel-walk"), Some(scope), Some(after)) => Ok((scope.into(), after.into())),
        _ => Err(not_ours(token)),
    }
}
