//! `kubectl port-forward` (1.30 and newer): SPDY/3.1 streams carried inside a WebSocket
//! (subprotocol `SPDY/3.1+portforward.k8s.io`), as the kubelet serves them. kubectl opens
//! two streams per local connection, sharing a `requestID`: `streamType: error` and
//! `streamType: data`, each naming the `port`. Once both are open the pod's port is
//! connected through its node's agent (`PortForward`); bytes flow on the data stream, and a
//! failure is written on the error stream. One tunnel serves every connection of a
//! `kubectl port-forward` until kubectl stops.

use std::collections::HashMap;

use axum::extract::ws::{Message, WebSocket};
use futures_util::{SinkExt, StreamExt};
use keel_agent_protocol::forward_input::Input;
use keel_agent_protocol::node_agent_client::NodeAgentClient;
use keel_agent_protocol::{ForwardInput, ForwardStart};
use tokio::sync::mpsc;
use tonic::transport::Channel;

use super::spdy::{self, Frame, headers::HeaderCodec};

pub const PROTOCOL: &str = "SPDY/3.1+portforward.k8s.io";

/// What the writer sends, in order.
enum Out {
    Reply(u32),
    Data { id: u32, bytes: Vec<u8>, fin: bool },
    Pong(u32),
}

/// The two streams of one local connection, as they open.
#[derive(Default)]
struct Pair {
    error: Option<u32>,
    data: Option<(u32, Result<u16, String>)>,
    /// The connection's input, until it starts.
    waiting: Option<mpsc::Receiver<ForwardInput>>,
}

/// The pod a tunnel reaches.
#[derive(Clone)]
pub struct Target {
    pub client: NodeAgentClient<Channel>,
    pub namespace: String,
    pub pod: String,
}

pub async fn run(socket: WebSocket, target: Target) {
    let (mut sink, mut stream) = socket.split();
    let (out, mut outgoing) = mpsc::channel::<Out>(64);
    let writer = tokio::spawn(async move {
        let mut codec = HeaderCodec::new();
        while let Some(next) = outgoing.recv().await {
            let frame = match next {
                Out::Reply(id) => spdy::syn_reply(id, &codec.encode(&[])),
                Out::Data { id, bytes, fin } => spdy::data(id, &bytes, fin),
                Out::Pong(id) => spdy::ping(id),
            };
            if sink.send(Message::Binary(frame.into())).await.is_err() {
                return;
            }
        }
        let _ = sink.send(super::upgrade::normal_close()).await;
    });
    let mut session = Session {
        target,
        codec: HeaderCodec::new(),
        out,
        pairs: HashMap::new(),
        to_pod: HashMap::new(),
        connections: tokio::task::JoinSet::new(),
    };
    let mut buffer = Vec::new();
    'session: while let Some(Ok(message)) = stream.next().await {
        match message {
            Message::Binary(bytes) => buffer.extend_from_slice(&bytes),
            Message::Close(_) => break,
            _ => continue,
        }
        loop {
            match spdy::read(&buffer) {
                Ok(Some((frame, used))) => {
                    buffer.drain(..used);
                    if !session.handle(frame).await {
                        break 'session;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!(error = %e, "port-forward tunnel ended");
                    break 'session;
                }
            }
        }
    }
    // kubectl left: every connection closes with it.
    session.connections.abort_all();
    drop(session);
    let _ = writer.await;
}

struct Session {
    target: Target,
    codec: HeaderCodec,
    out: mpsc::Sender<Out>,
    pairs: HashMap<String, Pair>,
    /// Each started or waiting connection's input, by its data stream.
    to_pod: HashMap<u32, mpsc::Sender<ForwardInput>>,
    connections: tokio::task::JoinSet<()>,
}

impl Session {
    /// Acts on one frame; false when the session must end.
    async fn handle(&mut self, frame: Frame) -> bool {
        match frame {
            Frame::SynStream { id, block, .. } => {
                let headers = match self.codec.decode(&block) {
                    Ok(headers) => headers,
                    Err(e) => {
                        tracing::debug!(error = %e, "port-forward tunnel ended");
                        return false;
                    }
                };
                let _ = self.out.send(Out::Reply(id)).await;
                self.open(id, &headers);
            }
            Frame::Data { id, flags, data } => {
                if let Some(to_pod) = self.to_pod.get(&id) {
                    if !data.is_empty() {
                        let input = Input::Data(data);
                        let _ = to_pod.send(ForwardInput { input: Some(input) }).await;
                    }
                    if flags & spdy::FLAG_FIN != 0 {
                        let input = Input::Close(true);
                        let _ = to_pod.send(ForwardInput { input: Some(input) }).await;
                        self.to_pod.remove(&id);
                    }
                }
            }
            // Dropping the input ends the connection towards the pod.
            Frame::Reset { id } => drop(self.to_pod.remove(&id)),
            Frame::Ping { id } => drop(self.out.send(Out::Pong(id)).await),
            Frame::GoAway => return false,
            Frame::Ignored => {}
        }
        true
    }

    /// A new stream: one half of a connection's pair, started once both are open.
    fn open(&mut self, id: u32, headers: &[(String, String)]) {
        let header = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        };
        let port = header("port").unwrap_or_default();
        // Clients without request ids open one connection per port at a time.
        let request = header("requestid").map_or_else(|| format!("port {port}"), str::to_string);
        let pair = self.pairs.entry(request.clone()).or_default();
        match header("streamtype") {
            Some("error") => pair.error = Some(id),
            Some("data") => {
                let port = match port.parse::<u16>() {
                    Ok(p) if p > 0 => Ok(p),
                    _ => Err(format!("invalid port {port:?}")),
                };
                let (to_pod, input) = mpsc::channel(64);
                if let Ok(port) = port {
                    let start = ForwardStart {
                        namespace: self.target.namespace.clone(),
                        pod: self.target.pod.clone(),
                        port: u32::from(port),
                    };
                    let input = Input::Start(start);
                    let _ = to_pod.try_send(ForwardInput { input: Some(input) });
                }
                self.to_pod.insert(id, to_pod);
                pair.data = Some((id, port));
                pair.waiting = Some(input);
            }
            _ => {
                // Not a stream port-forward has: nothing flows on it.
                let _ = self.out.try_send(Out::Data {
                    id,
                    bytes: Vec::new(),
                    fin: true,
                });
                return;
            }
        }
        if let Pair {
            error: Some(error),
            data: Some((data, port)),
            waiting: Some(_),
        } = pair
        {
            let (error, data, port) = (*error, *data, port.clone());
            let input = pair.waiting.take();
            self.pairs.remove(&request);
            let (target, out) = (self.target.clone(), self.out.clone());
            if let Some(input) = input {
                self.connections
                    .spawn(connect(target, port, input, error, data, out));
            }
        }
    }
}

/// One connection: the pod's port through its agent; its bytes on stream `data`, a failure
/// on stream `error`; both streams are finished at its end.
async fn connect(
    target: Target,
    port: Result<u16, String>,
    input: mpsc::Receiver<ForwardInput>,
    error: u32,
    data: u32,
    out: mpsc::Sender<Out>,
) {
    let failure = match port {
        Err(e) => Some(e),
        Ok(_) => {
            let mut client = target.client.clone();
            let input = tokio_stream::wrappers::ReceiverStream::new(input);
            match client.port_forward(input).await {
                Err(e) => Some(e.message().to_string()),
                Ok(answer) => {
                    let mut from_pod = answer.into_inner();
                    loop {
                        match from_pod.message().await {
                            Ok(Some(chunk)) => {
                                let bytes = chunk.data;
                                let sent = out.send(Out::Data {
                                    id: data,
                                    bytes,
                                    fin: false,
                                });
                                if sent.await.is_err() {
                                    return;
                                }
                            }
                            Ok(None) => break None,
                            Err(e) => break Some(e.message().to_string()),
                        }
                    }
                }
            }
        }
    };
    if let Some(message) = failure {
        let bytes = message.into_bytes();
        let _ = out
            .send(Out::Data {
                id: error,
                bytes,
                fin: false,
            })
            .await;
    }
    for id in [data, error] {
        let _ = out
            .send(Out::Data {
                id,
                bytes: Vec::new(),
                fin: true,
            })
            .await;
    }
}
