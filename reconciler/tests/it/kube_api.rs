//! The Kubernetes API as clients use it, over a real store: discovery, OpenAPI, paged lists,
//! resourceVersion rules, field selectors, Tables, watches (initial events, bookmarks,
//! selectors followed across changes, 410 after compaction), and refused writes.

use std::time::Duration;

use keel_schema::object::Object;
use keel_store::ObjectKey;
use serde_json::{Value, json};

use super::api::{Api, api, pod};

fn config_map(ns: &str, name: &str, labels: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
           "metadata": {"name": name, "namespace": ns, "labels": labels},
           "data": {"k": "v"}})
}

impl Api {
    async fn get_as(&self, path: &str, accept: &str) -> (u16, String, Value) {
        let resp = self
            .client
            .get(format!("{}{path}", self.url))
            .header("Accept", accept)
            .send()
            .await
            .unwrap();
        let code = resp.status().as_u16();
        let kind = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        (code, kind, resp.json().await.unwrap_or(Value::Null))
    }

    async fn send(&self, method: &str, path: &str, body: Value) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let resp = self
            .client
            .request(method, format!("{}{path}", self.url))
            .json(&body)
            .send()
            .await
            .unwrap();
        let code = resp.status().as_u16();
        (code, resp.json().await.unwrap_or(Value::Null))
    }

    /// A watch's events, read until `until` holds of them (or 10 s pass).
    async fn watch_until(
        &self,
        path: &str,
        accept: &str,
        change: impl AsyncFnOnce(),
        until: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let mut resp = self
            .client
            .get(format!("{}{path}", self.url))
            .header("Accept", accept)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200, "{path}");
        let mut events = Vec::new();
        let mut pending = Vec::new();
        let mut changed = Some(change);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !until(&events) {
            // The change comes once the stream is open (its first events read).
            if let Some(change) = changed.take() {
                change().await;
            }
            let chunk = tokio::time::timeout_at(deadline, resp.chunk())
                .await
                .unwrap_or_else(|_| panic!("watch {path}: only {events:#?}"))
                .unwrap();
            let Some(chunk) = chunk else { break };
            pending.extend_from_slice(&chunk);
            while let Some(end) = pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = pending.drain(..=end).collect();
                events.push(serde_json::from_slice(&line).unwrap());
            }
        }
        events
    }
}

fn types(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| {
            let name = e["object"]["metadata"]["name"].as_str().unwrap_or("");
            format!("{} {name}", e["type"].as_str().unwrap_or(""))
        })
        .collect()
}

#[tokio::test]
async fn discovery_lists_every_kind_legacy_and_aggregated() {
    let api = api(vec![]).await;
    let (code, version) = api.get("/version").await;
    assert_eq!((code, version["major"].as_str()), (200, Some("1")));
    let (_, core) = api.get("/api").await;
    assert_eq!(core["versions"], json!(["v1"]));
    let (_, v1) = api.get("/api/v1").await;
    let pods = v1["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "pods")
        .unwrap();
    assert_eq!(pods["kind"], "Pod");
    assert_eq!(pods["shortNames"], json!(["po"]));
    assert_eq!(pods["categories"], json!(["all"]));
    assert!(pods["verbs"].as_array().unwrap().contains(&json!("watch")));
    assert!(
        v1["resources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["name"] == "pods/log")
    );
    let (_, groups) = api.get("/apis").await;
    let apps = groups["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == "apps")
        .unwrap();
    assert_eq!(apps["preferredVersion"]["groupVersion"], "apps/v1");
    let (code, _) = api.get("/apis/nothing.example.com/v1").await;
    assert_eq!(code, 404);
    // What kubectl 1.32 asks first.
    let accept =
        "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json";
    let (code, kind, aggregated) = api.get_as("/apis", accept).await;
    assert_eq!(code, 200);
    assert!(kind.contains("as=APIGroupDiscoveryList"), "{kind}");
    let deployments = aggregated["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["metadata"]["name"] == "apps")
        .and_then(|g| g["versions"][0]["resources"].as_array())
        .and_then(|r| r.iter().find(|r| r["resource"] == "deployments").cloned())
        .unwrap();
    assert_eq!(deployments["scope"], "Namespaced");
    assert_eq!(deployments["responseKind"]["kind"], "Deployment");
}

#[tokio::test]
async fn openapi_documents_each_group_version() {
    let api = api(vec![]).await;
    let (_, index) = api.get("/openapi/v3").await;
    let url = index["paths"]["apis/apps/v1"]["serverRelativeURL"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(index["paths"]["api/v1"].is_object());
    let (code, doc) = api.get(&url).await;
    assert_eq!(code, 200);
    let marked: Vec<&Value> = doc["components"]["schemas"]
        .as_object()
        .unwrap()
        .values()
        .filter_map(|s| s.get("x-kubernetes-group-version-kind"))
        .collect();
    assert!(marked.iter().any(|m| m[0]["kind"] == "Deployment"));
    let (code, _, swagger) = api.get_as("/openapi/v2", "application/json").await;
    assert_eq!((code, swagger["swagger"].as_str()), (200, Some("2.0")));
    let protobuf_only = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf";
    let (code, _, _) = api.get_as("/openapi/v2", protobuf_only).await;
    assert_eq!(code, 406);
}

#[tokio::test]
async fn lists_come_in_consistent_pages() {
    let objects = (0..5)
        .map(|i| config_map("default", &format!("cm-{i}"), json!({})))
        .collect();
    let api = api(objects).await;
    let (code, first) = api.get("/api/v1/configmaps?limit=2").await;
    assert_eq!(code, 200);
    assert_eq!(first["items"].as_array().unwrap().len(), 2);
    assert_eq!(first["metadata"]["remainingItemCount"], 3);
    let revision = first["metadata"]["resourceVersion"].clone();
    // A change between pages does not show: every page is of the first page's list.
    api.store
        .delete(
            &ObjectKey::new(keel_schema::Kind::ConfigMap, "default", "cm-4"),
            None,
        )
        .await
        .unwrap();
    let mut names: Vec<String> = Vec::new();
    let mut page = first;
    loop {
        names.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["metadata"]["name"].as_str().unwrap().to_string()),
        );
        assert_eq!(page["metadata"]["resourceVersion"], revision);
        let Some(token) = page["metadata"]["continue"].as_str() else {
            break;
        };
        let (code, next) = api
            .get(&format!("/api/v1/configmaps?limit=2&continue={token}"))
            .await;
        assert_eq!(code, 200, "{next}");
        page = next;
    }
    assert_eq!(names, ["cm-0", "cm-1", "cm-2", "cm-3", "cm-4"]);
    let (code, bad) = api.get("/api/v1/configmaps?limit=2&continue=bm9wZQ").await;
    assert_eq!((code, bad["reason"].as_str()), (400, Some("BadRequest")));
    let (code, _) = api.get("/api/v1/configmaps?limit=1").await;
    assert_eq!(code, 200);
    let (_, again) = api.get("/api/v1/configmaps?limit=1").await;
    let token = again["metadata"]["continue"].as_str().unwrap();
    let (code, other) = api
        .get(&format!("/api/v1/secrets?limit=1&continue={token}"))
        .await;
    assert_eq!(code, 400, "a token is only for its own list: {other}");
}

/// Events are paged by key, not from a snapshot: every page is read from the store as it
/// is then, each Event once, in the asked namespace and selectors.
#[tokio::test]
async fn events_come_in_pages_read_from_the_store() {
    let event = |ns: &str, name: &str, reason: &str| {
        json!({"apiVersion": "v1", "kind": "Event",
               "metadata": {"name": name, "namespace": ns, "labels": {"r": reason}},
               "involvedObject": {"kind": "Pod", "name": name, "namespace": ns},
               "reason": reason, "type": "Normal"})
    };
    let mut objects: Vec<Value> = (0..7)
        .map(|i| {
            let ns = if i % 2 == 0 { "default" } else { "apps" };
            event(
                ns,
                &format!("ev-{i}"),
                if i < 5 { "Started" } else { "Killing" },
            )
        })
        .collect();
    objects.push(config_map("default", "cm", json!({})));
    let api = api(objects).await;
    let walk = |first: String| {
        let api = &api;
        async move {
            let mut names = Vec::new();
            let mut pages = 0;
            let mut path = first.clone();
            loop {
                let (code, page) = api.get(&path).await;
                assert_eq!(code, 200, "{path}: {page}");
                assert_eq!(page["kind"], "EventList");
                pages += 1;
                names.extend(
                    page["items"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|i| i["metadata"]["name"].as_str().unwrap().to_string()),
                );
                let Some(token) = page["metadata"]["continue"].as_str() else {
                    return (names, pages);
                };
                path = format!("{first}&continue={token}");
            }
        }
    };
    let (names, pages) = walk("/api/v1/events?limit=3".into()).await;
    // Key order: the apps namespace first.
    assert_eq!(
        names,
        ["ev-1", "ev-3", "ev-5", "ev-0", "ev-2", "ev-4", "ev-6"]
    );
    assert_eq!(pages, 3);
    let (names, _) = walk("/api/v1/namespaces/default/events?limit=2".into()).await;
    assert_eq!(names, ["ev-0", "ev-2", "ev-4", "ev-6"]);
    let (names, _) = walk("/api/v1/events?limit=1&labelSelector=r%3DKilling".into()).await;
    assert_eq!(names, ["ev-5", "ev-6"]);
    let (names, _) = walk("/api/v1/events?limit=2&fieldSelector=reason%3DStarted".into()).await;
    assert_eq!(names, ["ev-1", "ev-3", "ev-0", "ev-2", "ev-4"]);

    // The rest, without a limit: read as the store is now, so an Event deleted between
    // pages is not served.
    let (_, first) = api.get("/api/v1/events?limit=2").await;
    let token = first["metadata"]["continue"].as_str().unwrap().to_string();
    api.store
        .delete(
            &ObjectKey::new(keel_schema::Kind::Event, "default", "ev-0"),
            None,
        )
        .await
        .unwrap();
    let (code, rest) = api.get(&format!("/api/v1/events?continue={token}")).await;
    assert_eq!(code, 200, "{rest}");
    let rest: Vec<&str> = rest["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(rest, ["ev-5", "ev-2", "ev-4", "ev-6"]);

    // A token is only for its own list, and only one this server wrote.
    let (code, other) = api
        .get(&format!(
            "/api/v1/namespaces/default/events?limit=2&continue={token}"
        ))
        .await;
    assert_eq!(code, 400, "{other}");
    let (code, _) = api.get("/api/v1/events?limit=2&continue=bm9wZQ").await;
    assert_eq!(code, 400);
}

#[tokio::test]
async fn resource_versions_are_honoured_or_refused() {
    let api = api(vec![
        config_map("default", "a", json!({})),
        config_map("default", "b", json!({})),
    ])
    .await;
    let (_, list) = api.get("/api/v1/configmaps").await;
    let now: u64 = list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let (code, _) = api
        .get(&format!("/api/v1/configmaps?resourceVersion={now}"))
        .await;
    assert_eq!(code, 200);
    let (code, _) = api.get("/api/v1/configmaps?resourceVersion=0").await;
    assert_eq!(code, 200);
    let (code, ahead) = api
        .get(&format!("/api/v1/configmaps?resourceVersion={}", now + 100))
        .await;
    assert_eq!((code, ahead["reason"].as_str()), (504, Some("Timeout")));
    let (code, old) = api
        .get("/api/v1/configmaps?resourceVersion=1&resourceVersionMatch=Exact")
        .await;
    assert!(now > 1, "two writes");
    assert_eq!((code, old["reason"].as_str()), (410, Some("Expired")));
    let (code, _) = api.get("/api/v1/configmaps?resourceVersion=abc").await;
    assert_eq!(code, 400);
}

#[tokio::test]
async fn field_selectors_pick_pods_by_node_and_phase() {
    let mut on_n1 = pod("default", "a", "web");
    on_n1["spec"]["nodeName"] = json!("n1");
    on_n1["status"] = json!({"phase": "Running"});
    let mut on_n2 = pod("default", "b", "web");
    on_n2["spec"]["nodeName"] = json!("n2");
    let api = api(vec![on_n1, on_n2, pod("shop", "c", "db")]).await;
    let names = |list: &Value| -> Vec<String> {
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["metadata"]["name"].as_str().unwrap().to_string())
            .collect()
    };
    let (_, on) = api
        .get("/api/v1/pods?fieldSelector=spec.nodeName%3Dn1")
        .await;
    assert_eq!(names(&on), ["a"]);
    let (_, unscheduled) = api.get("/api/v1/pods?fieldSelector=spec.nodeName%3D").await;
    assert_eq!(names(&unscheduled), ["c"]);
    let (_, running) = api
        .get("/api/v1/pods?fieldSelector=status.phase%21%3DRunning,metadata.namespace%3Ddefault")
        .await;
    assert_eq!(names(&running), ["b"]);
}

#[tokio::test]
async fn tables_carry_kubectls_columns() {
    let api = api(vec![pod("default", "web-1", "web")]).await;
    let accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json";
    let (code, _, table) = api.get_as("/api/v1/namespaces/default/pods", accept).await;
    assert_eq!(code, 200);
    assert_eq!(table["kind"], "Table");
    let first: Vec<&str> = table["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["priority"] == 0)
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(first, ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]);
    assert_eq!(table["rows"][0]["cells"][0], "web-1");
    assert_eq!(table["rows"][0]["cells"][2], "Pending");
    assert_eq!(table["rows"][0]["object"]["kind"], "PartialObjectMetadata");
    assert!(table["metadata"]["resourceVersion"].is_string());
    let (_, _, full) = api
        .get_as("/api/v1/pods?includeObject=Object", accept)
        .await;
    assert_eq!(full["rows"][0]["object"]["kind"], "Pod");
    let (_, _, one) = api
        .get_as("/api/v1/namespaces/default/pods/web-1", accept)
        .await;
    assert_eq!(one["rows"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn watches_start_with_current_objects_and_follow_changes() {
    let api = api(vec![
        config_map("default", "a", json!({"tier": "front"})),
        config_map("default", "b", json!({})),
    ])
    .await;
    let store = api.store.clone();
    // From now: the current objects, a bookmark ending them, then the change.
    let events = api
        .watch_until(
            "/api/v1/namespaces/default/configmaps?watch=1&sendInitialEvents=true\
             &allowWatchBookmarks=true&resourceVersionMatch=NotOlderThan",
            "application/json",
            async || {
                store
                    .create(Object::from_json(config_map("default", "c", json!({}))).unwrap())
                    .await
                    .unwrap();
            },
            |events| events.len() >= 4,
        )
        .await;
    assert_eq!(types(&events[..2]), ["ADDED a", "ADDED b"]);
    assert_eq!(events[2]["type"], "BOOKMARK");
    assert_eq!(
        events[2]["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"],
        "true"
    );
    assert_eq!(types(&events[3..]), ["ADDED c"]);
    let revision = events[3]["object"]["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();

    // A selector is followed: an object that stops matching is DELETED for this watch.
    let store = api.store.clone();
    let events = api
        .watch_until(
            "/api/v1/configmaps?watch=true&labelSelector=tier%3Dfront",
            "application/json",
            async || {
                let key = ObjectKey::new(keel_schema::Kind::ConfigMap, "default", "a");
                let stored = store.get(&key).await.unwrap().unwrap();
                let mut changed = stored.object.clone();
                changed.meta_mut().labels = None;
                store
                    .update(changed, stored.resource_version)
                    .await
                    .unwrap();
            },
            |events| events.len() >= 2,
        )
        .await;
    assert_eq!(types(&events), ["ADDED a", "DELETED a"]);

    // From a resourceVersion: that revision's changes again (a stream cut inside one
    // revision loses nothing), then what came after, shaped as a Table when asked.
    let store = api.store.clone();
    let table = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json";
    let events = api
        .watch_until(
            &format!("/api/v1/namespaces/default/configmaps?watch=1&resourceVersion={revision}"),
            table,
            async || {
                store
                    .delete(
                        &ObjectKey::new(keel_schema::Kind::ConfigMap, "default", "b"),
                        None,
                    )
                    .await
                    .unwrap();
            },
            |events| events.len() >= 3,
        )
        .await;
    let rows: Vec<String> = events
        .iter()
        .map(|e| format!("{} {}", e["type"], e["object"]["rows"][0]["cells"][0]))
        .collect();
    assert_eq!(
        rows,
        [r#""ADDED" "c""#, r#""MODIFIED" "a""#, r#""DELETED" "b""#],
        "{events:#?}"
    );
    assert_eq!(events[0]["object"]["kind"], "Table");
}

#[tokio::test]
async fn a_resumed_watch_with_a_selector_sees_what_left_it_meanwhile() {
    let api = api(vec![
        config_map("default", "gone", json!({"tier": "front"})),
        config_map("default", "moved", json!({"tier": "front"})),
    ])
    .await;
    let (_, list) = api
        .get("/api/v1/configmaps?labelSelector=tier%3Dfront")
        .await;
    let revision = list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    // Before the client watches again: one deleted, one relabelled out of the selector.
    api.store
        .delete(
            &ObjectKey::new(keel_schema::Kind::ConfigMap, "default", "gone"),
            None,
        )
        .await
        .unwrap();
    let key = ObjectKey::new(keel_schema::Kind::ConfigMap, "default", "moved");
    let stored = api.store.get(&key).await.unwrap().unwrap();
    let mut moved = stored.object.clone();
    moved.meta_mut().labels = None;
    api.store
        .update(moved, stored.resource_version)
        .await
        .unwrap();
    let events = api
        .watch_until(
            &format!(
                "/api/v1/configmaps?watch=1&labelSelector=tier%3Dfront&resourceVersion={revision}"
            ),
            "application/json",
            async || {},
            |events| {
                types(events)
                    .iter()
                    .filter(|t| t.starts_with("DELETED"))
                    .count()
                    == 2
            },
        )
        .await;
    // The revision listed comes again (moved's creation), then both departures.
    let seen = types(&events);
    assert_eq!(seen, ["ADDED moved", "DELETED gone", "DELETED moved"]);
}

#[tokio::test]
async fn a_watch_from_compacted_history_ends_with_410() {
    let api = api(vec![config_map("default", "a", json!({}))]).await;
    for i in 0..3 {
        api.store
            .create(Object::from_json(config_map("default", &format!("n{i}"), json!({}))).unwrap())
            .await
            .unwrap();
    }
    let now = api.store.revision().await.unwrap();
    api.store.compact(now - 1).await.unwrap();
    let events = api
        .watch_until(
            "/api/v1/configmaps?watch=1&resourceVersion=1",
            "application/json",
            async || {},
            |events| !events.is_empty(),
        )
        .await;
    assert_eq!(events[0]["type"], "ERROR");
    assert_eq!(events[0]["object"]["code"], 410);
    assert_eq!(events[0]["object"]["reason"], "Expired");
}

#[tokio::test]
async fn writes_are_refused_with_where_to_change_instead() {
    let api = api(vec![config_map("default", "a", json!({}))]).await;
    let cm = config_map("default", "new", json!({}));
    for (method, path) in [
        ("POST", "/api/v1/namespaces/default/configmaps"),
        ("PUT", "/api/v1/namespaces/default/configmaps/a"),
        ("PATCH", "/api/v1/namespaces/default/configmaps/a"),
        ("DELETE", "/api/v1/namespaces/default/configmaps/a"),
        ("DELETE", "/api/v1/namespaces/default/configmaps"),
        (
            "PATCH",
            "/apis/apps/v1/namespaces/default/deployments/web/scale",
        ),
    ] {
        let (code, status) = api.send(method, path, cm.clone()).await;
        assert_eq!(code, 405, "{method} {path}: {status}");
        assert_eq!(status["reason"], "MethodNotAllowed");
        assert!(
            status["message"]
                .as_str()
                .unwrap()
                .starts_with("keel applies only what is committed to "),
            "{status}"
        );
    }
    let (_, created) = api
        .send("POST", "/api/v1/namespaces/default/configmaps", cm)
        .await;
    assert!(
        created["message"]
            .as_str()
            .unwrap()
            .contains("configmaps \"new\" is not declared"),
        "{created}"
    );
    let (_, node) = api.send("DELETE", "/api/v1/nodes/n1", json!({})).await;
    assert!(
        node["message"]
            .as_str()
            .unwrap()
            .contains("kept by keel itself"),
        "{node}"
    );
    let (code, _) = api
        .get("/apis/apps/v1/namespaces/default/deployments/web/scale")
        .await;
    assert_eq!(code, 404);
}
