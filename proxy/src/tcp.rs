//! A TCP frontend: accepts connections and splices each to an endpoint. A connection that an
//! endpoint refuses, or that does not connect in time, moves on to the next endpoint, so a
//! dying pod costs the client nothing; only when every endpoint fails is the client reset.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::balancer::Balancer;
use crate::limits::FrontendLimit;
use crate::splice::{self, Timeouts};

/// How long one endpoint gets to accept before the next is tried. Local pods answer a SYN in
/// microseconds; a second means the endpoint is gone (a dead container's IP black-holes).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Accepts until `stop` turns true or the listener fails. Connections already handed to an
/// endpoint run on by themselves: a frontend going away (its endpoints gone, its Service
/// deleted) never cuts an open connection. A connection past a budget (`limits`) is reset
/// at once: accepting goes on for everyone else.
pub async fn serve(
    listener: TcpListener,
    balancer: Arc<Balancer>,
    limit: Arc<FrontendLimit>,
    timeouts: Timeouts,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.wait_for(|s| *s) => return,
        };
        match accepted {
            Ok((client, peer)) => {
                let Ok(admission) = limit.admit(peer.ip()) else {
                    let _ = client.set_zero_linger();
                    continue;
                };
                let balancer = balancer.clone();
                tokio::spawn(async move {
                    forward(client, peer, &balancer, timeouts).await;
                    drop(admission);
                });
            }
            // Out of file descriptors or similar: back off instead of spinning.
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn forward(client: TcpStream, peer: SocketAddr, balancer: &Balancer, timeouts: Timeouts) {
    let _ = client.set_nodelay(true);
    for endpoint in balancer.order(peer.ip()) {
        let upstream =
            match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(endpoint)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::debug!(%endpoint, error = %e, "endpoint refused; trying the next");
                    continue;
                }
                Err(_) => {
                    tracing::debug!(%endpoint, "endpoint did not answer; trying the next");
                    continue;
                }
            };
        balancer.served(peer.ip(), endpoint);
        let _ = upstream.set_nodelay(true);
        // Either side closing or failing ends the connection; nothing to report upward.
        let _ = splice::bidirectional(client, upstream, timeouts).await;
        return;
    }
    // No endpoint took it: reset rather than close, so the client sees an error at once
    // instead of an empty answer it might take for a response.
    let _ = client.set_zero_linger();
}
