//! The Kubernetes API, as kubectl and client libraries (client-go, kube-rs) use it:
//! discovery, reads, watches and server-side Tables of every kind; writes are refused, as
//! keel applies only what git holds.
//!
//! # Layout
//! - [`discovery`]: `/version`, `/api`, `/apis` and each group version, legacy and
//!   aggregated; [`resources`]: what is served (built-in kinds and stored definitions'),
//!   and the kind a path names.
//! - [`objects`]: get and list; [`query`]: their options and the answer's shape;
//!   [`view`]: an object as shown (Secrets redacted), and selected; [`fields`]: field
//!   selectors; [`pages`]: `limit` and `continue`; [`table`]: Tables.
//! - [`watch`]: `?watch=1` streams; [`openapi`]: `/openapi/v2` and `/openapi/v3`.
//! - [`metrics`]: `metrics.k8s.io` (`kubectl top`), from the agents' usage samples.
//! - [`writes`]: 405 for every write, naming the file to change instead, but for the
//!   [`operations`] that are not desired state (delete pod, cordon, rollout restart).

pub mod discovery;
pub mod fields;
pub mod list_body;
pub mod metrics;
pub mod objects;
pub mod openapi;
pub mod operations;
pub mod pages;
pub mod query;
pub mod resources;
pub mod table;
pub mod view;
pub mod walk;
pub mod watch;
pub mod writes;

use axum::Router;
use axum::routing::{MethodRouter, any, get};

use super::state::AppState;

/// A read handler at a path, with every write method refused.
fn read_only(read: MethodRouter<AppState>) -> MethodRouter<AppState> {
    read.post(writes::write)
        .put(writes::write)
        .patch(writes::write)
        .delete(writes::write)
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/version", get(discovery::version))
        .route("/api", get(discovery::core_groups))
        .route("/api/v1", get(discovery::core_resources))
        .route("/apis", get(discovery::named_groups))
        .route("/apis/{group}", get(discovery::one_group))
        .route("/apis/{group}/{version}", get(discovery::group_resources))
        .route("/openapi/v2", get(openapi::v2))
        .route("/openapi/v3", get(openapi::index))
        .route("/openapi/v3/api/{version}", get(openapi::core))
        .route("/openapi/v3/apis/{group}/{version}", get(openapi::group))
        // metrics.k8s.io, before the paths of stored kinds.
        .route("/apis/metrics.k8s.io/v1beta1/nodes", get(metrics::nodes))
        .route(
            "/apis/metrics.k8s.io/v1beta1/nodes/{name}",
            get(metrics::node),
        )
        .route("/apis/metrics.k8s.io/v1beta1/pods", get(metrics::pods))
        .route(
            "/apis/metrics.k8s.io/v1beta1/namespaces/{ns}/pods",
            get(metrics::pods_ns),
        )
        .route(
            "/apis/metrics.k8s.io/v1beta1/namespaces/{ns}/pods/{name}",
            get(metrics::pod),
        )
        .route("/api/v1/{plural}", read_only(get(objects::list_at)))
        .route("/api/v1/{plural}/{name}", read_only(get(objects::get_at)))
        .route(
            "/api/v1/namespaces/{ns}/{plural}",
            read_only(get(objects::list_at)),
        )
        .route(
            "/api/v1/namespaces/{ns}/{plural}/{name}",
            read_only(get(objects::get_at)),
        )
        .route(
            "/apis/{group}/{version}/{plural}",
            read_only(get(objects::list_at)),
        )
        .route(
            "/apis/{group}/{version}/{plural}/{name}",
            read_only(get(objects::get_at)),
        )
        .route(
            "/apis/{group}/{version}/namespaces/{ns}/{plural}",
            read_only(get(objects::list_at)),
        )
        .route(
            "/apis/{group}/{version}/namespaces/{ns}/{plural}/{name}",
            read_only(get(objects::get_at)),
        )
        .route(
            "/api/v1/namespaces/{ns}/pods/{name}/log",
            get(super::logs::pod_log),
        )
        // Subresources keel does not serve (`scale`, `status`, …): writes are refused like
        // writes of the object, reads are not found.
        .route("/api/v1/{plural}/{name}/{sub}", any(subresource))
        .route(
            "/api/v1/namespaces/{ns}/{plural}/{name}/{sub}",
            any(subresource),
        )
        .route(
            "/apis/{group}/{version}/{plural}/{name}/{sub}",
            any(subresource),
        )
        .route(
            "/apis/{group}/{version}/namespaces/{ns}/{plural}/{name}/{sub}",
            any(subresource),
        )
}

async fn subresource(
    state: axum::extract::State<AppState>,
    method: axum::http::Method,
    headers: axum::http::HeaderMap,
    path: axum::extract::Path<std::collections::HashMap<String, String>>,
    query: axum::extract::Query<std::collections::HashMap<String, String>>,
    body: axum::body::Bytes,
) -> axum::response::Response {
    if method == axum::http::Method::GET {
        return super::errors::no_such_resource();
    }
    writes::write(state, method, headers, path, query, body).await
}
