//! Discovery, as kube-apiserver answers it, so kubectl and client libraries find every kind:
//!
//! - `/version`;
//! - `/api` (`APIVersions`) and `/apis` (`APIGroupList`), or, when the client asks for it
//!   (`Accept: application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList`), the
//!   aggregated form that lists every resource in one answer;
//! - `/api/v1`, `/apis/{group}` and `/apis/{group}/{version}` (`APIResourceList`).

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Json, Response};
use serde_json::{Value, json};

use super::super::errors::no_such_resource;
use super::super::state::AppState;
use super::resources::{Served, groups, served};

/// The Kubernetes version whose API keel's subset follows.
pub const KUBERNETES_MINOR: &str = "32";

/// The media type of aggregated discovery, as kubectl asks for it and must be answered.
const AGGREGATED: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

pub async fn version() -> Json<Value> {
    Json(json!({
        "major": "1",
        "minor": KUBERNETES_MINOR,
        "gitVersion": format!("v1.{KUBERNETES_MINOR}.0+keel-{}", env!("CARGO_PKG_VERSION")),
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "",
        "goVersion": "",
        "compiler": "rustc",
        "platform": format!("{}/{}", std::env::consts::OS, go_arch()),
    }))
}

/// Go's names for architectures, which `platform` uses.
fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// Whether the client accepts aggregated discovery (v2).
fn wants_aggregated(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|range| {
            let params: Vec<&str> = range.split(';').map(str::trim).collect();
            params.contains(&"g=apidiscovery.k8s.io")
                && params.contains(&"v=v2")
                && params.contains(&"as=APIGroupDiscoveryList")
        })
}

pub async fn core_groups(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if wants_aggregated(&headers) {
        let served = served(&state).await;
        let core: Vec<&Served> = served.iter().filter(|s| s.group.is_empty()).collect();
        return aggregated(&[("", vec!["v1".to_string()])], &core);
    }
    Json(json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [],
    }))
    .into_response()
}

pub async fn named_groups(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let served = served(&state).await;
    let named: Vec<&Served> = served.iter().filter(|s| !s.group.is_empty()).collect();
    let all = groups(&served);
    let named_groups: Vec<(&str, Vec<String>)> = all
        .iter()
        .filter(|(g, _)| !g.is_empty())
        .map(|(g, v)| (g.as_str(), v.clone()))
        .collect();
    if wants_aggregated(&headers) {
        return aggregated(&named_groups, &named);
    }
    let groups: Vec<Value> = named_groups
        .iter()
        .map(|(group, versions)| api_group(group, versions))
        .collect();
    Json(json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})).into_response()
}

fn api_group(group: &str, versions: &[String]) -> Value {
    let entry = |v: &String| json!({"groupVersion": format!("{group}/{v}"), "version": v});
    json!({
        "kind": "APIGroup",
        "apiVersion": "v1",
        "name": group,
        "versions": versions.iter().map(entry).collect::<Vec<_>>(),
        "preferredVersion": versions.first().map(entry),
    })
}

pub async fn one_group(State(state): State<AppState>, Path(group): Path<String>) -> Response {
    let served = served(&state).await;
    match groups(&served)
        .into_iter()
        .find(|(g, _)| *g == group && !g.is_empty())
    {
        Some((group, versions)) => Json(api_group(&group, &versions)).into_response(),
        None => no_such_resource(),
    }
}

pub async fn core_resources(State(state): State<AppState>) -> Response {
    resources(&state, "", "v1").await
}

pub async fn group_resources(
    State(state): State<AppState>,
    Path((group, version)): Path<(String, String)>,
) -> Response {
    resources(&state, &group, &version).await
}

async fn resources(state: &AppState, group: &str, version: &str) -> Response {
    let served = served(state).await;
    let here: Vec<&Served> = served
        .iter()
        .filter(|s| s.group == group && s.version == version)
        .collect();
    let Some(first) = here.first() else {
        return no_such_resource();
    };
    let mut list = Vec::new();
    for s in &here {
        list.push(json!({
            "name": s.plural,
            "singularName": s.singular,
            "namespaced": s.namespaced,
            "kind": s.kind_name,
            "verbs": s.verbs,
            "shortNames": s.short_names,
            "categories": s.categories,
        }));
        for (sub, verbs) in &s.subresources {
            list.push(json!({
                "name": format!("{}/{sub}", s.plural),
                "singularName": "",
                "namespaced": s.namespaced,
                "kind": s.kind_name,
                "verbs": verbs,
            }));
        }
    }
    Json(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": first.group_version(),
        "resources": list,
    }))
    .into_response()
}

/// `APIGroupDiscoveryList` for `groups`, with the resources of `served` under each version.
fn aggregated(groups: &[(&str, Vec<String>)], served: &[&Served]) -> Response {
    let items: Vec<Value> = groups
        .iter()
        .map(|(group, versions)| {
            let versions: Vec<Value> = versions
                .iter()
                .map(|version| {
                    let resources: Vec<Value> = served
                        .iter()
                        .filter(|s| s.group == *group && s.version == *version)
                        .map(|s| discovered(s))
                        .collect();
                    json!({"version": version, "resources": resources, "freshness": "Current"})
                })
                .collect();
            json!({"metadata": {"name": group}, "versions": versions})
        })
        .collect();
    let body = json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": "apidiscovery.k8s.io/v2",
        "metadata": {},
        "items": items,
    });
    let mut response = Json(body).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(AGGREGATED));
    response
}

fn discovered(s: &Served) -> Value {
    let kind = json!({"group": s.group, "version": s.version, "kind": s.kind_name});
    json!({
        "resource": s.plural,
        "responseKind": kind,
        "scope": if s.namespaced { "Namespaced" } else { "Cluster" },
        "singularResource": s.singular,
        "verbs": s.verbs,
        "shortNames": s.short_names,
        "categories": s.categories,
        "subresources": s.subresources.iter().map(|(sub, verbs)| json!({
            "subresource": sub,
            "responseKind": kind,
            "verbs": verbs,
        })).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use axum::http::{HeaderMap, HeaderValue, header};

    #[test]
    fn aggregated_only_when_asked_for() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::ACCEPT,
            HeaderValue::from_static("application/json, */*"),
        );
        assert!(!super::wants_aggregated(&headers));
        // What kubectl 1.32 sends.
        headers.insert(
            header::ACCEPT,
            HeaderValue::from_static(
                "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,\
                 application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,\
                 application/json",
            ),
        );
        assert!(super::wants_aggregated(&headers));
    }
}
