//! A UDP echo server for the end-to-end suite's containers (busybox has no UDP server):
//! answers every datagram with `HOSTNAME:PAYLOAD`, so a test sees which pod answered.
#![forbid(unsafe_code)]

fn main() {
    let port = std::env::args().nth(1).unwrap_or_else(|| "9000".into());
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown".into());
    let socket = match std::net::UdpSocket::bind(format!("0.0.0.0:{port}")) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("udp-echo: cannot bind port {port}: {e}");
            std::process::exit(1);
        }
    };
    let mut buf = [0u8; 2048];
    while let Ok((n, from)) = socket.recv_from(&mut buf) {
        let reply = format!("{host}:{}", String::from_utf8_lossy(&buf[..n]));
        let _ = socket.send_to(reply.as_bytes(), from);
    }
}
