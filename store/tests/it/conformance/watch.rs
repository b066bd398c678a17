//! Watches: every change in order, resumable from a revision, expired past compaction.

use std::collections::HashSet;
use std::time::Duration;

use keel_schema::Kind;
use keel_schema::Object;
use keel_store::{StoreError, WatchEventType};

use super::{Backend, configmap, key, value_of};

pub(super) async fn watch_delivers_added_modified_deleted_in_order(b: &mut Backend) {
    let s = &b.store;
    let start = s.revision().await.unwrap();
    let mut w = s.watch(Some(Kind::ConfigMap), start).await.unwrap();
    let created = s.create(configmap("default", "w", &[], "1")).await.unwrap();
    // Another kind: a ConfigMap watch must not see it.
    let mut ns = keel_schema::types::core::Namespace::default();
    ns.metadata.name = Some("other-kind".into());
    s.create(Object::Namespace(ns)).await.unwrap();
    let updated = s
        .update(
            configmap("default", "w", &[], "2"),
            created.resource_version,
        )
        .await
        .unwrap();
    s.delete(&key("w"), None).await.unwrap();
    let mut seen = Vec::new();
    for _ in 0..3 {
        let e = tokio::time::timeout(Duration::from_secs(10), w.next())
            .await
            .expect("event in time")
            .expect("open")
            .expect("ok");
        seen.push((e.event_type, value_of(e.object()), e.revision));
    }
    assert_eq!(seen[0].0, WatchEventType::Added);
    assert_eq!(seen[0].2, created.resource_version);
    assert_eq!(
        (seen[1].0, seen[1].1.as_str(), seen[1].2),
        (WatchEventType::Modified, "2", updated.resource_version)
    );
    assert_eq!(
        (seen[2].0, seen[2].1.as_str()),
        (WatchEventType::Deleted, "2"),
        "a deletion carries the last state"
    );
    assert!(seen[2].2 > seen[1].2);
}

pub(super) async fn watch_under_concurrent_writers_loses_nothing(b: &mut Backend) {
    let s = b.store.clone();
    let start = s.revision().await.unwrap();
    let mut w = s.watch(None, start).await.unwrap();
    let mut writers = Vec::new();
    for t in 0..4 {
        let s = s.clone();
        writers.push(tokio::spawn(async move {
            for i in 0..50 {
                s.create(configmap("default", &format!("t{t}-{i}"), &[], "x"))
                    .await
                    .unwrap();
            }
        }));
    }
    for wtr in writers {
        wtr.await.unwrap();
    }
    let mut names = HashSet::new();
    let mut last = 0;
    while names.len() < 200 {
        let e = tokio::time::timeout(Duration::from_secs(20), w.next())
            .await
            .expect("event in time")
            .expect("open")
            .expect("ok");
        assert!(e.revision >= last, "revisions in order");
        last = e.revision;
        assert!(names.insert(e.object().name().to_string()), "no duplicates");
    }
}

pub(super) async fn watch_resumes_from_a_revision(b: &mut Backend) {
    let s = &b.store;
    s.create(configmap("default", "before", &[], "x"))
        .await
        .unwrap();
    let mark = s.revision().await.unwrap();
    s.create(configmap("default", "after1", &[], "x"))
        .await
        .unwrap();
    s.create(configmap("default", "after2", &[], "x"))
        .await
        .unwrap();
    let mut w = s.watch(Some(Kind::ConfigMap), mark).await.unwrap();
    let first = w.next().await.unwrap().unwrap();
    let second = w.next().await.unwrap().unwrap();
    assert_eq!(
        (first.object().name(), second.object().name()),
        ("after1", "after2")
    );
    // And live events keep coming after the replay.
    s.create(configmap("default", "after3", &[], "x"))
        .await
        .unwrap();
    let third = tokio::time::timeout(Duration::from_secs(10), w.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(third.object().name(), "after3");
}

pub(super) async fn watch_from_compacted_history_expires(b: &mut Backend) {
    let s = &b.store;
    let first = s
        .create(configmap("default", "old", &[], "x"))
        .await
        .unwrap();
    for i in 0..3 {
        s.create(configmap("default", &format!("n{i}"), &[], "x"))
            .await
            .unwrap();
    }
    let now = s.revision().await.unwrap();
    s.compact(now).await.unwrap();
    match s.watch(None, first.resource_version).await {
        Err(StoreError::Expired { .. }) => {}
        Ok(mut w) => match tokio::time::timeout(Duration::from_secs(10), w.next())
            .await
            .unwrap()
        {
            Some(Err(StoreError::Expired { .. })) => {}
            other => panic!("expected Expired, got {other:?}"),
        },
        Err(e) => panic!("expected Expired, got {e}"),
    }
    // Watching from the current revision still works.
    let mut w = s.watch(None, now).await.expect("fresh watch");
    s.create(configmap("default", "fresh", &[], "x"))
        .await
        .unwrap();
    let e = tokio::time::timeout(Duration::from_secs(10), w.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(e.object().name(), "fresh");
}
