//! `keel kubeconfig`: a kubeconfig for kubectl, k9s, Lens and client libraries: the server,
//! the bearer token, and the cluster CA when the server is HTTPS (`keel server
//! --tls-listen`; `keel up` serves it at 127.0.0.1:7443).
//!
//! The CA and the admin token are read from the server's data dir on this machine
//! (`--data-dir`, `$KEEL_DATA_DIR`, `keel up`'s, `/var/lib/keel`); `--token` or `KEEL_TOKEN`
//! gives another token (a view token, for people who should only look).

use std::path::{Path, PathBuf};

use base64::Engine;
use serde_json::json;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The API's address as kubectl will reach it (HTTPS: kubectl sends tokens only over
    /// HTTPS).
    #[arg(long, default_value = "https://127.0.0.1:7443")]
    pub server: String,
    /// The server's data dir, holding its CA and admin token (default: the first of
    /// $KEEL_DATA_DIR, keel up's and /var/lib/keel that has them).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// The name of the cluster, user and context in the kubeconfig.
    #[arg(long, default_value = "keel")]
    pub name: String,
    /// Write it to FILE, readable by you alone (it holds the token), rather than to stdout.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// Where a server on this machine may keep its state, in the order tried.
fn candidate_dirs(given: Option<&Path>) -> Vec<PathBuf> {
    if let Some(dir) = given {
        return vec![dir.to_path_buf()];
    }
    let mut dirs = Vec::new();
    if let Some(dir) = std::env::var_os("KEEL_DATA_DIR") {
        dirs.push(PathBuf::from(dir));
    }
    dirs.push(crate::up::default_data_dir().join("server"));
    dirs.push(PathBuf::from("/var/lib/keel"));
    dirs
}

pub fn run(args: &Args) -> i32 {
    let https = args.server.starts_with("https://");
    if !https && !args.server.starts_with("http://") {
        eprintln!(
            "keel kubeconfig: --server {:?} is not an http:// or https:// URL",
            args.server
        );
        return 2;
    }
    let dirs = candidate_dirs(args.data_dir.as_deref());
    let token_file = keel_reconciler::auth::api_token::FILE;
    let found = dirs.iter().find(|d| d.join(token_file).is_file());
    let token = match (crate::credentials::given_token(), found) {
        (Some(t), _) => t,
        (None, Some(dir)) => match std::fs::read_to_string(dir.join(token_file)) {
            Ok(t) => t.trim().to_string(),
            Err(e) => {
                eprintln!(
                    "keel kubeconfig: cannot read {}: {e}",
                    dir.join(token_file).display()
                );
                return 1;
            }
        },
        (None, None) => {
            eprintln!(
                "keel kubeconfig: no admin token found in {}; give --data-dir, or --token",
                show(&dirs)
            );
            return 1;
        }
    };
    let mut cluster = json!({"server": args.server});
    if https {
        let ca_dirs: Vec<PathBuf> = match found {
            Some(dir) => vec![dir.clone()],
            None => dirs.clone(),
        };
        let ca = ca_dirs
            .iter()
            .map(|d| keel_tls::ca::pki_dir(d).join("ca.crt"))
            .find_map(|p| std::fs::read(p).ok());
        let Some(ca) = ca else {
            eprintln!(
                "keel kubeconfig: no cluster CA (pki/ca.crt) in {}; give --data-dir",
                show(&ca_dirs)
            );
            return 1;
        };
        cluster["certificate-authority-data"] =
            json!(base64::engine::general_purpose::STANDARD.encode(ca));
    } else {
        eprintln!(
            "keel kubeconfig: warning: kubectl and client-go send tokens only over HTTPS; \
             against {} they will be refused unless the server runs with --anonymous-read. \
             Serve HTTPS with `keel server --tls-listen`.",
            args.server
        );
    }
    let name = &args.name;
    let config = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": cluster}],
        "users": [{"name": name, "user": {"token": token}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
        "current-context": name,
    });
    let text = match serde_yaml::to_string(&config) {
        Ok(text) => text,
        Err(e) => {
            eprintln!("keel kubeconfig: {e}");
            return 1;
        }
    };
    let Some(path) = &args.output else {
        crate::output::out(&text);
        return 0;
    };
    match keel_tls::files::write_private(path, text.as_bytes()) {
        Ok(()) => {
            eprintln!(
                "wrote {} (mode 0600); use it with: export KUBECONFIG={}",
                path.display(),
                path.display()
            );
            0
        }
        Err(e) => {
            eprintln!("keel kubeconfig: cannot write {}: {e}", path.display());
            1
        }
    }
}

fn show(dirs: &[PathBuf]) -> String {
    dirs.iter()
        .map(|d| d.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
