//! Tokens kept in the store, of two kinds ([`TokenKind`]):
//! - join tokens (`keel token create`), which new nodes join with;
//! - view tokens (`keel token create --role view`), which read the API and nothing more.
//!
//! Each is kept as Kubernetes keeps its bootstrap tokens: a Secret
//! `keel-system/<kind>-token-<id>` of type `keel.dev/<kind>-token` holding the SHA-256 of the
//! secret (never the secret itself), creation, expiry and a description. In the store,
//! every server sharing it knows every token, so a token made on any server works on all.
//! A join token joins any number of nodes until it expires, as kubeadm's do; expired tokens
//! are deleted when the next one of their kind is made. Join tokens an older keel kept in
//! `<data-dir>/join-tokens.json` are moved into the store at start.
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

/// A kind of stored token: where its Secrets are named and typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenKind {
    /// `join`, `view`: what `keel token` calls it.
    pub role: &'static str,
    name_prefix: &'static str,
    secret_type: &'static str,
}

/// Tokens new nodes join with.
pub const JOIN: TokenKind = TokenKind {
    role: "join",
    name_prefix: "join-token-",
    secret_type: "keel.dev/join-token",
};

/// Tokens that read the API and change nothing.
pub const VIEW: TokenKind = TokenKind {
    role: "view",
    name_prefix: "view-token-",
    secret_type: "keel.dev/view-token",
};

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

pub struct StoredTokens {
    store: Store,
    kind: TokenKind,
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
    fn key(kind: TokenKind, id: &str) -> ObjectKey {
        ObjectKey::new(
            Kind::Secret,
            NAMESPACE,
            &format!("{}{id}", kind.name_prefix),
        )
    }

    fn to_secret(&self, kind: TokenKind) -> Object {
        let mut fields = vec![
            ("token-id", self.id.clone()),
            ("secret-sha256", self.secret_sha256.clone()),
            ("created", self.created.to_rfc3339()),
            ("expires", self.expires.to_rfc3339()),
        ];
        if let Some(d) = &self.description {
            fields.push(("description", d.clone()));
        }
        keel_secret::build(
            format!("{}{}", kind.name_prefix, self.id),
            kind.secret_type,
            fields,
        )
    }

    /// The record a token Secret of `kind` holds; `None` for any other Secret or a damaged
    /// one.
    fn of_secret(kind: TokenKind, object: &Object) -> Option<TokenRecord> {
        let mut fields = keel_secret::fields(object, kind.secret_type)?;
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

impl StoredTokens {
    /// The join tokens.
    pub fn new(store: Store, data_dir: &Path) -> StoredTokens {
        StoredTokens {
            store,
            kind: JOIN,
            legacy: data_dir.join("join-tokens.json"),
        }
    }

    /// The view tokens.
    pub fn view(store: Store) -> StoredTokens {
        StoredTokens {
            store,
            kind: VIEW,
            legacy: PathBuf::new(),
        }
    }

    pub fn kind(&self) -> TokenKind {
        self.kind
    }

    /// The store the tokens live in.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Moves the live tokens of `<data-dir>/join-tokens.json` (kept there by older keel)
    /// into the store, then renames the file `join-tokens.json.moved`.
    pub async fn move_legacy(&self) -> Result<usize, TokenError> {
        if self.kind != JOIN {
            return Ok(0);
        }
        let Ok(Some(text)) = keel_tls::files::read_optional(&self.legacy) else {
            return Ok(0);
        };
        let records: Vec<TokenRecord> = serde_json::from_str(&text)
            .map_err(|e| TokenError::Store(format!("{}: {e}", self.legacy.display())))?;
        let now = Utc::now();
        let mut moved = 0;
        for record in records.into_iter().filter(|r| r.expires > now) {
            match self.store.create(record.to_secret(self.kind)).await {
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
        self.store.create(record.to_secret(self.kind)).await?;
        for (expired, version) in self
            .all()
            .await?
            .into_iter()
            .filter(|(r, _)| r.expires <= now)
        {
            // Another server may be deleting it too.
            let _ = self
                .store
                .delete(&TokenRecord::key(self.kind, &expired.id), Some(version))
                .await;
        }
        Ok((token, record))
    }

    /// Whether `id` and `secret` are a live token.
    pub async fn check(&self, id: &str, secret: &str) -> Result<(), TokenError> {
        let stored = self.store.get(&TokenRecord::key(self.kind, id)).await?;
        let record = stored
            .as_ref()
            .and_then(|s| TokenRecord::of_secret(self.kind, &s.object))
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

    /// The token as its holder gives it: a join token with the fingerprint of the CA it
    /// pins, a view token as `ID.SECRET` (an `Authorization: Bearer` token).
    pub fn reveal(&self, token: &JoinToken) -> String {
        if self.kind == JOIN {
            token.reveal()
        } else {
            format!("{}.{}", token.id, token.secret)
        }
    }

    /// Whether `bearer` (`ID.SECRET`) is a live token of this kind.
    pub async fn accepts_bearer(&self, bearer: &str) -> bool {
        let Some((id, secret)) = bearer.trim().split_once('.') else {
            return false;
        };
        keel_tls::join_token::well_formed(id, secret) && self.check(id, secret).await.is_ok()
    }

    /// Every token record with its Secret's version.
    async fn all(&self) -> Result<Vec<(TokenRecord, u64)>, TokenError> {
        let list = self.store.list(Kind::Secret, Some(NAMESPACE), None).await?;
        Ok(list
            .items
            .iter()
            .filter_map(|s| {
                TokenRecord::of_secret(self.kind, &s.object).map(|r| (r, s.resource_version))
            })
            .collect())
    }

    /// Deletes token `id`: nothing joins with it from now on. Nodes that joined with it
    /// keep their certificates (`keel delete node` revokes those).
    pub async fn delete(&self, id: &str) -> Result<(), TokenError> {
        if !keel_tls::join_token::well_formed(id, "0123456789abcdef") {
            return Err(TokenError::Invalid(format!("{id:?} is not a token id")));
        }
        let key = TokenRecord::key(self.kind, id);
        match self.store.get(&key).await? {
            Some(stored) if TokenRecord::of_secret(self.kind, &stored.object).is_some() => {
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
        let tokens = StoredTokens::new(store.clone(), dir.path());
        let fp = "0".repeat(64);
        let (t, _) = tokens
            .create(&fp, Duration::from_secs(60), Some("ci".into()))
            .await
            .unwrap();
        // Another server on the same store knows it.
        let other = StoredTokens::new(store.clone(), &dir.path().join("elsewhere"));
        other.check(&t.id, &t.secret).await.unwrap();
        assert!(matches!(
            tokens.check(&t.id, "0123456789abcdef").await,
            Err(TokenError::Wrong)
        ));
        assert!(matches!(
            tokens.check("nosuch", &t.secret).await,
            Err(TokenError::Unknown)
        ));
        let stored = store
            .get(&TokenRecord::key(JOIN, &t.id))
            .await
            .unwrap()
            .unwrap();
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
    async fn view_tokens_are_bearer_tokens_of_their_own_kind() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&keel_store::StoreSpec::Redb {
            data_dir: dir.path().to_path_buf(),
        })
        .await
        .unwrap();
        let view = StoredTokens::view(store.clone());
        let join = StoredTokens::new(store.clone(), dir.path());
        let (token, record) = view
            .create("", Duration::from_secs(60), None)
            .await
            .unwrap();
        let bearer = view.reveal(&token);
        assert_eq!(bearer, format!("{}.{}", record.id, token.secret));
        assert!(view.accepts_bearer(&bearer).await);
        assert!(!view.accepts_bearer("nope").await);
        assert!(
            !view
                .accepts_bearer(&format!("{}.0123456789abcdef", record.id))
                .await
        );
        // A view token joins no node, and lists apart from join tokens.
        assert!(matches!(
            join.check(&token.id, &token.secret).await,
            Err(TokenError::Unknown)
        ));
        assert!(join.list().await.unwrap().is_empty());
        view.delete(&record.id).await.unwrap();
        assert!(!view.accepts_bearer(&bearer).await);
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
        let tokens = StoredTokens::new(store, dir.path());
        assert_eq!(tokens.move_legacy().await.unwrap(), 1);
        tokens.check("abcdef", "0123456789abcdef").await.unwrap();
        assert!(!dir.path().join("join-tokens.json").exists());
        assert_eq!(tokens.move_legacy().await.unwrap(), 0);
    }
}
