//! The bearer token the CLI's client verbs send, and [`connect`], the one way a verb gets its
//! API client.
//!
//! The token is `--token` / `KEEL_TOKEN` when given. Otherwise, for a server on this machine
//! only, an admin token a local server keeps in its data dir (`$KEEL_DATA_DIR`, `keel up`'s,
//! `/var/lib/keel`; the files are readable by the server's user only), and only once the
//! server has proved it holds that token (`keel_tls::token_proof`): any other program
//! listening on a loopback port gets nothing. A remote server never gets a local cluster's
//! token unasked.

use std::path::PathBuf;
use std::sync::OnceLock;

use keel_api::client::{Client, ClientError};

static TOKEN: OnceLock<Option<String>> = OnceLock::new();

/// The token given on the command line (`--token` or `KEEL_TOKEN`); set once at start.
pub fn set_token(token: Option<String>) {
    let _ = TOKEN.set(
        token
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty()),
    );
}

/// The token given on the command line, if any.
pub fn given_token() -> Option<String> {
    TOKEN.get().cloned().flatten()
}

/// The API client for the server at `server` (a URL), sending its bearer token when one is
/// known.
pub fn connect(server: &str) -> Result<Client, ClientError> {
    Client::new(server, token_for(server).as_deref())
}

/// The bearer token the verbs send to `server`, if one is known (for requests the typed
/// client does not make: WebSocket sessions).
pub fn token(server: &str) -> Option<String> {
    token_for(server)
}

/// `error` as the CLI reports it: a refusal for the token also says where the token sent
/// came from (or that none was found).
pub fn explain(error: &ClientError, server: &str) -> String {
    if error.is_unauthorized() {
        format!("{error} ({})", token_hint(server))
    } else {
        error.to_string()
    }
}

fn token_for(server: &str) -> Option<String> {
    if let Some(Some(t)) = TOKEN.get() {
        return Some(t.clone());
    }
    if !is_local(server) {
        return None;
    }
    proven_local_token(server).map(|(_, token)| token)
}

/// Every local admin token found, with its file.
fn local_tokens() -> Vec<(PathBuf, String)> {
    local_token_files()
        .into_iter()
        .filter_map(|p| {
            let t = std::fs::read_to_string(&p).ok()?.trim().to_string();
            (!t.is_empty()).then_some((p, t))
        })
        .collect()
}

/// The local admin token the server at `server` proves it holds, and its file. Asked once
/// per run: every verb talks to one server.
fn proven_local_token(server: &str) -> Option<(PathBuf, String)> {
    static PROVEN: OnceLock<Option<(PathBuf, String)>> = OnceLock::new();
    PROVEN
        .get_or_init(|| {
            let candidates = local_tokens();
            if candidates.is_empty() {
                return None;
            }
            let nonce = keel_tls::token_proof::nonce().ok()?;
            let answer = ask_for_proof(server, &nonce)?;
            // The addresses this URL dials: a proof made at any other was relayed.
            let dialled = url::Url::parse(server).ok()?.socket_addrs(|| None).ok()?;
            candidates.into_iter().find(|(_, t)| {
                dialled
                    .iter()
                    .any(|at| keel_tls::token_proof::proof(t, &nonce, *at) == answer)
            })
        })
        .clone()
}

/// The server's proof for `nonce`, if it answers one. On a thread of its own, so that it
/// works whether or not the caller is inside a runtime.
fn ask_for_proof(server: &str, nonce: &str) -> Option<String> {
    let url = format!(
        "{}{}",
        server.trim_end_matches('/'),
        keel_api::paths::TOKEN_PROOF
    );
    let body = serde_json::json!({ "nonce": nonce });
    std::thread::scope(|s| {
        s.spawn(|| {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                // No redirects: a squatter could send the question on to the real server.
                let resp = keel_api::client::http_client_without_redirects()
                    .post(&url)
                    .json(&body)
                    .timeout(std::time::Duration::from_secs(5))
                    .send()
                    .await
                    .ok()?;
                let answer: serde_json::Value = resp.error_for_status().ok()?.json().await.ok()?;
                answer["proof"].as_str().map(str::to_string)
            })
        })
        .join()
        .ok()
        .flatten()
    })
}

/// What to tell a user whose request was refused for its token: where the token sent came
/// from, or that none was found.
pub fn token_hint(server: &str) -> String {
    if let Some(Some(_)) = TOKEN.get() {
        return "the token sent is --token/KEEL_TOKEN".into();
    }
    if !is_local(server) {
        return "no token was sent: give --token or KEEL_TOKEN (the server's DATA_DIR/admin-token)"
            .into();
    }
    if let Some((p, _)) = proven_local_token(server) {
        return format!(
            "the token sent is {}'s; for another server give KEEL_TOKEN, or KEEL_DATA_DIR=its data dir",
            p.display()
        );
    }
    match local_tokens().is_empty() {
        false => format!(
            "no token was sent: the program at {server} could not prove it holds the admin \
             token of any local data dir ({}); give --token or KEEL_TOKEN",
            local_token_files()
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        true => format!(
            "no token was found (looked in {}); give --token or KEEL_TOKEN",
            local_token_files()
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn is_local(server: &str) -> bool {
    url::Url::parse(server)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .is_some_and(|h| {
            h == "localhost"
                || h.trim_matches(['[', ']'])
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        })
}

/// Where servers on this machine keep their admin tokens, most specific first.
fn local_token_files() -> Vec<PathBuf> {
    let file = keel_reconciler::auth::api_token::FILE;
    let mut files = Vec::new();
    if let Some(dir) = std::env::var_os("KEEL_DATA_DIR") {
        files.push(PathBuf::from(dir).join(file));
    }
    files.push(crate::up::default_data_dir().join("server").join(file));
    files.push(PathBuf::from("/var/lib/keel").join(file));
    files
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_servers_on_this_machine_are_local() {
        for local in [
            "http://127.0.0.1:7400",
            "http://localhost:1",
            "http://[::1]:7400",
        ] {
            assert!(super::is_local(local), "{local}");
        }
        for remote in [
            "http://10.0.0.1:7400",
            "https://keel.example.com",
            "not a url",
        ] {
            assert!(!super::is_local(remote), "{remote}");
        }
    }
}
