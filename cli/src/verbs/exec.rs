//! `keel exec POD [-c C] [-i] [-t] -- COMMAND…`: a command in a running container, over the
//! server's exec endpoint (Kubernetes' channel protocol on a WebSocket). Its output is
//! printed here and its exit code is keel's; `-it` gives an interactive terminal.

use futures_util::{SinkExt, StreamExt};
use keel_api::channels;
use tokio_tungstenite::tungstenite::Message;

use super::ServerArg;
use crate::output::runtime;
use crate::terminal;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The pod.
    pub pod: String,
    /// The container (needed when the pod has more than one).
    #[arg(short, long)]
    pub container: Option<String>,
    /// Pass this terminal's stdin to the command.
    #[arg(short = 'i', long)]
    pub stdin: bool,
    /// Give the command a terminal (with -i: an interactive shell).
    #[arg(short = 't', long)]
    pub tty: bool,
    #[arg(short, long, default_value = "default")]
    pub namespace: String,
    /// The command and its arguments, after `--`.
    #[arg(required = true, last = true)]
    pub command: Vec<String>,
    #[command(flatten)]
    pub server: ServerArg,
}

pub fn run(args: &Args) -> i32 {
    let Some(runtime) = runtime("exec") else {
        return 1;
    };
    // As kubectl: a terminal needs input (`-t` alone is quietly no terminal), and input
    // that is not a terminal gets a warning and a plain session.
    let tty = args.tty && args.stdin && terminal::stdin_is_terminal();
    if args.tty && args.stdin && !tty {
        eprintln!("Unable to use a TTY - input is not a terminal or the right kind of file");
    }
    let token = crate::credentials::token(&args.server.server);
    match runtime.block_on(session(args, tty, token.as_deref())) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("{message}");
            1
        }
    }
}

/// The exec path with Kubernetes' parameters.
fn path(args: &Args, tty: bool) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    for part in &args.command {
        query.append_pair("command", part);
    }
    if let Some(container) = &args.container {
        query.append_pair("container", container);
    }
    query.append_pair("stdin", &args.stdin.to_string());
    query.append_pair("stdout", "true");
    // A terminal has one output stream.
    query.append_pair("stderr", &(!tty).to_string());
    query.append_pair("tty", &tty.to_string());
    format!(
        "{}?{}",
        crate::websocket::pod_path(&args.namespace, &args.pod, "exec"),
        query.finish()
    )
}

/// Runs the session; the command's exit code, or why there is none.
async fn session(args: &Args, tty: bool, token: Option<&str>) -> Result<i32, String> {
    let (socket, protocol) = crate::websocket::open(
        &args.server.server,
        token,
        &path(args, tty),
        &[channels::V5, channels::V4],
    )
    .await?;
    let can_close_stdin = protocol == channels::V5;
    let raw = if tty {
        Some(terminal::RawMode::enable()?)
    } else {
        None
    };
    let (mut sink, mut stream) = socket.split();
    let size_message = || {
        let (width, height) = terminal::size()?;
        let size = serde_json::to_vec(&channels::TerminalSize { width, height }).ok()?;
        Some(Message::Binary(
            channels::frame(channels::RESIZE, &size).into(),
        ))
    };
    if tty && let Some(message) = size_message() {
        sink.send(message).await.map_err(|e| e.to_string())?;
    }
    let mut stdin = args.stdin.then(read_stdin);
    let mut resized = if tty {
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change()).ok()
    } else {
        None
    };
    let mut outcome = None;
    loop {
        tokio::select! {
            input = async { stdin.as_mut()?.recv().await }, if stdin.is_some() => {
                let message = match input {
                    Some(data) => channels::frame(channels::STDIN, &data),
                    None => {
                        stdin = None;
                        if !can_close_stdin {
                            continue;
                        }
                        channels::frame(channels::CLOSE, &[channels::STDIN])
                    }
                };
                if sink.send(Message::Binary(message.into())).await.is_err() {
                    break;
                }
            }
            _ = async { resized.as_mut()?.recv().await }, if resized.is_some() => {
                if let Some(message) = size_message() {
                    let _ = sink.send(message).await;
                }
            }
            message = stream.next() => match message {
                Some(Ok(Message::Binary(data))) => {
                    let Some((&channel, rest)) = data.split_first() else { continue };
                    match channel {
                        channels::STDOUT => write(&mut std::io::stdout(), rest),
                        channels::STDERR => write(&mut std::io::stderr(), rest),
                        channels::ERROR => outcome = Some(channels::outcome(rest)),
                        _ => {}
                    }
                }
                Some(Ok(Message::Close(_))) | None => break,
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    drop(raw);
                    return Err(format!("the session broke: {e}"));
                }
            },
        }
    }
    drop(raw);
    match outcome {
        Some(outcome) => outcome,
        None => Err("the connection closed before the command's exit status came".into()),
    }
}

fn write(out: &mut impl std::io::Write, data: &[u8]) {
    let _ = out.write_all(data).and_then(|()| out.flush());
}

/// This process's stdin, read on a thread of its own (a blocked read must not hold up the
/// exit); `None` arrives at its end.
fn read_stdin() -> tokio::sync::mpsc::Receiver<Vec<u8>> {
    let (sender, receiver) = tokio::sync::mpsc::channel(8);
    std::thread::spawn(move || {
        use std::io::Read;
        let mut stdin = std::io::stdin().lock();
        let mut buffer = vec![0u8; 16 * 1024];
        loop {
            match stdin.read(&mut buffer) {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if sender.blocking_send(buffer[..n].to_vec()).is_err() {
                        return;
                    }
                }
            }
        }
    });
    receiver
}
