//! One file per verb: its clap arguments and its `run`, which returns the exit code.

pub mod delete;
pub mod describe;
pub mod exec;
pub mod get;
pub mod history;
pub mod kubeconfig;
pub mod logs;
pub mod network;
pub mod plan;
pub mod port_forward;
pub mod render;
pub mod schema;
pub mod server;
pub mod status;
pub mod token;
pub mod top;
pub mod ui;
pub mod up;
pub mod validate;

/// The `--server` flag the client verbs share.
#[derive(Debug, Clone, clap::Args)]
pub struct ServerArg {
    /// The keel server's API.
    #[arg(long, env = "KEEL_SERVER", default_value = keel_api::DEFAULT_SERVER)]
    pub server: String,
}

/// The `--sops-age-key-file` flag of the verbs that read revisions.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct SopsArg {
    /// Open SOPS-encrypted manifests with the age identities in this file (as
    /// `age-keygen` writes it). Without it, an encrypted file is an error of the revision.
    #[arg(long, env = "SOPS_AGE_KEY_FILE")]
    pub sops_age_key_file: Option<std::path::PathBuf>,
}

impl SopsArg {
    /// The keys, read; `Err` says why the file cannot be used.
    pub fn keys(&self) -> anyhow::Result<Option<std::sync::Arc<keel_sops::AgeKeys>>> {
        self.sops_age_key_file
            .as_deref()
            .map(|p| keel_sops::AgeKeys::from_file(p).map(std::sync::Arc::new))
            .transpose()
            .map_err(anyhow::Error::from)
    }
}
