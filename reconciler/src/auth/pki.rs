//! The control plane's side of the cluster PKI: the CA in `<data-dir>/pki` (made on first
//! start), the control plane's own certificate (served to agents, and presented when it
//! dials them), renewed before it expires, and node certificates signed on join and renewal.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use keel_tls::config::{ClientAuth, client_config, server_config};
use keel_tls::transport::ClientTls;
use keel_tls::{ClusterCa, Credentials, Identity, files};

pub struct ControlPlanePki {
    ca: ClusterCa,
    credentials: Arc<Credentials>,
    validity: Duration,
    dir: PathBuf,
    server: Arc<rustls::ServerConfig>,
    client: Arc<rustls::ClientConfig>,
    /// The HTTP API's serving certificate (`--tls-listen`): its names and credentials.
    api: std::sync::Mutex<Option<(Vec<String>, Arc<Credentials>)>>,
}

impl ControlPlanePki {
    /// The PKI in `data_dir`, made or completed as needed; certificates it issues last
    /// `validity`.
    pub fn load_or_create(data_dir: &Path, validity: Duration) -> anyhow::Result<Arc<Self>> {
        let dir = keel_tls::ca::pki_dir(data_dir);
        let ca = ClusterCa::load_or_create(&dir).context("the cluster CA")?;
        let (cert, key) = match own_certificate(&dir, &ca)? {
            Some(pair) => pair,
            None => issue_own(&dir, &ca, validity)?,
        };
        let credentials = Credentials::from_pem(&cert, &key)?;
        let server = server_config(ca.cert_der(), credentials.clone(), ClientAuth::Optional)?;
        let client = client_config(ca.cert_der(), Some(credentials.clone()))?;
        Ok(Arc::new(ControlPlanePki {
            ca,
            credentials,
            validity,
            dir,
            server,
            client,
            api: Default::default(),
        }))
    }

    pub fn ca_fingerprint(&self) -> String {
        self.ca.fingerprint()
    }

    /// For the agents' API (`Join` needs no client certificate; other calls check theirs).
    pub fn server_config(&self) -> Arc<rustls::ServerConfig> {
        self.server.clone()
    }

    /// For dialing `node`'s agent: its certificate must name that node.
    pub fn agent_tls(&self, node: &str) -> anyhow::Result<ClientTls> {
        Ok(ClientTls {
            config: self.client.clone(),
            server_name: Identity::Node(node.to_string()).server_name()?,
        })
    }

    /// A certificate (PEM, leaf then CA) for `node` from its signing request.
    pub fn sign_node(&self, csr: &[u8], node: &str) -> Result<String, keel_tls::Error> {
        let leaf = self
            .ca
            .sign_request(csr, &Identity::Node(node.to_string()), self.validity)?;
        Ok(leaf)
    }

    /// The HTTPS configuration of the HTTP API at `names` (DNS names and addresses): a
    /// certificate from the cluster CA, kept in memory only (clients trust the CA, never
    /// this leaf) and renewed with the control plane's.
    pub fn api_server_config(&self, names: &[String]) -> anyhow::Result<Arc<rustls::ServerConfig>> {
        let (cert, key) = self.ca.issue_serving(names, self.validity)?;
        let credentials = Credentials::from_pem(&format!("{cert}{}", self.ca.cert_pem()), &key)?;
        *self.api.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((names.to_vec(), credentials.clone()));
        Ok(keel_tls::config::https_server_config(credentials)?)
    }

    pub fn ca_pem(&self) -> &str {
        self.ca.cert_pem()
    }

    /// Re-issues the control plane's certificate when a third of its life is left.
    pub fn renew_if_due(&self) -> anyhow::Result<bool> {
        let Some((from, until)) = self.credentials.validity() else {
            return Ok(false);
        };
        if !keel_tls::renewal_due(from, until, chrono::Utc::now().timestamp()) {
            return Ok(false);
        }
        let (cert, key) = issue_own(&self.dir, &self.ca, self.validity)?;
        self.credentials.replace(&cert, &key)?;
        let api = self.api.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some((names, credentials)) = api {
            let (cert, key) = self.ca.issue_serving(&names, self.validity)?;
            credentials.replace(&format!("{cert}{}", self.ca.cert_pem()), &key)?;
        }
        tracing::info!("renewed the control plane's certificates");
        Ok(true)
    }

    /// Checks for renewal every tenth of the certificates' lifetime (at most hourly).
    pub async fn renew_loop(self: Arc<Self>, stop: tokio_util::sync::CancellationToken) {
        let every = (self.validity / 10).clamp(Duration::from_secs(1), Duration::from_secs(3600));
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stop.cancelled() => return,
            }
            if let Err(e) = self.renew_if_due() {
                tracing::error!(error = %format!("{e:#}"), "cannot renew the control plane's certificate");
            }
        }
    }
}

/// The control plane's certificate and key from `dir`, if present, from this CA and not due
/// for renewal.
fn own_certificate(dir: &Path, ca: &ClusterCa) -> anyhow::Result<Option<(String, String)>> {
    files::recover_key_pair(
        &dir.join("control-plane.key"),
        &dir.join("control-plane.crt"),
    )?;
    let (Some(cert), Some(key)) = (
        files::read_optional(&dir.join("control-plane.crt"))?,
        files::read_optional(&dir.join("control-plane.key"))?,
    ) else {
        return Ok(None);
    };
    let Ok(credentials) = Credentials::from_pem(&cert, &key) else {
        tracing::warn!("the control plane's certificate files are unreadable; issuing new ones");
        return Ok(None);
    };
    let from_this_ca = cert.contains(ca.cert_pem().trim());
    let fresh = credentials.validity().is_some_and(|(from, until)| {
        !keel_tls::renewal_due(from, until, chrono::Utc::now().timestamp())
    });
    Ok((from_this_ca && fresh).then_some((cert, key)))
}

/// Issues and writes the control plane's certificate: the chain is leaf then CA, so a
/// joining agent (which knows only the CA's fingerprint) sees the CA it must pin.
fn issue_own(dir: &Path, ca: &ClusterCa, validity: Duration) -> anyhow::Result<(String, String)> {
    let (leaf, key) = ca.issue_with_key(&Identity::ControlPlane, validity)?;
    let chain = format!("{leaf}{}", ca.cert_pem());
    files::write_key_pair(
        &dir.join("control-plane.key"),
        key.as_bytes(),
        &dir.join("control-plane.crt"),
        chain.as_bytes(),
    )?;
    Ok((chain, key))
}
