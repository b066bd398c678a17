//! A UDP echo server for the end-to-end suite's containers (busybox has no UDP server):
//! answers every datagram with `HOSTNAME:PAYLOAD`, so a test sees which pod answered.
//! `udp-echo ask ADDR PAYLOAD` is its client (Debian's busybox `nc` has no `-u`): it prints
//! the answer, or exits 1 after two seconds without one.
#![forbid(unsafe_code)]

use std::time::Duration;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("ask") {
        ask(
            args.get(1).map_or("", String::as_str),
            args.get(2).map_or("", String::as_str),
        );
        return;
    }
    let port = args.first().cloned().unwrap_or_else(|| "9000".into());
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

fn ask(addr: &str, payload: &str) {
    let answer = std::net::UdpSocket::bind("0.0.0.0:0").and_then(|s| {
        s.set_read_timeout(Some(Duration::from_secs(2)))?;
        s.send_to(payload.as_bytes(), addr)?;
        let mut buf = [0u8; 2048];
        let n = s.recv(&mut buf)?;
        Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
    });
    match answer {
        Ok(a) => println!("{a}"),
        Err(e) => {
            eprintln!("udp-echo: no answer from {addr}: {e}");
            std::process::exit(1);
        }
    }
}
