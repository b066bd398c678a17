//! What a node needs before it runs pods on the pod network, checked at agent start: the
//! right to change the network (CAP_NET_ADMIN), iproute2 (`ip`, `bridge`), `nft`, and the
//! CNI plugins its chain names. Each missing piece is named with how to get it; the agent
//! does not start without them, rather than start pods that could not be reached.

use std::path::{Path, PathBuf};

use super::cni::plugin;

/// CAP_NET_ADMIN's bit in the capability sets.
const CAP_NET_ADMIN: u32 = 12;

/// Whether this process holds CAP_NET_ADMIN, from `/proc/self/status`.
fn has_net_admin() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let hex = s
                .lines()
                .find_map(|l| l.strip_prefix("CapEff:"))?
                .trim()
                .to_string();
            u64::from_str_radix(&hex, 16).ok()
        })
        .is_some_and(|caps| caps & (1 << CAP_NET_ADMIN) != 0)
}

/// A program on `PATH`.
fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<PathBuf>>())
        .unwrap_or_default()
        .iter()
        .any(|d| is_executable(&d.join(program)))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Every missing piece, each a sentence; empty when the node is ready for pods.
pub fn missing(plugins: &[String], bin_dirs: &[PathBuf]) -> Vec<String> {
    let mut out = Vec::new();
    if !has_net_admin() {
        out.push(
            "the right to configure the network (CAP_NET_ADMIN): run keel-agent as root"
                .to_string(),
        );
    }
    for (program, package) in [
        ("ip", "iproute2"),
        ("bridge", "iproute2"),
        ("nft", "nftables"),
    ] {
        if !on_path(program) {
            out.push(format!("`{program}` (install Debian's {package})"));
        }
    }
    for kind in plugins {
        if let Err(e) = plugin::find(kind, bin_dirs) {
            out.push(format!(
                "{e} (install Debian's containernetworking-plugins, or give --cni-bin-dir)"
            ));
        }
    }
    out
}
