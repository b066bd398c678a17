//! One pass of the sync loop: fetch, read the tip; a new tip is read app by app, and each
//! app whose inputs changed is loaded and applied on its own; what runs is resynced when due.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use keel_schema::repo_config::{NotifyEvent, NotifyTarget, RepoConfig};
use keel_schema::{Revision, SyncResult};

use super::Syncer;
use super::apps::{AppState, Loaded, Outcome, declared_by, scopes};
use crate::apply::{ApplyError, applied_objects, apply_revision, plan_stage, record_failure};
use crate::source::{AppsLoad, CommitInfo, GitSource};

/// What the loop remembers between passes.
pub struct State {
    /// The last tip handled to an end (every app it changed applied, or found
    /// invalid/refused; or the tip unreadable as a whole).
    pub(super) tip: Option<String>,
    /// The commit last recorded before a restart: a whole failure of it is not recorded
    /// again.
    pub(super) recorded: Option<String>,
    /// The last tip read, for notifications about health.
    pub(super) tip_info: Option<CommitInfo>,
    /// The repository's apps in keel.yaml's order, the root app last.
    pub(super) apps: Vec<AppState>,
    /// keel.yaml of the last tip whose keel.yaml was valid.
    pub(super) config: RepoConfig,
    pub(super) last_resync: Option<Instant>,
    /// What notifications have said of the applied revision's health, and when it was
    /// last looked at.
    pub(super) health: crate::notify::health::Tracker,
    pub(super) last_health: Option<Instant>,
}

/// How often the applied revision's health is looked at for notifications.
pub const HEALTH_EVERY: std::time::Duration = std::time::Duration::from_secs(3);

impl State {
    /// Each app's fingerprint and the files outside it that it read, as last handled.
    pub(super) fn known(&self) -> HashMap<Option<String>, (Option<String>, Vec<String>)> {
        self.apps
            .iter()
            .map(|a| {
                (
                    a.spec.name.clone(),
                    (a.fingerprint.clone(), a.inputs.clone()),
                )
            })
            .collect()
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
        if resync_due && self.apps.iter().any(|a| a.applied.is_some()) {
            self.last_resync = Some(Instant::now());
            let started = Instant::now();
            let outcome = self.resync(syncer).await;
            syncer
                .metrics
                .resync_seconds
                .observe(started.elapsed().as_secs_f64());
            return outcome;
        }
        Ok(())
    }

    /// The notification targets keel.yaml names.
    fn targets(&self) -> &[NotifyTarget] {
        self.config.notify.as_deref().unwrap_or(&[])
    }

    /// Whether keel.yaml names notification targets (so health is watched).
    pub fn watches_health(&self) -> bool {
        !self.targets().is_empty() && self.apps.iter().any(|a| a.applied.is_some())
    }

    /// Tells the notification targets when what runs becomes Healthy, or stops being so.
    /// Only repositories that name targets are looked at.
    pub async fn watch_health(&mut self, syncer: &Syncer) {
        self.last_health = Some(Instant::now());
        if self.targets().is_empty() {
            return;
        }
        let commit = self.tip_info.clone().or_else(|| {
            self.apps
                .iter()
                .find_map(|a| a.applied.as_ref().map(|l| l.commit.clone()))
        });
        let Some(commit) = commit else { return };
        let mut objects = Vec::new();
        let desired = self
            .apps
            .iter()
            .filter_map(|a| a.applied.as_ref())
            .flat_map(|a| a.revision.manifests.iter())
            .filter(|m| keel_schema::ordering::is_desired(&m.object));
        for m in desired {
            let key = keel_schema::ObjectKey::of(&m.object);
            match syncer.store.get(&key).await {
                Ok(stored) => objects.push((key, stored.map(|s| s.object))),
                Err(_) => return,
            }
        }
        let (health, why) = crate::notify::health::aggregate(&objects);
        self.health.applied(&commit.id);
        if let Some(event) = self.health.observe(health) {
            let detail = (!why.is_empty()).then_some(why);
            syncer.status.notifier().send(
                self.targets(),
                event,
                &syncer.source.branch(),
                &commit,
                detail,
            );
        }
    }

    /// What runs, against the store again: drift is corrected. Every app is planned
    /// against one listing of the store; only an app with something to correct is applied.
    async fn resync(&mut self, syncer: &Syncer) -> anyhow::Result<()> {
        let network = &syncer.settings.service_network;
        let failed = |e: String| {
            syncer.metrics.count_sync("error");
            syncer.status.store_error(e.clone());
            anyhow::anyhow!(e)
        };
        let all = match applied_objects(&syncer.store).await {
            Ok(all) => all,
            Err(e) => {
                self.last_resync = None;
                return Err(failed(e.to_string()));
            }
        };
        let scopes = scopes(&self.apps, declared_by(&self.apps, &HashMap::new()), false);
        for app in &self.apps {
            let Some(applied) = &app.applied else {
                continue;
            };
            let scope = &scopes[&app.spec.name];
            let planned = plan_stage(
                &applied.commit,
                &applied.revision,
                &all,
                network,
                None,
                scope,
            );
            if planned.is_ok_and(|(batch, _)| batch.ops.is_empty()) {
                continue;
            }
            let outcome = apply_revision(
                &syncer.store,
                &applied.commit,
                &applied.revision,
                network,
                false,
                scope,
            )
            .await;
            match outcome {
                Ok(a) if a.changed() => {
                    tracing::info!(app = app.spec.label(), commit = %applied.commit.short, created = a.created, updated = a.updated, deleted = a.deleted, "drift corrected");
                    syncer.metrics.count_sync(SyncResult::Applied.as_str());
                }
                Ok(_) => {}
                Err(e) => {
                    self.last_resync = None;
                    return Err(failed(e.to_string()));
                }
            }
        }
        Ok(())
    }

    /// A tip that fails whole (unreadable, or its keel.yaml invalid): recorded once, and
    /// every app keeps running what it runs.
    async fn whole_failure(
        &mut self,
        syncer: &Syncer,
        tip: CommitInfo,
        shown: String,
        recorded: String,
    ) {
        tracing::warn!(commit = %tip.short, error = %shown, "revision not applied; the last good revision keeps running");
        // Recorded (and told) before a restart: not again.
        if self.recorded.as_deref() != Some(tip.id.as_str()) {
            record_failure(&syncer.store, &tip, recorded).await;
            let branch = syncer.source.branch();
            let notifier = syncer.status.notifier();
            notifier.send(
                self.targets(),
                NotifyEvent::Failed,
                &branch,
                &tip,
                Some(shown.clone()),
            );
        }
        syncer.metrics.count_sync(SyncResult::Failed.as_str());
        syncer
            .status
            .failed_whole(&tip.id, SyncResult::Failed, shown, Utc::now());
        self.tip = Some(tip.id);
    }

    /// Reads a new tip app by app; each app whose inputs changed is validated and applied
    /// whole on its own, its outcome recorded once.
    async fn new_tip(&mut self, syncer: &Syncer, tip: CommitInfo) -> anyhow::Result<()> {
        let known = self.known();
        let unchanged = known.clone();
        let loaded = load_apps_result(syncer, &tip.id, known, move |spec, fingerprint| {
            unchanged.get(&spec.name).and_then(|k| k.0.as_deref()) != Some(fingerprint)
        })
        .await?;
        let load = match loaded {
            Ok(load) if load.config_errors.is_empty() => load,
            Ok(load) => {
                let recorded = load
                    .config_errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("\n");
                let shown = ApplyError::Invalid {
                    commit: tip.short.clone(),
                    errors: load.config_errors,
                }
                .to_string();
                self.whole_failure(syncer, tip, shown, recorded).await;
                return Ok(());
            }
            Err(e) => {
                // A tree keel cannot read (a missing --path, say) is this commit's failure,
                // recorded once; what runs keeps running and being resynced.
                let msg = e.to_string();
                self.whole_failure(syncer, tip, msg.clone(), msg).await;
                return Ok(());
            }
        };
        let AppsLoad {
            commit,
            apps,
            config,
            ..
        } = load;
        // The apps keel.yaml lists now, in its order; an app no longer listed is gone (the
        // root app prunes what it applied).
        let mut previous: Vec<AppState> = std::mem::take(&mut self.apps);
        let mut candidates: Vec<(usize, Revision, String, Vec<String>)> = Vec::new();
        for (index, app) in apps.into_iter().enumerate() {
            let mut state = match previous.iter().position(|p| p.spec.name == app.spec.name) {
                Some(i) => previous.swap_remove(i),
                None => AppState::new(app.spec.clone()),
            };
            state.spec = app.spec;
            if let Some(revision) = app.revision {
                syncer
                    .metrics
                    .renders
                    .get_or_create(&crate::metrics::AppLabel {
                        app: state.spec.label().to_string(),
                    })
                    .inc();
                candidates.push((index, revision, app.fingerprint, app.inputs));
            }
            self.apps.push(state);
        }
        if candidates.is_empty() {
            self.tip = Some(commit.id.clone());
            self.publish(syncer, &commit, config, false);
            return Ok(());
        }
        let all = match applied_objects(&syncer.store).await {
            Ok(all) => all,
            Err(e) => {
                syncer.metrics.count_sync("error");
                syncer.status.store_error(e.to_string());
                return Err(e.into());
            }
        };
        self.refuse_duplicates(&mut candidates, &all);
        let by_app: HashMap<Option<String>, &Revision> = candidates
            .iter()
            .map(|(i, r, _, _)| (self.apps[*i].spec.name.clone(), r))
            .collect();
        let scopes = scopes(&self.apps, declared_by(&self.apps, &by_app), true);
        let branch = syncer.source.branch();
        let notifier = syncer.status.notifier().clone();
        // The targets of a revision that is not valid are not trusted (its keel.yaml may
        // be a committer's mistake): such a revision reports where the running one does.
        let valid = candidates.iter().all(|c| c.1.is_valid());
        let targets = if valid {
            config.notify.clone().unwrap_or_default()
        } else {
            self.targets().to_vec()
        };
        notifier.send(&targets, NotifyEvent::Started, &branch, &commit, None);
        let network = &syncer.settings.service_network;
        let named = self.apps.iter().any(|a| a.spec.name.is_some());
        let mut failures = Vec::new();
        let mut changed = false;
        for (index, revision, fingerprint, inputs) in candidates {
            let app = &mut self.apps[index];
            let scope = &scopes[&app.spec.name];
            let started = Instant::now();
            let outcome =
                apply_revision(&syncer.store, &commit, &revision, network, true, scope).await;
            syncer
                .metrics
                .sync_seconds
                .observe(started.elapsed().as_secs_f64());
            let (result, error) = match outcome {
                Ok(applied) => {
                    let result = if applied.changed() {
                        SyncResult::Applied
                    } else {
                        SyncResult::Unchanged
                    };
                    changed |= applied.changed();
                    syncer.metrics.last_success.set(Utc::now().timestamp());
                    tracing::info!(
                        app = app.spec.label(),
                        commit = %commit.short,
                        result = %result,
                        created = applied.created,
                        updated = applied.updated,
                        deleted = applied.deleted,
                        took_ms = started.elapsed().as_millis() as u64,
                        "revision synced"
                    );
                    app.applied = Some(Loaded {
                        commit: commit.clone(),
                        spec: app.spec.clone(),
                        revision,
                    });
                    app.tried = None;
                    (result, None)
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
                    tracing::warn!(app = app.spec.label(), commit = %commit.short, error = %e, "revision not applied; the last good revision keeps running");
                    let shown = if named {
                        format!("app {}: {e}", app.spec.label())
                    } else {
                        e.to_string()
                    };
                    failures.push(shown);
                    // A try that did not even read whole keeps declaring what the tries
                    // before it did (an object moved into the app is not pruned meanwhile).
                    let mut revision = revision;
                    if let Some(before) = app.tried.take().filter(|_| !revision.is_valid()) {
                        let mut seen: std::collections::HashSet<keel_schema::ObjectKey> = revision
                            .manifests
                            .iter()
                            .map(|m| keel_schema::ObjectKey::of(&m.object))
                            .collect();
                        let kept = before
                            .manifests
                            .into_iter()
                            .filter(|m| seen.insert(keel_schema::ObjectKey::of(&m.object)));
                        revision.manifests.extend(kept);
                    }
                    app.tried = Some(revision);
                    (result, Some(e.to_string()))
                }
                Err(e) => {
                    // Store trouble: the same tip is tried again after a backoff (the apps
                    // handled so far are not tried again: their inputs are recorded).
                    syncer.metrics.count_sync("error");
                    syncer.status.store_error(e.to_string());
                    return Err(e.into());
                }
            };
            syncer.metrics.count_sync(result.as_str());
            app.fingerprint = Some(fingerprint);
            app.inputs = inputs;
            app.last = Some(Outcome {
                commit: commit.id.clone(),
                result,
                error,
                at: Utc::now(),
            });
        }
        if failures.is_empty() {
            notifier.send(&targets, NotifyEvent::Applied, &branch, &commit, None);
        } else {
            let detail = failures.join("\n");
            notifier.send(
                &targets,
                NotifyEvent::Failed,
                &branch,
                &commit,
                Some(detail),
            );
        }
        self.tip = Some(commit.id.clone());
        self.last_resync = Some(Instant::now());
        self.publish(syncer, &commit, config, changed);
        Ok(())
    }

    /// An object that two apps declare stays with the app that has it in the cluster (or
    /// the first in keel.yaml's order); the other app's revision is refused, located.
    fn refuse_duplicates(
        &self,
        candidates: &mut [(usize, Revision, String, Vec<String>)],
        all: &std::collections::BTreeMap<keel_schema::ObjectKey, keel_store::Stored>,
    ) {
        let empty = Revision::default();
        let revisions: Vec<&Revision> = self
            .apps
            .iter()
            .enumerate()
            .map(|(i, a)| {
                // An invalid candidate declares nothing new: the app keeps what it runs.
                candidates
                    .iter()
                    .find(|c| c.0 == i && c.1.is_valid())
                    .map(|c| &c.1)
                    .or(a.applied.as_ref().map(|l| &l.revision))
                    .unwrap_or(&empty)
            })
            .collect();
        let pairs: Vec<_> = self.apps.iter().map(|a| &a.spec).zip(revisions).collect();
        let scope = crate::apply::Scope {
            apps: super::apps::names(&self.apps),
            ..Default::default()
        };
        let keeps = |key: &keel_schema::ObjectKey| {
            let owner = all.get(key).map(|s| scope.owner_of(&s.object))?;
            self.apps
                .iter()
                .position(|a| a.spec.name.as_deref() == owner)
        };
        let found = keel_schema::load::apps::duplicates(&pairs, keeps);
        for (app, error) in found {
            if let Some(c) = candidates.iter_mut().find(|c| c.0 == app) {
                c.1.errors.push(error);
                keel_schema::error::sort_errors(&mut c.1.errors);
            }
        }
    }

    /// What `keel status` shows after a tip: it is applied once no app failed at it (and
    /// then its keel.yaml names the notification targets, and its health is watched).
    fn publish(&mut self, syncer: &Syncer, tip: &CommitInfo, config: RepoConfig, changed: bool) {
        let named = self.apps.iter().any(|a| a.spec.name.is_some());
        let failing: Vec<&AppState> = self
            .apps
            .iter()
            .filter(|a| a.last.as_ref().is_some_and(|l| !l.result.is_success()))
            .collect();
        let now = Utc::now();
        match failing.first().and_then(|a| a.last.as_ref()) {
            None => {
                self.config = config;
                self.tip_info = Some(tip.clone());
                let declared = self.apps.iter().flat_map(AppState::declared).collect();
                let result = if changed {
                    SyncResult::Applied
                } else {
                    SyncResult::Unchanged
                };
                syncer.status.applied(&tip.id, declared, result, now);
            }
            Some(first) => {
                let error = if named {
                    failing
                        .iter()
                        .map(|a| {
                            let why = a.last.as_ref().and_then(|l| l.error.as_deref());
                            format!("app {}: {}", a.spec.label(), why.unwrap_or(""))
                        })
                        .collect::<Vec<_>>()
                        .join("\n")
                } else {
                    first.error.clone().unwrap_or_default()
                };
                syncer.status.not_applied(&tip.id, first.result, error, now);
                // What runs is still what `keel status` judges: the apps that applied
                // the tip, and the last good commit of those that failed.
                let declared = self.apps.iter().flat_map(AppState::declared).collect();
                syncer.status.set_declared(declared);
            }
        }
        self.publish_apps(syncer);
    }

    pub(super) fn publish_apps(&self, syncer: &Syncer) {
        let named = self.apps.iter().any(|a| a.spec.name.is_some());
        let apps = self
            .apps
            .iter()
            .filter(|_| named)
            .map(AppState::status)
            .collect();
        syncer.status.set_apps(apps);
        let sources = self.apps.iter().flat_map(AppState::sources).collect();
        syncer.status.set_sources(sources);
    }
}

/// [`GitSource::load_apps`] off the async threads; `None` when it cannot be read.
pub(super) async fn load_apps(
    syncer: &Syncer,
    commit: &str,
    known: HashMap<Option<String>, (Option<String>, Vec<String>)>,
    render: impl Fn(&keel_schema::load::apps::AppSpec, &str) -> bool + Send + 'static,
) -> Option<AppsLoad> {
    load_apps_result(syncer, commit, known, render)
        .await
        .ok()?
        .ok()
}

async fn load_apps_result(
    syncer: &Syncer,
    commit: &str,
    known: HashMap<Option<String>, (Option<String>, Vec<String>)>,
    render: impl Fn(&keel_schema::load::apps::AppSpec, &str) -> bool + Send + 'static,
) -> Result<Result<AppsLoad, crate::source::SourceError>, tokio::task::JoinError> {
    let source: Arc<GitSource> = syncer.source.clone();
    let commit = commit.to_string();
    tokio::task::spawn_blocking(move || {
        let inputs_of = |spec: &keel_schema::load::apps::AppSpec| {
            known
                .get(&spec.name)
                .map(|k| k.1.clone())
                .unwrap_or_default()
        };
        source.load_apps(&commit, &inputs_of, &render)
    })
    .await
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
