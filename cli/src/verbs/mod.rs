//! One file per verb: its clap arguments and its `run`, which returns the exit code.

pub mod delete;
pub mod describe;
pub mod get;
pub mod history;
pub mod logs;
pub mod network;
pub mod plan;
pub mod render;
pub mod schema;
pub mod server;
pub mod status;
pub mod token;
pub mod up;
pub mod validate;

/// The `--server` flag the client verbs share.
#[derive(Debug, Clone, clap::Args)]
pub struct ServerArg {
    /// The keel server's API.
    #[arg(long, env = "KEEL_SERVER", default_value = keel_api::DEFAULT_SERVER)]
    pub server: String,
}
