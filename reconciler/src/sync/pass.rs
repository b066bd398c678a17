//! One pass of the sync loop: fetch, read the tip; a new tip is loaded and applied, an old
//! one resynced when due.

use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use keel_schema::repo_config::{NotifyEvent, NotifyTarget};
use keel_schema::{Revision, SyncRecord, SyncResult};
use tokio_util::sync::CancellationToken;

use super::Syncer;
use crate::apply::{Applied, ApplyError, apply_revision, record_failure};
use crate::source::{CommitInfo, GitSource};

/// A loaded revision.
struct Loaded {
    commit: CommitInfo,
    revision: Revision,
}

/// What the loop remembers between passes.
pub struct State {
    /// The last tip handled to an end (applied, or found invalid/refused/unreadable).
    tip: Option<String>,
    /// The last revision applied: resynced even while a newer tip is invalid.
    applied: Option<Loaded>,
    last_resync: Option<Instant>,
    /// What notifications have said of the applied revision's health, and when it was
    /// last looked at.
    health: crate::notify::health::Tracker,
    last_health: Option<Instant>,
}

/// The notification targets a revision's keel.yaml names.
fn targets(revision: &Revision) -> &[NotifyTarget] {
    revision.config.notify.as_deref().unwrap_or(&[])
}

/// How often the applied revision's health is looked at for notifications.
pub const HEALTH_EVERY: std::time::Duration = std::time::Duration::from_secs(3);

impl State {
    /// After a restart, or in a new leader: the revision last applied (from the history),
    /// so it keeps being resynced even if the tip is broken, and the last commit recorded, so
    /// a commit already recorded (by this server before, or by the previous leader) is not
    /// recorded again. Waits for the history to be readable; `None` if stopped meanwhile.
    pub async fn restore(syncer: &Syncer, stop: &CancellationToken) -> Option<State> {
        let mut warned = false;
        let history = loop {
            match syncer.store.history(100).await {
                Ok(h) => break h,
                Err(e) => {
                    if !warned {
                        tracing::warn!(error = %e, "cannot read the sync history; retrying before the first sync");
                        warned = true;
                    }
                    syncer.status.store_error(e.to_string());
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
                _ = stop.cancelled() => return None,
            }
        };
        Some(State {
            tip: history.first().map(|r| r.commit.clone()),
            applied: last_applied(syncer, &history).await,
            last_resync: None,
            health: Default::default(),
            last_health: None,
        })
    }

    /// One pass. `Err` for trouble worth retrying soon (fetch, store), after reporting it.
    pub async fn pass(&mut self, syncer: &Syncer) -> anyhow::Result<()> {
        let due = self.last_health.is_none_or(|t| t.elapsed() >= HEALTH_EVERY);
        if due {
            self.last_health = Some(Instant::now());
            self.watch_health(syncer).await;
        }
        let tip = fetch(syncer).await?;
        if self.tip.as_deref() != Some(tip.id.as_str()) {
            return self.new_tip(syncer, tip).await;
        }
        let resync_due = self
            .last_resync
            .is_none_or(|t| t.elapsed() >= syncer.settings.resync_interval);
        if resync_due && self.applied.is_some() {
            self.last_resync = Some(Instant::now());
            return self.resync(syncer).await;
        }
        Ok(())
    }

    /// Whether the applied revision names notification targets (whose health is watched).
    pub fn watches_health(&self) -> bool {
        self.applied
            .as_ref()
            .is_some_and(|a| !targets(&a.revision).is_empty())
    }

    /// Tells the notification targets when the applied revision becomes Healthy, or stops
    /// being so. Only revisions that name targets are looked at.
    pub async fn watch_health(&mut self, syncer: &Syncer) {
        self.last_health = Some(Instant::now());
        let Some(applied) = &self.applied else { return };
        let targets = targets(&applied.revision);
        if targets.is_empty() {
            return;
        }
        let mut objects = Vec::with_capacity(applied.revision.manifests.len());
        let desired = applied
            .revision
            .manifests
            .iter()
            .filter(|m| keel_schema::ordering::is_desired(&m.object));
        for m in desired {
            let key = keel_schema::ObjectKey::of(&m.object);
            match syncer.store.get(&key).await {
                Ok(stored) => objects.push((key, stored.map(|s| s.object))),
                Err(_) => return,
            }
        }
        let (health, why) = crate::notify::health::aggregate(&objects);
        self.health.applied(&applied.commit.id);
        if let Some(event) = self.health.observe(health) {
            let detail = (!why.is_empty()).then_some(why);
            syncer.status.notifier().send(
                targets,
                event,
                &syncer.source.branch(),
                &applied.commit,
                detail,
            );
        }
    }

    /// The applied revision against the store again: drift is corrected.
    async fn resync(&mut self, syncer: &Syncer) -> anyhow::Result<()> {
        let Some(applied) = &self.applied else {
            return Ok(());
        };
        let network = &syncer.settings.service_network;
        match apply_revision(
            &syncer.store,
            &applied.commit,
            &applied.revision,
            network,
            false,
        )
        .await
        {
            Ok(a) if a.changed() => {
                tracing::info!(commit = %applied.commit.short, created = a.created, updated = a.updated, deleted = a.deleted, "drift corrected");
                syncer.metrics.count_sync(SyncResult::Applied.as_str());
                Ok(())
            }
            Ok(_) => Ok(()),
            Err(e) => {
                syncer.metrics.count_sync("error");
                syncer.status.store_error(e.to_string());
                self.last_resync = None;
                Err(e.into())
            }
        }
    }

    /// Loads, validates and applies a new tip; records its outcome once.
    async fn new_tip(&mut self, syncer: &Syncer, tip: CommitInfo) -> anyhow::Result<()> {
        let now = Utc::now();
        let source = syncer.source.clone();
        let id = tip.id.clone();
        let (commit, revision) = match tokio::task::spawn_blocking(move || source.load(&id)).await?
        {
            Ok(loaded) => loaded,
            Err(e) => {
                // A tree keel cannot read (a missing --path, say) is this commit's failure,
                // recorded once; the applied revision keeps running and being resynced.
                let msg = e.to_string();
                tracing::warn!(commit = %tip.short, error = %msg, "revision unreadable; the last good revision keeps running");
                record_failure(&syncer.store, &tip, msg.clone()).await;
                if let Some(applied) = &self.applied {
                    let targets = targets(&applied.revision);
                    syncer.status.notifier().send(
                        targets,
                        NotifyEvent::Failed,
                        &syncer.source.branch(),
                        &tip,
                        Some(msg.clone()),
                    );
                }
                syncer.metrics.count_sync(SyncResult::Failed.as_str());
                syncer
                    .status
                    .not_applied(&tip.id, SyncResult::Failed, msg, now);
                self.tip = Some(tip.id);
                return Ok(());
            }
        };
        let started = Instant::now();
        let network = &syncer.settings.service_network;
        // Targets of a revision that is not valid are not trusted (its keel.yaml may be
        // half-read): such a revision reports where the running one does.
        let notify_to = if revision.is_valid()
            && (revision.config.notify.is_some() || self.applied.is_none())
        {
            targets(&revision).to_vec()
        } else {
            self.applied
                .as_ref()
                .map(|a| targets(&a.revision).to_vec())
                .unwrap_or_default()
        };
        let branch = syncer.source.branch();
        let notifier = syncer.status.notifier();
        notifier.send(&notify_to, NotifyEvent::Started, &branch, &commit, None);
        let outcome = apply_revision(&syncer.store, &commit, &revision, network, true).await;
        syncer
            .metrics
            .sync_seconds
            .observe(started.elapsed().as_secs_f64());
        match outcome {
            Ok(applied) => {
                notifier.send(&notify_to, NotifyEvent::Applied, &branch, &commit, None);
                self.applied_tip(syncer, commit, revision, &applied, started);
                Ok(())
            }
            Err(
                e @ (ApplyError::Invalid { .. }
                | ApplyError::RefusedEmpty { .. }
                | ApplyError::Ordered { .. }),
            ) => {
                let result = if matches!(e, ApplyError::RefusedEmpty { .. }) {
                    SyncResult::Refused
                } else {
                    SyncResult::Failed
                };
                syncer.metrics.count_sync(result.as_str());
                notifier.send(
                    &notify_to,
                    NotifyEvent::Failed,
                    &branch,
                    &commit,
                    Some(e.to_string()),
                );
                tracing::warn!(commit = %commit.short, error = %e, "revision not applied; the last good revision keeps running");
                syncer
                    .status
                    .not_applied(&commit.id, result, e.to_string(), now);
                self.tip = Some(commit.id);
                Ok(())
            }
            Err(e) => {
                // Store trouble: the same tip is tried again after a backoff.
                syncer.metrics.count_sync("error");
                syncer.status.store_error(e.to_string());
                Err(e.into())
            }
        }
    }

    /// A new tip applied (or found unchanged): it is what runs now.
    fn applied_tip(
        &mut self,
        syncer: &Syncer,
        commit: CommitInfo,
        revision: Revision,
        applied: &Applied,
        started: Instant,
    ) {
        let now = Utc::now();
        let result = if applied.changed() {
            SyncResult::Applied
        } else {
            SyncResult::Unchanged
        };
        syncer.metrics.count_sync(result.as_str());
        syncer.metrics.last_success.set(now.timestamp());
        tracing::info!(
            commit = %commit.short,
            result = %result,
            created = applied.created,
            updated = applied.updated,
            deleted = applied.deleted,
            took_ms = started.elapsed().as_millis() as u64,
            "revision synced"
        );
        syncer.status.applied(&commit.id, &revision, result, now);
        self.tip = Some(commit.id.clone());
        self.last_resync = Some(Instant::now());
        self.applied = Some(Loaded { commit, revision });
    }
}

/// Fetches (a remote) and reads the branch tip, reporting how that went.
async fn fetch(syncer: &Syncer) -> anyhow::Result<CommitInfo> {
    let source: Arc<GitSource> = syncer.source.clone();
    let fetched = tokio::task::spawn_blocking(move || {
        source.fetch().map(|_| (source.branch(), source.tip()))
    })
    .await?;
    match fetched {
        Ok((branch, Ok(tip))) => {
            syncer.status.fetched(&branch, &tip.id);
            syncer.metrics.fetch_failing.set(0);
            Ok(tip)
        }
        Ok((_, Err(e))) | Err(e) => {
            syncer.metrics.fetch_failures.inc();
            syncer.metrics.fetch_failing.set(1);
            syncer.status.fetch_failed(e.to_string());
            anyhow::bail!(e)
        }
    }
}

/// The revision last applied, from the history, if it can still be read and is valid.
async fn last_applied(syncer: &Syncer, history: &[SyncRecord]) -> Option<Loaded> {
    let last = history.iter().find(|r| r.result.is_success())?;
    let source = syncer.source.clone();
    let commit = last.commit.clone();
    let (commit, revision) = tokio::task::spawn_blocking(move || source.load(&commit))
        .await
        .ok()?
        .ok()?;
    if !revision.is_valid() {
        return None;
    }
    syncer.status.restored(&commit.id, &revision);
    Some(Loaded { commit, revision })
}
