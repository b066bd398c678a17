//! `kubectl port-forward` (1.30 and newer): SPDY/3.1 streams carried inside a WebSocket
//! (subprotocol `SPDY/3.1+portforward.k8s.io`), as the kubelet serves them. kubectl opens
//! two streams per local connection, sharing a `requestID`: `streamType: error` and
//! `streamType: data`, each naming the `port`. Once both are open the pod's port is
//! connected through its node's agent (`PortForward`); bytes flow on the data stream, and a
//! failure is written on the error stream. One tunnel serves every connection of a
//! `kubectl port-forward` until kubectl stops.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::extract::ws::{Message, WebSocket};
use futures_util::{SinkExt, StreamExt};
use keel_agent_protocol::forward_input::Input;
use keel_agent_protocol::node_agent_client::NodeAgentClient;
use keel_agent_protocol::{ForwardInput, ForwardStart};
use tokio::sync::mpsc;
use tokio::task::{AbortHandle, JoinSet};
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
struct Pair {
    error: Option<u32>,
    data: Option<(u32, Result<u16, String>)>,
    /// The connection's input, until it starts.
    waiting: Option<mpsc::Receiver<ForwardInput>>,
    opened: Instant,
}

/// A started connection: its task and its two streams.
#[derive(Clone)]
struct Running {
    task: AbortHandle,
    data: u32,
    error: u32,
}

/// How long a pod may take to take what is sent to it: the tunnel has one reader, which must
/// not wait on one slow connection for good; a connection this slow is given up.
const SEND_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one half of a connection's pair waits for the other.
const PAIR_TIMEOUT: Duration = Duration::from_secs(30);

/// The pod a tunnel reaches, through its node's agent (or why the agent cannot be reached,
/// told to each connection).
#[derive(Clone)]
pub struct Target {
    pub client: Result<NodeAgentClient<Channel>, String>,
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
        running: HashMap::new(),
        connections: JoinSet::new(),
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
    /// Each started connection, by its data stream and by its error stream.
    running: HashMap<u32, Running>,
    connections: JoinSet<()>,
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
                self.prune().await;
                let _ = self.out.send(Out::Reply(id)).await;
                self.open(id, &headers);
            }
            // Read, so the header compression stays in step; nothing in it matters here.
            Frame::Headers { block } => {
                if let Err(e) = self.codec.decode(&block) {
                    tracing::debug!(error = %e, "port-forward tunnel ended");
                    return false;
                }
            }
            Frame::Data { id, flags, data } => {
                let mut inputs = Vec::new();
                if !data.is_empty() {
                    inputs.push(Input::Data(data));
                }
                if flags & spdy::FLAG_FIN != 0 {
                    inputs.push(Input::Close(true));
                }
                for input in inputs {
                    self.send(id, input).await;
                }
            }
            Frame::Reset { id } => drop(self.give_up(id)),
            Frame::Ping { id } => drop(self.out.send(Out::Pong(id)).await),
            Frame::GoAway => return false,
            Frame::Ignored => {}
        }
        true
    }

    /// Passes `input` to the connection of data stream `id`; a connection that does not
    /// take it in time is given up.
    async fn send(&mut self, id: u32, input: Input) {
        let Some(to_pod) = self.to_pod.get(&id) else {
            return;
        };
        let closing = matches!(input, Input::Close(_));
        let sent = tokio::time::timeout(
            SEND_TIMEOUT,
            to_pod.send(ForwardInput { input: Some(input) }),
        )
        .await;
        match sent {
            Ok(Ok(())) if !closing => {}
            // Closed towards the pod: nothing more will be passed on.
            Ok(Ok(())) => drop(self.to_pod.remove(&id)),
            Ok(Err(_)) => drop(self.to_pod.remove(&id)),
            Err(_) => {
                tracing::debug!(stream = id, "a port-forward connection too slow; given up");
                if let Some(gone) = self.give_up(id) {
                    let message = b"the pod did not take what was sent to it in 30 s".to_vec();
                    let _ = self.out.try_send(Out::Data {
                        id: gone.error,
                        bytes: message,
                        fin: false,
                    });
                    for stream in [gone.data, gone.error] {
                        let _ = self.out.try_send(Out::Data {
                            id: stream,
                            bytes: Vec::new(),
                            fin: true,
                        });
                    }
                }
            }
        }
    }

    /// Ends the connection that stream `id` belongs to (reset by the client, or too slow);
    /// its streams, if it had started.
    fn give_up(&mut self, id: u32) -> Option<Running> {
        self.to_pod.remove(&id);
        let connection = self.running.remove(&id)?;
        self.running.remove(&connection.data);
        self.running.remove(&connection.error);
        self.to_pod.remove(&connection.data);
        connection.task.abort();
        Some(connection)
    }

    /// Forgets connections that ended and halves whose other half never came.
    async fn prune(&mut self) {
        self.to_pod.retain(|_, to_pod| !to_pod.is_closed());
        self.running
            .retain(|_, connection| !connection.task.is_finished());
        let stale: Vec<String> = self
            .pairs
            .iter()
            .filter(|(_, pair)| pair.opened.elapsed() > PAIR_TIMEOUT)
            .map(|(request, _)| request.clone())
            .collect();
        for request in stale {
            let Some(pair) = self.pairs.remove(&request) else {
                continue;
            };
            let data = pair.data.map(|(id, _)| id);
            for id in pair.error.into_iter().chain(data) {
                self.to_pod.remove(&id);
                let _ = self.out.try_send(Out::Data {
                    id,
                    bytes: Vec::new(),
                    fin: true,
                });
            }
        }
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
        let pair = self.pairs.entry(request.clone()).or_insert_with(|| Pair {
            error: None,
            data: None,
            waiting: None,
            opened: Instant::now(),
        });
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
        if let (Some(error), Some((data, port)), Some(_)) =
            (pair.error, pair.data.clone(), pair.waiting.as_ref())
        {
            let input = pair.waiting.take();
            self.pairs.remove(&request);
            let (target, out) = (self.target.clone(), self.out.clone());
            if let Some(input) = input {
                let task = self
                    .connections
                    .spawn(connect(target, port, input, error, data, out));
                let connection = Running { task, data, error };
                self.running.insert(data, connection.clone());
                self.running.insert(error, connection);
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
            let input = tokio_stream::wrappers::ReceiverStream::new(input);
            let answer = match target.client.clone() {
                Ok(mut client) => client
                    .port_forward(input)
                    .await
                    .map_err(|e| e.message().to_string()),
                Err(e) => Err(e),
            };
            match answer {
                Err(e) => Some(e),
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
