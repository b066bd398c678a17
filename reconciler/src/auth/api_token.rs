//! The HTTP API's bearer token. `keel server` makes an admin token on first start and keeps
//! it in `<data-dir>/admin-token` (mode 0600); the CLI sends it as `Authorization: Bearer`.
//! Every endpoint that changes anything needs it; read endpoints too unless the server runs
//! with `--anonymous-read`. `/healthz` and the webhook (which has its own signature) never do.
//! The check itself is the HTTP API's (`crate::http::auth`).

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;

pub const FILE: &str = "admin-token";

pub struct ApiToken(String);

impl ApiToken {
    /// The admin token in `data_dir`, made when there is none.
    pub fn load_or_create(data_dir: &Path) -> anyhow::Result<Arc<ApiToken>> {
        let path = data_dir.join(FILE);
        if let Some(text) = keel_tls::files::read_optional(&path)? {
            let token = text.trim().to_string();
            anyhow::ensure!(
                token.len() >= 32,
                "{} holds no usable token (fewer than 32 characters); remove it to make a new one",
                path.display()
            );
            return Ok(Arc::new(ApiToken(token)));
        }
        let token = keel_tls::join_token::random_text(40)?;
        keel_tls::files::write_private(&path, format!("{token}\n").as_bytes())
            .with_context(|| format!("cannot write the admin token to {}", path.display()))?;
        tracing::info!(path = %path.display(), "created the API admin token");
        Ok(Arc::new(ApiToken(token)))
    }

    /// The token itself, for a follower asking the leader on a client's behalf (servers
    /// sharing a store share their token).
    pub fn secret(&self) -> &str {
        &self.0
    }

    /// Whether an `Authorization` header value carries this token (compared in constant
    /// time).
    pub fn accepts(&self, header: Option<&str>) -> bool {
        use subtle::ConstantTimeEq;
        let Some(given) = header.and_then(|h| h.strip_prefix("Bearer ")) else {
            return false;
        };
        let given = given.trim().as_bytes();
        given.len() == self.0.len() && bool::from(given.ct_eq(self.0.as_bytes()))
    }
}
