//! `…/pods/NAME/exec` and `…/pods/NAME/attach`: Kubernetes' parameters (`command`,
//! `container`, `stdin`, `stdout`, `stderr`, `tty`) and the pod checked (HTTP errors), the
//! agent's `Exec` call opened, then the WebSocket bridged to it: stdin and terminal sizes
//! in, output and the exit `Status` out. What the agent refuses (a container not running)
//! is the session's outcome, as with the kubelet.

use axum::extract::ws::{
    Message, WebSocket, WebSocketUpgrade, rejection::WebSocketUpgradeRejection,
};
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use futures_util::{SinkExt, StreamExt};
use keel_agent_protocol::exec_input::Input;
use keel_agent_protocol::exec_output::Output;
use keel_agent_protocol::{ExecInput, ExecOutput, ExecStart, TerminalSize};
use keel_api::channels;

use super::upgrade;
use crate::http::errors::bad_request;
use crate::http::state::AppState;

/// How long the agent may take to start the process.
const START_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Which of the two a request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Exec,
    Attach,
}

#[derive(Debug, Default, PartialEq, Eq)]
struct Options {
    command: Vec<String>,
    container: String,
    stdin: bool,
    stdout: bool,
    stderr: bool,
    tty: bool,
}

impl Options {
    /// Kubernetes' parameters; why not, for a 400. Unknown parameters are ignored, as
    /// Kubernetes does.
    fn parse(query: &str, mode: Mode) -> Result<Options, String> {
        let mut options = Options::default();
        for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
            let flag = || match value.as_ref() {
                "true" | "1" | "" => Ok(true),
                "false" | "0" => Ok(false),
                other => Err(format!("{key}: {other:?} is not true or false")),
            };
            match key.as_ref() {
                "command" => options.command.push(value.into_owned()),
                "container" => options.container = value.into_owned(),
                "stdin" => options.stdin = flag()?,
                "stdout" => options.stdout = flag()?,
                "stderr" => options.stderr = flag()?,
                "tty" => options.tty = flag()?,
                _ => {}
            }
        }
        if !(options.stdin || options.stdout || options.stderr) {
            return Err("you must specify at least 1 of stdin, stdout, stderr".into());
        }
        match mode {
            Mode::Exec if options.command.is_empty() => {
                Err("you must specify at least 1 command".into())
            }
            Mode::Attach if !options.command.is_empty() => {
                Err("attach takes no command; use exec to run one".into())
            }
            _ => Ok(options),
        }
    }
}

pub async fn exec(
    state: State<AppState>,
    path: Path<(String, String)>,
    query: RawQuery,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    session(state, path, query, headers, upgrade, Mode::Exec).await
}

pub async fn attach(
    state: State<AppState>,
    path: Path<(String, String)>,
    query: RawQuery,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    session(state, path, query, headers, upgrade, Mode::Attach).await
}

async fn session(
    State(state): State<AppState>,
    Path((ns, name)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    mode: Mode,
) -> Response {
    let options = match Options::parse(query.as_deref().unwrap_or(""), mode) {
        Ok(options) => options,
        Err(message) => return bad_request(message),
    };
    // A missing pod is an HTTP error; so is a request that is not a WebSocket upgrade,
    // checked after it, so that a client falling back to SPDY still hears about the pod.
    let (node, address) = match crate::http::logs::agent_of(&state, &ns, &name).await {
        Ok(found) => found,
        Err(response) => return *response,
    };
    let (upgrade, protocol) =
        match upgrade::accept(upgrade, &headers, &[channels::V5, channels::V4]) {
            Ok(accepted) => accepted,
            Err(refused) => return *refused,
        };
    // From here a failure is the session's outcome, on its error channel, as the kubelet
    // reports it: an HTTP error would send kubectl to its SPDY fallback, hiding the reason.
    let mut client = match state
        .dialer
        .connect(&node, &address, Some(START_TIMEOUT))
        .await
    {
        Ok(client) => client,
        Err(e) => return upgrade.on_upgrade(move |socket| fail(socket, e)),
    };
    let (inputs, requests) = tokio::sync::mpsc::channel(16);
    let start = ExecStart {
        namespace: ns.clone(),
        pod: name.clone(),
        container: options.container,
        command: options.command,
        tty: options.tty,
        stdin: options.stdin,
        stdout: options.stdout,
        // A terminal has one output stream.
        stderr: options.stderr && !options.tty,
        size: None,
    };
    let _ = inputs
        .send(ExecInput {
            input: Some(Input::Start(start)),
        })
        .await;
    let outputs = match client
        .exec(tokio_stream::wrappers::ReceiverStream::new(requests))
        .await
    {
        Ok(outputs) => outputs.into_inner(),
        Err(e) => {
            let message = e.message().to_string();
            return upgrade.on_upgrade(move |socket| fail(socket, message));
        }
    };
    tracing::info!(pod = %format!("{ns}/{name}"), ?mode, "session opened");
    upgrade.on_upgrade(move |socket| bridge(socket, protocol, inputs, outputs))
}

/// Ends a session that could not start, saying why on its error channel.
async fn fail(socket: WebSocket, message: String) {
    let (mut sink, _) = socket.split();
    let status = serde_json::to_vec(&channels::failure_status(&message)).unwrap_or_default();
    let frame = Message::Binary(channels::frame(channels::ERROR, &status).into());
    let _ = sink.send(frame).await;
    let _ = sink.send(super::upgrade::normal_close()).await;
}

/// Passes the client's messages to the agent and the agent's to the client, until the
/// process ends (the client gets its exit `Status`) or the client goes away.
async fn bridge(
    socket: WebSocket,
    protocol: &'static str,
    inputs: tokio::sync::mpsc::Sender<ExecInput>,
    mut outputs: tonic::Streaming<ExecOutput>,
) {
    let (mut sink, mut stream) = socket.split();
    let can_close = protocol == channels::V5;
    let from_client = async move {
        while let Some(Ok(message)) = stream.next().await {
            let data = match message {
                Message::Binary(data) => data,
                Message::Close(_) => break,
                _ => continue,
            };
            let Some((&channel, rest)) = data.split_first() else {
                continue;
            };
            let input = match channel {
                channels::STDIN if !rest.is_empty() => Input::Stdin(rest.to_vec()),
                channels::RESIZE => match serde_json::from_slice::<channels::TerminalSize>(rest) {
                    Ok(size) => Input::Resize(TerminalSize {
                        width: u32::from(size.width),
                        height: u32::from(size.height),
                    }),
                    Err(_) => continue,
                },
                channels::CLOSE if can_close && rest.first() == Some(&channels::STDIN) => {
                    Input::CloseStdin(true)
                }
                _ => continue,
            };
            // A call that ended takes no more; the session ends with its outcome, which
            // the other half sends, or when the client goes.
            let _ = inputs.send(ExecInput { input: Some(input) }).await;
        }
        // Dropping `inputs` ends the call's input: the process reads end-of-file.
    };
    let to_client = async move {
        let outcome = loop {
            let (channel, data) = match outputs.message().await {
                Ok(Some(ExecOutput {
                    output: Some(output),
                })) => match output {
                    Output::Stdout(data) => (channels::STDOUT, data),
                    Output::Stderr(data) => (channels::STDERR, data),
                    Output::Exit(exit) => break channels::exit_status(exit.code),
                },
                Ok(Some(_)) => continue,
                Ok(None) => break channels::failure_status("the agent ended the session"),
                Err(e) => break channels::failure_status(e.message()),
            };
            let message = Message::Binary(channels::frame(channel, &data).into());
            if sink.send(message).await.is_err() {
                return;
            }
        };
        let outcome = serde_json::to_vec(&outcome).unwrap_or_default();
        let message = Message::Binary(channels::frame(channels::ERROR, &outcome).into());
        let _ = sink.send(message).await;
        let _ = sink.send(super::upgrade::normal_close()).await;
    };
    // The outcome first: a session whose process ended must still send its status.
    tokio::select! {
        biased;
        () = to_client => {}
        () = from_client => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_kubernetes_own() {
        let options = Options::parse(
            "command=sh&command=-c&command=echo%20hi&container=web&stdin=true&stdout=true&tty=1",
            Mode::Exec,
        )
        .unwrap();
        assert_eq!(options.command, ["sh", "-c", "echo hi"]);
        assert_eq!(options.container, "web");
        assert!(options.stdin && options.stdout && options.tty && !options.stderr);
        let none = Options::parse("command=ls", Mode::Exec).unwrap_err();
        assert!(
            none.contains("at least 1 of stdin, stdout, stderr"),
            "{none}"
        );
        let no_command = Options::parse("stdout=true", Mode::Exec).unwrap_err();
        assert!(no_command.contains("at least 1 command"), "{no_command}");
        let bad = Options::parse("command=ls&stdout=yes", Mode::Exec).unwrap_err();
        assert!(bad.contains("stdout: \"yes\""), "{bad}");
        assert!(Options::parse("stdout=true", Mode::Attach).is_ok());
        assert!(Options::parse("command=ls&stdout=true", Mode::Attach).is_err());
    }
}
