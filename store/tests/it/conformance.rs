//! One conformance suite for both store engines: every behaviour runs against redb and
//! against a real etcd.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;

use keel_schema::Object;
use keel_schema::selector::Selector;
use keel_schema::types::core::ConfigMap;
use keel_store::etcd::EtcdStore;
use keel_store::{
    Batch, BatchOp, ObjectKey, Store, StoreError, StoreSpec, SyncRecord, SyncResult, WatchEventType,
};

use keel_store::etcd_process::EtcdProcess;

use super::etcd_server;
use keel_schema::Kind;

/// A store under test, with what keeps it alive and how to open it again.
struct Backend {
    store: Store,
    reopen: Reopen,
}

enum Reopen {
    /// The data dir, and a spare dir for the placeholder store held while reopening.
    Redb(tempfile::TempDir, tempfile::TempDir),
    Etcd(EtcdProcess),
}

impl Backend {
    async fn redb() -> Backend {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(&StoreSpec::Redb {
            data_dir: dir.path().to_path_buf(),
        })
        .await
        .expect("redb opens");
        Backend {
            store,
            reopen: Reopen::Redb(dir, tempfile::tempdir().expect("temp dir")),
        }
    }

    async fn etcd() -> Option<Backend> {
        let server = etcd_server::start()?;
        let store = Store::open(&StoreSpec::Etcd {
            endpoints: vec![server.endpoint.clone()],
        })
        .await
        .expect("etcd store connects");
        Some(Backend {
            store,
            reopen: Reopen::Etcd(server),
        })
    }

    /// Closes and opens the store again, as a restarted process would.
    async fn restart(&mut self) {
        match &self.reopen {
            Reopen::Redb(dir, spare) => {
                // The old handle must be closed before the file can be opened again.
                self.store = Store::open(&StoreSpec::Redb {
                    data_dir: spare.path().to_path_buf(),
                })
                .await
                .expect("placeholder store");
                self.store = Store::open(&StoreSpec::Redb {
                    data_dir: dir.path().to_path_buf(),
                })
                .await
                .expect("redb reopens");
            }
            Reopen::Etcd(server) => {
                self.store = Store::open(&StoreSpec::Etcd {
                    endpoints: vec![server.endpoint.clone()],
                })
                .await
                .expect("etcd reconnects");
            }
        }
    }
}

fn configmap(ns: &str, name: &str, labels: &[(&str, &str)], value: &str) -> Object {
    let mut cm = ConfigMap::default();
    cm.metadata.name = Some(name.into());
    cm.metadata.namespace = Some(ns.into());
    if !labels.is_empty() {
        cm.metadata.labels = Some(
            labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
    }
    cm.data = Some(BTreeMap::from([("value".to_string(), value.to_string())]));
    let mut obj = Object::ConfigMap(cm);
    obj.set_type_meta();
    obj
}

fn value_of(obj: &Object) -> String {
    match obj {
        Object::ConfigMap(cm) => cm
            .data
            .as_ref()
            .and_then(|d| d.get("value"))
            .cloned()
            .unwrap_or_default(),
        _ => String::new(),
    }
}

fn key(name: &str) -> ObjectKey {
    ObjectKey::new(Kind::ConfigMap, "default", name)
}

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod redb_engine {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let mut backend = super::Backend::redb().await;
                    super::$name(&mut backend).await;
                }
            )*
        }
        mod etcd_engine {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(mut backend) = super::Backend::etcd().await else { return };
                    super::$name(&mut backend).await;
                }
            )*
        }
    };
}

conformance!(
    create_get_update_delete_with_resource_versions,
    generation_follows_spec_changes_only,
    list_by_kind_namespace_and_selector,
    every_write_bumps_the_store_revision,
    a_batch_is_applied_whole_or_not_at_all,
    a_large_batch_is_whole_too,
    concurrent_conflicting_updates_exactly_one_wins,
    concurrent_writers_each_get_their_own_outcome,
    watch_delivers_added_modified_deleted_in_order,
    watch_under_concurrent_writers_loses_nothing,
    watch_resumes_from_a_revision,
    watch_from_compacted_history_expires,
    sync_history_is_newest_first,
    committed_state_survives_a_restart,
    compaction_never_runs_past_the_present,
);

async fn create_get_update_delete_with_resource_versions(b: &mut Backend) {
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

async fn generation_follows_spec_changes_only(b: &mut Backend) {
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
}

async fn list_by_kind_namespace_and_selector(b: &mut Backend) {
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

async fn every_write_bumps_the_store_revision(b: &mut Backend) {
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

async fn a_batch_is_applied_whole_or_not_at_all(b: &mut Backend) {
    let s = &b.store;
    let c = s
        .create(configmap("default", "c", &[], "old"))
        .await
        .unwrap();
    let before = s.revision().await.unwrap();
    let bad = Batch {
        label: "revision bad".into(),
        ops: vec![
            BatchOp::Create(configmap("default", "new1", &[], "x")),
            BatchOp::Create(configmap("default", "new2", &[], "x")),
            BatchOp::Update {
                object: configmap("default", "c", &[], "new"),
                expected: c.resource_version + 1000,
            },
        ],
    };
    assert!(matches!(
        s.apply_batch(bad).await,
        Err(StoreError::Conflict { .. })
    ));
    assert!(s.get(&key("new1")).await.unwrap().is_none());
    assert!(s.get(&key("new2")).await.unwrap().is_none());
    assert_eq!(
        value_of(&s.get(&key("c")).await.unwrap().unwrap().object),
        "old"
    );
    assert_eq!(
        s.revision().await.unwrap(),
        before,
        "a refused batch writes nothing"
    );

    let good = Batch {
        label: "revision good".into(),
        ops: vec![
            BatchOp::Create(configmap("default", "new1", &[], "x")),
            BatchOp::Update {
                object: configmap("default", "c", &[], "new"),
                expected: c.resource_version,
            },
            BatchOp::Delete {
                key: key("new1"),
                expected: None,
            }
            .clone(),
        ],
    };
    // Creating and deleting one key in one batch is ambiguous: refused, nothing written.
    assert!(s.apply_batch(good).await.is_err());
    assert!(s.get(&key("new1")).await.unwrap().is_none());
    let good = Batch {
        label: "revision good".into(),
        ops: vec![
            BatchOp::Create(configmap("default", "new1", &[], "x")),
            BatchOp::Update {
                object: configmap("default", "c", &[], "new"),
                expected: c.resource_version,
            },
        ],
    };
    let revision = s.apply_batch(good).await.expect("batch applies");
    assert!(revision > before);
    let new1 = s.get(&key("new1")).await.unwrap().expect("created");
    assert!(new1.resource_version <= revision);
    assert_eq!(
        value_of(&s.get(&key("c")).await.unwrap().unwrap().object),
        "new"
    );
}

async fn a_large_batch_is_whole_too(b: &mut Backend) {
    let s = &b.store;
    let ops: Vec<BatchOp> = (0..1000)
        .map(|i| BatchOp::Create(configmap("default", &format!("big-{i:04}"), &[], "v1")))
        .collect();
    s.apply_batch(Batch {
        label: "big".into(),
        ops,
    })
    .await
    .expect("1000 creates");
    let listed = s
        .list(Kind::ConfigMap, Some("default"), None)
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 1000);
    // An update of all 1000 whose last op is stale: nothing may change (on etcd the first
    // chunks are written, then undone).
    let mut ops: Vec<BatchOp> = listed
        .items
        .iter()
        .map(|st| BatchOp::Update {
            object: configmap("default", st.object.name(), &[], "v2"),
            expected: st.resource_version,
        })
        .collect();
    if let Some(BatchOp::Update { expected, .. }) = ops.last_mut() {
        *expected += 100_000;
    }
    assert!(matches!(
        s.apply_batch(Batch {
            label: "stale".into(),
            ops
        })
        .await,
        Err(StoreError::Conflict { .. })
    ));
    let after = s
        .list(Kind::ConfigMap, Some("default"), None)
        .await
        .unwrap();
    assert!(
        after.items.iter().all(|st| value_of(&st.object) == "v1"),
        "no object changed"
    );
}

async fn concurrent_conflicting_updates_exactly_one_wins(b: &mut Backend) {
    let s = b.store.clone();
    let base = s
        .create(configmap("default", "race", &[], "0"))
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..8 {
        let s = s.clone();
        let rv = base.resource_version;
        tasks.push(tokio::spawn(async move {
            s.update(configmap("default", "race", &[], &format!("w{i}")), rv)
                .await
        }));
    }
    let mut wins = 0;
    let mut conflicts = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => wins += 1,
            Err(StoreError::Conflict { .. }) => conflicts += 1,
            Err(e) => panic!("unexpected: {e}"),
        }
    }
    assert_eq!((wins, conflicts), (1, 7));
}

/// Many writers at once (redb commits them in groups): each gets its own result, a failed
/// precondition fails only its own write, and what each was told is what is stored.
async fn concurrent_writers_each_get_their_own_outcome(b: &mut Backend) {
    let s = b.store.clone();
    let mut tasks = Vec::new();
    for i in 0..64 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            // Every fourth writer races for one shared name; the rest have their own.
            let name = if i % 4 == 0 {
                "shared".to_string()
            } else {
                format!("own-{i}")
            };
            (
                name.clone(),
                s.create(configmap("default", &name, &[], &format!("{i}")))
                    .await,
            )
        }));
    }
    let (mut created, mut exists) = (0, 0);
    for t in tasks {
        let (name, result) = t.await.unwrap();
        match result {
            Ok(stored) => {
                created += 1;
                let now = s.get(&key(&name)).await.unwrap().expect("stored");
                assert_eq!(now.resource_version, stored.resource_version);
                assert_eq!(value_of(&now.object), value_of(&stored.object));
            }
            Err(StoreError::AlreadyExists(_)) => {
                assert_eq!(name, "shared");
                exists += 1;
            }
            Err(e) => panic!("unexpected: {e}"),
        }
    }
    assert_eq!((created, exists), (49, 15));
}

async fn watch_delivers_added_modified_deleted_in_order(b: &mut Backend) {
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
        seen.push((e.event_type, value_of(&e.object), e.revision));
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

async fn watch_under_concurrent_writers_loses_nothing(b: &mut Backend) {
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
        assert!(names.insert(e.object.name().to_string()), "no duplicates");
    }
}

async fn watch_resumes_from_a_revision(b: &mut Backend) {
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
        (first.object.name(), second.object.name()),
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
    assert_eq!(third.object.name(), "after3");
}

async fn watch_from_compacted_history_expires(b: &mut Backend) {
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
    assert_eq!(e.object.name(), "fresh");
}

async fn sync_history_is_newest_first(b: &mut Backend) {
    let s = &b.store;
    let results = [
        SyncResult::Applied,
        SyncResult::Failed,
        SyncResult::Unchanged,
    ];
    for (i, result) in results.into_iter().enumerate() {
        s.record_sync(SyncRecord {
            commit: format!("c{i}"),
            time: chrono::Utc::now() + chrono::Duration::milliseconds(i as i64),
            result,
            error: (result == SyncResult::Failed).then(|| "t.yaml:3:1: bad".to_string()),
            author: Some("dev".into()),
            message: Some(format!("commit {i}")),
        })
        .await
        .unwrap();
    }
    let h = s.history(10).await.unwrap();
    let commits: Vec<&str> = h.iter().map(|r| r.commit.as_str()).collect();
    assert_eq!(commits, ["c2", "c1", "c0"]);
    assert_eq!(h[1].result, SyncResult::Failed);
    assert_eq!(h[1].error.as_deref(), Some("t.yaml:3:1: bad"));
    assert_eq!(s.history(1).await.unwrap().len(), 1);
}

async fn committed_state_survives_a_restart(b: &mut Backend) {
    b.store
        .create(configmap("default", "kept", &[], "1"))
        .await
        .unwrap();
    let revision = b.store.revision().await.unwrap();
    b.restart().await;
    let got = b
        .store
        .get(&key("kept"))
        .await
        .unwrap()
        .expect("still there");
    assert_eq!(value_of(&got.object), "1");
    assert!(
        b.store.revision().await.unwrap() >= revision,
        "revisions never go back"
    );
    let next = b
        .store
        .create(configmap("default", "next", &[], "1"))
        .await
        .unwrap();
    assert!(next.resource_version > revision);
}

async fn compaction_never_runs_past_the_present(b: &mut Backend) {
    let s = &b.store;
    s.create(configmap("default", "a", &[], "x")).await.unwrap();
    let now = s.revision().await.unwrap();
    s.compact(now + 1000).await.unwrap();
    let mut w = s
        .watch(None, now)
        .await
        .expect("a watch from the present still works");
    s.create(configmap("default", "b", &[], "x")).await.unwrap();
    let e = tokio::time::timeout(Duration::from_secs(10), w.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(e.object.name(), "b");
}

// ---- engine-specific behaviour ----

#[tokio::test]
async fn redb_data_dir_is_locked_against_a_second_process() {
    let dir = tempfile::tempdir().unwrap();
    let spec = StoreSpec::Redb {
        data_dir: dir.path().to_path_buf(),
    };
    let _first = Store::open(&spec).await.unwrap();
    match Store::open(&spec).await {
        Err(StoreError::Locked(path)) => assert_eq!(path, dir.path()),
        Err(e) => panic!("expected Locked, got {e}"),
        Ok(_) => panic!("a second open must fail"),
    }
}

/// Not a test on its own: the writer the crash test kills (`KEEL_CRASH_WRITER_DIR` set).
#[tokio::test]
async fn crash_writer_child() {
    let Ok(dir) = std::env::var("KEEL_CRASH_WRITER_DIR") else {
        return;
    };
    let store = Store::open(&StoreSpec::Redb {
        data_dir: PathBuf::from(&dir),
    })
    .await
    .unwrap();
    let ready = PathBuf::from(&dir).join("first-commit");
    for i in 0.. {
        if i == 1 {
            std::fs::write(&ready, "").unwrap();
        }
        let ops = (0..50)
            .map(|j| {
                BatchOp::Create(configmap(
                    "default",
                    &format!("b{i}-{j}"),
                    &[("batch", &i.to_string())],
                    "x",
                ))
            })
            .collect();
        store
            .apply_batch(Batch {
                label: format!("batch {i}"),
                ops,
            })
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn redb_survives_kill_9_mid_write_with_whole_batches_only() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "conformance::crash_writer_child", "--nocapture"])
        .env("KEEL_CRASH_WRITER_DIR", dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait for the writer's first commit, then kill it a varying moment later.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !dir.path().join("first-commit").exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the writer never committed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let jitter = u64::from(uuid::Uuid::new_v4().as_bytes()[0]) * 2;
    tokio::time::sleep(Duration::from_millis(jitter)).await;
    child.kill().unwrap(); // SIGKILL, at whatever point the writer is
    child.wait().unwrap();
    let store = Store::open(&StoreSpec::Redb {
        data_dir: dir.path().to_path_buf(),
    })
    .await
    .expect("reopens after kill -9");
    let all = store.list(Kind::ConfigMap, None, None).await.unwrap();
    let mut per_batch: BTreeMap<String, usize> = BTreeMap::new();
    for item in &all.items {
        *per_batch
            .entry(item.object.meta().labels()["batch"].clone())
            .or_default() += 1;
    }
    assert!(
        !per_batch.is_empty(),
        "the writer committed something in 1.5 s"
    );
    assert!(
        per_batch.values().all(|n| *n == 50),
        "only whole batches: {per_batch:?}"
    );
}

/// A real etcd and the engine connected to it (`None`, with the reason printed, when etcd
/// is not installed and not required).
async fn etcd_store() -> Option<(EtcdProcess, Vec<String>, EtcdStore)> {
    let server = etcd_server::start()?;
    let endpoints = vec![server.endpoint.clone()];
    let store = EtcdStore::connect(&endpoints, "/keel")
        .await
        .expect("etcd store connects");
    Some((server, endpoints, store))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_batch_interrupted_mid_way_is_finished_on_restart() {
    let Some((_server, endpoints, store)) = etcd_store().await else {
        return;
    };
    let ops = (0..450)
        .map(|i| BatchOp::Create(configmap("default", &format!("i{i}"), &[], "x")))
        .collect();
    let result = store
        .apply_batch_until(
            Batch {
                label: "revision interrupted".into(),
                ops,
            },
            Some(2),
        )
        .await;
    assert!(result.is_err(), "the hook stops the batch");
    let partial = store.list(Kind::ConfigMap, None).await.unwrap().items.len();
    assert_eq!(partial, 200, "two chunks of 100 written before the 'crash'");
    drop(store);
    // A new process connects: the intent is found and the batch completed.
    let restarted = Store::open(&StoreSpec::Etcd { endpoints }).await.unwrap();
    assert_eq!(
        restarted
            .list(Kind::ConfigMap, None, None)
            .await
            .unwrap()
            .items
            .len(),
        450
    );
}

#[tokio::test]
async fn unreachable_etcd_is_a_clear_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let spec = StoreSpec::parse(
        Some(&format!("etcd://127.0.0.1:{port}")),
        PathBuf::from("/unused"),
    )
    .unwrap();
    match Store::open(&spec).await {
        Err(StoreError::Unavailable(msg)) => {
            assert!(
                msg.contains(&format!("127.0.0.1:{port}")) && msg.contains("unreachable"),
                "{msg}"
            )
        }
        Err(e) => panic!("expected Unavailable, got {e}"),
        Ok(_) => panic!("nothing listens there"),
    }
}

#[test]
fn store_flags_parse() {
    let dir = PathBuf::from("/var/lib/keel");
    assert_eq!(
        StoreSpec::parse(None, dir.clone()).unwrap(),
        StoreSpec::Redb {
            data_dir: dir.clone()
        }
    );
    assert_eq!(
        StoreSpec::parse(Some("etcd://10.0.0.1:2379,10.0.0.2:2379"), dir.clone()).unwrap(),
        StoreSpec::Etcd {
            endpoints: vec!["http://10.0.0.1:2379".into(), "http://10.0.0.2:2379".into()]
        }
    );
    assert!(StoreSpec::parse(Some("postgres://x"), dir.clone()).is_err());
    assert!(StoreSpec::parse(Some("etcd://"), dir).is_err());
}

/// A Deployment of about 1 KB of JSON, as teams write them.
fn deployment(ns: &str, name: &str) -> Object {
    let yaml = format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {name}, namespace: {ns}, labels: {{app: web, team: storefront}}}}\nspec:\n  replicas: 3\n  selector: {{matchLabels: {{app: web}}}}\n  template:\n    metadata: {{labels: {{app: web}}}}\n    spec:\n      containers:\n      - name: web\n        image: keel-example/web:1\n        command: [httpd, -f, -p, \"8080\"]\n        env: [{{name: MODE, value: production}}, {{name: LOG_LEVEL, value: info}}]\n        ports: [{{name: http, containerPort: 8080}}]\n        readinessProbe: {{httpGet: {{path: /healthz, port: http}}}}\n        resources: {{requests: {{cpu: 50m, memory: 16Mi}}, limits: {{cpu: 200m, memory: 64Mi}}}}\n"
    );
    let rev = keel_schema::load_sources(
        &[keel_schema::SourceFile {
            name: "d.yaml".into(),
            bytes: yaml.into_bytes(),
        }],
        None,
    );
    assert!(rev.errors.is_empty(), "{:?}", rev.errors);
    rev.manifests[0].object.clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_a_10000_object_batch_interrupted_is_finished_on_restart() {
    let Some((_server, endpoints, store)) = etcd_store().await else {
        return;
    };
    let ops = (0..10_000)
        .map(|i| BatchOp::Create(deployment("big", &format!("web-{i:05}"))))
        .collect();
    assert!(
        store
            .apply_batch_until(
                Batch {
                    label: "revision big".into(),
                    ops
                },
                Some(30)
            )
            .await
            .is_err()
    );
    assert_eq!(
        store
            .list(Kind::Deployment, None)
            .await
            .unwrap()
            .items
            .len(),
        3000,
        "30 chunks of 100 before the 'crash'"
    );
    drop(store);
    let restarted = Store::open(&StoreSpec::Etcd { endpoints })
        .await
        .expect("recovery reads a 10 MB intent");
    assert_eq!(
        restarted
            .list(Kind::Deployment, Some("big"), None)
            .await
            .unwrap()
            .items
            .len(),
        10_000
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_recovery_that_meets_a_conflict_undoes_the_whole_batch() {
    let Some((_server, endpoints, store)) = etcd_store().await else {
        return;
    };
    store
        .create(configmap("default", "i300", &[], "before"))
        .await
        .unwrap();
    let existing = store.get(&key("i300")).await.unwrap().unwrap();
    let ops = (0..450)
        .map(|i| {
            let name = format!("i{i}");
            if i == 300 {
                BatchOp::Update {
                    object: configmap("default", &name, &[], "batch"),
                    expected: existing.resource_version,
                }
            } else {
                BatchOp::Create(configmap("default", &name, &[], "batch"))
            }
        })
        .collect();
    assert!(
        store
            .apply_batch_until(
                Batch {
                    label: "revision doomed".into(),
                    ops
                },
                Some(2)
            )
            .await
            .is_err()
    );
    drop(store);
    // While the process is "down", another writer that ignores keel's lock changes i300.
    let mut raw = etcd_client::Client::connect(&endpoints, None)
        .await
        .unwrap();
    let mut changed = existing.object.clone();
    if let Object::ConfigMap(cm) = &mut changed {
        cm.data = Some(BTreeMap::from([(
            "value".to_string(),
            "outside".to_string(),
        )]));
    }
    raw.put(
        "/keel/registry/ConfigMap/default/i300",
        serde_json::to_vec(&changed).unwrap(),
        None,
    )
    .await
    .unwrap();
    let restarted = Store::open(&StoreSpec::Etcd { endpoints })
        .await
        .expect("recovery undoes");
    let left = restarted.list(Kind::ConfigMap, None, None).await.unwrap();
    let names: Vec<&str> = left.items.iter().map(|i| i.object.name()).collect();
    assert_eq!(
        names,
        ["i300"],
        "every object the batch created is gone again"
    );
    assert_eq!(
        value_of(&left.items[0].object),
        "outside",
        "the other writer's change is kept"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_writes_wait_for_a_batch_in_flight_and_large_values_fit() {
    let Some((_server, _endpoints, store)) = etcd_store().await else {
        return;
    };
    let ops = (0..250)
        .map(|i| BatchOp::Create(configmap("default", &format!("c{i}"), &[], "x")))
        .collect();
    assert!(
        store
            .apply_batch_until(
                Batch {
                    label: "revision held".into(),
                    ops
                },
                Some(1)
            )
            .await
            .is_err()
    );
    // A plain write finds the batch's lock, finishes the batch, then lands on top of it.
    store
        .create(configmap("default", "after", &[], "x"))
        .await
        .expect("write after the batch");
    assert_eq!(
        store.list(Kind::ConfigMap, None).await.unwrap().items.len(),
        251
    );
    // Values close to the 1 MiB ConfigMap limit travel in intent keys of their own.
    let big = "x".repeat(900 * 1024);
    let mut ops: Vec<BatchOp> = (0..150)
        .map(|i| BatchOp::Create(configmap("large", &format!("s{i}"), &[], "x")))
        .collect();
    ops.push(BatchOp::Create(configmap("large", "huge", &[], &big)));
    store
        .apply_batch(Batch {
            label: "revision large".into(),
            ops,
        })
        .await
        .expect("large batch");
    let huge = store
        .get(&ObjectKey::new(Kind::ConfigMap, "large", "huge"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(value_of(&huge.object).len(), big.len());
    let mut ops: Vec<BatchOp> = (0..150)
        .map(|i| BatchOp::Delete {
            key: ObjectKey::new(Kind::ConfigMap, "large", &format!("s{i}")),
            expected: None,
        })
        .collect();
    ops.push(BatchOp::Update {
        object: configmap("large", "huge", &[], &"y".repeat(900 * 1024)),
        expected: huge.resource_version,
    });
    store
        .apply_batch(Batch {
            label: "revision large 2".into(),
            ops,
        })
        .await
        .expect("large update");
    assert_eq!(
        store
            .list(Kind::ConfigMap, Some("large"))
            .await
            .unwrap()
            .items
            .len(),
        1
    );
}
