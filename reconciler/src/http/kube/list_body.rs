//! A list's JSON written while it is sent, a few objects at a time, from the snapshot the
//! list was read at (pointers shared with the store's cache).
//!
//! Built whole, a list of 100,000 pods was every pod copied, then a JSON tree of each, then
//! the text: gigabytes for one `kubectl get pods -A -o json` on a control plane holding
//! about 1 GiB. Streamed, a list costs its text's current chunk.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use keel_store::Stored;
use serde_json::Value;

use super::view::write_shown;

/// Objects serialised per chunk of the body.
const PER_CHUNK: usize = 64;

/// `head` (the list's `kind`, `apiVersion` and `metadata`) with `items` after it.
pub fn list_response(head: &Value, items: Vec<Arc<Stored>>) -> Response {
    let mut start = serde_json::to_vec(head).unwrap_or_else(|_| b"{}".to_vec());
    // The object's closing brace: the items go inside it.
    start.pop();
    if start.len() > 1 {
        start.push(b',');
    }
    start.extend_from_slice(b"\"items\":[");
    let chunks = futures_util::stream::unfold(Chunks::Start(start, items), next_chunk);
    (
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(chunks),
    )
        .into_response()
}

enum Chunks {
    Start(Vec<u8>, Vec<Arc<Stored>>),
    Items(std::vec::IntoIter<Arc<Stored>>, bool),
    Done,
}

async fn next_chunk(state: Chunks) -> Option<(Result<Bytes, std::io::Error>, Chunks)> {
    match state {
        Chunks::Start(start, items) => Some((
            Ok(Bytes::from(start)),
            Chunks::Items(items.into_iter(), true),
        )),
        Chunks::Items(mut items, mut first) => {
            let mut buf = Vec::new();
            for stored in items.by_ref().take(PER_CHUNK) {
                if !std::mem::take(&mut first) {
                    buf.push(b',');
                }
                if let Err(e) = write_shown(&mut buf, &stored.object) {
                    // Headers are sent: ending the body with an error makes the client
                    // see a broken answer rather than a list missing an object.
                    tracing::error!(object = %stored.object.name(), error = %e, "cannot write a listed object");
                    return Some((Err(std::io::Error::other(e)), Chunks::Done));
                }
            }
            if items.len() == 0 {
                buf.extend_from_slice(b"]}");
                return Some((Ok(Bytes::from(buf)), Chunks::Done));
            }
            Some((Ok(Bytes::from(buf)), Chunks::Items(items, first)))
        }
        Chunks::Done => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_schema::Object;
    use serde_json::json;

    fn stored(object: Value) -> Arc<Stored> {
        Arc::new(Stored {
            object: Object::from_json(object).unwrap(),
            resource_version: 1,
        })
    }

    fn pod(i: usize) -> Arc<Stored> {
        stored(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": format!("p{i}"), "namespace": "default"},
            "spec": {"containers": [{"name": "c", "image": "x:1"}]}
        }))
    }

    async fn body(items: Vec<Arc<Stored>>) -> Value {
        let head = json!({"kind": "PodList", "apiVersion": "v1",
                          "metadata": {"resourceVersion": "7"}});
        let response = list_response(&head, items);
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&bytes)))
    }

    #[tokio::test]
    async fn a_list_over_several_chunks_is_one_json_list_in_order() {
        for n in [0, 1, PER_CHUNK, PER_CHUNK + 1, 3 * PER_CHUNK + 5] {
            let list = body((0..n).map(pod).collect()).await;
            assert_eq!(list["kind"], "PodList");
            assert_eq!(list["metadata"]["resourceVersion"], "7");
            let items = list["items"].as_array().unwrap();
            assert_eq!(items.len(), n);
            for (i, item) in items.iter().enumerate() {
                assert_eq!(item["metadata"]["name"], format!("p{i}"));
                assert_eq!(item["spec"]["containers"][0]["image"], "x:1");
            }
        }
    }

    #[tokio::test]
    async fn listed_objects_are_shown_as_one_object_is() {
        let secret = stored(json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "s", "namespace": "default"},
            "data": {"password": "aHVudGVyMg=="}
        }));
        let job = stored(json!({
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": "j", "namespace": "default", "uid": "u-1"},
            "spec": {"template": {"spec": {"restartPolicy": "Never",
                     "containers": [{"name": "c", "image": "x:1"}]}}}
        }));
        let list = body(vec![secret.clone(), job.clone(), pod(0)]).await;
        let items = list["items"].as_array().unwrap();
        assert_eq!(items[0], super::super::view::shown(&secret.object));
        assert_ne!(items[0]["data"]["password"], "aHVudGVyMg==", "redacted");
        assert_eq!(items[1], super::super::view::shown(&job.object));
        assert_eq!(items[2], super::super::view::shown(&pod(0).object));
    }
}
