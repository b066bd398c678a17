//! The typed client of a keel server's API: one place requests are built, answers decoded
//! and refusals turned into errors that say what the server said.
//!
//! reqwest is built with rustls and no built-in crypto provider (the workspace uses ring), so
//! every HTTP client is made by [`http_client`], which installs ring first: a client built
//! without a provider would panic.

use std::time::Duration;

use keel_schema::{Kind, Object, SyncRecord};
use serde::de::DeserializeOwned;

use crate::errors::ErrorBody;
use crate::lists::ObjectList;
use crate::paths;
use crate::plan::{PlanReport, PlanRequest};
use crate::status::SyncStatus;
use crate::tokens::{CreateToken, CreatedToken, TokenInfo, TokenList};

/// An HTTP client with ring installed as rustls' provider (for anything, keel or not).
pub fn http_client() -> reqwest::Client {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Fails only when a provider is already installed, which is as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
    reqwest::Client::new()
}

/// A client that never follows redirects: for asking a server to prove itself, where a
/// redirect would let another program pass the question on.
pub fn http_client_without_redirects() -> reqwest::Client {
    let _ = http_client();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_default()
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("--server {server:?}: {reason}")]
    BadServer { server: String, reason: String },
    #[error("cannot reach the keel server at {server}: {source}")]
    Unreachable {
        server: String,
        #[source]
        source: reqwest::Error,
    },
    /// The server answered with an error status; `reason` and `message` are its own.
    #[error("Error from server ({reason}): {message}")]
    Refused {
        status: u16,
        reason: String,
        message: String,
    },
    #[error("{url}: the server's answer is not {expected}: {source}")]
    Unreadable {
        url: String,
        expected: &'static str,
        #[source]
        source: reqwest::Error,
    },
}

impl ClientError {
    /// The server refused the request for its credentials (401).
    pub fn is_unauthorized(&self) -> bool {
        matches!(self, ClientError::Refused { status: 401, .. })
    }
}

pub type Result<T, E = ClientError> = std::result::Result<T, E>;

/// What `keel logs` asks for.
#[derive(Debug, Clone, Default)]
pub struct LogOptions {
    pub container: Option<String>,
    pub follow: bool,
    pub previous: bool,
    pub tail_lines: Option<u32>,
}

/// A client of one keel server. Cheap to clone.
#[derive(Clone)]
pub struct Client {
    server: String,
    base: reqwest::Url,
    http: reqwest::Client,
    /// Bounds each request that is not a stream (`keel up` polls; verbs wait as long as the
    /// server takes).
    timeout: Option<Duration>,
}

impl Client {
    /// A client of the server at `server` (a URL), sending `token` as its bearer token.
    pub fn new(server: &str, token: Option<&str>) -> Result<Client> {
        let bad = |reason: String| ClientError::BadServer {
            server: server.to_string(),
            reason,
        };
        let base =
            reqwest::Url::parse(server.trim_end_matches('/')).map_err(|e| bad(e.to_string()))?;
        if base.cannot_be_a_base() {
            return Err(bad("not a URL that can take a path".into()));
        }
        let _ = http_client();
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(token) = token
            && let Ok(mut value) =
                reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
        {
            value.set_sensitive(true);
            headers.insert(reqwest::header::AUTHORIZATION, value);
        }
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .build()
            .map_err(|e| bad(e.to_string()))?;
        Ok(Client {
            server: server.to_string(),
            base,
            http,
            timeout: None,
        })
    }

    /// The same client, bounding each request (streams aside) by `timeout`.
    pub fn with_timeout(mut self, timeout: Duration) -> Client {
        self.timeout = Some(timeout);
        self
    }

    /// The server as given.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// The server's URL for `path` (segments already escaped).
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base.as_str().trim_end_matches('/'))
    }

    fn bounded(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match self.timeout {
            Some(t) => request.timeout(t),
            None => request,
        }
    }

    /// Sends `request`; the answer, or the server's refusal as an error.
    async fn send(&self, request: reqwest::RequestBuilder) -> Result<reqwest::Response> {
        let response = request
            .send()
            .await
            .map_err(|source| ClientError::Unreachable {
                server: self.server.clone(),
                source,
            })?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let body: ErrorBody = response.json().await.unwrap_or_default();
        Err(ClientError::Refused {
            status: status.as_u16(),
            reason: body.reason.clone().unwrap_or_else(|| "Error".into()),
            message: body.message_or(&status.to_string()),
        })
    }

    async fn decode<T: DeserializeOwned>(
        &self,
        url: String,
        request: reqwest::RequestBuilder,
        expected: &'static str,
    ) -> Result<T> {
        let response = self.send(self.bounded(request)).await?;
        response
            .json()
            .await
            .map_err(|source| ClientError::Unreadable {
                url,
                expected,
                source,
            })
    }

    async fn get<T: DeserializeOwned>(&self, path: &str, expected: &'static str) -> Result<T> {
        let url = self.url(path);
        self.decode(url.clone(), self.http.get(&url), expected)
            .await
    }

    /// Whether the server answers `/healthz` (no token needed).
    pub async fn healthy(&self) -> bool {
        let request = self.http.get(self.url(paths::HEALTHZ));
        self.send(self.bounded(request)).await.is_ok()
    }

    /// One object of `kind` (`namespace` for namespaced kinds).
    pub async fn object(&self, kind: Kind, namespace: &str, name: &str) -> Result<Object> {
        let path = paths::objects(kind, Some(namespace), Some(name));
        let mut object = self.get(&path, "an object").await?;
        crate::show_redacted(&mut object);
        Ok(object)
    }

    /// Objects of `kind`, in `namespace` or (None) every namespace.
    pub async fn list(&self, kind: Kind, namespace: Option<&str>) -> Result<Vec<Object>> {
        let path = paths::objects(kind, namespace, None);
        let mut list: ObjectList = self.get(&path, "a list of objects").await?;
        list.items.iter_mut().for_each(crate::show_redacted);
        Ok(list.items)
    }

    /// Each pod's containers' use, in `namespace` or (None) every namespace.
    pub async fn pod_metrics(
        &self,
        namespace: Option<&str>,
    ) -> Result<Vec<crate::metrics::PodMetrics>> {
        let path = match namespace {
            Some(ns) => format!("{}/namespaces/{ns}/pods", crate::metrics::BASE),
            None => format!("{}/pods", crate::metrics::BASE),
        };
        let list: crate::metrics::MetricsList<_> = self.get(&path, "pod metrics").await?;
        Ok(list.items)
    }

    /// Each node's use.
    pub async fn node_metrics(&self) -> Result<Vec<crate::metrics::NodeMetrics>> {
        let path = format!("{}/nodes", crate::metrics::BASE);
        let list: crate::metrics::MetricsList<_> = self.get(&path, "node metrics").await?;
        Ok(list.items)
    }

    pub async fn status(&self) -> Result<SyncStatus> {
        self.get(paths::STATUS, "a sync status").await
    }

    /// The revisions the server attempted, newest first.
    pub async fn history(&self, limit: u16) -> Result<Vec<SyncRecord>> {
        self.get(&format!("{}?limit={limit}", paths::HISTORY), "a history")
            .await
    }

    /// The objects applied from git (Secret values redacted).
    pub async fn applied(&self) -> Result<Vec<Object>> {
        let mut list: ObjectList = self.get(paths::APPLIED, "a list of objects").await?;
        list.items.iter_mut().for_each(crate::show_redacted);
        Ok(list.items)
    }

    pub async fn plan(&self, request: &PlanRequest) -> Result<PlanReport> {
        let url = self.url(paths::PLAN);
        self.decode(url.clone(), self.http.post(&url).json(request), "a plan")
            .await
    }

    pub async fn create_token(&self, request: &CreateToken) -> Result<CreatedToken> {
        let url = self.url(paths::TOKENS);
        self.decode(url.clone(), self.http.post(&url).json(request), "a token")
            .await
    }

    /// A one-time sign-in path of the web UI, for this client's token (`keel ui`).
    pub async fn ui_login(&self) -> Result<crate::ui::UiLogin> {
        let url = self.url(paths::UI_LOGIN);
        self.decode(url.clone(), self.http.post(&url), "a sign-in link")
            .await
    }

    pub async fn tokens(&self) -> Result<Vec<TokenInfo>> {
        let list: TokenList = self.get(paths::TOKENS, "a list of tokens").await?;
        Ok(list.items)
    }

    /// Deletes join token `id` (`keel token delete`).
    pub async fn delete_token(&self, id: &str) -> Result<()> {
        let path = paths::TOKEN.replace("{id}", id);
        let request = self.http.delete(self.url(&path));
        self.send(self.bounded(request)).await.map(|_| ())
    }

    /// Deletes a node that is gone, freeing its pod range (`keel delete node`).
    pub async fn delete_node(&self, name: &str) -> Result<()> {
        let path = paths::NODE.replace("{name}", name);
        let request = self.http.delete(self.url(&path));
        self.send(self.bounded(request)).await.map(|_| ())
    }

    /// A container's log as it streams from the server (which asks the pod's agent).
    pub async fn pod_log(
        &self,
        namespace: &str,
        pod: &str,
        options: &LogOptions,
    ) -> Result<LogStream> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|()| ClientError::BadServer {
                server: self.server.clone(),
                reason: "cannot take a path".into(),
            })?
            .extend(["api", "v1", "namespaces", namespace, "pods", pod, "log"]);
        {
            let mut q = url.query_pairs_mut();
            if let Some(c) = &options.container {
                q.append_pair("container", c);
            }
            if options.follow {
                q.append_pair("follow", "true");
            }
            if options.previous {
                q.append_pair("previous", "true");
            }
            if let Some(n) = options.tail_lines {
                q.append_pair("tailLines", &n.to_string());
            }
        }
        let response = self.send(self.http.get(url)).await?;
        Ok(LogStream { response })
    }
}

/// A log as it arrives.
pub struct LogStream {
    response: reqwest::Response,
}

impl LogStream {
    /// The next piece, or `None` at the end.
    pub async fn next(&mut self) -> Result<Option<bytes::Bytes>> {
        let server = self.response.url().origin().ascii_serialization();
        self.response
            .chunk()
            .await
            .map_err(|source| ClientError::Unreachable { server, source })
    }
}
