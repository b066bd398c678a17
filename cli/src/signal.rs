//! The one place `keel` waits for the signals that stop it.

/// Returns at Ctrl-C, SIGTERM, or SIGHUP (the terminal closed): each stops `keel server` and
/// `keel up` cleanly.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{Signal, SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).ok();
    let mut hangup = signal(SignalKind::hangup()).ok();
    async fn wait(s: Option<&mut Signal>) {
        match s {
            Some(s) => {
                s.recv().await;
            }
            None => std::future::pending::<()>().await,
        }
    }
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = wait(term.as_mut()) => {}
        _ = wait(hangup.as_mut()) => {}
    }
}
