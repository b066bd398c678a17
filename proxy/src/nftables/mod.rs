//! The kernel data path: Service traffic translated by nftables, the way kube-proxy's
//! nftables mode does it, at the speed of a direct connection and with the client's address
//! kept. The proxy owns one table ([`ruleset::TABLE`]) and nothing else.
//!
//! # Layout
//! - [`ruleset`]: the Service set turned into chains, maps and sets (pure); [`skeleton`]:
//!   the fixed part; [`expr`]: rules and expressions as `nft` JSON.
//! - [`transaction`]: rulesets turned into one `nft` transaction, whole or as a delta, and
//!   listings reduced to a shape to notice drift.
//! - `nft`: the `nft` command, JSON in and out.
//! - `conntrack`: UDP entries of removed endpoints deleted.
//!
//! # Guarantees
//! - Level-triggered: each update is the whole Service set; the table is made to match it.
//!   Only the changed chains and map elements are touched, in one transaction; a failed
//!   transaction changes nothing, and the next pass replaces the whole table.
//! - A restarted agent keeps the table it finds until its first Service set, then replaces
//!   it whole in one transaction: traffic never sees an empty table.
//! - Drift is repaired: the table is compared with what was applied every `verify_every`
//!   (spaced out on big tables, so checking costs at most 1% of a core), and replaced whole
//!   when someone changed it.
//! - Clean shutdown removes the table ([`NftablesProxy::remove`]).

mod conntrack;
pub mod expr;
mod nft;
pub mod ruleset;
pub mod skeleton;
pub mod transaction;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::model::ProxiedService;
pub use nft::NftError;
use ruleset::Ruleset;
pub use ruleset::{Ranges, TABLE};
use transaction::Shape;

/// Checks for drift take at most one part in this of the time.
const CHECK_SHARE: u32 = 100;
/// How soon a failed transaction is tried again.
const RETRY: Duration = Duration::from_secs(2);

#[derive(Debug, Clone)]
pub struct NftablesConfig {
    /// This node's pod range and the cluster's, once known: they tell local endpoints from
    /// remote ones.
    pub ranges: watch::Receiver<Option<Ranges>>,
    /// How often the table is checked against what was applied (less often on tables so
    /// big that reading them back would take over 1% of the time).
    pub verify_every: Duration,
}

/// What the data path has done, for logs, status and benchmarks.
#[derive(Debug, Clone, Default)]
pub struct NftablesStatus {
    /// The last Service set the table matches.
    pub applied: u64,
    /// The last failure, until a transaction succeeds again.
    pub error: Option<String>,
    /// Chains the Service set needs (skeleton excluded).
    pub chains: usize,
    /// How long the last transaction took, `nft` included.
    pub last_transaction: Option<Duration>,
    /// Whole-table replacements so far (start, drift, failures).
    pub replacements: u64,
    /// Drift found and repaired.
    pub repairs: u64,
}

type Update = (u64, Arc<Vec<ProxiedService>>);

/// A running nftables data path. Dropping it stops converging and leaves the table.
pub struct NftablesProxy {
    updates: watch::Sender<Update>,
    /// (the last generation tried, its failure if it failed)
    attempted: watch::Receiver<(u64, Option<String>)>,
    status: Arc<Mutex<NftablesStatus>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for NftablesProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl NftablesProxy {
    /// Checks that this node may program nftables.
    pub async fn usable() -> Result<(), NftError> {
        nft::usable().await
    }

    pub fn start(config: NftablesConfig) -> NftablesProxy {
        let (updates, rx) = watch::channel((0, Arc::new(Vec::new())));
        let (attempted_tx, attempted) = watch::channel((0, None));
        let status = Arc::new(Mutex::new(NftablesStatus::default()));
        let task = tokio::spawn(run(config, rx, attempted_tx, status.clone()));
        NftablesProxy {
            updates,
            attempted,
            status,
            task,
        }
    }

    /// Hands over the node's full Service set; returns at once.
    pub fn update(&self, services: Vec<ProxiedService>) -> u64 {
        let mut generation = 0;
        self.updates.send_modify(|(g, s)| {
            *g += 1;
            generation = *g;
            *s = Arc::new(services);
        });
        generation
    }

    /// Hands over the set and waits until the table matches it, or its transaction failed.
    pub async fn apply(&self, services: Vec<ProxiedService>) -> Result<(), String> {
        let generation = self.update(services);
        let mut attempted = self.attempted.clone();
        match attempted.wait_for(|(g, _)| *g >= generation).await {
            Ok(seen) => seen.1.clone().map_or(Ok(()), Err),
            Err(_) => Err("the nftables data path stopped".to_string()),
        }
    }

    pub fn status(&self) -> NftablesStatus {
        self.status
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Stops converging and deletes the table (clean shutdown).
    pub async fn remove(&self) -> Result<(), NftError> {
        self.task.abort();
        match nft::apply(&transaction::delete_table()).await {
            Err(NftError::Failed { detail, .. }) if detail.contains("No such file") => Ok(()),
            other => other,
        }
    }
}

/// The converging loop's memory between passes.
struct State {
    /// What the table holds, when known; `None` makes the next pass replace it whole.
    kernel: Option<Ruleset>,
    udp: conntrack::UdpFrontends,
    failing: bool,
    conntrack_warned: bool,
}

async fn run(
    mut config: NftablesConfig,
    mut updates: watch::Receiver<Update>,
    attempted: watch::Sender<(u64, Option<String>)>,
    status: Arc<Mutex<NftablesStatus>>,
) {
    let mut next_check = tokio::time::Instant::now() + config.verify_every;
    let mut ranges_open = true;
    let mut state = State {
        kernel: None,
        udp: Default::default(),
        failing: false,
        conntrack_warned: false,
    };
    loop {
        let mut check = false;
        tokio::select! {
            r = updates.changed() => if r.is_err() { return },
            r = config.ranges.changed(), if ranges_open => ranges_open = r.is_ok(),
            _ = tokio::time::sleep_until(next_check) => check = true,
            _ = tokio::time::sleep(RETRY), if state.failing => {}
        }
        let (generation, services) = updates.borrow_and_update().clone();
        // Until the first set, whatever an earlier run left keeps serving.
        if generation == 0 {
            continue;
        }
        let ranges = *config.ranges.borrow_and_update();
        let wanted = Ruleset::build(&services, ranges);
        if check {
            let started = Instant::now();
            if !state.failing {
                repair_drift(&mut state, &status).await;
            }
            // Reading a big table back is costly (about 1 s at 10,000 Services): checks are
            // spaced so that they take at most 1% of a core.
            next_check = tokio::time::Instant::now()
                + config.verify_every.max(started.elapsed() * CHECK_SHARE);
        }
        let started = Instant::now();
        let result = converge(&state.kernel, &wanted).await;
        let took = started.elapsed();
        let error = match result {
            Ok(ran) => {
                let udp = conntrack::udp_frontends(&services);
                clear_stale_udp(&mut state, &udp).await;
                state.udp = udp;
                if state.failing {
                    tracing::info!("the Service table is in place again");
                }
                state.failing = false;
                let mut s = status.lock().unwrap_or_else(PoisonError::into_inner);
                s.applied = generation;
                s.error = None;
                s.chains = wanted.chains.len();
                if let Some(replaced) = ran {
                    s.replacements += u64::from(replaced);
                    s.last_transaction = Some(took);
                }
                state.kernel = Some(wanted);
                None
            }
            Err(e) => {
                let text = e.to_string();
                let mut s = status.lock().unwrap_or_else(PoisonError::into_inner);
                if s.error.as_deref() != Some(text.as_str()) {
                    tracing::warn!("cannot program the Service table: {text}");
                }
                s.error = Some(text.clone());
                state.kernel = None;
                state.failing = true;
                Some(text)
            }
        };
        attempted.send_replace((generation, error));
    }
}

/// Makes the table `wanted`: the delta from what it holds, or a whole replacement. Returns
/// `None` when nothing needed doing, else whether the table was replaced whole.
async fn converge(kernel: &Option<Ruleset>, wanted: &Ruleset) -> Result<Option<bool>, NftError> {
    match kernel {
        None => nft::apply(&transaction::replace(wanted))
            .await
            .map(|()| Some(true)),
        Some(old) => match transaction::delta(old, wanted) {
            None => Ok(None),
            Some(t) => nft::apply(&t).await.map(|()| Some(false)),
        },
    }
}

/// Compares the table with what was applied; a table changed by hand is forgotten, so the
/// pass that follows replaces it whole.
async fn repair_drift(state: &mut State, status: &Mutex<NftablesStatus>) {
    let Some(applied) = &state.kernel else {
        return;
    };
    let observed = match nft::list().await {
        Ok(Some(listing)) => Shape::observed(&listing),
        Ok(None) => Shape::default(),
        Err(e) => {
            tracing::warn!("cannot read the Service table back: {e}");
            return;
        }
    };
    if observed != Shape::expected(applied) {
        tracing::warn!(
            table = TABLE,
            "the Service table was changed outside keel-agent; replacing it"
        );
        state.kernel = None;
        status
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .repairs += 1;
    }
}

async fn clear_stale_udp(state: &mut State, now: &conntrack::UdpFrontends) {
    for filter in conntrack::stale(&state.udp, now) {
        if let Err(e) = conntrack::delete(&filter).await {
            if !state.conntrack_warned {
                tracing::warn!("UDP clients of removed endpoints keep their old flows: {e}");
                state.conntrack_warned = true;
            }
            return;
        }
    }
}
