//! The node's identity: its certificate from the cluster CA, kept in `<data-dir>/pki`
//! (`ca.crt`, `node.crt`, `node.key` mode 0600). The first start trades a join token for it
//! (`Join`, trusting the control plane by the CA fingerprint in the token); later starts load
//! it; before it expires the agent renews it (`Renew`, proving itself with the current one).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use keel_agent_protocol::control_plane_client::ControlPlaneClient;
use keel_agent_protocol::{JoinRequest, RenewRequest};
use keel_tls::config::{ClientAuth, client_config, pinned_client_config, server_config};
use keel_tls::transport::ClientTls;
use keel_tls::{Credentials, Identity, JoinToken, files};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

pub struct NodeIdentity {
    node: String,
    ca: CertificateDer<'static>,
    credentials: Arc<Credentials>,
    dir: PathBuf,
    client: Arc<rustls::ClientConfig>,
    /// Bumped on each renewal, so the status session registers again with the new expiry.
    renewed: tokio::sync::watch::Sender<u64>,
}

impl std::fmt::Debug for NodeIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeIdentity")
            .field("node", &self.node)
            .field("expires", &self.expires())
            .finish()
    }
}

/// Why the agent cannot get its identity; `Fatal` ones will not go away by retrying.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("{0}")]
    Fatal(String),
    #[error("{0}")]
    Retry(String),
}

impl NodeIdentity {
    /// The node's identity from `data_dir`, or from joining the control plane at `server`
    /// with `token` (also when the token names another CA than the stored one: the cluster
    /// was made anew). Waits for an unreachable control plane.
    pub async fn obtain(
        data_dir: &Path,
        node: &str,
        server: &str,
        token: Option<&str>,
    ) -> anyhow::Result<Arc<NodeIdentity>> {
        let dir = data_dir.join("pki");
        let token = token.map(JoinToken::parse).transpose()?;
        if let Some(identity) = Self::load(&dir, node, token.as_ref())? {
            return Ok(identity);
        }
        let Some(token) = token else {
            anyhow::bail!(
                "this node has no certificate in {} yet: give --token with a join token \
                 (make one on the control plane with `keel token create`)",
                dir.display()
            );
        };
        let mut delay = Duration::from_millis(250);
        // Only the leader takes joins: each round asks every server once.
        'rounds: loop {
            for server in super::endpoint::servers(server) {
                match join(&server, node, &token, &dir).await {
                    Ok(()) => break 'rounds,
                    Err(IdentityError::Fatal(m)) => anyhow::bail!("cannot join the cluster: {m}"),
                    Err(IdentityError::Retry(m)) => {
                        tracing::warn!(server, error = %m, "cannot join the cluster there yet (is the control plane up, leading, and not running --insecure?)");
                    }
                }
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(10));
        }
        Self::load(&dir, node, Some(&token))?
            .context("the certificate just written cannot be read back")
    }

    /// The stored identity, if there is a usable one.
    fn load(
        dir: &Path,
        node: &str,
        token: Option<&JoinToken>,
    ) -> anyhow::Result<Option<Arc<NodeIdentity>>> {
        files::recover_key_pair(&dir.join("node.key"), &dir.join("node.crt"))?;
        let (Some(ca), Some(cert), Some(key)) = (
            files::read_optional(&dir.join("ca.crt"))?,
            files::read_optional(&dir.join("node.crt"))?,
            files::read_optional(&dir.join("node.key"))?,
        ) else {
            return Ok(None);
        };
        let ca = CertificateDer::from_pem_slice(ca.as_bytes())
            .map_err(|e| anyhow::anyhow!("{}: {e}", dir.join("ca.crt").display()))?;
        if let Some(t) = token
            && keel_tls::ca::fingerprint(&ca) != t.ca_fingerprint
        {
            tracing::info!(
                "the join token is for another cluster CA than the stored one; joining again"
            );
            return Ok(None);
        }
        let credentials = match Credentials::from_pem(&cert, &key) {
            Ok(c) => c,
            // Half-written (a crash between the two files) or damaged: a token joins again.
            Err(e) if token.is_some() => {
                tracing::warn!(error = %e, "the stored node certificate is unusable; joining again with the token");
                return Ok(None);
            }
            Err(e) => {
                return Err(anyhow::Error::new(e))
                    .with_context(|| format!("the node certificate in {}", dir.display()));
            }
        };
        let leaf = credentials.leaf();
        let whose = Identity::of_certificate(&leaf);
        if whose != Some(Identity::Node(node.to_string())) {
            anyhow::bail!(
                "{} is not a certificate of node {node:?} (it is {}); use this node's own data dir",
                dir.join("node.crt").display(),
                whose
                    .map(|w| w.to_string())
                    .unwrap_or_else(|| "not keel's".into())
            );
        }
        if let Some((_, until)) = credentials.validity()
            && until <= chrono::Utc::now().timestamp()
        {
            if token.is_some() {
                tracing::info!("the node certificate has expired; joining again with the token");
                return Ok(None);
            }
            anyhow::bail!(
                "the node certificate in {} expired at {}; give --token with a new join token",
                dir.display(),
                chrono::DateTime::from_timestamp(until, 0)
                    .map(|t| t.to_rfc3339())
                    .unwrap_or_default()
            );
        }
        let client = client_config(&ca, Some(credentials.clone()))?;
        Ok(Some(Arc::new(NodeIdentity {
            node: node.to_string(),
            ca,
            credentials,
            dir: dir.to_path_buf(),
            client,
            renewed: tokio::sync::watch::channel(0).0,
        })))
    }

    /// The agent's server: only clients with a certificate from the cluster CA get past the
    /// handshake (the service then insists on the control plane's).
    pub fn server_config(&self) -> anyhow::Result<Arc<rustls::ServerConfig>> {
        Ok(server_config(
            &self.ca,
            self.credentials.clone(),
            ClientAuth::Required,
        )?)
    }

    /// For dialing the control plane.
    pub fn control_plane_tls(&self) -> anyhow::Result<ClientTls> {
        Ok(ClientTls {
            config: self.client.clone(),
            server_name: Identity::ControlPlane.server_name()?,
        })
    }

    /// When the node's certificate expires.
    pub fn expires(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        self.credentials
            .validity()
            .and_then(|(_, until)| chrono::DateTime::from_timestamp(until, 0))
    }

    pub fn renewals(&self) -> tokio::sync::watch::Receiver<u64> {
        self.renewed.subscribe()
    }

    /// Renews the certificate when a third of its life is left; checks every tenth of its
    /// lifetime (at most hourly), retrying failures with the next check.
    pub async fn renew_loop(self: Arc<Self>, server: String) {
        loop {
            let Some((from, until)) = self.credentials.validity() else {
                return;
            };
            let every = Duration::from_secs(((until - from).max(10) / 10) as u64)
                .min(Duration::from_secs(3600));
            if keel_tls::renewal_due(from, until, chrono::Utc::now().timestamp()) {
                match self.renew(&server).await {
                    Ok(()) => {
                        tracing::info!(expires = ?self.expires(), "renewed the node certificate");
                        self.renewed.send_modify(|n| *n += 1);
                        if let Some((from, until)) = self.credentials.validity()
                            && keel_tls::renewal_due(from, until, chrono::Utc::now().timestamp())
                        {
                            tracing::warn!(
                                "the renewed certificate is already due for renewal: is this machine's clock ahead of the control plane's?"
                            );
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %format!("{e:#}"), expires = ?self.expires(), "cannot renew the node certificate yet")
                    }
                }
            }
            tokio::time::sleep(every).await;
        }
    }

    /// Renews at the first server that does it (any server signs with the cluster CA, but
    /// one may be down).
    async fn renew(&self, servers: &str) -> anyhow::Result<()> {
        let mut last = anyhow::anyhow!("--server names no address");
        for server in super::endpoint::servers(servers) {
            match self.renew_at(&server).await {
                Ok(()) => return Ok(()),
                Err(e) => last = e.context(format!("at {server}")),
            }
        }
        Err(last)
    }

    async fn renew_at(&self, server: &str) -> anyhow::Result<()> {
        let (key, csr) = keel_tls::ca::new_key_and_request()?;
        let channel = keel_tls::transport::connect(
            super::endpoint::endpoint(server)?,
            Some(self.control_plane_tls()?),
        )
        .await?;
        let cert = ControlPlaneClient::new(channel)
            .renew(RenewRequest { csr })
            .await
            .map_err(|s| anyhow::anyhow!("{}", s.message()))?
            .into_inner()
            .certificate;
        let new = Credentials::from_pem(&cert, &key)?;
        anyhow::ensure!(
            Identity::of_certificate(&new.leaf()) == Some(Identity::Node(self.node.clone())),
            "the control plane renewed the certificate for another identity"
        );
        files::write_key_pair(
            &self.dir.join("node.key"),
            key.as_bytes(),
            &self.dir.join("node.crt"),
            cert.as_bytes(),
        )?;
        self.credentials.replace(&cert, &key)?;
        Ok(())
    }
}

/// One `Join`: a new key, its certificate for `node`, and the CA, written to `dir`.
async fn join(
    server: &str,
    node: &str,
    token: &JoinToken,
    dir: &Path,
) -> Result<(), IdentityError> {
    let fatal = |m: String| IdentityError::Fatal(m);
    let (key, csr) = keel_tls::ca::new_key_and_request().map_err(|e| fatal(e.to_string()))?;
    let tls = ClientTls {
        config: pinned_client_config(&token.ca_fingerprint).map_err(|e| fatal(e.to_string()))?,
        server_name: Identity::ControlPlane
            .server_name()
            .map_err(|e| fatal(e.to_string()))?,
    };
    let endpoint = super::endpoint::endpoint(server).map_err(|e| fatal(e.to_string()))?;
    let channel = keel_tls::transport::connect(endpoint, Some(tls))
        .await
        .map_err(|e| {
            let mut m = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                m = format!("{m}: {s}");
                source = s.source();
            }
            IdentityError::Retry(m)
        })?;
    let answer = ControlPlaneClient::new(channel)
        .join(JoinRequest {
            node_name: node.to_string(),
            token_id: token.id.clone(),
            token_secret: token.secret.clone(),
            csr,
        })
        .await
        .map_err(|s| match s.code() {
            // A connection the server closed mid-call (busy, restarting, or shedding
            // certificate-less connections under a flood) is tried again.
            tonic::Code::Unavailable
            | tonic::Code::DeadlineExceeded
            | tonic::Code::Unknown
            | tonic::Code::Cancelled => IdentityError::Retry(s.message().to_string()),
            _ => IdentityError::Fatal(s.message().to_string()),
        })?
        .into_inner();
    let ca = CertificateDer::from_pem_slice(answer.ca_certificate.as_bytes())
        .map_err(|e| fatal(format!("the control plane sent an unreadable CA: {e}")))?;
    if keel_tls::ca::fingerprint(&ca) != token.ca_fingerprint {
        return Err(fatal(
            "the control plane sent a CA other than the join token's".into(),
        ));
    }
    let write = |name: &str, text: &str, private: bool| {
        let path = dir.join(name);
        let r = if private {
            files::write_private(&path, text.as_bytes())
        } else {
            files::write_public(&path, text.as_bytes())
        };
        r.map_err(|e| fatal(e.to_string()))
    };
    // The CA first: a pair without its CA is unusable, a CA without a pair is joined again.
    write("ca.crt", &answer.ca_certificate, false)?;
    files::write_key_pair(
        &dir.join("node.key"),
        key.as_bytes(),
        &dir.join("node.crt"),
        answer.certificate.as_bytes(),
    )
    .map_err(|e| fatal(e.to_string()))?;
    tracing::info!(node, dir = %dir.display(), "joined the cluster: node certificate stored");
    Ok(())
}
