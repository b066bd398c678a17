//! Listening sockets for frontends. Every frontend socket sets `SO_REUSEPORT`: several agents
//! on one host (the end-to-end tests run three) serve the same ClusterIPs and NodePorts, and the kernel
//! spreads new connections over all of them, so any one agent can stop without the address
//! going dark. ClusterIP sockets also set `IP_FREEBIND`, so they bind before (or without) the
//! address being on the host; they start answering the moment it is.

use std::io;
use std::net::SocketAddr;

use socket2::{Domain, Socket, Type};
use tokio::net::{TcpListener, UdpSocket};

fn socket(addr: SocketAddr, kind: Type, freebind: bool) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), kind, None)?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    if freebind {
        match addr {
            SocketAddr::V4(_) => socket.set_freebind_v4(true)?,
            SocketAddr::V6(_) => socket.set_freebind_v6(true)?,
        }
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    Ok(socket)
}

pub fn tcp_listener(addr: SocketAddr, freebind: bool) -> io::Result<TcpListener> {
    let socket = socket(addr, Type::STREAM, freebind)?;
    socket.listen(1024)?;
    TcpListener::from_std(socket.into())
}

pub fn udp_socket(addr: SocketAddr, freebind: bool) -> io::Result<UdpSocket> {
    let socket = socket(addr, Type::DGRAM, freebind)?;
    UdpSocket::from_std(socket.into())
}
