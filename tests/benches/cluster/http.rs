//! The bench's HTTP client: one connection kept open in this process. Polling with a `curl`
//! process every few milliseconds (a pod's deletion, the Deployment's status) cost the
//! machine about 7 ms of CPU per look, taken from the control plane being measured, and
//! added a process start to every latency timed.

use std::sync::OnceLock;
use std::time::Duration;

use serde_json::Value;

struct Client {
    runtime: tokio::runtime::Runtime,
    http: reqwest::Client,
}

fn client() -> &'static Client {
    static CLIENT: OnceLock<Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        // reqwest is built without a TLS provider of its own (plain http here anyway).
        let _ = rustls::crypto::ring::default_provider().install_default();
        Client {
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a tokio runtime for the bench's HTTP client"),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                // Below the server's 10 s wait for a kept-alive connection's next request
                // (`HEADER_TIMEOUT` in reconciler/src/http/serve.rs): after the bench's idle
                // minute, a connection the server had closed was reused and the look failed
                // (and the resync count read as none).
                .pool_idle_timeout(Duration::from_secs(5))
                .build()
                .expect("an HTTP client"),
        }
    })
}

/// The body of a successful `GET url`, or none (any error or non-2xx status).
pub fn get_bytes(url: &str) -> Option<Vec<u8>> {
    let c = client();
    c.runtime.block_on(async {
        let response = c.http.get(url).send().await.ok()?;
        if !response.status().is_success() {
            return None;
        }
        Some(response.bytes().await.ok()?.to_vec())
    })
}

/// `GET url` as JSON, or none.
pub fn get(url: &str) -> Option<Value> {
    serde_json::from_slice(&get_bytes(url)?).ok()
}

/// `DELETE url` with a bearer token; whether it succeeded.
pub fn delete(url: &str, token: &str) -> bool {
    let c = client();
    c.runtime.block_on(async {
        c.http
            .delete(url)
            .bearer_auth(token)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
    })
}
