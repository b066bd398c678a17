//! Bootstrap join tokens (`keel token create`), kept in the store as Kubernetes keeps its
//! bootstrap tokens: a Secret `keel-system/join-token-<id>` of type `keel.dev/join-token`
//! holding the SHA-256 of the secret (never the secret itself), creation, expiry and a
//! description. In the store, every server sharing it knows every token, so a token made
//! on any server joins through whichever leads. A token joins any number of nodes until it
//! expires, as kubeadm's do; expired tokens are deleted when the next one is made.
//! Tokens an older keel kept in `<data-dir>/join-tokens.json` are moved into the store at
//! start.
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use keel_schema::{Kind, Object, ObjectKey};
use keel_store::{Store, StoreError};
use keel_tls::JoinToken;

use super::keel_secret;
use keel_tls::join_token::{hashes_equal, secret_hash};
use serde::{Deserialize, Serialize};

/// The longest a token may live.
pub const MAX_TTL: Duration = Duration::from_secs(365 * 24 * 3600);
/// Where the tokens' Secrets live, and what marks them.
pub use super::keel_secret::NAMESPACE;
pub const SECRET_TYPE: &str = "keel.dev/join-token";
const NAME_PREFIX: &str = "join-token-";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenRecord {
    pub id: String,
    pub secret_sha256: String,
    pub created: DateTime<Utc>,
    pub expires: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

pub struct JoinTokens {
    store: Store,
    /// Where tokens were kept before they lived in the store.
    legacy: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error(
        "the join token is unknown to this control plane (made for another cluster, or removed)"
    )]
    Unknown,
    #[error("the join token expired at {0}; make a new one with `keel token create`")]
    Expired(DateTime<Utc>),
    #[error("the join token's secret is wrong")]
    Wrong,
    #[error("{0}")]
    Invalid(String),
    #[error("cannot read or write the join tokens: {0}")]
    Store(String),
}

impl From<StoreError> for TokenError {
    fn from(e: StoreError) -> Self {
        TokenError::Store(e.to_string())
    }
}

impl TokenRecord {
    fn key(id: &str) -> ObjectKey {
        ObjectKey::new(Kind::Secret, NAMESPACE, &format!("{NAME_PREFIX}{id}"))
    }

    fn to_secret(&self) -> Object {
        let mut fields = vec![
            ("token-id", self.id.clone()),
            ("secret-sha256", self.secret_sha256.clone()),
            ("created", self.created.to_rfc3339()),
            ("expires", self.expires.to_rfc3339()),
        ];
        if let Some(d) = &self.description {
            fields.push(("description", d.clone()));
        }
        keel_secret::build(format!("{NAME_PREFIX}{}", self.id), SECRET_TYPE, fields)
    }

    /// The record a token Secret holds; `None` for any other Secret or a damaged one.
    fn of_secret(object: &Object) -> Option<TokenRecord> {
        let mut fields = keel_secret::fields(object, SECRET_TYPE)?;
        let time = |k: &str| {
            fields
                .get(k)
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.with_timezone(&Utc))
        };
        let (created, expires) = (time("created")?, time("expires")?);
        Some(TokenRecord {
            id: fields.remove("token-id")?,
            secret_sha256: fields.remove("secret-sha256")?,
            created,
            expires,
            description: fields.remove("description"),
        })
    }
}

impl JoinTokens {
    pub fn new(store: Store, data_dir: &Path) -> JoinTokens {
        JoinTokens {
            store,
            legacy: data_dir.join("join-tokens.json"),
        }
    }

    /// The store the tokens live in.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Moves the live tokens of `<data-dir>/join-tokens.json` (kept there by older keel)
    /// into the store, then renames the file `join-tokens.json.moved`.
    pub async fn move_legacy(&self) -> Result<usize, TokenError> {
        let Ok(Some(text)) = keel_tls::files::read_optional(&self.legacy) else {
            return Ok(0);
        };
        let records: Vec<TokenRecord> = serde_json::from_str(&text)
            .map_err(|e| TokenError::Store(format!("{}: {e}", self.legacy.display())))?;
        let now = Utc::now();
        let mut moved = 0;
        for record in records.into_iter().filter(|r| r.expires > now) {
            match self.store.create(record.to_secret()).await {
                Ok(_) => moved += 1,
                Err(StoreError::AlreadyExists(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let _ = std::fs::rename(&self.legacy, self.legacy.with_extension("json.moved"));
        Ok(moved)
    }

    /// A new token for the CA with `ca_fingerprint`, valid for `ttl`.
    pub async fn create(
        &self,
        ca_fingerprint: &str,
        ttl: Duration,
        description: Option<String>,
    ) -> Result<(JoinToken, TokenRecord), TokenError> {
        if ttl.is_zero() || ttl > MAX_TTL {
            return Err(TokenError::Invalid(
                "ttl must be more than 0s and at most 365 days".into(),
            ));
        }
        let token =
            JoinToken::generate(ca_fingerprint).map_err(|e| TokenError::Invalid(e.to_string()))?;
        let now = Utc::now();
        let record = TokenRecord {
            id: token.id.clone(),
            secret_sha256: secret_hash(&token.secret),
            created: now,
            expires: now
                + chrono::Duration::from_std(ttl)
                    .map_err(|e| TokenError::Invalid(e.to_string()))?,
            description,
        };
        self.store.create(record.to_secret()).await?;
        for (expired, version) in self
            .all()
            .await?
            .into_iter()
            .filter(|(r, _)| r.expires <= now)
        {
            // Another server may be deleting it too.
            let _ = self
                .store
                .delete(&TokenRecord::key(&expired.id), Some(version))
                .await;
        }
        Ok((token, record))
    }

    /// Whether `id` and `secret` are a live token.
    pub async fn check(&self, id: &str, secret: &str) -> Result<(), TokenError> {
        let stored = self.store.get(&TokenRecord::key(id)).await?;
        let record = stored
            .as_ref()
            .and_then(|s| TokenRecord::of_secret(&s.object))
            .filter(|r| r.id == id)
            .ok_or(TokenError::Unknown)?;
        if !hashes_equal(&record.secret_sha256, &secret_hash(secret)) {
            return Err(TokenError::Wrong);
        }
        if record.expires <= Utc::now() {
            return Err(TokenError::Expired(record.expires));
        }
        Ok(())
    }

    /// Every token record with its Secret's version.
    async fn all(&self) -> Result<Vec<(TokenRecord, u64)>, TokenError> {
        let list = self.store.list(Kind::Secret, Some(NAMESPACE), None).await?;
        Ok(list
            .items
            .iter()
            .filter_map(|s| TokenRecord::of_secret(&s.object).map(|r| (r, s.resource_version)))
            .collect())
    }

    /// Deletes token `id`: nothing joins with it from now on. Nodes that joined with it
    /// keep their certificates (`keel delete node` revokes those).
    pub async fn delete(&self, id: &str) -> Result<(), TokenError> {
        if !keel_tls::join_token::well_formed(id, "0123456789abcdef") {
            return Err(TokenError::Invalid(format!("{id:?} is not a token id")));
        }
        let key = TokenRecord::key(id);
        match self.store.get(&key).await? {
            Some(stored) if TokenRecord::of_secret(&stored.object).is_some() => {
                match self.store.delete(&key, None).await {
                    Ok(_) | Err(StoreError::NotFound(_)) => Ok(()),
                    Err(e) => Err(e.into()),
                }
            }
            _ => Err(TokenError::Unknown),
        }
    }

    /// The live tokens (without secrets, which are not kept).
    pub async fn list(&self) -> Result<Vec<TokenRecord>, TokenError> {
        let now = Utc::now();
        Ok(self
            .all()
            .await?
            .into_iter()
            .map(|(r, _)| r)
            .filter(|r| r.expires > now)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn tokens_are_checked_by_secret_and_expiry_and_shared_through_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&keel_store::StoreSpec::Redb {
            data_dir: dir.path().to_path_buf(),
        })
        .await
        .unwrap();
        let tokens = JoinTokens::new(store.clone(), dir.path());
        let fp = "0".repeat(64);
        let (t, _) = tokens
            .create(&fp, Duration::from_secs(60), Some("ci".into()))
            .await
            .unwrap();
        // Another server on the same store knows it.
        let other = JoinTokens::new(store.clone(), &dir.path().join("elsewhere"));
        other.check(&t.id, &t.secret).await.unwrap();
        assert!(matches!(
            tokens.check(&t.id, "0123456789abcdef").await,
            Err(TokenError::Wrong)
        ));
        assert!(matches!(
            tokens.check("nosuch", &t.secret).await,
            Err(TokenError::Unknown)
        ));
        let stored = store.get(&TokenRecord::key(&t.id)).await.unwrap().unwrap();
        let json = serde_json::to_string(&stored.object).unwrap();
        assert!(
            !json.contains(&t.secret)
                && !json.contains(&base64::Engine::encode(
                    &base64::engine::general_purpose::STANDARD,
                    &t.secret
                )),
            "the secret itself is not kept"
        );
        assert_eq!(tokens.list().await.unwrap().len(), 1);

        let (short, _) = tokens
            .create(&fp, Duration::from_secs(1), None)
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(1100)).await;
        assert!(matches!(
            tokens.check(&short.id, &short.secret).await,
            Err(TokenError::Expired(_))
        ));
        assert!(tokens.create(&fp, Duration::ZERO, None).await.is_err());
        // Making a token deletes the expired ones.
        tokens
            .create(&fp, Duration::from_secs(60), None)
            .await
            .unwrap();
        assert!(matches!(
            tokens.check(&short.id, &short.secret).await,
            Err(TokenError::Unknown)
        ));
    }

    #[tokio::test]
    async fn tokens_of_an_older_keel_move_into_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&keel_store::StoreSpec::Redb {
            data_dir: dir.path().to_path_buf(),
        })
        .await
        .unwrap();
        let now = Utc::now();
        let record = TokenRecord {
            id: "abcdef".into(),
            secret_sha256: secret_hash("0123456789abcdef"),
            created: now,
            expires: now + chrono::Duration::hours(1),
            description: None,
        };
        std::fs::write(
            dir.path().join("join-tokens.json"),
            serde_json::to_vec(&[record]).unwrap(),
        )
        .unwrap();
        let tokens = JoinTokens::new(store, dir.path());
        assert_eq!(tokens.move_legacy().await.unwrap(), 1);
        tokens.check("abcdef", "0123456789abcdef").await.unwrap();
        assert!(!dir.path().join("join-tokens.json").exists());
        assert_eq!(tokens.move_legacy().await.unwrap(), 0);
    }
}
