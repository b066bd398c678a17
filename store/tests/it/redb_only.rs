//! What only the redb engine does: its data dir is locked, and a kill -9 mid-write leaves
//! whole batches only.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use keel_schema::Kind;
use keel_store::{Batch, BatchOp, Store, StoreError, StoreSpec};

use super::conformance::configmap;

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

/// The file holds Secrets (in the clear without an encryption key): only its owner may read
/// it, a new one and one an older keel left readable by all.
#[tokio::test]
async fn redb_data_dir_and_file_are_the_owners_alone() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let spec = StoreSpec::Redb {
        data_dir: data.clone(),
    };
    drop(Store::open(&spec).await.unwrap());
    assert_eq!((mode(&data), mode(&data.join("keel.redb"))), (0o700, 0o600));
    // As an older keel left them.
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(
        data.join("keel.redb"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    drop(Store::open(&spec).await.unwrap());
    assert_eq!((mode(&data), mode(&data.join("keel.redb"))), (0o700, 0o600));
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
                record: None,
            })
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn redb_survives_kill_9_mid_write_with_whole_batches_only() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "redb_only::crash_writer_child", "--nocapture"])
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
