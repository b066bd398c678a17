//! `keel schema`: the JSON Schema of manifests (or of `keel.yaml`), for editors.

use keel_schema::jsonschema::{manifest_schema, repo_config_schema};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print the schema of the repo config file `keel.yaml` instead.
    #[arg(long)]
    pub repo_config: bool,
}

pub fn run(args: &Args) -> i32 {
    let schema = if args.repo_config {
        repo_config_schema()
    } else {
        manifest_schema()
    };
    match serde_json::to_string_pretty(&schema) {
        Ok(text) => {
            crate::output::out(&format!("{text}\n"));
            0
        }
        Err(e) => {
            eprintln!("keel schema: {e}");
            1
        }
    }
}
