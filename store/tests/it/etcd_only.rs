//! What only the etcd engine does: batches larger than one etcd transaction are written
//! under an intent that a restarted process finishes or undoes; and how it is addressed.

use std::collections::BTreeMap;
use std::path::PathBuf;

use keel_schema::{Kind, Object};
use keel_store::etcd::EtcdStore;
use keel_store::etcd_process::EtcdProcess;
use keel_store::{Batch, BatchOp, ObjectKey, Store, StoreError, StoreSpec};

use super::conformance::{configmap, key, value_of};
use super::etcd_server;

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
                record: None,
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

/// Seen in the fail-over benchmark: a killed leader's server, restarted while the new leader
/// was finishing the same left-behind batch, found a chunk already cleaned up, called the
/// store corrupt and would not start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_another_server_finishes_meanwhile_is_not_corruption() {
    let Some((_server, endpoints, store)) = etcd_store().await else {
        return;
    };
    let ops = (0..450)
        .map(|i| BatchOp::Create(configmap("default", &format!("i{i}"), &[], "x")))
        .collect();
    let batch = Batch {
        label: "revision left behind".into(),
        ops,
        record: None,
    };
    assert!(store.apply_batch_until(batch, Some(1)).await.is_err());
    // This server has read the batch's head; before it reads the rest, another server (here:
    // one that connects) finishes the batch and cleans it up.
    let other = endpoints.clone();
    store
        .recover_pausing(async move {
            EtcdStore::connect(&other, "/keel")
                .await
                .expect("the other server finishes the batch");
        })
        .await
        .expect("a batch finished by another server is not an error");
    assert_eq!(
        store.list(Kind::ConfigMap, None).await.unwrap().items.len(),
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
                    ops,
                    record: None,
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
                    ops,
                    record: None,
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
                    ops,
                    record: None,
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
            record: None,
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
            record: None,
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

/// Two servers on one etcd: one wins the election, the other sees it lead; a resigned
/// term frees the key at once, and the next term is a larger number.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_election_has_one_winner_and_terms_grow() {
    use keel_store::etcd::Campaign;
    use std::time::Duration;
    let Some((_server, _, store)) = etcd_store().await else {
        return;
    };
    let (a, b) = (
        store.election("control-plane"),
        store.election("control-plane"),
    );
    let ttl = Duration::from_secs(5);
    let Campaign::Won { fence, lease } = a.campaign(b"a", ttl).await.unwrap() else {
        panic!("the first candidate wins an empty election");
    };
    match b.campaign(b"b", ttl).await.unwrap() {
        Campaign::Held { holder, term } => {
            assert_eq!((holder.as_slice(), term), (&b"a"[..], fence.term));
        }
        other => panic!("a second candidate cannot win a held election: {other:?}"),
    }
    assert!(a.renew(&fence, lease).await.unwrap(), "the leader renews");
    a.resign(lease).await.unwrap();
    assert!(
        !a.renew(&fence, lease)
            .await
            .expect("a gone lease is an answer, not an error"),
        "a resigned term cannot be renewed"
    );
    let Campaign::Won { fence: next, .. } = b.campaign(b"b", ttl).await.unwrap() else {
        panic!("after a resignation the next candidate wins at once");
    };
    assert!(next.term > fence.term, "{} > {}", next.term, fence.term);
}

/// A leader whose term ended writes nothing: single writes, batches of one and of many
/// transactions, and sync records through its fenced store are refused as NotLeader, and
/// the store holds none of them; the new leader's fenced writes go through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_a_fenced_store_writes_nothing_after_its_term_ends() {
    use keel_store::etcd::Campaign;
    use std::time::Duration;
    let Some((_server, _, store)) = etcd_store().await else {
        return;
    };
    let election = store.election("control-plane");
    let ttl = Duration::from_secs(2);
    let Campaign::Won { fence, .. } = election.campaign(b"old", ttl).await.unwrap() else {
        panic!("wins an empty election");
    };
    let old = Store::Etcd(Box::new(store.fenced(fence.clone())));
    old.create(configmap("default", "while-leading", &[], "x"))
        .await
        .expect("a leader writes while its term holds");
    // The old leader "pauses": it renews nothing, its lease runs out, another wins.
    let new_fence = loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        if let Campaign::Won { fence, .. } = election.campaign(b"new", ttl).await.unwrap() {
            break fence;
        }
    };
    let before = store.revision().await.unwrap();
    let refused = |r: Result<_, StoreError>, what: &str| match r {
        Err(StoreError::NotLeader(m)) => assert!(m.contains("ended"), "{what}: {m}"),
        other => panic!("{what}: expected NotLeader, got {other:?}"),
    };
    refused(
        old.create(configmap("default", "late", &[], "x"))
            .await
            .map(|_| ()),
        "create",
    );
    let existing = old
        .get(&ObjectKey::new(Kind::ConfigMap, "default", "while-leading"))
        .await
        .unwrap()
        .unwrap();
    refused(
        old.update(existing.object.clone(), existing.resource_version)
            .await
            .map(|_| ()),
        "update",
    );
    refused(
        old.delete(
            &ObjectKey::new(Kind::ConfigMap, "default", "while-leading"),
            None,
        )
        .await
        .map(|_| ()),
        "delete",
    );
    let many = (0..250)
        .map(|i| BatchOp::Create(configmap("default", &format!("late-{i}"), &[], "x")))
        .collect();
    refused(
        old.apply_batch(Batch {
            label: "late revision".into(),
            ops: many,
            record: None,
        })
        .await
        .map(|_| ()),
        "a batch of three transactions",
    );
    refused(
        old.record_sync(keel_store::SyncRecord {
            commit: "abc".into(),
            time: chrono::Utc::now(),
            result: keel_store::SyncResult::Applied,
            error: None,
            author: None,
            message: None,
            app: None,
        })
        .await,
        "a sync record",
    );
    assert_eq!(
        store.list(Kind::ConfigMap, None).await.unwrap().items.len(),
        1,
        "nothing of the old term's late writes is in the store"
    );
    assert!(store.history(10).await.unwrap().is_empty());
    // The batch lock is not left held: the new leader writes (and nothing else moved but
    // the refused batch's unreferenced intent data, which is removed).
    let new = Store::Etcd(Box::new(store.fenced(new_fence)));
    new.create(configmap("default", "new-leader", &[], "x"))
        .await
        .expect("the new term writes");
    assert!(store.revision().await.unwrap() > before);
}

/// A batch whose process died mid-way is finished by the next writer, and its "applied"
/// record with it, exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_an_interrupted_batch_is_recorded_once_when_finished() {
    let Some((_server, _endpoints, store)) = etcd_store().await else {
        return;
    };
    let ops = (0..250)
        .map(|i| BatchOp::Create(configmap("default", &format!("r{i}"), &[], "x")))
        .collect();
    let record = keel_store::SyncRecord {
        commit: "interrupted".into(),
        time: chrono::Utc::now(),
        result: keel_store::SyncResult::Applied,
        error: None,
        author: None,
        message: None,
        app: None,
    };
    let died = store
        .apply_batch_until(
            Batch {
                label: "revision interrupted".into(),
                ops,
                record: Some(record),
            },
            Some(1),
        )
        .await;
    assert!(died.is_err());
    assert!(
        store.history(10).await.unwrap().is_empty(),
        "not applied yet"
    );
    store
        .create(configmap("default", "after", &[], "x"))
        .await
        .expect("a write finishes the batch first");
    let history = store.history(10).await.unwrap();
    let commits: Vec<&str> = history.iter().map(|r| r.commit.as_str()).collect();
    assert_eq!(commits, ["interrupted"]);
    assert_eq!(
        store.list(Kind::ConfigMap, None).await.unwrap().items.len(),
        251
    );
}

/// A big rollout's status reports and binds are thousands of single writes at once: etcd
/// refuses those that find it more than 5,000 entries behind ("too many requests", before
/// anything is written), and the store tries them again after a pause instead of failing
/// the write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_a_burst_of_single_writes_beyond_what_etcd_takes_at_once_all_land() {
    let Some((_server, endpoints, _)) = etcd_store().await else {
        return;
    };
    let store = Store::open(&StoreSpec::Etcd { endpoints }).await.unwrap();
    const WRITES: usize = 10_000;
    let ops = (0..WRITES)
        .map(|i| BatchOp::Create(configmap("burst", &format!("c{i}"), &[], "x")))
        .collect();
    store
        .apply_batch(Batch {
            label: "the objects to update".into(),
            ops,
            record: None,
        })
        .await
        .unwrap();
    let listed = store
        .list(Kind::ConfigMap, Some("burst"), None)
        .await
        .unwrap();
    let writes: Vec<_> = listed
        .items
        .into_iter()
        .map(|stored| {
            let store = store.clone();
            let mut object = stored.object;
            object
                .meta_mut()
                .labels
                .get_or_insert_with(Default::default)
                .extend([("updated", "yes".to_string())]);
            tokio::spawn(async move {
                store
                    .update(object, stored.resource_version)
                    .await
                    .map(drop)
            })
        })
        .collect();
    let mut failed = Vec::new();
    for w in writes {
        if let Err(e) = w.await.expect("write task") {
            failed.push(e.to_string());
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {WRITES} updates failed, the first: {:?}",
        failed.len(),
        failed.first()
    );
    let updated = store
        .list(Kind::ConfigMap, Some("burst"), None)
        .await
        .unwrap()
        .items
        .iter()
        .filter(|s| {
            s.object
                .meta()
                .labels
                .as_ref()
                .is_some_and(|l| l.contains_key("updated"))
        })
        .count();
    assert_eq!(updated, WRITES);
}
