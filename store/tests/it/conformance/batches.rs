//! Batches are whole or nothing, and concurrent writers each get their own outcome.

use keel_schema::Kind;
use keel_store::{Batch, BatchOp, StoreError, SyncRecord, SyncResult};

use super::{Backend, configmap, key, value_of};

pub(super) async fn a_batch_is_applied_whole_or_not_at_all(b: &mut Backend) {
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
        record: None,
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
        record: None,
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
        record: None,
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

pub(super) async fn a_large_batch_is_whole_too(b: &mut Backend) {
    let s = &b.store;
    let ops: Vec<BatchOp> = (0..1000)
        .map(|i| BatchOp::Create(configmap("default", &format!("big-{i:04}"), &[], "v1")))
        .collect();
    s.apply_batch(Batch {
        label: "big".into(),
        ops,
        record: None,
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
            ops,
            record: None,
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

pub(super) async fn concurrent_conflicting_updates_exactly_one_wins(b: &mut Backend) {
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
pub(super) async fn concurrent_writers_each_get_their_own_outcome(b: &mut Backend) {
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

fn record(commit: &str) -> SyncRecord {
    SyncRecord {
        commit: commit.into(),
        time: chrono::Utc::now(),
        result: SyncResult::Applied,
        error: None,
        author: Some("a".into()),
        message: Some("m".into()),
        app: None,
    }
}

/// A revision's objects and its "applied" record are one write: both or neither.
pub(super) async fn a_batch_writes_its_sync_record_with_it(b: &mut Backend) {
    let s = &b.store;
    let c = s
        .create(configmap("default", "rec", &[], "v1"))
        .await
        .unwrap();
    s.apply_batch(Batch {
        label: "revision good".into(),
        ops: vec![BatchOp::Create(configmap("default", "rec-2", &[], "v1"))],
        record: Some(record("good")),
    })
    .await
    .expect("batch applies");
    let stale = Batch {
        label: "revision stale".into(),
        ops: vec![BatchOp::Update {
            object: configmap("default", "rec", &[], "v2"),
            expected: c.resource_version + 1000,
        }],
        record: Some(record("stale")),
    };
    assert!(s.apply_batch(stale).await.is_err());
    let commits: Vec<String> = s
        .history(10)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.commit)
        .collect();
    assert_eq!(
        commits,
        ["good"],
        "recorded with its batch, and only when applied"
    );
}
