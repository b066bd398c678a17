//! Delivery: one queue and worker per target, so a target that is down delays only its own
//! events, in order; each request retried with backoff; what happened kept for `keel
//! status` and `/metrics`. Nothing here ever waits on the sync loop or holds it up.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use keel_api::status::NotificationStatus;
use tokio::sync::mpsc;

use super::request::Request;

/// Events waiting for one target; past this, new ones are dropped (and counted).
pub const QUEUE: usize = 256;
/// Tries per request: the first, and retries after 1, 2, 4, 8 and 16 s.
pub const ATTEMPTS: u32 = 6;
/// How long one request may take.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// A target's worker: where its requests go, and how it has fared.
pub struct Worker {
    pub tx: mpsc::Sender<Request>,
    pub state: Arc<Mutex<NotificationStatus>>,
}

/// Starts the worker for the target named `name`.
pub fn spawn(name: &str, base_delay: Duration) -> Worker {
    let (tx, mut rx) = mpsc::channel::<Request>(QUEUE);
    let state = Arc::new(Mutex::new(NotificationStatus {
        target: name.to_string(),
        ..Default::default()
    }));
    let shared = state.clone();
    let client = keel_api::client::http_client();
    tokio::spawn(async move {
        while let Some(request) = rx.recv().await {
            let outcome = send_with_retries(&client, &request, base_delay).await;
            let mut s = shared.lock().unwrap_or_else(|p| p.into_inner());
            match outcome {
                Ok(()) => {
                    s.sent += 1;
                    s.consecutive_failures = 0;
                }
                Err(e) => {
                    tracing::warn!(target = %s.target, url = %request.url, error = %e, "a notification could not be delivered");
                    s.failed += 1;
                    s.consecutive_failures += 1;
                    s.last_error = Some(e);
                    s.last_error_at = Some(chrono::Utc::now());
                }
            }
        }
    });
    Worker { tx, state }
}

async fn send_with_retries(
    client: &reqwest::Client,
    request: &Request,
    base_delay: Duration,
) -> Result<(), String> {
    let mut delay = base_delay;
    let mut last = String::new();
    for attempt in 1..=ATTEMPTS {
        match send(client, request).await {
            Ok(()) => return Ok(()),
            // A request the service refuses as malformed or unauthorised is not retried.
            Err((e, false)) => return Err(e),
            Err((e, true)) => last = e,
        }
        if attempt < ATTEMPTS {
            tokio::time::sleep(delay).await;
            delay *= 2;
        }
    }
    Err(format!("{last} (after {ATTEMPTS} tries)"))
}

/// One try: `Err((why, worth retrying))`.
async fn send(client: &reqwest::Client, request: &Request) -> Result<(), (String, bool)> {
    let mut builder = client
        .post(&request.url)
        .timeout(TIMEOUT)
        .body(request.body.clone());
    for (name, value) in &request.headers {
        builder = builder.header(name, value);
    }
    let response = builder.send().await.map_err(|e| {
        (
            format!("cannot reach {}: {}", request.url, without_url(e)),
            true,
        )
    })?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    // 408, 429 and 5xx are the service's trouble; other 4xx are the request's.
    let retry = status.is_server_error() || status.as_u16() == 408 || status.as_u16() == 429;
    Err((format!("{} answered {status}", request.url), retry))
}

fn without_url(e: reqwest::Error) -> String {
    let e = e.without_url().to_string();
    e.chars().take(200).collect()
}
