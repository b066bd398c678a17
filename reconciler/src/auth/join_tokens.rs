//! Bootstrap join tokens (`keel token create`): kept in `<data-dir>/join-tokens.json` (mode
//! 0600) as id, SHA-256 of the secret, and expiry, never the secret itself. A token joins any
//! number of nodes until it expires, as kubeadm's do; expired tokens are dropped when the
//! next one is made.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use keel_tls::JoinToken;
use keel_tls::join_token::{hashes_equal, secret_hash};
use serde::{Deserialize, Serialize};

/// The longest a token may live.
pub const MAX_TTL: Duration = Duration::from_secs(365 * 24 * 3600);

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
    path: PathBuf,
    /// One read-modify-write at a time.
    lock: Mutex<()>,
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
    #[error("cannot read or write {0}: {1}")]
    File(String, String),
}

impl JoinTokens {
    pub fn new(data_dir: &Path) -> JoinTokens {
        JoinTokens {
            path: data_dir.join("join-tokens.json"),
            lock: Mutex::new(()),
        }
    }

    fn read(&self) -> Result<Vec<TokenRecord>, TokenError> {
        let file = |e: String| TokenError::File(self.path.display().to_string(), e);
        match keel_tls::files::read_optional(&self.path).map_err(|e| file(e.to_string()))? {
            None => Ok(Vec::new()),
            Some(text) => serde_json::from_str(&text).map_err(|e| file(e.to_string())),
        }
    }

    fn guard(&self) -> std::sync::MutexGuard<'_, ()> {
        self.lock.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new token for the CA with `ca_fingerprint`, valid for `ttl`.
    pub fn create(
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
        let _g = self.guard();
        let mut all = self.read()?;
        all.retain(|r| r.expires > now);
        all.push(record.clone());
        let text = serde_json::to_vec_pretty(&all)
            .map_err(|e| TokenError::File(self.path.display().to_string(), e.to_string()))?;
        keel_tls::files::write_private(&self.path, &text)
            .map_err(|e| TokenError::File(self.path.display().to_string(), e.to_string()))?;
        Ok((token, record))
    }

    /// Whether `id` and `secret` are a live token.
    pub fn check(&self, id: &str, secret: &str) -> Result<(), TokenError> {
        let _g = self.guard();
        let all = self.read()?;
        let record = all.iter().find(|r| r.id == id).ok_or(TokenError::Unknown)?;
        if !hashes_equal(&record.secret_sha256, &secret_hash(secret)) {
            return Err(TokenError::Wrong);
        }
        if record.expires <= Utc::now() {
            return Err(TokenError::Expired(record.expires));
        }
        Ok(())
    }

    /// The live tokens (without secrets, which are not kept).
    pub fn list(&self) -> Result<Vec<TokenRecord>, TokenError> {
        let now = Utc::now();
        let _g = self.guard();
        Ok(self
            .read()?
            .into_iter()
            .filter(|r| r.expires > now)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_checked_by_secret_and_expiry() {
        let dir = tempfile::tempdir().unwrap();
        let tokens = JoinTokens::new(dir.path());
        let fp = "0".repeat(64);
        let (t, _) = tokens
            .create(&fp, Duration::from_secs(60), Some("ci".into()))
            .unwrap();
        tokens.check(&t.id, &t.secret).unwrap();
        assert!(matches!(
            tokens.check(&t.id, "0123456789abcdef"),
            Err(TokenError::Wrong)
        ));
        assert!(matches!(
            tokens.check("nosuch", &t.secret),
            Err(TokenError::Unknown)
        ));
        let text = std::fs::read_to_string(dir.path().join("join-tokens.json")).unwrap();
        assert!(!text.contains(&t.secret), "the secret itself is not kept");
        assert_eq!(tokens.list().unwrap().len(), 1);

        let (short, _) = tokens.create(&fp, Duration::from_secs(1), None).unwrap();
        std::thread::sleep(Duration::from_millis(1100));
        assert!(matches!(
            tokens.check(&short.id, &short.secret),
            Err(TokenError::Expired(_))
        ));
        assert!(tokens.create(&fp, Duration::ZERO, None).is_err());
    }
}
