//! The proxy against plain tokio backends on loopback: no Docker, no control plane. Each test
//! serves its frontends on its own 127/8 address, which every Linux host already has on `lo`.

mod ingress;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use keel_proxy::{Protocol, ProxiedPort, ProxiedService, Proxy, ProxyConfig};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

/// A loopback address no other test (or test process) uses, so `SO_REUSEPORT` frontends of
/// concurrent tests never share a port.
fn fresh_ip() -> Ipv4Addr {
    static NEXT: AtomicU8 = AtomicU8::new(1);
    let pid = std::process::id();
    Ipv4Addr::new(
        127,
        100 + (pid % 100) as u8,
        ((pid / 100) % 250) as u8,
        NEXT.fetch_add(1, Ordering::Relaxed),
    )
}

/// A TCP backend that greets each connection with its name and then echoes lines.
async fn tcp_backend(name: &'static str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind backend");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                let _ = conn.write_all(format!("{name}\n").as_bytes()).await;
                let (r, mut w) = conn.split();
                let mut lines = BufReader::new(r).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    if w.write_all(format!("{name}:{line}\n").as_bytes())
                        .await
                        .is_err()
                    {
                        break;
                    }
                }
            });
        }
    });
    addr
}

/// A UDP backend answering each datagram with `name:payload`.
async fn udp_backend(name: &'static str) -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind backend");
    let addr = socket.local_addr().expect("addr");
    tokio::spawn(async move {
        let mut buf = [0u8; 1500];
        while let Ok((n, from)) = socket.recv_from(&mut buf).await {
            let reply = format!("{name}:{}", String::from_utf8_lossy(&buf[..n]));
            let _ = socket.send_to(reply.as_bytes(), from).await;
        }
    });
    addr
}

/// An address nothing listens on: connections to it are refused.
async fn dead_endpoint() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    l.local_addr().expect("addr")
}

fn service(ip: Ipv4Addr, protocol: Protocol, endpoints: Vec<SocketAddr>) -> ProxiedService {
    ProxiedService {
        namespace: "default".into(),
        name: "web".into(),
        cluster_ip: Some(ip),
        affinity: None,
        external_local: false,
        external_ips: Vec::new(),
        ports: vec![ProxiedPort {
            name: None,
            protocol,
            port: 8080,
            node_port: None,
            endpoints,
        }],
    }
}

async fn greeting(addr: SocketAddr) -> std::io::Result<String> {
    let mut conn = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr))
        .await
        .map_err(|_| std::io::Error::other("connect hung"))??;
    let mut line = String::new();
    let mut reader = BufReader::new(&mut conn);
    tokio::time::timeout(Duration::from_secs(5), reader.read_line(&mut line))
        .await
        .map_err(|_| std::io::Error::other("no greeting"))??;
    if line.is_empty() {
        return Err(std::io::Error::other("closed without a greeting"));
    }
    Ok(line.trim().to_string())
}

#[tokio::test]
async fn tcp_round_robins_over_ready_endpoints_and_follows_updates() {
    let backends = vec![
        tcp_backend("a").await,
        tcp_backend("b").await,
        tcp_backend("c").await,
    ];
    let ip = fresh_ip();
    let front = SocketAddr::new(IpAddr::V4(ip), 8080);
    let proxy = Proxy::start(ProxyConfig::default());
    proxy
        .apply(vec![service(ip, Protocol::Tcp, backends.clone())])
        .await;
    let mut seen = Vec::new();
    for _ in 0..6 {
        seen.push(greeting(front).await.expect("answer through the proxy"));
    }
    assert_eq!(seen, vec!["a", "b", "c", "a", "b", "c"]);

    // An open connection survives its endpoint leaving the set; new ones go to the rest.
    let mut open = TcpStream::connect(front).await.expect("connect");
    let mut first = [0u8; 2];
    open.read_exact(&mut first).await.expect("greeting");
    let pinned = String::from_utf8_lossy(&first[..1]).to_string();
    let remaining: Vec<SocketAddr> = ["a", "b", "c"]
        .iter()
        .zip(&backends)
        .filter(|(n, _)| **n != pinned)
        .map(|(_, a)| *a)
        .collect();
    proxy
        .apply(vec![service(ip, Protocol::Tcp, remaining)])
        .await;
    for _ in 0..4 {
        assert_ne!(greeting(front).await.expect("answer"), pinned);
    }
    open.write_all(b"still here\n").await.expect("write");
    let mut reply = String::new();
    BufReader::new(&mut open)
        .read_line(&mut reply)
        .await
        .expect("read");
    assert_eq!(reply.trim(), format!("{pinned}:still here"));
}

#[tokio::test]
async fn a_refusing_endpoint_costs_no_client_error() {
    let live = tcp_backend("live").await;
    let dead = [dead_endpoint().await, dead_endpoint().await];
    let ip = fresh_ip();
    let proxy = Proxy::start(ProxyConfig::default());
    proxy
        .apply(vec![service(
            ip,
            Protocol::Tcp,
            vec![dead[0], live, dead[1]],
        )])
        .await;
    for _ in 0..9 {
        let answer = greeting(SocketAddr::new(IpAddr::V4(ip), 8080)).await;
        assert_eq!(answer.expect("every connection is answered"), "live");
    }
}

#[tokio::test]
async fn no_ready_endpoint_refuses_at_once() {
    let ip = fresh_ip();
    let front = SocketAddr::new(IpAddr::V4(ip), 8080);
    let proxy = Proxy::start(ProxyConfig::default());
    proxy
        .apply(vec![service(ip, Protocol::Tcp, Vec::new())])
        .await;
    let status = proxy.status();
    assert_eq!(status.frontends.len(), 1);
    assert!(!status.frontends[0].listening);
    let err = tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(front))
        .await
        .expect("refused at once, not hung")
        .expect_err("nothing to connect to");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);

    // Endpoints arrive: it answers; they all fail: the client is reset, not left hanging.
    let backend = tcp_backend("late").await;
    proxy
        .apply(vec![service(ip, Protocol::Tcp, vec![backend])])
        .await;
    assert_eq!(greeting(front).await.expect("answer"), "late");
    proxy
        .apply(vec![service(
            ip,
            Protocol::Tcp,
            vec![dead_endpoint().await],
        )])
        .await;
    let err = greeting(front).await.expect_err("no endpoint took it");
    assert!(!err.to_string().contains("hung"), "{err}");
}

#[tokio::test]
async fn client_ip_affinity_pins_a_client_to_one_endpoint() {
    let backends = vec![
        tcp_backend("a").await,
        tcp_backend("b").await,
        tcp_backend("c").await,
    ];
    let ip = fresh_ip();
    let mut s = service(ip, Protocol::Tcp, backends);
    s.affinity = Some(Duration::from_secs(10800));
    let proxy = Proxy::start(ProxyConfig::default());
    proxy.apply(vec![s]).await;
    let front = SocketAddr::new(IpAddr::V4(ip), 8080);
    let first = greeting(front).await.expect("answer");
    for _ in 0..6 {
        assert_eq!(greeting(front).await.expect("answer"), first);
    }
}

#[tokio::test]
async fn udp_sessions_balance_and_echo() {
    let backends = vec![udp_backend("a").await, udp_backend("b").await];
    let ip = fresh_ip();
    let proxy = Proxy::start(ProxyConfig::default());
    proxy
        .apply(vec![service(ip, Protocol::Udp, backends.clone())])
        .await;
    let front = SocketAddr::new(IpAddr::V4(ip), 8080);
    let mut names = std::collections::BTreeSet::new();
    for i in 0..4 {
        // One client socket is one session: every datagram of it reaches the same endpoint.
        let client = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        client.connect(front).await.expect("connect");
        let mut replies = Vec::new();
        for j in 0..3 {
            client
                .send(format!("ping{i}.{j}").as_bytes())
                .await
                .expect("send");
            let mut buf = [0u8; 100];
            let n = tokio::time::timeout(Duration::from_secs(5), client.recv(&mut buf))
                .await
                .expect("a reply in time")
                .expect("recv");
            replies.push(String::from_utf8_lossy(&buf[..n]).to_string());
        }
        let name = replies[0].split(':').next().unwrap_or_default().to_string();
        assert_eq!(
            replies,
            (0..3)
                .map(|j| format!("{name}:ping{i}.{j}"))
                .collect::<Vec<_>>()
        );
        names.insert(name);
    }
    assert_eq!(
        names.len(),
        2,
        "sessions spread over both endpoints: {names:?}"
    );

    // An endpoint leaving the ready set takes its sessions along: the same client's next
    // datagram is answered by an endpoint still there.
    let client = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    client.connect(front).await.expect("connect");
    let mut buf = [0u8; 100];
    client.send(b"x").await.expect("send");
    let n = tokio::time::timeout(Duration::from_secs(5), client.recv(&mut buf))
        .await
        .expect("a reply in time")
        .expect("recv");
    let first = String::from_utf8_lossy(&buf[..n]).to_string();
    let stays = if first.starts_with("a:") { 1 } else { 0 };
    proxy
        .apply(vec![service(ip, Protocol::Udp, vec![backends[stays]])])
        .await;
    client.send(b"y").await.expect("send");
    let n = tokio::time::timeout(Duration::from_secs(5), client.recv(&mut buf))
        .await
        .expect("a reply in time")
        .expect("recv");
    let after = String::from_utf8_lossy(&buf[..n]).to_string();
    assert_ne!(
        after.split(':').next(),
        first.split(':').next(),
        "the session moved off the endpoint that left: {first} then {after}"
    );
}

#[tokio::test]
async fn node_ports_listen_on_the_node_address() {
    let backend = tcp_backend("np").await;
    let node_ip = fresh_ip();
    // A free port for the node port, in the ephemeral range this test owns by address.
    let node_port = dead_endpoint().await.port();
    let mut s = service(fresh_ip(), Protocol::Tcp, vec![backend]);
    s.ports[0].node_port = Some(node_port);
    let proxy = Proxy::start(ProxyConfig {
        node_port_address: IpAddr::V4(node_ip),
        ..ProxyConfig::default()
    });
    proxy.apply(vec![s]).await;
    let answer = greeting(SocketAddr::new(IpAddr::V4(node_ip), node_port)).await;
    assert_eq!(answer.expect("node port answers"), "np");
    assert_eq!(
        proxy.status().frontends.len(),
        2,
        "cluster IP and node port"
    );

    // The Service goes away: both frontends stop.
    proxy.apply(Vec::new()).await;
    assert!(proxy.status().frontends.is_empty());
    let err = TcpStream::connect(SocketAddr::new(IpAddr::V4(node_ip), node_port))
        .await
        .expect_err("gone");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
}

#[tokio::test]
async fn a_reset_on_either_side_ends_the_other_at_once() {
    // An endpoint that resets after its greeting, and one that reports when its client goes.
    let resetting = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let resetting_addr = resetting.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut c, _)) = resetting.accept().await {
            let _ = c.write_all(b"bye\n").await;
            let _ = c.set_zero_linger();
            drop(c);
        }
    });
    let ip = fresh_ip();
    let front = SocketAddr::new(IpAddr::V4(ip), 8080);
    let proxy = Proxy::start(ProxyConfig::default());
    proxy
        .apply(vec![service(ip, Protocol::Tcp, vec![resetting_addr])])
        .await;
    let mut conn = TcpStream::connect(front).await.expect("connect");
    let mut all = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(3), conn.read_to_end(&mut all)).await;
    assert!(
        read.is_ok(),
        "the client learns the endpoint is gone instead of hanging"
    );

    let (gone_tx, gone_rx) = tokio::sync::oneshot::channel();
    let idle = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let idle_addr = idle.local_addr().expect("addr");
    tokio::spawn(async move {
        if let Ok((mut c, _)) = idle.accept().await {
            let _ = c.write_all(b"hello\n").await;
            let mut buf = [0u8; 16];
            // A quiet endpoint: it only reads, and hears of the client's reset as an end.
            let ended = c.read(&mut buf).await;
            let _ = gone_tx.send(ended.map(|n| n == 0).unwrap_or(true));
        }
    });
    proxy
        .apply(vec![service(ip, Protocol::Tcp, vec![idle_addr])])
        .await;
    let conn = TcpStream::connect(front).await.expect("connect");
    let mut greeting = [0u8; 6];
    let mut conn = conn;
    conn.read_exact(&mut greeting).await.expect("greeting");
    conn.set_zero_linger().expect("linger");
    drop(conn);
    let ended = tokio::time::timeout(Duration::from_secs(3), gone_rx).await;
    assert_eq!(
        ended.ok().and_then(Result::ok),
        Some(true),
        "the endpoint's connection ends when the client resets"
    );
}

/// A connection to `front` from source address `from`.
async fn connect_from(from: Ipv4Addr, front: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(IpAddr::V4(from), 0))?;
    tokio::time::timeout(Duration::from_secs(5), socket.connect(front))
        .await
        .map_err(|_| std::io::Error::other("connect hung"))?
}

/// The greeting on an open connection, or an error once the proxy reset or closed it.
async fn greeted(conn: &mut TcpStream) -> std::io::Result<String> {
    let mut line = String::new();
    tokio::time::timeout(
        Duration::from_secs(5),
        BufReader::new(conn).read_line(&mut line),
    )
    .await
    .map_err(|_| std::io::Error::other("no greeting"))??;
    if line.is_empty() {
        return Err(std::io::Error::other("closed"));
    }
    Ok(line.trim().to_string())
}

#[tokio::test]
async fn one_client_holding_many_idle_connections_starves_nobody_else() {
    let a = tcp_backend("a").await;
    let b = tcp_backend("b").await;
    let (ip_a, ip_b) = (fresh_ip(), fresh_ip());
    let (front_a, front_b) = (
        SocketAddr::new(IpAddr::V4(ip_a), 8080),
        SocketAddr::new(IpAddr::V4(ip_b), 8080),
    );
    let proxy = Proxy::start(ProxyConfig {
        max_connections_per_client: 20,
        max_connections_per_frontend: 50,
        ..ProxyConfig::default()
    });
    proxy
        .apply(vec![
            service(ip_a, Protocol::Tcp, vec![a]),
            service(ip_b, Protocol::Tcp, vec![b]),
        ])
        .await;
    // One client address takes its 20 connections to A and holds them, idle.
    let attacker = Ipv4Addr::new(127, 0, 0, 1);
    let mut held = Vec::new();
    for _ in 0..20 {
        let mut c = connect_from(attacker, front_a).await.unwrap();
        assert_eq!(greeted(&mut c).await.unwrap(), "a");
        held.push(c);
    }
    // Its next one is reset at once, to A or to B; nobody else notices.
    let started = std::time::Instant::now();
    let mut more = connect_from(attacker, front_a).await.unwrap();
    assert!(greeted(&mut more).await.is_err(), "past the client's limit");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "refused at once"
    );
    let mut to_b = connect_from(attacker, front_b).await.unwrap();
    assert!(
        greeted(&mut to_b).await.is_err(),
        "the limit is the client's, across Services"
    );
    let other = Ipv4Addr::new(127, 0, 0, 2);
    for front in [front_a, front_b] {
        let mut c = connect_from(other, front).await.unwrap();
        assert!(
            greeted(&mut c).await.is_ok(),
            "another client is served by {front}"
        );
    }
    // Many clients filling A's own budget leave B alone.
    for i in 0..30u8 {
        let mut c = connect_from(Ipv4Addr::new(127, 0, 1, 1 + i % 3), front_a)
            .await
            .unwrap();
        if greeted(&mut c).await.is_ok() {
            held.push(c);
        }
    }
    assert_eq!(held.len(), 50, "A holds its 50 connections");
    let mut c = connect_from(Ipv4Addr::new(127, 0, 2, 1), front_a)
        .await
        .unwrap();
    assert!(greeted(&mut c).await.is_err(), "past A's limit");
    let mut c = connect_from(Ipv4Addr::new(127, 0, 2, 1), front_b)
        .await
        .unwrap();
    assert_eq!(greeted(&mut c).await.unwrap(), "b", "B serves on");
    // Connections closing give their places back.
    held.truncate(10);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut c = connect_from(attacker, front_a).await.unwrap();
    assert_eq!(greeted(&mut c).await.unwrap(), "a");
}

#[tokio::test]
async fn silent_connections_are_closed_and_a_closing_client_takes_its_upstream_along() {
    // An endpoint that greets, then only reads, and never closes its side on its own: were
    // the proxy to leave its upstream half-open, each such connection would be held forever.
    let quiet = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let quiet_addr = quiet.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut c, _)) = quiet.accept().await {
            tokio::spawn(async move {
                let _ = c.write_all(b"quiet\n").await;
                let mut buf = [0u8; 64];
                while let Ok(n) = c.read(&mut buf).await {
                    if n == 0 {
                        // Half-closed by the proxy: stay open, as a careless server does.
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                    }
                }
            });
        }
    });
    let ip = fresh_ip();
    let front = SocketAddr::new(IpAddr::V4(ip), 8080);
    let proxy = Proxy::start(ProxyConfig {
        max_connections_per_frontend: 3,
        tcp_idle_timeout: Duration::from_secs(2),
        tcp_fin_timeout: Duration::from_secs(1),
        ..ProxyConfig::default()
    });
    proxy
        .apply(vec![service(ip, Protocol::Tcp, vec![quiet_addr])])
        .await;
    // Three clients come and go; their places come back once the proxy closes the upstream
    // connections they leave behind.
    for _ in 0..3 {
        let mut c = TcpStream::connect(front).await.unwrap();
        assert_eq!(greeted(&mut c).await.unwrap(), "quiet");
        drop(c);
    }
    let mut c = TcpStream::connect(front).await.unwrap();
    assert!(greeted(&mut c).await.is_err(), "the three are still held");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let mut kept = TcpStream::connect(front).await.unwrap();
    assert_eq!(
        greeted(&mut kept).await.unwrap(),
        "quiet",
        "places given back"
    );
    // A connection that talks stays; one that falls silent is closed.
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(700)).await;
        kept.write_all(b"still here\n").await.unwrap();
    }
    let mut buf = [0u8; 8];
    let ended = tokio::time::timeout(Duration::from_secs(5), kept.read(&mut buf)).await;
    assert!(
        matches!(ended, Ok(Ok(0)) | Ok(Err(_))),
        "closed after 2 s of silence: {ended:?}"
    );
}
