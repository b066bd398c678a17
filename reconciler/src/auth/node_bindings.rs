//! Which certificates speak for each node: a node's name is bound to the certificate it
//! joined with (and those renewed from it), kept in the store as a Secret
//! `keel-system/node-<name>` of type `keel.dev/node-certificate` holding their serials.
//!
//! - Join under a name that has a binding is refused: the name belongs to its first
//!   certificate until `keel delete node NAME` removes the node and its binding.
//! - Every call a node makes with its certificate is checked against the binding; after
//!   `keel delete node`, the old certificate is refused (revoked), whatever its expiry.
//! - Nodes that joined before bindings existed are bound, on their next registration, to the
//!   certificate they present, as long as their Node still exists.

use std::collections::BTreeMap;

use base64::Engine;
use keel_schema::types::core::{Secret, SecretData};
use keel_schema::{Kind, Object, ObjectKey};
use keel_store::{Store, StoreError};

use super::join_tokens::NAMESPACE;

pub const SECRET_TYPE: &str = "keel.dev/node-certificate";
const NAME_PREFIX: &str = "node-";
/// Serials kept per node: the current certificate and the one it was renewed from (the
/// agent may still use the old one for a moment).
const KEPT: usize = 2;
const CONFLICT_RETRIES: usize = 5;

#[derive(Debug, thiserror::Error)]
pub enum BindingError {
    #[error(
        "node {0:?} already joined with another certificate; if that machine is gone for good, \
         run `keel delete node {0}` first (its certificate is then revoked)"
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

fn secret(node: &str, serials: &[String]) -> Object {
    let b64 = |t: &str| base64::engine::general_purpose::STANDARD.encode(t);
    let data = BTreeMap::from([
        ("node".to_string(), b64(node)),
        ("serials".to_string(), b64(&serials.join(","))),
    ]);
    let mut secret = Secret {
        api_version: "v1".into(),
        kind: "Secret".into(),
        type_: Some(SECRET_TYPE.into()),
        data: Some(SecretData(data)),
        ..Default::default()
    };
    secret.metadata.name = Some(format!("{NAME_PREFIX}{node}"));
    secret.metadata.namespace = Some(NAMESPACE.into());
    Object::Secret(secret)
}

/// The serials a binding Secret holds; `None` for any other Secret.
fn serials(object: &Object) -> Option<Vec<String>> {
    let Object::Secret(secret) = object else {
        return None;
    };
    if secret.type_.as_deref() != Some(SECRET_TYPE) {
        return None;
    }
    let text = secret.data.as_ref()?.0.get("serials")?;
    let text = base64::engine::general_purpose::STANDARD
        .decode(text)
        .ok()?;
    let text = String::from_utf8(text).ok()?;
    Some(
        text.split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
    )
}

impl NodeBindings {
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    /// Binds `node` to its first certificate; refused when the name is bound already.
    pub async fn bind_new(&self, node: &str, serial: &str) -> Result<(), BindingError> {
        match self.store.create(secret(node, &[serial.to_string()])).await {
            Ok(_) => Ok(()),
            Err(StoreError::AlreadyExists(_)) => Err(BindingError::Taken(node.to_string())),
            Err(e) => Err(e.into()),
        }
    }

    /// Whether the certificate `serial` speaks for `node`. A node that joined before
    /// bindings existed, and whose Node is still in the store, is bound to it now.
    pub async fn check(&self, node: &str, serial: &str) -> Result<(), BindingError> {
        for _ in 0..2 {
            if let Some(stored) = self.store.get(&key(node)).await? {
                return match serials(&stored.object) {
                    Some(known) if known.iter().any(|s| s == serial) => Ok(()),
                    _ => Err(BindingError::Revoked(node.to_string())),
                };
            }
            let node_key = ObjectKey::new(Kind::Node, "", node);
            if self.store.get(&node_key).await?.is_none() {
                return Err(BindingError::Revoked(node.to_string()));
            }
            match self.bind_new(node, serial).await {
                Ok(()) => {
                    tracing::info!(
                        node,
                        "bound a node that joined before bindings existed to its certificate"
                    );
                    return Ok(());
                }
                // Bound in between (another call of this node): check against that.
                Err(BindingError::Taken(_)) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(BindingError::Revoked(node.to_string()))
    }

    /// Adds a renewed certificate to `node`'s binding, keeping the newest [`KEPT`].
    pub async fn renewed(&self, node: &str, serial: &str) -> Result<(), BindingError> {
        for _ in 0..CONFLICT_RETRIES {
            let Some(stored) = self.store.get(&key(node)).await? else {
                return Err(BindingError::Revoked(node.to_string()));
            };
            let mut known = serials(&stored.object).unwrap_or_default();
            known.push(serial.to_string());
            let from = known.len().saturating_sub(KEPT);
            let updated = secret(node, &known[from..]);
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

    /// Forgets `node`'s certificates (after `keel delete node`): they speak for nothing now.
    pub async fn remove(&self, node: &str) -> Result<(), BindingError> {
        match self.store.delete(&key(node), None).await {
            Ok(_) | Err(StoreError::NotFound(_)) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}
