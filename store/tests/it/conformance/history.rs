//! What outlives a moment: sync history, restarts, compaction.

use std::time::Duration;

use keel_store::{SyncRecord, SyncResult};

use super::{Backend, configmap, key, value_of};

pub(super) async fn sync_history_is_newest_first(b: &mut Backend) {
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
            app: None,
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

pub(super) async fn committed_state_survives_a_restart(b: &mut Backend) {
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

pub(super) async fn compaction_never_runs_past_the_present(b: &mut Backend) {
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
    assert_eq!(e.object().name(), "b");
}
