//! The Docker engine's mount namespace: where it resolves the host paths of bind mounts,
//! and so where the agent mounts the sources it pins ([`crate::pod::pinned`]). Found from
//! the engine's own process, the peer of its local socket, at each use (the engine may
//! have been restarted since).

use std::path::PathBuf;

use crate::runtime::HostBinds;

/// The engine's local socket: `DOCKER_HOST` when it is a `unix://` address, Docker's
/// default path when it is unset; `None` for an engine reached over TCP.
fn socket_path() -> Option<PathBuf> {
    match std::env::var("DOCKER_HOST") {
        Ok(host) if !host.is_empty() => host.strip_prefix("unix://").map(PathBuf::from),
        _ => Some(PathBuf::from("/var/run/docker.sock")),
    }
}

/// Where the engine resolves bind sources.
pub fn host_binds() -> Result<HostBinds, String> {
    // An engine on another machine sees none of this node's paths; mounting where the
    // agent is keeps the pinned path at least as safe as the check.
    let Some(socket) = socket_path() else {
        return Ok(HostBinds::Here);
    };
    let stream = std::os::unix::net::UnixStream::connect(&socket).map_err(|e| {
        format!(
            "cannot reach the Docker engine at {} to find where it mounts volumes: {e}",
            socket.display()
        )
    })?;
    let peer = nix::sys::socket::getsockopt(&stream, nix::sys::socket::sockopt::PeerCredentials)
        .map_err(|e| format!("cannot tell which process serves {}: {e}", socket.display()))?;
    Ok(HostBinds::In(PathBuf::from(format!(
        "/proc/{}/ns/mnt",
        peer.pid()
    ))))
}
