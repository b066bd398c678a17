//! What every handler of the HTTP API reads.

use std::sync::Arc;

use keel_store::Store;
use tokio::sync::mpsc;

use crate::apply::ServiceNetwork;
use crate::auth::api_token::ApiToken;
use crate::auth::pki::ControlPlanePki;
use crate::auth::stored_tokens::StoredTokens;
use crate::cache::Cache;
use crate::metrics::Metrics;
use crate::nodes::dial::AgentDialer;
use crate::sync::StatusHandle;

#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub status: StatusHandle,
    pub metrics: Arc<Metrics>,
    /// The controllers' view of the cluster (for the gauges in `/metrics`).
    pub cache: Cache,
    /// Nudges the sync loop (the webhook).
    pub trigger: mpsc::Sender<()>,
    pub webhook_secret: Option<Arc<Vec<u8>>>,
    /// Service ranges, so plans show the addresses applying would assign.
    pub service_network: ServiceNetwork,
    /// Channels to agents (`keel logs`).
    pub dialer: AgentDialer,
    pub api_token: Arc<ApiToken>,
    pub anonymous_read: bool,
    pub join_tokens: Arc<StoredTokens>,
    /// Tokens that only read (`keel token create --role view`).
    pub view_tokens: Arc<StoredTokens>,
    /// `None` under `--insecure`.
    pub pki: Option<Arc<ControlPlanePki>>,
    /// Events of the operations the API allows (`kubectl delete pod`, `cordon`).
    pub events: crate::events::Recorder,
    /// Paged lists being read (`limit` and `continue`).
    pub pages: Arc<crate::http::kube::pages::Pages>,
    /// Whether this server leads, and who does.
    pub leadership: crate::leader::Leadership,
    /// The repository followed (the web UI's declared objects, history diffs and branch
    /// plans); `None` for an API without one.
    pub source: Option<Arc<crate::source::GitSource>>,
    /// The web UI's sign-in codes and its cache of declarations.
    pub ui: Arc<crate::http::ui::state::UiState>,
}

impl AppState {
    /// The API over `store` alone, its tokens and CA in `data_dir`: no sync loop, no agents,
    /// no leader election (tests and benchmarks of the API). Its cache follows the store
    /// until the runtime ends.
    pub async fn standalone(store: Store, data_dir: &std::path::Path) -> anyhow::Result<AppState> {
        let (trigger, _) = mpsc::channel(1);
        let cache = Cache::new();
        tokio::spawn({
            let (cache, store) = (cache.clone(), store.clone());
            async move {
                cache
                    .run(store, tokio_util::sync::CancellationToken::new())
                    .await
            }
        });
        let metrics: Arc<Metrics> = Arc::default();
        Ok(AppState {
            view_tokens: Arc::new(StoredTokens::view(store.clone())),
            join_tokens: Arc::new(StoredTokens::new(store.clone(), data_dir)),
            events: crate::events::Recorder::disabled(),
            pages: Default::default(),
            leadership: crate::leader::Leadership::sole("standalone".into(), metrics.clone()),
            source: None,
            ui: Arc::default(),
            cache,
            store,
            status: StatusHandle::default(),
            metrics,
            trigger,
            webhook_secret: None,
            service_network: ServiceNetwork::default(),
            dialer: AgentDialer::new(None),
            api_token: ApiToken::load_or_create(data_dir)?,
            anonymous_read: false,
            pki: Some(ControlPlanePki::load_or_create(
                data_dir,
                std::time::Duration::from_secs(3600),
            )?),
        })
    }
}
