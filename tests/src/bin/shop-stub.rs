//! Stand-in programs for the microservices shop demo's images (no registry is reachable
//! here), so that its release manifest runs on keel unchanged, probes and all. One binary,
//! one mode per kind of image:
//! - `shop-stub grpc [PORT]`: grpc.health.v1 answering SERVING on `$PORT` (or `PORT`),
//!   which is what each backend's readiness and liveness probes ask.
//! - `shop-stub frontend [PORT]`: HTTP on `$PORT` (or `PORT`). `/_healthz` answers 200. `/` answers 200 only
//!   when every backend named by a `*_SERVICE_ADDR` variable (`cartservice:7070`) answers
//!   its health check SERVING. The check goes through the Service name, so cluster DNS and
//!   Service routing are on the way. Otherwise `/` answers 503 naming the backends that
//!   did not answer.
//! - `shop-stub tcp PORT`: accepts connections and answers each `PING` line with `+PONG`,
//!   for the cart's redis.
#![forbid(unsafe_code)]

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `$PORT` when the manifest sets it, as the demo's programs read it; else the image's
    // own default, given as an argument.
    let port = std::env::var("PORT")
        .ok()
        .or_else(|| args.get(1).cloned())
        .unwrap_or_else(|| "8080".into());
    let result = match args.first().map(String::as_str) {
        Some("grpc") => grpc(&port).await,
        Some("frontend") => frontend(&port).await,
        Some("tcp") => tcp(args.get(1).map_or("6379", String::as_str)).await,
        _ => Err("usage: shop-stub grpc [PORT] | frontend [PORT] | tcp PORT".into()),
    };
    if let Err(e) = result {
        eprintln!("shop-stub: {e}");
        std::process::exit(1);
    }
}

async fn listen(port: &str) -> Result<TcpListener> {
    TcpListener::bind(format!("0.0.0.0:{port}"))
        .await
        .map_err(|e| format!("cannot listen on port {port}: {e}").into())
}

async fn grpc(port: &str) -> Result<()> {
    let (_reporter, service) = tonic_health::server::health_reporter();
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listen(port).await?);
    eprintln!("shop-stub: grpc.health.v1 serving on port {port}");
    tonic::transport::Server::builder()
        .add_service(service)
        .serve_with_incoming(incoming)
        .await?;
    Ok(())
}

async fn frontend(port: &str) -> Result<()> {
    let listener = listen(port).await?;
    eprintln!("shop-stub: frontend serving on port {port}");
    loop {
        let (stream, _) = listener.accept().await?;
        tokio::spawn(async move {
            if let Err(e) = answer(stream).await {
                eprintln!("shop-stub: a request failed: {e}");
            }
        });
    }
}

/// One HTTP/1 request, answered and closed (probes and `wget` need no more).
async fn answer(stream: TcpStream) -> Result<()> {
    let mut reader = BufReader::new(stream);
    let mut request_line = String::new();
    reader.read_line(&mut request_line).await?;
    // The headers, up to the empty line; their content does not matter here.
    let mut line = String::new();
    while reader.read_line(&mut line).await? > 2 {
        line.clear();
    }
    let path = request_line.split_whitespace().nth(1).unwrap_or("/");
    let (status, body) = if path == "/_healthz" {
        ("200 OK", "ok\n".to_string())
    } else {
        let unhealthy = unhealthy_backends().await;
        if unhealthy.is_empty() {
            ("200 OK", "every backend is serving\n".to_string())
        } else {
            (
                "503 Service Unavailable",
                format!("not serving: {}\n", unhealthy.join(", ")),
            )
        }
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    reader.get_mut().write_all(response.as_bytes()).await?;
    Ok(())
}

/// The backends named by `*_SERVICE_ADDR` variables that do not answer SERVING, each with
/// why.
async fn unhealthy_backends() -> Vec<String> {
    let mut backends: Vec<(String, String)> = std::env::vars()
        .filter(|(name, _)| name.ends_with("_SERVICE_ADDR"))
        .collect();
    backends.sort();
    let mut unhealthy = Vec::new();
    for (name, address) in backends {
        if let Err(e) = check(&address).await {
            unhealthy.push(format!("{name}={address} ({e})"));
        }
    }
    unhealthy
}

async fn check(address: &str) -> Result<()> {
    let ask = async {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{address}"))?
            .connect()
            .await?;
        let answer = HealthClient::new(channel)
            .check(HealthCheckRequest::default())
            .await?;
        match answer.into_inner().status() {
            ServingStatus::Serving => Ok(()),
            other => Err(format!("status {other:?}").into()),
        }
    };
    tokio::time::timeout(Duration::from_secs(3), ask)
        .await
        .map_err(|_| "no answer in 3 s")?
}

async fn tcp(port: &str) -> Result<()> {
    let listener = listen(port).await?;
    eprintln!("shop-stub: answering PING on port {port}");
    loop {
        let (mut stream, _) = listener.accept().await?;
        tokio::spawn(async move {
            let (read, mut write) = stream.split();
            let mut lines = BufReader::new(read.take(1 << 16)).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if line.trim().eq_ignore_ascii_case("ping")
                    && write.write_all(b"+PONG\r\n").await.is_err()
                {
                    break;
                }
            }
        });
    }
}
