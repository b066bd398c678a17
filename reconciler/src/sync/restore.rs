//! The sync loop's state after a restart, or in a new leader: read back from the sync
//! history, app by app.

use std::collections::HashMap;

use keel_schema::repo_config::RepoConfig;
use keel_schema::{Revision, SyncRecord};
use tokio_util::sync::CancellationToken;

use super::Syncer;
use super::apps::{AppState, Loaded, Outcome};
use super::pass::{State, load_apps};

/// How many sync records a restart reads to find what each app runs.
const RESTORE_RECORDS: usize = 5000;

impl State {
    /// After a restart, or in a new leader: what each app runs (from the history), so it
    /// keeps being resynced even if the tip is broken, and the inputs each app last tried,
    /// so an app already recorded at the tip (by this server before, or by the previous
    /// leader) is not read or recorded again. Waits for the history to be readable; `None`
    /// if stopped meanwhile.
    pub async fn restore(syncer: &Syncer, stop: &CancellationToken) -> Option<State> {
        let mut warned = false;
        let history = loop {
            match syncer.store.history(RESTORE_RECORDS).await {
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
        let mut state = State {
            tip: None,
            recorded: history.first().map(|r| r.commit.clone()),
            tip_info: None,
            apps: Vec::new(),
            config: RepoConfig::default(),
            last_resync: None,
            health: Default::default(),
            last_health: None,
        };
        state.restore_apps(syncer, &history).await;
        Some(state)
    }

    /// Each app's last try and last success, from `history` (newest first).
    async fn restore_apps(&mut self, syncer: &Syncer, history: &[SyncRecord]) {
        let mut last: HashMap<Option<String>, &SyncRecord> = HashMap::new();
        let mut good: HashMap<Option<String>, &SyncRecord> = HashMap::new();
        for r in history {
            last.entry(r.app.clone()).or_insert(r);
            if r.result.is_success() {
                good.entry(r.app.clone()).or_insert(r);
            }
        }
        let newest_good = history.iter().find(|r| r.result.is_success());
        let outcome = |r: &SyncRecord| Outcome {
            commit: r.commit.clone(),
            result: r.result,
            error: r.error.clone(),
            at: r.time,
        };
        // The named apps first, then the root app, which leaves the files they read to them.
        for root in [false, true] {
            // What runs: each commit read once, rendering the apps it is the last success of.
            let mut by_commit: std::collections::BTreeMap<&str, Vec<Option<String>>> =
                Default::default();
            for (app, r) in good.iter().filter(|(app, _)| app.is_none() == root) {
                by_commit.entry(&r.commit).or_default().push(app.clone());
            }
            for (commit, names) in by_commit {
                let load = load_apps(syncer, commit, self.known(), move |spec, _| {
                    names.contains(&spec.name)
                })
                .await;
                let Some(load) = load.filter(|l| l.config_errors.is_empty()) else {
                    continue;
                };
                if newest_good.is_some_and(|r| r.commit == commit) {
                    self.config = load.config.clone();
                }
                for app in load.apps {
                    let Some(revision) = app.revision.filter(Revision::is_valid) else {
                        continue;
                    };
                    let mut state = AppState::new(app.spec.clone());
                    state.fingerprint = Some(app.fingerprint);
                    state.inputs = app.inputs;
                    state.last = good.get(&app.spec.name).map(|r| outcome(r));
                    state.applied = Some(Loaded {
                        commit: load.commit.clone(),
                        spec: app.spec,
                        revision,
                    });
                    self.apps.push(state);
                }
            }
            // An app whose last try failed after what it runs (or that never ran): that try
            // read again, so its fingerprint, what it read and what it declares are as they
            // were when it was handled (and it is not tried, or recorded, again).
            for (name, r) in last.iter().filter(|(app, _)| app.is_none() == root) {
                if r.result.is_success() {
                    continue;
                }
                let wanted = name.clone();
                let load = load_apps(syncer, &r.commit, self.known(), move |spec, _| {
                    spec.name == wanted
                })
                .await;
                // A commit that failed whole (its keel.yaml, or unreadable) is recorded
                // without an app and changed none: the root app stays as it runs.
                let Some(load) = load.filter(|l| l.config_errors.is_empty()) else {
                    continue;
                };
                let Some(app) = load.apps.into_iter().find(|a| a.spec.name == *name) else {
                    continue;
                };
                let index = match self.apps.iter().position(|a| a.spec.name == *name) {
                    Some(i) => i,
                    None => {
                        self.apps.push(AppState::new(app.spec.clone()));
                        self.apps.len() - 1
                    }
                };
                let state = &mut self.apps[index];
                state.spec = app.spec;
                state.fingerprint = Some(app.fingerprint);
                state.inputs.extend(app.inputs);
                state.inputs.sort();
                state.inputs.dedup();
                state.tried = app.revision;
                state.last = Some(outcome(r));
            }
        }
        // The apps are those the newest good keel.yaml lists (and the root app): an app
        // removed since is not resynced back.
        let listed: std::collections::BTreeSet<&str> = self
            .config
            .apps
            .iter()
            .flatten()
            .map(|a| a.name.as_str())
            .collect();
        self.apps
            .retain(|a| a.spec.name.as_deref().is_none_or(|n| listed.contains(n)));
        if let Some(r) = history.iter().find(|r| r.result.is_success()) {
            let declared = self.apps.iter().flat_map(AppState::declared).collect();
            syncer.status.restored(&r.commit, declared);
        }
        self.publish_apps(syncer);
    }
}
