//! Secrets encrypted at rest, on both engines: the stored bytes never hold the value, the
//! key is needed to read them back, and another key is a clear error.

use std::sync::Arc;

use base64::Engine;
use keel_schema::Object;
use keel_store::encryption::SecretCipher;
use keel_store::{ObjectKey, Store, StoreSpec};
use serde_json::json;

use crate::etcd_server;
use keel_schema::Kind;

const VALUE: &str = "correct-horse-battery-staple";

fn key(byte: u8) -> Arc<SecretCipher> {
    Arc::new(
        SecretCipher::from_base64(&base64::engine::general_purpose::STANDARD.encode([byte; 32]))
            .unwrap(),
    )
}

fn secret(name: &str) -> Object {
    Object::from_json(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name, "namespace": "default"},
        "data": {"password": base64::engine::general_purpose::STANDARD.encode(VALUE)}
    }))
    .unwrap()
}

fn configmap() -> Object {
    Object::from_json(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "plain", "namespace": "default"},
        "data": {"note": "not secret"}
    }))
    .unwrap()
}

fn password(store_object: &Object) -> String {
    let Object::Secret(s) = store_object else {
        panic!("not a Secret");
    };
    let data = s.data.as_ref().expect("data");
    let encoded = data.0.get("password").expect("password");
    String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .unwrap(),
    )
    .unwrap()
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[tokio::test]
async fn redb_keeps_secrets_encrypted_and_needs_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let spec = StoreSpec::Redb {
        data_dir: dir.path().to_path_buf(),
    };
    let db = Key::new(Kind::Secret, "default", "db");
    {
        let store = Store::open_encrypted(&spec, Some(key(1))).await.unwrap();
        store.create(secret("db")).await.unwrap();
        store.create(configmap()).await.unwrap();
        let read = store.get(&db).await.unwrap().unwrap();
        assert_eq!(password(&read.object), VALUE);
    }
    let file = std::fs::read(dir.path().join("keel.redb")).unwrap();
    let b64 = base64::engine::general_purpose::STANDARD.encode(VALUE);
    assert!(
        !contains(&file, &b64) && !contains(&file, VALUE),
        "the value is not in the file"
    );
    assert!(
        contains(&file, "not secret"),
        "other kinds are stored as they are"
    );
    assert!(contains(&file, "aesgcm-v1"));

    let without = Store::open(&spec).await.err().unwrap().to_string();
    assert!(
        without.contains("Secret/default/db is encrypted")
            && without.contains("--encryption-key-file"),
        "{without}"
    );
    let wrong = Store::open_encrypted(&spec, Some(key(2)))
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(wrong.contains("was encrypted with key"), "{wrong}");
    let again = Store::open_encrypted(&spec, Some(key(1))).await.unwrap();
    assert_eq!(
        password(&again.get(&db).await.unwrap().unwrap().object),
        VALUE
    );
}

type Key = ObjectKey;

/// Opens once the previous handle's background committer has let go of the file.
async fn reopen(spec: &StoreSpec, cipher: Option<Arc<SecretCipher>>) -> keel_store::Result<Store> {
    for _ in 0..100 {
        match Store::open_encrypted(spec, cipher.clone()).await {
            Err(keel_store::StoreError::Locked(_)) => {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await
            }
            other => return other,
        }
    }
    Store::open_encrypted(spec, cipher).await
}

#[tokio::test]
async fn secrets_written_before_encryption_stay_readable() {
    let dir = tempfile::tempdir().unwrap();
    let spec = StoreSpec::Redb {
        data_dir: dir.path().to_path_buf(),
    };
    {
        let plain = Store::open(&spec).await.unwrap();
        plain.create(secret("old")).await.unwrap();
    }
    let store = reopen(&spec, Some(key(1))).await.unwrap();
    let old = Key::new(Kind::Secret, "default", "old");
    let stored = store.get(&old).await.unwrap().unwrap();
    assert_eq!(password(&stored.object), VALUE);
    // Its next write encrypts it: a store without the key can no longer read it.
    store
        .update(stored.object.clone(), stored.resource_version)
        .await
        .unwrap();
    drop(store);
    let err = reopen(&spec, None).await.err().unwrap().to_string();
    assert!(err.contains("Secret/default/old is encrypted"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_keeps_secrets_encrypted_and_needs_the_key() {
    let Some(server) = etcd_server::start() else {
        return;
    };
    let spec = StoreSpec::Etcd {
        endpoints: vec![server.endpoint.clone()],
    };
    let store = Store::open_encrypted(&spec, Some(key(7))).await.unwrap();
    let created = store.create(secret("db")).await.unwrap();
    let db = Key::new(Kind::Secret, "default", "db");
    assert_eq!(
        password(&store.get(&db).await.unwrap().unwrap().object),
        VALUE
    );
    // What etcd holds, read past keel.
    let mut client = etcd_client::Client::connect([server.endpoint.as_str()], None)
        .await
        .unwrap();
    let all = client
        .get("", Some(etcd_client::GetOptions::new().with_prefix()))
        .await
        .unwrap();
    let b64 = base64::engine::general_purpose::STANDARD.encode(VALUE);
    assert!(!all.kvs().is_empty());
    for kv in all.kvs() {
        assert!(
            !contains(kv.value(), VALUE) && !contains(kv.value(), &b64),
            "{:?}",
            kv.key_str()
        );
    }
    // A watch from before the write decrypts too.
    let mut watcher = store.watch(Some(Kind::Secret), 0).await.unwrap();
    let event = tokio::time::timeout(std::time::Duration::from_secs(5), watcher.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(password(event.object()), VALUE);
    let _ = created;
    let without = Store::open(&spec).await;
    let err = match without {
        Ok(s) => s.get(&db).await.err().unwrap().to_string(),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("is encrypted"), "{err}");
}
