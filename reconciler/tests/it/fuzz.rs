//! Property tests over what the control plane takes from outside: label selectors, API
//! paths and query strings, webhook bodies and the agents' status messages. However broken,
//! an input gets a clear refusal (a 4xx, an error), never a panic or a 500.
//! `KEEL_FUZZ_CASES` sets how many cases run (CI keeps it small; run it long by hand).

use keel_agent_protocol::StatusReport;
use keel_schema::selector::Selector;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use prost::Message;

fn cases() -> u32 {
    std::env::var("KEEL_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

/// Text made of the pieces selectors, paths and queries are made of, and some that are not.
fn pieces() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        prop::sample::select(vec![
            "app",
            "=",
            "==",
            "!=",
            ",",
            " in ",
            " notin ",
            "(",
            ")",
            "!",
            "a.b/c",
            "-",
            "x",
            "%",
            "%2F",
            "..",
            "/",
            "\u{0}",
            "é",
            "*",
            "999999999999999999999",
            "-1",
            " ",
        ])
        .prop_map(str::to_string),
        ".{0,8}",
    ];
    prop::collection::vec(piece, 0..12).prop_map(|p| p.concat())
}

fn path() -> impl Strategy<Value = String> {
    let segment = prop_oneof![
        prop::sample::select(vec![
            "api",
            "apis",
            "v1",
            "apps",
            "namespaces",
            "default",
            "pods",
            "services",
            "deployments",
            "nodes",
            "secrets",
            "log",
            "status",
            "keel",
            "history",
            "web",
            "events",
            "configmaps",
            "endpoints",
            "jobs",
            "batch",
            "networking.k8s.io",
        ])
        .prop_map(str::to_string),
        pieces(),
    ];
    prop::collection::vec(segment, 0..7).prop_map(|s| format!("/{}", s.join("/")))
}

fn query() -> impl Strategy<Value = Vec<(String, String)>> {
    let key = prop::sample::select(vec![
        "labelSelector",
        "fieldSelector",
        "limit",
        "continue",
        "watch",
        "resourceVersion",
        "container",
        "tailLines",
        "follow",
        "previous",
        "timestamps",
        "sinceSeconds",
        "x",
    ])
    .prop_map(str::to_string);
    prop::collection::vec((key, pieces()), 0..4)
}

#[test]
fn selectors_parse_or_refuse() {
    TestRunner::new(Config::with_cases(cases()))
        .run(&pieces(), |text| {
            if let Err(e) = Selector::parse(&text) {
                prop_assert!(!e.to_string().is_empty());
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn api_paths_queries_and_webhooks_never_fail_the_server() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let pod = serde_json::json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "c", "image": "x:1"}]}});
    let api = rt.block_on(super::api::api(vec![pod]));
    TestRunner::new(Config::with_cases(cases()))
        .run(&(path(), query()), |(path, query)| {
            let url = format!("{}{path}", api.url);
            let Ok(url) = reqwest::Url::parse_with_params(&url, &query) else {
                return Ok(());
            };
            let Ok(request) = api.client.get(url).build() else {
                return Ok(());
            };
            let code = rt.block_on(async {
                let resp = api.client.execute(request).await.unwrap();
                let code = resp.status().as_u16();
                // Streams (logs, watches) end on their own; only the answer's head counts.
                drop(resp);
                code
            });
            prop_assert!(code < 500 || code == 503, "GET {path} {query:?}: {code}");
            Ok(())
        })
        .unwrap();
    let content_type = prop::sample::select(vec![
        "application/json",
        "application/x-www-form-urlencoded",
        "text/plain",
    ]);
    let body = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..300),
        pieces().prop_map(|p| format!("payload={p}").into_bytes()),
        pieces().prop_map(|p| format!(r#"{{"ref": "{p}", "after": 1}}"#).into_bytes()),
    ];
    TestRunner::new(Config::with_cases(cases()))
        .run(&(content_type, body), |(content_type, body)| {
            let code = rt.block_on(async {
                api.client
                    .post(format!("{}/api/webhook", api.url))
                    .header("content-type", content_type)
                    .header("x-github-event", "push")
                    .body(body.clone())
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            });
            prop_assert!(code < 500, "webhook {content_type} {body:?}: {code}");
            Ok(())
        })
        .unwrap();
}

#[test]
fn agent_status_messages_decode_or_fail_cleanly() {
    TestRunner::new(Config::with_cases(cases()))
        .run(&prop::collection::vec(any::<u8>(), 0..512), |bytes| {
            if let Ok(report) = StatusReport::decode(bytes.as_slice())
                && let Some(keel_agent_protocol::status_report::Report::PodStatus(update)) =
                    report.report
            {
                let _ =
                    serde_json::from_slice::<keel_schema::types::pod::PodStatus>(&update.status);
            }
            Ok(())
        })
        .unwrap();
}
