//! Which certificates speak for each node: a node's name is bound to the certificate it
//! joined with (and those renewed from it), kept in the store as a Secret
//! `keel-system/node-<name>` of type `keel.dev/node-certificate` holding their serials.
//!
//! - Join under the name of a node that exists and has a binding is refused: the name
//!   belongs to its certificate until `keel delete node NAME` removes the node and its
//!   binding. A binding without a Node (a join whose answer was lost) is replaced.
//! - Every call a node makes with its certificate is checked against the binding; without a
//!   binding the certificate speaks for nothing, so after `keel delete node` the old
//!   certificate is refused (revoked), whatever its expiry.
//! - Nodes that joined before bindings existed get, when a leader starts, a binding that
//!   takes the first certificate issued before then, once.

use keel_schema::{Kind, Object, ObjectKey};
use keel_store::{Store, StoreError};

use super::keel_secret::{self, NAMESPACE};

pub const SECRET_TYPE: &str = "keel.dev/node-certificate";
const NAME_PREFIX: &str = "node-";
const CONFLICT_RETRIES: usize = 5;

#[derive(Debug, thiserror::Error)]
pub enum BindingError {
    #[error(
        "node {0:?} exists and is bound to the certificate it joined with; if that machine is \
         gone for good, run `keel delete node {0}` first (its certificate is then revoked)"
    )]
    Taken(String),
    #[error(
        "this certificate no longer speaks for node {0:?}: the node was deleted (`keel delete \
         node`) or joined again since; join again with a token"
    )]
    Revoked(String),
    #[error("cannot read or write node certificate bindings: {0}")]
    Store(String),
}

impl From<StoreError> for BindingError {
    fn from(e: StoreError) -> Self {
        BindingError::Store(e.to_string())
    }
}

#[derive(Clone)]
pub struct NodeBindings {
    store: Store,
}

fn key(node: &str) -> ObjectKey {
    ObjectKey::new(Kind::Secret, NAMESPACE, &format!("{NAME_PREFIX}{node}"))
}

fn secret(node: &str, serials: &[String], legacy_before: Option<i64>) -> Object {
    let mut fields = vec![("node", node.to_string()), ("serials", serials.join(","))];
    if let Some(before) = legacy_before {
        fields.push(("legacy-before", before.to_string()));
    }
    keel_secret::build(format!("{NAME_PREFIX}{node}"), SECRET_TYPE, fields)
}

/// What a binding Secret holds.
struct Binding {
    serials: Vec<String>,
    /// Set for a node that joined before bindings existed: its first certificate issued
    /// before this instant (Unix seconds) is taken.
    legacy_before: Option<i64>,
}

impl Binding {
    /// The binding a Secret holds; `None` for any other Secret.
    fn of(object: &Object) -> Option<Binding> {
        let fields = keel_secret::fields(object, SECRET_TYPE)?;
        Some(Binding {
            serials: fields
                .get("serials")?
                .split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
            legacy_before: fields.get("legacy-before").and_then(|t| t.parse().ok()),
        })
    }
}

impl NodeBindings {
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    /// Binds `node` to its first certificate. Refused when the name is bound and its Node
    /// exists; a binding whose node never registered (a join whose answer was lost, or a
    /// node that crashed before it could) is replaced.
    pub async fn bind_new(&self, node: &str, serial: &str) -> Result<(), BindingError> {
        let fresh = || secret(node, &[serial.to_string()], None);
        match self.store.create(fresh()).await {
            Ok(_) => return Ok(()),
            Err(StoreError::AlreadyExists(_)) => {}
            Err(e) => return Err(e.into()),
        }
        if self.node_exists(node).await? {
            return Err(BindingError::Taken(node.to_string()));
        }
        let Some(stored) = self.store.get(&key(node)).await? else {
            return Err(BindingError::Store(format!(
                "node {node}'s binding vanished; join again"
            )));
        };
        match self.store.update(fresh(), stored.resource_version).await {
            Ok(_) => Ok(()),
            Err(StoreError::Conflict { .. }) => Err(BindingError::Taken(node.to_string())),
            Err(e) => Err(e.into()),
        }
    }

    async fn node_exists(&self, node: &str) -> Result<bool, BindingError> {
        let node_key = ObjectKey::new(Kind::Node, "", node);
        Ok(self.store.get(&node_key).await?.is_some())
    }

    /// Whether the certificate `serial` (valid from `not_before`, Unix seconds) speaks for
    /// `node`. A binding made for a node that joined before bindings existed takes its first
    /// certificate issued before then.
    pub async fn check(
        &self,
        node: &str,
        serial: &str,
        not_before: Option<i64>,
    ) -> Result<(), BindingError> {
        let revoked = || BindingError::Revoked(node.to_string());
        let Some(stored) = self.store.get(&key(node)).await? else {
            return Err(revoked());
        };
        let Some(binding) = Binding::of(&stored.object) else {
            return Err(revoked());
        };
        if binding.serials.iter().any(|s| s == serial) {
            return Ok(());
        }
        match (binding.legacy_before, not_before) {
            (Some(before), Some(issued)) if binding.serials.is_empty() && issued < before => {
                // Conditioned on the version read: a delete in between wins.
                match self
                    .store
                    .update(
                        secret(node, &[serial.to_string()], None),
                        stored.resource_version,
                    )
                    .await
                {
                    Ok(_) => {
                        tracing::info!(
                            node,
                            "bound a node that joined before bindings existed to its certificate"
                        );
                        Ok(())
                    }
                    Err(StoreError::Conflict { .. }) => Err(revoked()),
                    Err(e) => Err(e.into()),
                }
            }
            _ => Err(revoked()),
        }
    }

    /// Records that `node`, calling with `presented`, was issued `renewed`: the binding
    /// keeps both (the agent may not have stored the new one yet), so a renewal whose
    /// answer was lost never locks the node out.
    pub async fn renewed(
        &self,
        node: &str,
        presented: &str,
        renewed: &str,
    ) -> Result<(), BindingError> {
        for _ in 0..CONFLICT_RETRIES {
            let Some(stored) = self.store.get(&key(node)).await? else {
                return Err(BindingError::Revoked(node.to_string()));
            };
            let updated = secret(node, &[presented.to_string(), renewed.to_string()], None);
            match self.store.update(updated, stored.resource_version).await {
                Ok(_) => return Ok(()),
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(BindingError::Store(format!(
            "node {node}'s binding kept changing"
        )))
    }

    /// Gives every Node without a binding (it joined before bindings existed) one that takes
    /// its first certificate issued before now. Run when a leader starts.
    pub async fn adopt_existing(&self) -> Result<usize, BindingError> {
        let nodes = self.store.list(Kind::Node, None, None).await?;
        let now = chrono::Utc::now().timestamp();
        let mut adopted = 0;
        for n in &nodes.items {
            let name = n.object.name();
            if self.store.get(&key(name)).await?.is_some() {
                continue;
            }
            match self.store.create(secret(name, &[], Some(now))).await {
                Ok(_) => adopted += 1,
                Err(StoreError::AlreadyExists(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(adopted)
    }

    /// Forgets `node`'s certificates (`keel delete node`): they speak for nothing now.
    /// Whether there was a binding.
    pub async fn remove(&self, node: &str) -> Result<bool, BindingError> {
        match self.store.delete(&key(node), None).await {
            Ok(_) => Ok(true),
            Err(StoreError::NotFound(_)) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&keel_store::StoreSpec::Redb {
            data_dir: dir.path().to_path_buf(),
        })
        .await
        .unwrap();
        (dir, store)
    }

    fn node(name: &str) -> Object {
        Object::from_json(serde_json::json!({
            "apiVersion": "v1", "kind": "Node", "metadata": {"name": name}
        }))
        .unwrap()
    }

    #[tokio::test]
    async fn renewals_whose_answer_was_lost_never_lock_a_node_out() {
        let (_dir, store) = store().await;
        let b = NodeBindings::new(store);
        b.bind_new("n", "a").await.unwrap();
        // Two renewals answered into the void: the agent still holds A.
        b.renewed("n", "a", "b").await.unwrap();
        b.renewed("n", "a", "c").await.unwrap();
        b.check("n", "a", None).await.unwrap();
        b.check("n", "c", None).await.unwrap();
        assert!(matches!(
            b.check("n", "b", None).await,
            Err(BindingError::Revoked(_))
        ));
        // Once the agent uses C and renews again, A goes.
        b.renewed("n", "c", "d").await.unwrap();
        assert!(matches!(
            b.check("n", "a", None).await,
            Err(BindingError::Revoked(_))
        ));
    }

    #[tokio::test]
    async fn nodes_from_before_bindings_take_one_old_certificate_and_deleted_ones_none() {
        let (_dir, store) = store().await;
        store.create(node("old")).await.unwrap();
        let b = NodeBindings::new(store.clone());
        assert!(matches!(
            b.check("old", "x", Some(0)).await,
            Err(BindingError::Revoked(_))
        ));
        assert_eq!(b.adopt_existing().await.unwrap(), 1);
        assert_eq!(b.adopt_existing().await.unwrap(), 0, "once");
        let issued = chrono::Utc::now().timestamp() - 3600;
        // A certificate issued after the adoption is not an old one.
        let later = chrono::Utc::now().timestamp() + 3600;
        assert!(b.check("old", "new", Some(later)).await.is_err());
        b.check("old", "first", Some(issued)).await.unwrap();
        assert!(
            b.check("old", "second", Some(issued)).await.is_err(),
            "only the first old certificate"
        );
        b.check("old", "first", Some(issued)).await.unwrap();
        // Deleted: nothing speaks for it any more, old or new.
        assert!(b.remove("old").await.unwrap());
        assert!(b.check("old", "first", Some(issued)).await.is_err());
    }

    #[tokio::test]
    async fn a_bound_name_is_taken_only_while_its_node_exists() {
        let (_dir, store) = store().await;
        let b = NodeBindings::new(store.clone());
        b.bind_new("n", "a").await.unwrap();
        // No Node yet (the first join's answer was lost): a new join replaces it.
        b.bind_new("n", "b").await.unwrap();
        assert!(b.check("n", "a", None).await.is_err());
        store.create(node("n")).await.unwrap();
        assert!(matches!(
            b.bind_new("n", "c").await,
            Err(BindingError::Taken(_))
        ));
        b.check("n", "b", None).await.unwrap();
    }
}
