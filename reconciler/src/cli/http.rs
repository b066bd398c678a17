//! The HTTP client the CLI verbs use to reach a `keel server`.
//!
//! reqwest is built with rustls and no built-in crypto provider (the workspace uses ring, as
//! the node agent's HTTPS probes do), so every client is made here, after installing ring once:
//! a client built without a provider would panic.

pub fn client() -> reqwest::Client {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Fails only when a provider is already installed, which is as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
    reqwest::Client::new()
}
