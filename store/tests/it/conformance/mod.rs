//! One conformance suite for both store engines: every behaviour runs against redb and
//! against a real etcd.

mod batches;
mod history;
mod objects;
mod watch;

use std::collections::BTreeMap;

use keel_schema::Object;
use keel_schema::types::core::ConfigMap;
use keel_store::{ObjectKey, Store, StoreSpec};

use keel_store::etcd_process::EtcdProcess;

use super::etcd_server;
use keel_schema::Kind;

/// A store under test, with what keeps it alive and how to open it again.
pub(crate) struct Backend {
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

pub(crate) fn configmap(ns: &str, name: &str, labels: &[(&str, &str)], value: &str) -> Object {
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

pub(crate) fn value_of(obj: &Object) -> String {
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

pub(crate) fn key(name: &str) -> ObjectKey {
    ObjectKey::new(Kind::ConfigMap, "default", name)
}

macro_rules! conformance {
    ($($module:ident :: $name:ident),* $(,)?) => {
        mod redb_engine {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let mut backend = super::Backend::redb().await;
                    super::$module::$name(&mut backend).await;
                }
            )*
        }
        mod etcd_engine {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(mut backend) = super::Backend::etcd().await else { return };
                    super::$module::$name(&mut backend).await;
                }
            )*
        }
    };
}

conformance!(
    objects::create_get_update_delete_with_resource_versions,
    objects::generation_follows_spec_changes_only,
    objects::list_by_kind_namespace_and_selector,
    objects::every_write_bumps_the_store_revision,
    objects::custom_objects_are_kept_by_group_and_kind,
    objects::events_are_objects_like_any_other_but_not_in_list_all,
    objects::list_page_walks_a_kind_in_pages,
    batches::a_batch_is_applied_whole_or_not_at_all,
    batches::a_large_batch_is_whole_too,
    batches::a_batch_writes_its_sync_record_with_it,
    batches::concurrent_conflicting_updates_exactly_one_wins,
    batches::concurrent_writers_each_get_their_own_outcome,
    watch::watch_delivers_added_modified_deleted_in_order,
    watch::watch_under_concurrent_writers_loses_nothing,
    watch::watch_resumes_from_a_revision,
    watch::watch_from_compacted_history_expires,
    history::sync_history_is_newest_first,
    history::committed_state_survives_a_restart,
    history::compaction_never_runs_past_the_present,
);
