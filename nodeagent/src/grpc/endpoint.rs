//! The one place the agent's channels to the control plane are built.

use std::time::Duration;

use tonic::transport::Endpoint;

/// The control-plane servers of `--server` (`HOST:PORT[,HOST:PORT...]`), in order. With
/// several servers only the leader answers agents; the others refuse, and the agent moves
/// on to the next.
pub fn servers(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// The channel to the control plane at `addr` (`host:port` or a URL).
pub fn endpoint(addr: &str) -> Result<Endpoint, tonic::transport::Error> {
    let url = if addr.contains("://") {
        addr.to_string()
    } else {
        format!("http://{addr}")
    };
    Ok(Endpoint::from_shared(url)?
        .connect_timeout(Duration::from_secs(5))
        .tcp_keepalive(Some(Duration::from_secs(30)))
        // A server that stops answering without closing (paused, its machine gone, a
        // partition) ends the status stream within 5 s, so the agent moves on to the next
        // server well within the new leader's --node-grace.
        .http2_keep_alive_interval(Duration::from_secs(2))
        .keep_alive_timeout(Duration::from_secs(3))
        .keep_alive_while_idle(true))
}
