//! What the sync loop reports (`/api/keel/status`), shared with the HTTP API.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use keel_api::status::{AppStatus, SyncStatus};
use keel_schema::{ObjectKey, Revision, SyncResult};

use crate::notify::Notifier;

/// The sync status, written by the loop and read by the API, with the notifications the
/// loop sends. Cheap to clone.
#[derive(Clone, Default)]
pub struct StatusHandle {
    status: Arc<Mutex<SyncStatus>>,
    notifier: Notifier,
    /// The file each running object is declared in (what refused writes point to).
    sources: Arc<Mutex<HashMap<ObjectKey, Arc<str>>>>,
    /// Moves on with every change of `status`.
    generation: Arc<std::sync::atomic::AtomicU64>,
}

impl StatusHandle {
    pub fn new(repo: String, branch: String) -> StatusHandle {
        StatusHandle {
            status: Arc::new(Mutex::new(SyncStatus {
                repo,
                branch,
                ..Default::default()
            })),
            notifier: Notifier::default(),
            sources: Arc::default(),
            generation: Arc::default(),
        }
    }

    /// Sends notifications with `notifier`.
    pub fn with_notifier(mut self, notifier: Notifier) -> StatusHandle {
        self.notifier = notifier;
        self
    }

    pub fn notifier(&self) -> &Notifier {
        &self.notifier
    }

    /// The status as it is now.
    pub fn get(&self) -> SyncStatus {
        let mut status = self.lock().clone();
        status.notifications = self.notifier.statuses();
        status
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SyncStatus> {
        self.status.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The status to change: its generation moves on.
    fn write(&self) -> std::sync::MutexGuard<'_, SyncStatus> {
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.lock()
    }

    /// A number that changes whenever the status may have (the web UI's live updates
    /// compare it, instead of copying the status four times a second per page).
    pub fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The branch was read (fetching works again); its tip is `tip`.
    pub fn fetched(&self, branch: &str, tip: &str) {
        let mut s = self.write();
        s.fetch_error = None;
        s.branch = branch.to_string();
        s.tip = Some(tip.to_string());
    }

    pub fn fetch_failed(&self, error: String) {
        self.write().fetch_error = Some(error);
    }

    /// `commit` was applied (or found unchanged): it is what runs now, declaring
    /// `declared`.
    pub fn applied(
        &self,
        commit: &str,
        declared: Vec<ObjectKey>,
        result: SyncResult,
        at: DateTime<Utc>,
    ) {
        let mut s = self.write();
        s.failed_whole = false;
        s.declared = declared;
        s.applied_commit = Some(commit.to_string());
        s.last_commit = Some(commit.to_string());
        s.last_result = Some(result);
        s.last_error = None;
        s.last_sync = Some(at);
    }

    /// `commit` was tried and not applied; the applied one keeps running.
    pub fn not_applied(&self, commit: &str, result: SyncResult, error: String, at: DateTime<Utc>) {
        let mut s = self.write();
        s.failed_whole = false;
        s.last_commit = Some(commit.to_string());
        s.last_result = Some(result);
        s.last_error = Some(error);
        s.last_sync = Some(at);
    }

    /// `commit` failed as a whole (unreadable, or its keel.yaml invalid): no app has it.
    pub fn failed_whole(&self, commit: &str, result: SyncResult, error: String, at: DateTime<Utc>) {
        self.not_applied(commit, result, error, at);
        self.write().failed_whole = true;
    }

    /// A store error, retried: only the error is shown.
    pub fn store_error(&self, error: String) {
        self.write().last_error = Some(error);
    }

    /// After a restart: `commit` is what was last applied, declaring `declared`.
    pub fn restored(&self, commit: &str, declared: Vec<ObjectKey>) {
        let mut s = self.write();
        s.declared = declared;
        s.applied_commit = Some(commit.to_string());
    }

    /// The objects what runs declares.
    pub fn set_declared(&self, declared: Vec<ObjectKey>) {
        self.write().declared = declared;
    }

    /// The file each object of what runs is declared in.
    pub fn set_sources(&self, sources: HashMap<ObjectKey, Arc<str>>) {
        *self.sources.lock().unwrap_or_else(|p| p.into_inner()) = sources;
    }

    /// The file `key` is declared in, when it runs from git and this server applied or
    /// restored it.
    pub fn source_of(&self, key: &ObjectKey) -> Option<Arc<str>> {
        let sources = self.sources.lock().unwrap_or_else(|p| p.into_inner());
        sources.get(key).cloned()
    }

    /// How each app of the repository stands (empty: the repository is one app).
    pub fn set_apps(&self, apps: Vec<AppStatus>) {
        self.write().apps = apps;
    }
}

/// The objects a revision declares (for `keel status`: one declared but absent from the
/// store is Missing).
pub fn declared(revision: &Revision) -> Vec<ObjectKey> {
    revision
        .manifests
        .iter()
        .filter(|m| keel_schema::ordering::is_desired(&m.object))
        .map(|m| ObjectKey::of(&m.object))
        .collect()
}
