//! `keel port-forward POD [LOCAL:]REMOTE…`: listens on this machine and forwards each
//! connection to a port inside the pod, over the server's port-forward endpoint
//! (Kubernetes' `v4.channel.k8s.io` on a WebSocket, one per connection), until Ctrl-C.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use keel_api::channels;
use keel_schema::{Kind, Object};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;

use super::ServerArg;
use crate::output::runtime;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The pod.
    pub pod: String,
    /// Ports as LOCAL:REMOTE, PORT (the same on both sides) or :REMOTE (any free local port).
    #[arg(required = true)]
    pub ports: Vec<String>,
    /// The local address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub address: std::net::IpAddr,
    #[arg(short, long, default_value = "default")]
    pub namespace: String,
    #[command(flatten)]
    pub server: ServerArg,
}

/// One `LOCAL:REMOTE`; local 0 is any free port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Forward {
    local: u16,
    remote: u16,
}

fn parse(spec: &str) -> Result<Forward, String> {
    let port = |text: &str, zero_ok: bool| match text.parse::<u16>() {
        Ok(0) if !zero_ok => Err(format!("{spec:?}: port 0 is not a port")),
        Ok(n) => Ok(n),
        Err(_) => Err(format!(
            "{spec:?}: {text:?} is not a port number (use LOCAL:REMOTE, PORT or :REMOTE)"
        )),
    };
    match spec.split_once(':') {
        None => port(spec, false).map(|p| Forward {
            local: p,
            remote: p,
        }),
        Some(("", remote)) => Ok(Forward {
            local: 0,
            remote: port(remote, false)?,
        }),
        Some((local, remote)) => Ok(Forward {
            local: port(local, true)?,
            remote: port(remote, false)?,
        }),
    }
}

pub fn run(args: &Args) -> i32 {
    let forwards = match args
        .ports
        .iter()
        .map(|p| parse(p))
        .collect::<Result<Vec<_>, _>>()
    {
        Ok(forwards) => forwards,
        Err(message) => {
            eprintln!("error: {message}");
            return 2;
        }
    };
    let Some(runtime) = runtime("port-forward") else {
        return 1;
    };
    let server = args.server.server.clone();
    let client = match crate::credentials::connect(&server) {
        Ok(client) => client,
        Err(e) => {
            eprintln!("{}", crate::credentials::explain(&e, &server));
            return 1;
        }
    };
    let token = crate::credentials::token(&server);
    let outcome = runtime.block_on(async {
        // As kubectl does: a pod that is not running cannot take connections.
        let pod = client
            .object(Kind::Pod, &args.namespace, &args.pod)
            .await
            .map_err(|e| crate::credentials::explain(&e, &server))?;
        if let Object::Pod(pod) = &pod {
            let phase = pod.status.as_ref().and_then(|s| s.phase);
            if phase != Some(keel_schema::types::pod::PodPhase::Running) {
                return Err(format!(
                    "unable to forward port because pod is not running. Current status={}",
                    phase.map_or("Unknown", |p| p.as_str())
                ));
            }
        }
        let mut listeners = Vec::new();
        for forward in &forwards {
            let listener = TcpListener::bind((args.address, forward.local))
                .await
                .map_err(|e| {
                    format!(
                        "unable to listen on {}:{}: {e}",
                        args.address, forward.local
                    )
                })?;
            let local = listener.local_addr().map_err(|e| e.to_string())?;
            println!("Forwarding from {local} -> {}", forward.remote);
            listeners.push((listener, forward.remote));
        }
        let target = Target {
            server: server.clone(),
            token,
            path: crate::websocket::pod_path(&args.namespace, &args.pod, "portforward"),
        };
        let mut accepting = tokio::task::JoinSet::new();
        for (listener, remote) in listeners {
            let target = target.clone();
            accepting.spawn(accept(listener, remote, target));
        }
        tokio::select! {
            _ = tokio::signal::ctrl_c() => Ok(()),
            Some(Ok(Err(e))) = accepting.join_next() => Err(e),
        }
    });
    match outcome {
        Ok(()) => 0,
        Err(message) => {
            eprintln!("error: {message}");
            1
        }
    }
}

/// Where each connection is forwarded.
#[derive(Clone)]
struct Target {
    server: String,
    token: Option<String>,
    path: String,
}

async fn accept(listener: TcpListener, remote: u16, target: Target) -> Result<(), String> {
    loop {
        let (connection, _) = listener
            .accept()
            .await
            .map_err(|e| format!("accepting connections: {e}"))?;
        println!("Handling connection for {remote}");
        let target = target.clone();
        tokio::spawn(async move {
            if let Err(e) = forward(connection, remote, &target).await {
                eprintln!("error: {e}");
            }
        });
    }
}

/// One local connection, to `remote` in the pod, until either side closes.
/// How long a connection whose local side has finished waits for more from the pod.
const IDLE_AFTER_EOF: Duration = Duration::from_secs(5);

/// The next message, or `None` (as at the end) when `idle` passes first.
async fn next_within<S>(stream: &mut S, idle: Option<Duration>) -> Option<S::Item>
where
    S: futures_util::Stream + Unpin,
{
    match idle {
        None => stream.next().await,
        Some(idle) => tokio::time::timeout(idle, stream.next())
            .await
            .ok()
            .flatten(),
    }
}

async fn forward(mut connection: TcpStream, remote: u16, target: &Target) -> Result<(), String> {
    let path = format!("{}?ports={remote}", target.path);
    let (socket, _) = crate::websocket::open(
        &target.server,
        target.token.as_deref(),
        &path,
        &[channels::V4],
    )
    .await?;
    let (mut sink, mut stream) = socket.split();
    let (mut from_local, mut to_local) = connection.split();
    // The first message on each of the port's two channels is its port number.
    let mut announced = [false, false];
    let mut buffer = vec![0u8; 32 * 1024];
    let mut local_open = true;
    loop {
        tokio::select! {
            read = from_local.read(&mut buffer), if local_open => match read {
                Ok(0) | Err(_) => local_open = false,
                Ok(n) => {
                    let message = Message::Binary(channels::frame(0, &buffer[..n]).into());
                    if sink.send(message).await.is_err() {
                        return Ok(());
                    }
                }
            },
            // The channel protocol cannot pass a half-close on: once the local side has
            // finished, the pod's answer is taken until it goes quiet for IDLE_AFTER_EOF.
            message = next_within(&mut stream, (!local_open).then_some(IDLE_AFTER_EOF)) => match message {
                Some(Ok(Message::Binary(data))) => {
                    let Some((&channel, rest)) = data.split_first() else { continue };
                    let Some(seen) = announced.get_mut(usize::from(channel)) else { continue };
                    if !*seen {
                        *seen = true;
                        continue;
                    }
                    if channel == 1 {
                        return Err(format!(
                            "forwarding port {remote}: {}",
                            String::from_utf8_lossy(rest)
                        ));
                    }
                    if to_local.write_all(rest).await.is_err() {
                        break;
                    }
                }
                Some(Ok(Message::Close(_))) | None => break,
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(format!("the session broke: {e}")),
            },
        }
    }
    let _ = to_local.shutdown().await;
    let _ = sink.send(Message::Close(None)).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_specs_read_as_kubectl_reads_them() {
        assert_eq!(
            parse("8080").unwrap(),
            Forward {
                local: 8080,
                remote: 8080
            }
        );
        assert_eq!(
            parse("9000:80").unwrap(),
            Forward {
                local: 9000,
                remote: 80
            }
        );
        assert_eq!(
            parse(":80").unwrap(),
            Forward {
                local: 0,
                remote: 80
            }
        );
        assert!(parse("0").unwrap_err().contains("port 0"));
        assert!(
            parse("web:80")
                .unwrap_err()
                .contains("\"web\" is not a port")
        );
        assert!(parse("80:").unwrap_err().contains("\"\" is not a port"));
    }
}
