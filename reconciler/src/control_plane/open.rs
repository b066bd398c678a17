//! What the control plane opens before anything runs: the data dir, the store, the
//! repository, the cluster's identity material and both listeners. Any of them failing
//! stops the start with a message saying which.

use std::sync::Arc;

use anyhow::Context;
use keel_store::encryption::SecretCipher;
use keel_store::{Store, StoreSpec};
use tokio::net::TcpListener;

use super::Config;
use crate::auth::api_token::ApiToken;
use crate::auth::pki::ControlPlanePki;
use crate::auth::stored_tokens::StoredTokens;
use crate::source::GitSource;

/// The opened resources.
pub struct Opened {
    pub store: Store,
    pub source: GitSource,
    /// `None` under `--insecure`.
    pub pki: Option<Arc<ControlPlanePki>>,
    pub api_token: Arc<ApiToken>,
    pub join_tokens: Arc<StoredTokens>,
    pub http: TcpListener,
    /// `--tls-listen`'s.
    pub https: Option<TcpListener>,
    pub agents: TcpListener,
}

pub async fn open(config: &Config) -> anyhow::Result<Opened> {
    // Connections, git, the store and logs all take file descriptors; the listeners' caps
    // are sized from this limit.
    let open_files = keel_tls::listen::raise_open_files_limit();
    tracing::debug!(open_files, "open files limit");
    keel_tls::files::private_dir(&config.data_dir)
        .with_context(|| format!("cannot create data dir {}", config.data_dir.display()))?;
    let spec = StoreSpec::parse(config.store.as_deref(), config.data_dir.clone())?;
    let cipher = match &config.encryption_key_file {
        Some(path) => Some(Arc::new(SecretCipher::from_key_file(path)?)),
        None => None,
    };
    let store = Store::open_encrypted(&spec, cipher)
        .await
        .context("cannot open the store")?;
    let mut source = GitSource::new(
        &config.repo,
        &config.data_dir,
        config.branch.clone(),
        config.path.clone(),
    )
    .context("cannot use --repo")?;
    if let Some(path) = &config.sops_age_key_file {
        let keys = keel_sops::AgeKeys::from_file(path).context("cannot use --sops-age-key-file")?;
        tracing::info!(recipients = ?keys.recipients(), "SOPS-encrypted manifests are opened with these age keys");
        source.set_decrypt(Arc::new(keys));
    }
    let pki = if config.insecure {
        tracing::warn!(
            "--insecure: agents connect in plaintext and without certificates; anyone who can \
             reach --agent-listen can register a node, and anyone who can reach an agent can \
             run containers on it. For tests only."
        );
        None
    } else {
        Some(
            ControlPlanePki::load_or_create(&config.data_dir, config.cert_validity)
                .context("cannot set up the cluster's certificates")?,
        )
    };
    let join_tokens = Arc::new(StoredTokens::new(store.clone(), &config.data_dir));
    match join_tokens.move_legacy().await {
        Ok(0) => {}
        Ok(n) => tracing::info!(
            tokens = n,
            "moved the join tokens of join-tokens.json into the store"
        ),
        Err(e) => {
            tracing::warn!(error = %e, "cannot move the join tokens of join-tokens.json into the store")
        }
    }
    Ok(Opened {
        store,
        source,
        pki,
        api_token: ApiToken::load_or_create(&config.data_dir)?,
        join_tokens,
        http: listen(&config.listen, "").await?,
        https: match &config.tls_listen {
            Some(address) => Some(listen(address, " (--tls-listen)").await?),
            None => None,
        },
        agents: listen(&config.agent_listen, " (--agent-listen)").await?,
    })
}

async fn listen(address: &str, flag: &str) -> anyhow::Result<TcpListener> {
    match TcpListener::bind(address).await {
        Ok(l) => Ok(l),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && flag.is_empty() => {
            anyhow::bail!("cannot listen on {address}: {e} (is another keel server running?)")
        }
        Err(e) => anyhow::bail!("cannot listen on {address}{flag}: {e}"),
    }
}
