//! `…/pods/NAME/portforward?ports=P,…`: Kubernetes' WebSocket port-forward
//! (`v4.channel.k8s.io`; kubectl's SPDY tunnel is [`super::tunnel`]). Port number i of the request has data channel 2i and error channel
//! 2i+1; each channel's first message from the server is the port, 16 bits little-endian.
//! Each port is one TCP connection in the pod's network namespace, made by its node's agent
//! (`PortForward`); a connection that fails is reported on the port's error channel.

use axum::extract::ws::{
    Message, WebSocket, WebSocketUpgrade, rejection::WebSocketUpgradeRejection,
};
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use futures_util::{SinkExt, StreamExt};
use keel_agent_protocol::forward_input::Input;
use keel_agent_protocol::node_agent_client::NodeAgentClient;
use keel_agent_protocol::{ForwardInput, ForwardStart};
use keel_api::channels;
use tokio::sync::mpsc;
use tonic::transport::Channel;

use super::upgrade;
use crate::http::errors::bad_request;
use crate::http::state::AppState;

/// Two channels per port, numbered by one byte.
const MAX_PORTS: usize = 127;
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The `ports` parameter (repeated or comma-separated); why not, for a 400.
fn ports(query: &str) -> Result<Vec<u16>, String> {
    let mut ports = Vec::new();
    for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
        if key != "ports" {
            continue;
        }
        for port in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match port.parse::<u16>() {
                Ok(n) if n > 0 => ports.push(n),
                _ => return Err(format!("ports: {port:?} is not a port number (1-65535)")),
            }
        }
    }
    if ports.is_empty() {
        return Err("at least one port is required (ports=PORT)".into());
    }
    if ports.len() > MAX_PORTS {
        return Err(format!("at most {MAX_PORTS} ports at once"));
    }
    Ok(ports)
}

pub async fn port_forward(
    State(state): State<AppState>,
    Path((ns, name)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let (node, address) = match crate::http::logs::agent_of(&state, &ns, &name).await {
        Ok(found) => found,
        Err(response) => return *response,
    };
    let (upgrade, protocol) =
        match upgrade::accept(upgrade, &headers, &[super::tunnel::PROTOCOL, channels::V4]) {
            Ok(accepted) => accepted,
            Err(refused) => return *refused,
        };
    // The tunnel names each connection's port in its streams; the channel protocol, here.
    let ports = if protocol == super::tunnel::PROTOCOL {
        Vec::new()
    } else {
        match ports(query.as_deref().unwrap_or("")) {
            Ok(ports) => ports,
            Err(message) => return bad_request(message),
        }
    };
    // An agent out of reach is told on each connection's error stream or channel: an HTTP
    // error now would send kubectl to its SPDY fallback, hiding the reason.
    let client = state
        .dialer
        .connect(&node, &address, Some(CONNECT_TIMEOUT))
        .await;
    tracing::info!(pod = %format!("{ns}/{name}"), ?ports, protocol, "port-forward opened");
    if protocol == super::tunnel::PROTOCOL {
        let target = super::tunnel::Target {
            client,
            namespace: ns,
            pod: name,
        };
        return upgrade.on_upgrade(move |socket| super::tunnel::run(socket, target));
    }
    upgrade.on_upgrade(move |socket| bridge(socket, client, ns, name, ports))
}

/// Forwards every port until the client closes or every connection has ended.
async fn bridge(
    socket: WebSocket,
    client: Result<NodeAgentClient<Channel>, String>,
    ns: String,
    name: String,
    ports: Vec<u16>,
) {
    let (mut sink, mut stream) = socket.split();
    // One writer owns the socket; each port's task sends it messages.
    let (to_client, mut outgoing) = mpsc::channel::<Vec<u8>>(64);
    let writer = tokio::spawn(async move {
        while let Some(message) = outgoing.recv().await {
            if sink.send(Message::Binary(message.into())).await.is_err() {
                return;
            }
        }
        let _ = sink.send(super::upgrade::normal_close()).await;
    });
    let mut to_pods = Vec::with_capacity(ports.len());
    let mut connections = tokio::task::JoinSet::new();
    for (index, port) in ports.iter().copied().enumerate() {
        let (data, error) = channels_of(index);
        for channel in [data, error] {
            let _ = to_client
                .send(channels::frame(channel, &port.to_le_bytes()))
                .await;
        }
        let (to_pod, requests) = mpsc::channel(16);
        let start = ForwardStart {
            namespace: ns.clone(),
            pod: name.clone(),
            port: u32::from(port),
        };
        let _ = to_pod
            .send(ForwardInput {
                input: Some(Input::Start(start)),
            })
            .await;
        to_pods.push(to_pod);
        let client = client.clone();
        let to_client = to_client.clone();
        connections.spawn(async move {
            let requests = tokio_stream::wrappers::ReceiverStream::new(requests);
            let answer = match client {
                Ok(mut client) => client
                    .port_forward(requests)
                    .await
                    .map_err(|e| e.message().to_string()),
                Err(e) => Err(e),
            };
            let mut from_pod = match answer {
                Ok(answer) => answer.into_inner(),
                Err(e) => {
                    let _ = to_client.send(channels::frame(error, e.as_bytes())).await;
                    return;
                }
            };
            loop {
                match from_pod.message().await {
                    Ok(Some(output)) => {
                        if to_client
                            .send(channels::frame(data, &output.data))
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                    Ok(None) => return,
                    Err(e) => {
                        let _ = to_client
                            .send(channels::frame(error, e.message().as_bytes()))
                            .await;
                        return;
                    }
                }
            }
        });
    }
    drop(to_client);
    let from_client = async {
        while let Some(Ok(message)) = stream.next().await {
            let data = match message {
                Message::Binary(data) => data,
                Message::Close(_) => break,
                _ => continue,
            };
            let Some((&channel, rest)) = data.split_first() else {
                continue;
            };
            let index = usize::from(channel / 2);
            // Only data channels carry bytes towards the pod.
            if channel % 2 != 0 || rest.is_empty() {
                continue;
            }
            let Some(to_pod) = to_pods.get(index) else {
                continue;
            };
            let input = ForwardInput {
                input: Some(Input::Data(rest.to_vec())),
            };
            // A port whose connection ended drops what is sent to it.
            let _ = to_pod.send(input).await;
        }
    };
    let all_ended = async { while connections.join_next().await.is_some() {} };
    tokio::select! {
        () = from_client => {}
        () = all_ended => {}
    }
    // The client left or every connection ended: close the rest and the socket.
    connections.abort_all();
    drop(to_pods);
    let _ = writer.await;
}

/// The data and error channels of the port at `index`.
fn channels_of(index: usize) -> (u8, u8) {
    let data = u8::try_from(index * 2).unwrap_or(u8::MAX - 1);
    (data, data + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_read_as_kubernetes_sends_them() {
        assert_eq!(ports("ports=8080").unwrap(), [8080]);
        assert_eq!(ports("ports=80%2C443&ports=9000").unwrap(), [80, 443, 9000]);
        assert!(ports("").unwrap_err().contains("at least one port"));
        assert!(ports("ports=0").unwrap_err().contains("\"0\""));
        assert!(ports("ports=http").unwrap_err().contains("\"http\""));
        assert_eq!(channels_of(0), (0, 1));
        assert_eq!(channels_of(3), (6, 7));
    }
}
