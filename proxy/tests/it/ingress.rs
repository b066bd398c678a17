//! The ingress proxy against a plain TCP backend on loopback: upgrades (WebSocket) pass
//! through, HTTP/2 in the clear (prior knowledge) is served, the endpoint sees the client in
//! `X-Forwarded-For`, and a Service without endpoints is a 503 that names it.

use std::net::SocketAddr;

use keel_proxy::ingress::{IngressConfig, IngressProxy};
use keel_proxy::{Protocol, ProxiedPort, ProxiedService};
use keel_schema::types::networking::Ingress;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Reads one request's head (up to the blank line).
async fn read_head(c: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if c.read(&mut byte).await.unwrap_or(0) == 0 {
            break;
        }
        head.push(byte[0]);
    }
    String::from_utf8_lossy(&head).into_owned()
}

/// A backend that switches protocols when asked (then echoes), and otherwise answers with
/// the request head it received.
async fn backend() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut c, _)) = l.accept().await {
            tokio::spawn(async move {
                let head = read_head(&mut c).await;
                if head.to_ascii_lowercase().contains("upgrade: websocket") {
                    let _ = c
                        .write_all(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
                        .await;
                    let (mut r, mut w) = c.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                } else {
                    let body = head.into_bytes();
                    let _ = c
                        .write_all(
                            format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len())
                                .as_bytes(),
                        )
                        .await;
                    let _ = c.write_all(&body).await;
                }
            });
        }
    });
    addr
}

fn service(name: &str, endpoints: Vec<SocketAddr>) -> ProxiedService {
    ProxiedService {
        namespace: "default".into(),
        name: name.into(),
        cluster_ip: None,
        affinity: None,
        external_local: false,
        external_ips: Vec::new(),
        ports: vec![ProxiedPort {
            name: None,
            protocol: Protocol::Tcp,
            port: 80,
            node_port: None,
            endpoints,
        }],
    }
}

async fn proxy(endpoint: SocketAddr) -> IngressProxy {
    let any = "127.0.0.1:0".parse().expect("an address");
    let proxy = IngressProxy::start(IngressConfig {
        http: any,
        https: any,
    })
    .await
    .expect("the ingress proxy listens");
    let ingress: Ingress = serde_yaml::from_str(
        "metadata: {name: web, namespace: default}
spec:
  rules:
  - host: ws.example
    http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: chat, port: {number: 80}}}}]}
  - host: empty.example
    http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: nobody, port: {number: 80}}}}]}",
    )
    .expect("an Ingress");
    proxy.update(
        &[ingress],
        &[],
        &[service("chat", vec![endpoint]), service("nobody", vec![])],
    );
    proxy
}

#[tokio::test]
async fn a_websocket_upgrade_passes_through_and_bytes_flow_both_ways() {
    let proxy = proxy(backend().await).await;
    let mut c = TcpStream::connect(proxy.addresses.0)
        .await
        .expect("connect");
    c.write_all(b"GET /chat HTTP/1.1\r\nHost: ws.example\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
        .await
        .expect("send");
    let head = read_head(&mut c).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    c.write_all(b"ping").await.expect("send after the upgrade");
    let mut echoed = [0u8; 4];
    c.read_exact(&mut echoed).await.expect("the echo");
    assert_eq!(&echoed, b"ping");
}

#[tokio::test]
async fn plain_requests_carry_forwarded_headers_and_empty_services_are_named() {
    let proxy = proxy(backend().await).await;
    let http = proxy.addresses.0;
    let ask = |host: &'static str| async move {
        let mut c = TcpStream::connect(http).await.expect("connect");
        c.write_all(
            format!("GET /x HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .expect("send");
        let mut out = String::new();
        let _ = c.read_to_string(&mut out).await;
        out
    };
    let seen = ask("ws.example").await.to_ascii_lowercase();
    assert!(seen.starts_with("http/1.1 200"), "{seen}");
    assert!(seen.contains("x-forwarded-for: 127.0.0.1"), "{seen}");
    assert!(seen.contains("x-forwarded-proto: http"), "{seen}");
    assert!(seen.contains("host: ws.example"), "{seen}");
    let empty = ask("empty.example").await;
    assert!(empty.starts_with("HTTP/1.1 503"), "{empty}");
    assert!(empty.contains("default/nobody:80"), "{empty}");
    let unknown = ask("other.example").await;
    assert!(unknown.starts_with("HTTP/1.1 404"), "{unknown}");
}

#[tokio::test]
async fn http2_in_the_clear_is_served_with_prior_knowledge() {
    let proxy = proxy(backend().await).await;
    let url = format!("http://ws.example:{}/x", proxy.addresses.0.port());
    let resolve = format!("ws.example:{}:127.0.0.1", proxy.addresses.0.port());
    let out = tokio::process::Command::new("curl")
        .args([
            "-s",
            "--max-time",
            "5",
            "--http2-prior-knowledge",
            "-w",
            "\n%{http_version}",
        ])
        .args(["--resolve", &resolve, &url])
        .output()
        .await
        .expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.trim_end().ends_with("\n2"), "{text}");
    assert!(
        text.to_ascii_lowercase().contains("host: ws.example"),
        "{text}"
    );
}
