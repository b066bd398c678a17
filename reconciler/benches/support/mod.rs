//! What the API benchmarks share: a multi-threaded runtime, a redb store in a temporary
//! data dir, and the API served on it by the real accept loop.

use keel_reconciler::http::{AppState, router};
use keel_store::{Store, StoreSpec};
use tokio_util::sync::CancellationToken;

/// Runs `body` on a multi-threaded runtime, with the open-files limit raised (benchmarks
/// hold many connections) and ring as rustls' provider.
pub fn run<F: std::future::Future<Output = ()>>(body: F) {
    keel_tls::listen::raise_open_files_limit();
    let _ = rustls::crypto::ring::default_provider().install_default();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(body);
}

/// A redb store in `dir`.
pub async fn store(dir: &std::path::Path) -> Store {
    Store::open(&StoreSpec::Redb {
        data_dir: dir.to_path_buf(),
    })
    .await
    .expect("store")
}

/// `state` served on a free loopback port: its URL, and what stops it.
pub async fn serve(state: AppState) -> (String, CancellationToken) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("listen");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    let stop = CancellationToken::new();
    tokio::spawn(keel_reconciler::http::serve::serve(
        listener,
        router(state),
        None,
        stop.clone(),
    ));
    (url, stop)
}
