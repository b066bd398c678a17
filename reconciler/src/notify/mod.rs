//! Notifications: what happens to each revision (started, applied, failed) and to the health
//! of what it declares (healthy, degraded), sent to the targets its `keel.yaml` names under
//! `notify:` — signed webhooks, and commit statuses on GitHub or GitLab.
//!
//! Sending never blocks an apply: events are queued per target and delivered by that
//! target's worker, retried with backoff; failures show in `keel status` and `/metrics`.
//! Tokens and HMAC keys are files in the server's `--notify-secrets-dir`, named (not
//! located) by `keel.yaml`; an API token lives under the folder of the host it is for
//! (`DIR/api.github.com/NAME`), so a commit naming another URL cannot have it sent there.
//!
//! # Layout
//! - this file: [`Notifier`], the events' way in; [`request`]: the request per target and
//!   event; [`deliver`]: queues, workers and retries; [`health`]: a revision's health as
//!   it changes.

pub mod deliver;
pub mod health;
pub mod request;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use keel_api::status::NotificationStatus;
use keel_schema::repo_config::{NotifyEvent, NotifyTarget};

use crate::source::CommitInfo;
pub use request::Event;

/// The events' way in. Cheap to clone.
#[derive(Clone, Default)]
pub struct Notifier {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    secrets_dir: Option<PathBuf>,
    /// Workers by target (name and where it sends), made as targets first get events.
    workers: Mutex<HashMap<String, deliver::Worker>>,
    /// The first retry's delay (doubling after); short in tests.
    base_delay: Duration,
}

impl Notifier {
    pub fn new(secrets_dir: Option<PathBuf>) -> Notifier {
        Notifier::with_retry_delay(secrets_dir, Duration::from_secs(1))
    }

    pub fn with_retry_delay(secrets_dir: Option<PathBuf>, base_delay: Duration) -> Notifier {
        Notifier {
            inner: Arc::new(Inner {
                secrets_dir,
                workers: Mutex::new(HashMap::new()),
                base_delay,
            }),
        }
    }

    /// Queues `event` about `commit` for each of `targets` that wants it. Never waits.
    pub fn send(
        &self,
        targets: &[NotifyTarget],
        event: NotifyEvent,
        branch: &str,
        commit: &CommitInfo,
        detail: Option<String>,
    ) {
        if targets.is_empty() {
            return;
        }
        let event = Event {
            event,
            branch: branch.to_string(),
            commit: commit.id.clone(),
            message: commit.summary.clone(),
            author: commit.author.clone(),
            detail,
            time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        };
        for (i, target) in targets.iter().enumerate() {
            let name = target.name(i);
            let secret = match self.secret(target) {
                Ok(s) => s,
                Err(e) => {
                    self.failed(&name, e);
                    continue;
                }
            };
            let Some(request) = request::build(target, &event, secret.as_deref()) else {
                continue;
            };
            // One worker per target (its name and host): a commit's status URL changes with
            // every commit, its queue does not.
            let key = format!("{name} {}", host(&request.url).unwrap_or_default());
            let mut workers = self.inner.workers.lock().unwrap_or_else(|p| p.into_inner());
            let worker = workers
                .entry(key)
                .or_insert_with(|| deliver::spawn(&name, self.inner.base_delay));
            if worker.tx.try_send(request).is_err() {
                let mut s = worker.state.lock().unwrap_or_else(|p| p.into_inner());
                s.dropped += 1;
            }
        }
    }

    /// Each target's deliveries so far, by name (a target moved to another host, or whose
    /// secret was missing, adds up under its one name).
    pub fn statuses(&self) -> Vec<NotificationStatus> {
        let workers = self.inner.workers.lock().unwrap_or_else(|p| p.into_inner());
        let mut by_name: std::collections::BTreeMap<String, NotificationStatus> =
            Default::default();
        for w in workers.values() {
            let s = w.state.lock().unwrap_or_else(|p| p.into_inner()).clone();
            let total = by_name
                .entry(s.target.clone())
                .or_insert_with(|| NotificationStatus {
                    target: s.target.clone(),
                    ..Default::default()
                });
            total.sent += s.sent;
            total.failed += s.failed;
            total.dropped += s.dropped;
            total.consecutive_failures = total.consecutive_failures.max(s.consecutive_failures);
            if s.last_error_at > total.last_error_at {
                total.last_error = s.last_error;
                total.last_error_at = s.last_error_at;
            }
        }
        by_name.into_values().collect()
    }

    /// The secret a target names, read from `--notify-secrets-dir`: a webhook's HMAC key
    /// from `DIR/NAME`; an API token from `DIR/HOST/NAME`, so a token goes only to the host
    /// the operator put it under, whatever URL a commit gives.
    fn secret(&self, target: &NotifyTarget) -> Result<Option<String>, String> {
        let (name, host) = if let Some(w) = &target.webhook {
            (w.secret.clone(), None)
        } else if let Some(g) = target.github.as_ref() {
            (
                Some(g.token.clone()),
                Some(api_host(g.url.as_deref(), "api.github.com")),
            )
        } else if let Some(g) = target.gitlab.as_ref() {
            (
                Some(g.token.clone()),
                Some(api_host(g.url.as_deref(), "gitlab.com")),
            )
        } else {
            (None, None)
        };
        let Some(name) = name else { return Ok(None) };
        // A name, never a path (keel.yaml is checked too; this holds whatever it says).
        let plain = std::path::Path::new(&name)
            .file_name()
            .and_then(|n| n.to_str())
            == Some(name.as_str());
        if !plain || name.starts_with('.') {
            return Err(format!("the secret {name:?} is not a file name"));
        }
        let Some(dir) = &self.inner.secrets_dir else {
            return Err(format!(
                "keel.yaml names the secret {name:?}, but the server was started without --notify-secrets-dir"
            ));
        };
        let path = match host {
            Some(Some(host)) => dir.join(&host).join(&name),
            Some(None) => return Err("the target's url has no host".into()),
            None => dir.join(&name),
        };
        let shown = path
            .strip_prefix(dir)
            .unwrap_or(&path)
            .display()
            .to_string();
        std::fs::read_to_string(&path)
            .map(|s| Some(s.trim().to_string()))
            .map_err(|e| format!("cannot read the secret {shown} in --notify-secrets-dir: {e}"))
    }

    /// Records a failure that happened before anything was queued.
    fn failed(&self, name: &str, error: String) {
        tracing::warn!(target = %name, error = %error, "a notification could not be sent");
        let mut workers = self.inner.workers.lock().unwrap_or_else(|p| p.into_inner());
        let worker = workers
            .entry(format!("{name} (unsent)"))
            .or_insert_with(|| deliver::spawn(name, self.inner.base_delay));
        let mut s = worker.state.lock().unwrap_or_else(|p| p.into_inner());
        s.failed += 1;
        s.consecutive_failures += 1;
        s.last_error = Some(error);
        s.last_error_at = Some(chrono::Utc::now());
    }
}

/// The host of a URL (no port), if it has one.
fn host(url: &str) -> Option<String> {
    reqwest::Url::parse(url)
        .ok()?
        .host_str()
        .map(str::to_string)
}

/// The host an API token is for: `url`'s, or the service's own.
fn api_host(url: Option<&str>, default: &str) -> Option<String> {
    match url {
        Some(u) => host(u).filter(|h| !h.contains(['/', '\\']) && !h.starts_with('.')),
        None => Some(default.to_string()),
    }
}
