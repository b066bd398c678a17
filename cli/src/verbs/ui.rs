//! `keel ui`: a one-time link that signs a browser in to the server's web UI, opened in a
//! browser when one is at hand (a desktop session), printed either way. The link works
//! once, for two minutes; the session it starts keeps the token in an HttpOnly cookie.

use super::ServerArg;
use crate::credentials::{connect, explain};
use crate::output::runtime;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub server: ServerArg,
    /// Only print the link; do not open a browser.
    #[arg(long)]
    pub no_browser: bool,
}

pub fn run(args: &Args) -> i32 {
    let Some(runtime) = runtime("ui") else {
        return 1;
    };
    let server = args.server.server.trim_end_matches('/');
    let asked = connect(server).and_then(|client| runtime.block_on(client.ui_login()));
    let login = match asked {
        Ok(login) => login,
        Err(e) => {
            eprintln!("keel ui: {}", explain(&e, server));
            return 1;
        }
    };
    let url = format!("{server}{}", login.path);
    println!("{url}");
    eprintln!(
        "keel ui: open this link within {} seconds; it signs in once (run keel ui again for another)",
        login.expires_in_seconds
    );
    if !args.no_browser && has_display() {
        // Best effort: the link is printed whatever happens here.
        let _ = std::process::Command::new("xdg-open")
            .arg(&url)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
    }
    0
}

/// A desktop session where a browser can open (not over ssh without forwarding, not CI).
fn has_display() -> bool {
    ["DISPLAY", "WAYLAND_DISPLAY"]
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|v| !v.is_empty()))
}
