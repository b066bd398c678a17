//! Objects one at a time: create, get, update, delete, list; resource versions and generations.

use keel_schema::Kind;
use keel_schema::Object;
use keel_schema::selector::Selector;
use keel_store::StoreError;

use super::{Backend, configmap, key, value_of};

pub(super) async fn create_get_update_delete_with_resource_versions(b: &mut Backend) {
    let s = &b.store;
    let created = s
        .create(configmap("default", "a", &[], "1"))
        .await
        .expect("create");
    assert!(created.resource_version > 0);
    let meta = created.object.meta();
    assert!(
        meta.uid.as_deref().is_some_and(|u| !u.is_empty()),
        "uid assigned"
    );
    assert!(meta.creation_timestamp.is_some());
    assert_eq!(
        meta.resource_version.as_deref(),
        Some(created.resource_version.to_string().as_str())
    );

    let got = s.get(&key("a")).await.expect("get").expect("present");
    assert_eq!(got, created);

    match s.create(configmap("default", "a", &[], "2")).await {
        Err(StoreError::AlreadyExists(k)) => assert_eq!(k, key("a")),
        other => panic!("create twice: {other:?}"),
    }
    let stale = created.resource_version;
    let updated = s
        .update(configmap("default", "a", &[], "2"), stale)
        .await
        .expect("update");
    assert!(updated.resource_version > stale);
    assert_eq!(
        updated.object.meta().uid,
        meta.uid,
        "uid kept across updates"
    );
    match s.update(configmap("default", "a", &[], "3"), stale).await {
        Err(StoreError::Conflict {
            expected, actual, ..
        }) => {
            assert_eq!((expected, actual), (stale, updated.resource_version))
        }
        other => panic!("stale update: {other:?}"),
    }
    assert_eq!(
        value_of(&s.get(&key("a")).await.unwrap().unwrap().object),
        "2",
        "failed update wrote nothing"
    );
    match s.delete(&key("a"), Some(stale)).await {
        Err(StoreError::Conflict { .. }) => {}
        other => panic!("stale delete: {other:?}"),
    }
    let deleted = s
        .delete(&key("a"), Some(updated.resource_version))
        .await
        .expect("delete");
    assert_eq!(value_of(&deleted.object), "2");
    // A writer waits for its writes to show by the revision it was answered with.
    assert_eq!(
        deleted.resource_version,
        s.revision().await.unwrap(),
        "a delete answers with the revision it was written at"
    );
    assert!(s.get(&key("a")).await.unwrap().is_none());
    assert!(matches!(
        s.delete(&key("a"), None).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        s.update(configmap("default", "a", &[], "4"), 1).await,
        Err(StoreError::NotFound(_))
    ));
}

pub(super) async fn generation_follows_spec_changes_only(b: &mut Backend) {
    let s = &b.store;
    let v1 = s.create(configmap("default", "g", &[], "1")).await.unwrap();
    assert_eq!(v1.object.meta().generation, Some(1));
    let relabelled = s
        .update(
            configmap("default", "g", &[("team", "web")], "1"),
            v1.resource_version,
        )
        .await
        .unwrap();
    assert_eq!(
        relabelled.object.meta().generation,
        Some(1),
        "metadata-only change"
    );
    let changed = s
        .update(
            configmap("default", "g", &[("team", "web")], "2"),
            relabelled.resource_version,
        )
        .await
        .unwrap();
    assert_eq!(changed.object.meta().generation, Some(2), "data change");

    // Pods take a typed path: a status report keeps the generation, a bind bumps it.
    let pod = |node: Option<&str>, phase: &str| {
        Object::from_json(serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "default"},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox"}]},
            "status": {"phase": phase}
        }))
        .unwrap()
    };
    let created = s.create(pod(None, "Pending")).await.unwrap();
    assert_eq!(created.object.meta().generation, Some(1));
    let bound = s
        .update(pod(Some("n1"), "Pending"), created.resource_version)
        .await
        .unwrap();
    assert_eq!(bound.object.meta().generation, Some(2), "a bind");
    let running = s
        .update(pod(Some("n1"), "Running"), bound.resource_version)
        .await
        .unwrap();
    assert_eq!(running.object.meta().generation, Some(2), "a status report");
}

pub(super) async fn list_by_kind_namespace_and_selector(b: &mut Backend) {
    let s = &b.store;
    s.create(configmap("a", "one", &[("app", "web")], "1"))
        .await
        .unwrap();
    s.create(configmap("a", "two", &[("app", "api")], "1"))
        .await
        .unwrap();
    s.create(configmap("ab", "three", &[("app", "web")], "1"))
        .await
        .unwrap();
    let mut ns = keel_schema::types::core::Namespace::default();
    ns.metadata.name = Some("a".into());
    s.create(Object::Namespace(ns)).await.unwrap();

    let all = s.list(Kind::ConfigMap, None, None).await.unwrap();
    assert_eq!(all.items.len(), 3);
    assert_eq!(
        all.revision,
        s.revision().await.unwrap(),
        "a list names the revision it was taken at"
    );
    let in_a = s.list(Kind::ConfigMap, Some("a"), None).await.unwrap();
    let names: Vec<&str> = in_a.items.iter().map(|i| i.object.name()).collect();
    assert_eq!(names, ["one", "two"], "namespace a, not ab");
    let web = Selector::parse("app=web").unwrap();
    let selected = s.list(Kind::ConfigMap, None, Some(&web)).await.unwrap();
    assert_eq!(selected.items.len(), 2);
    let namespaces = s.list(Kind::Namespace, None, None).await.unwrap();
    assert_eq!(namespaces.items.len(), 1);
    assert_eq!(namespaces.items[0].object.namespace(), "", "cluster-scoped");
    assert!(
        s.list(Kind::Pod, None, None)
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

pub(super) async fn every_write_bumps_the_store_revision(b: &mut Backend) {
    let s = &b.store;
    let mut last = s.revision().await.unwrap();
    for i in 0..5 {
        let stored = s
            .create(configmap("default", &format!("r{i}"), &[], "x"))
            .await
            .unwrap();
        assert!(stored.resource_version > last);
        last = stored.resource_version;
        assert_eq!(s.revision().await.unwrap(), last);
    }
}

/// Objects of custom kinds: keyed apart from built-in kinds (one of the same name in
/// another group included), listed by kind and all together, read back whole, also after
/// a restart.
pub(super) async fn custom_objects_are_kept_by_group_and_kind(b: &mut Backend) {
    let s = &b.store;
    let object = |api_version: &str, kind: &str, name: &str, size: i64| {
        Object::from_json(serde_json::json!({
            "apiVersion": api_version, "kind": kind,
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"size": size, "tags": ["a", {"nested": true}]}
        }))
        .expect("a custom object")
    };
    let widget = s
        .create(object("example.com/v1", "Widget", "w", 1))
        .await
        .expect("create a widget");
    // A kind named as a built-in one, in another group, is another kind.
    s.create(object("example.com/v1", "Deployment", "w", 2))
        .await
        .expect("create example.com's Deployment");
    s.create(object("other.example.com/v1", "Widget", "w", 3))
        .await
        .expect("create other.example.com's Widget");
    assert!(
        s.list(Kind::Deployment, None, None)
            .await
            .unwrap()
            .items
            .is_empty()
    );
    let custom = s.list_custom().await.unwrap().items;
    assert_eq!(custom.len(), 3);
    let kind = widget.object.kind();
    assert!(matches!(kind, Kind::Custom(_)));
    let widgets = s.list(kind, Some("default"), None).await.unwrap().items;
    assert_eq!(widgets.len(), 1);
    assert_eq!(widgets[0], widget);
    let got = s
        .get(&keel_store::ObjectKey::of(&widget.object))
        .await
        .unwrap()
        .expect("the widget");
    let json = serde_json::to_value(&got.object).unwrap();
    assert_eq!(json["apiVersion"], "example.com/v1");
    assert_eq!(json["spec"]["tags"][1]["nested"], true);
    let updated = s
        .update(
            object("example.com/v1", "Widget", "w", 5),
            got.resource_version,
        )
        .await
        .expect("update");
    assert_eq!(
        serde_json::to_value(&updated.object).unwrap()["spec"]["size"],
        5
    );
    s.delete(&keel_store::ObjectKey::of(&updated.object), None)
        .await
        .expect("delete");
    // Read back as stored after a restart (the redb engine's cache is rebuilt from keys).
    b.restart().await;
    let left = b.store.list_custom().await.unwrap().items;
    let kinds: Vec<String> = left.iter().map(|s| s.object.kind().to_string()).collect();
    assert_eq!(
        kinds,
        ["Deployment.example.com", "Widget.other.example.com"]
    );
}

fn event(name: &str, message: &str) -> Object {
    let mut ev = keel_schema::types::core::Event::default();
    ev.metadata.name = Some(name.into());
    ev.metadata.namespace = Some("default".into());
    ev.metadata.labels = Some([("about".to_string(), name.to_string())].into());
    ev.message = Some(message.into());
    let mut obj = Object::Event(ev);
    obj.set_type_meta();
    obj
}

fn message_of(obj: &Object) -> Option<&str> {
    match obj {
        Object::Event(ev) => ev.message.as_deref(),
        _ => None,
    }
}

/// Events (which the embedded engine reads from its file rather than its cache) keep every
/// promise other objects do: versions, conflicts, lists, batches, watches, restarts. Only
/// `list_all`, which the controllers' cache loads, leaves them out.
pub(super) async fn events_are_objects_like_any_other_but_not_in_list_all(b: &mut Backend) {
    let s = &b.store;
    let event_key = |name: &str| keel_store::ObjectKey::new(Kind::Event, "default", name);
    let mut watch = s
        .watch(Some(Kind::Event), s.revision().await.expect("revision"))
        .await
        .expect("watch");
    let a = s.create(event("a", "first")).await.expect("create event");
    match s.create(event("a", "again")).await {
        Err(StoreError::AlreadyExists(k)) => assert_eq!(k, event_key("a")),
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
    let got = s.get(&event_key("a")).await.expect("get").expect("present");
    assert_eq!(got, a);
    assert_eq!(s.get(&event_key("nope")).await.expect("get"), None);

    let mut newer = a.object.clone();
    if let Object::Event(ev) = &mut newer {
        ev.message = Some("second".into());
    }
    let updated = s
        .update(newer.clone(), a.resource_version)
        .await
        .expect("update at the read version");
    assert!(matches!(
        s.update(newer, a.resource_version).await,
        Err(StoreError::Conflict { .. })
    ));

    let mut batch = keel_store::Batch {
        label: "event and configmap".into(),
        ..Default::default()
    };
    batch
        .ops
        .push(keel_store::BatchOp::Create(event("b", "batched")));
    batch.ops.push(keel_store::BatchOp::Create(configmap(
        "default",
        "c",
        &[],
        "1",
    )));
    s.apply_batch(batch).await.expect("batch");

    let listed = s
        .list(Kind::Event, Some("default"), None)
        .await
        .expect("list");
    let messages: Vec<_> = listed
        .items
        .iter()
        .filter_map(|i| message_of(&i.object))
        .collect();
    assert_eq!(messages, ["second", "batched"]);
    assert!(listed.revision >= updated.resource_version);
    let selector = Selector::parse("about=b").expect("a selector");
    let selected = s
        .list(Kind::Event, None, Some(&selector))
        .await
        .expect("list by selector");
    assert_eq!(selected.items.len(), 1);
    assert_eq!(message_of(&selected.items[0].object), Some("batched"));

    let all = s.list_all().await.expect("list all");
    assert!(all.items.iter().any(|i| i.object.kind() == Kind::ConfigMap));
    assert!(
        all.items.iter().all(|i| i.object.kind() != Kind::Event),
        "list_all leaves Events out"
    );

    for want in ["first", "second", "batched"] {
        let e = tokio::time::timeout(std::time::Duration::from_secs(10), watch.next())
            .await
            .expect("a watch event in time")
            .expect("watch open")
            .expect("watch event");
        assert_eq!(message_of(e.object()), Some(want));
    }

    s.delete(&event_key("a"), Some(updated.resource_version))
        .await
        .expect("delete at the read version");
    assert_eq!(s.get(&event_key("a")).await.expect("get"), None);
    // The watch holds the store open.
    drop(watch);
    b.restart().await;
    let kept = b
        .store
        .get(&event_key("b"))
        .await
        .expect("get after restart")
        .expect("kept");
    assert_eq!(message_of(&kept.object), Some("batched"));
    assert_eq!(b.store.get(&event_key("a")).await.expect("get"), None);
}

/// `list_page` walks a whole kind, every namespace, in key order, a page at a time: for
/// Events (read from the embedded engine's file) and for a cached kind alike.
pub(super) async fn list_page_walks_a_kind_in_pages(b: &mut Backend) {
    let s = &b.store;
    let mut batch = keel_store::Batch {
        label: "pages".into(),
        ..Default::default()
    };
    for i in 0..7 {
        let ns = if i % 2 == 0 { "a" } else { "b" };
        let mut ev = event(&format!("e{i}"), "m");
        ev.meta_mut().namespace = Some(ns.into());
        batch.ops.push(keel_store::BatchOp::Create(ev));
        batch.ops.push(keel_store::BatchOp::Create(configmap(
            ns,
            &format!("c{i}"),
            &[],
            "1",
        )));
    }
    s.apply_batch(batch).await.expect("batch");
    for kind in [Kind::Event, Kind::ConfigMap] {
        let mut walked = Vec::new();
        let mut after: Option<String> = None;
        let mut pages = 0;
        loop {
            let page = s
                .list_page(kind, None, after.as_deref(), 3)
                .await
                .expect("page");
            assert!(page.items.len() <= 3, "{kind}: a page holds at most 3");
            pages += 1;
            walked.extend(
                page.items
                    .iter()
                    .map(|i| format!("{}/{}", i.object.namespace(), i.object.name())),
            );
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        let prefix = if kind == Kind::Event { "e" } else { "c" };
        let expected: Vec<String> = ["a/0", "a/2", "a/4", "a/6", "b/1", "b/3", "b/5"]
            .iter()
            .map(|k| k.replace('/', &format!("/{prefix}")))
            .collect();
        assert_eq!(walked, expected, "{kind}: every object once, in key order");
        assert_eq!(pages, 3, "{kind}: 3 + 3 + 1");
    }
    // A cursor before the kind starts at its first object.
    let page = s
        .list_page(Kind::Event, None, Some(""), 3)
        .await
        .expect("page");
    let names: Vec<&str> = page.items.iter().map(|i| i.object.name()).collect();
    assert_eq!(names, ["e0", "e2", "e4"]);
    // Past the end, and from a key that is not there any more.
    // One namespace only.
    let page = s
        .list_page(Kind::ConfigMap, Some("b"), None, 5)
        .await
        .expect("page");
    let names: Vec<&str> = page.items.iter().map(|i| i.object.name()).collect();
    assert_eq!(names, ["c1", "c3", "c5"]);
    assert!(page.next.is_none());
    let page = s
        .list_page(
            Kind::Event,
            None,
            Some(&keel_store::ObjectKey::new(Kind::Event, "b", "e9").path()),
            3,
        )
        .await
        .expect("page");
    assert!(page.items.is_empty() && page.next.is_none());
}
