//! The `keel` command line.
//!
//! # Layout
//! - [`verbs`]: one file per verb; the clap tree is here.
//! - [`credentials`]: which bearer token the client verbs send, and [`credentials::connect`],
//!   the one way a verb gets its API client.
//! - [`up`]: `keel up`, a local cluster: the control plane in this process, agents as child
//!   processes, the example app.
//! - [`signal`]: the one function that waits for Ctrl-C, SIGTERM or SIGHUP.
//! - `keel_api::columns`: `keel get`'s columns per kind, shared with the server's Tables.
//! - [`websocket`]: sessions of `keel exec` and `keel port-forward`; [`terminal`]: `-t`'s
//!   raw mode and size.
//! - [`output`], [`table`]: stdout that tolerates a closed pipe; kubectl-style columns.
//!
//! Verbs that need no server (`validate`, `schema`, `plan`) call the libraries directly;
//! the others reach a server through `keel_api::client::Client`, and exec and port-forward
//! through [`websocket`].
#![forbid(unsafe_code)]

pub mod credentials;
pub mod output;
pub mod signal;
pub mod table;
pub mod terminal;
pub mod up;
pub mod verbs;
pub mod websocket;

use clap::{Parser, Subcommand};
use keel_telemetry::LogFormat;

use verbs::{
    delete, describe, exec, get, history, kubeconfig, logs, plan, port_forward, render, schema,
    server, status, token, top, validate,
};

#[derive(Debug, Parser)]
#[command(
    name = "keel",
    version,
    about = "GitOps cluster manager: git is the API, Docker runs the pods",
    long_about = "keel applies Kubernetes-style YAML committed to a git repository to a cluster of \
                  nodes running Docker. Every revision is validated whole before anything changes."
)]
pub struct Cli {
    /// Log format on stderr (the level comes from RUST_LOG, default info).
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,

    /// The bearer token for the server's API (default: for a server on this machine, the
    /// admin token in its data dir).
    #[arg(long, env = "KEEL_TOKEN", global = true, hide_env_values = true)]
    pub token: Option<String>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check manifests without applying them: every error, located (exit 0 valid, 1 invalid,
    /// 2 usage or I/O error).
    Validate(validate::Args),
    /// Print the JSON Schema of keel manifests, for editors (yaml-language-server).
    Schema(schema::Args),
    /// Show what changing the repository from one revision to another will do (exit 0 no
    /// changes, 2 changes, 1 invalid revision or error).
    Plan(plan::Args),
    /// Print exactly the objects keel would apply from a folder or a revision, kustomizations
    /// rendered (exit 0 rendered, 1 invalid, 2 usage or I/O error); Secret values redacted
    /// unless --show-secrets.
    Render(render::Args),
    /// Run the control plane: follow a git branch and apply each revision whole.
    // Boxed: by far the largest variant.
    Server(Box<server::Args>),
    /// Start a local cluster (control plane and N nodes on this machine's Docker) running the
    /// example app or your repository; Ctrl-C stops it and removes its containers.
    Up(verbs::up::Args),
    /// List the revisions the server attempted, newest first.
    History(history::Args),
    /// Show objects from a running server, as kubectl does (`keel get po -o wide`).
    Get(get::Args),
    /// Describe one object, with its events (`keel describe pod web-7d9c8-x2k4p`).
    Describe(describe::Args),
    /// Print a container's logs (`keel logs POD [-c C] [-f] [--tail N] [--previous]`).
    Logs(logs::Args),
    /// Run a command in a container (`keel exec web-x2k4p -it -- sh`); exits with its exit
    /// code.
    Exec(exec::Args),
    /// Forward local ports to a pod (`keel port-forward web-x2k4p 8080:80`) until Ctrl-C.
    PortForward(port_forward::Args),
    /// The synced revision and the health of every object it declares (exit 0: in sync
    /// and healthy)
    ///
    /// Exits 0 when the branch's tip runs and everything is Healthy (or Unknown), 1 when
    /// the tip runs but something is not Healthy, 2 when the server cannot be asked, 3 when
    /// the tip is not what runs (it failed, is not applied yet, or the branch cannot be
    /// read).
    Status(status::Args),
    /// Sign in to the web UI: prints a one-time link (and opens it where a browser is at
    /// hand) that signs the browser in with this CLI's token.
    Ui(verbs::ui::Args),
    /// Manage the bootstrap tokens new nodes join with (`keel token create`).
    #[command(subcommand)]
    Token(token::Command),
    /// Print a kubeconfig for kubectl and other Kubernetes clients: the HTTPS server, the
    /// cluster CA and a token (`keel kubeconfig > ~/.kube/config`).
    Kubeconfig(kubeconfig::Args),
    /// CPU and memory use of pods or nodes, as the agents last sampled it (`keel top pods
    /// -A`, `keel top nodes`).
    #[command(subcommand)]
    Top(top::Command),
    /// Forget a node that is gone (`keel delete node NAME`): frees its pod range; its pods
    /// run again elsewhere.
    #[command(subcommand)]
    Delete(delete::Command),
}

/// Runs the command and returns the process exit code.
pub fn run(cli: Cli) -> i32 {
    credentials::set_token(cli.token);
    match cli.command {
        Command::Validate(args) => validate::run(&args),
        Command::Schema(args) => schema::run(&args),
        Command::Kubeconfig(args) => kubeconfig::run(&args),
        Command::Top(command) => top::run(&command),
        Command::Plan(args) => plan::run(&args),
        Command::Render(args) => render::run(&args),
        Command::Server(args) => server::run(&args),
        Command::Up(args) => verbs::up::run(&args),
        Command::History(args) => history::run(&args),
        Command::Get(args) => get::run(&args),
        Command::Describe(args) => describe::run(&args),
        Command::Logs(args) => logs::run(&args),
        Command::Exec(args) => exec::run(&args),
        Command::PortForward(args) => port_forward::run(&args),
        Command::Status(args) => status::run(&args),
        Command::Ui(args) => verbs::ui::run(&args),
        Command::Token(command) => token::run(&command),
        Command::Delete(command) => delete::run(&command),
    }
}
