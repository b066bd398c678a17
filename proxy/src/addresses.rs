//! ClusterIPs as /32 addresses on a host interface (`lo` by default: this kernel has no
//! `dummy` type, and containers on the default bridge reach addresses on the host's `lo`).
//! The work is done by iproute2's `ip`, the tool every Linux operator already reads.
//!
//! Each agent tags the addresses it adds with its own label (`lo:k1a2b3c4d`), so it removes
//! exactly what it added: the leftovers of an earlier run on its first pass, and addresses of
//! Services that went away on later ones. An address already on the interface (another agent
//! on the same host added it) is used as it is and never removed by this one.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use serde::Deserialize;
use tokio::process::Command;

const IP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The kernel's limit on an address label (IFNAMSIZ - 1).
const MAX_LABEL: usize = 15;
/// Owner digits a label must keep to tell agents apart.
const MIN_OWNER: usize = 4;

#[derive(Debug, thiserror::Error)]
pub enum AddressError {
    #[error(
        "no rights to add service addresses to {interface} ({detail}); ClusterIPs are not reachable on this node, NodePorts still are. Run keel-agent as root or with CAP_NET_ADMIN"
    )]
    Denied { interface: String, detail: String },
    #[error("cannot manage service addresses on {interface}: {detail}")]
    Failed { interface: String, detail: String },
}

#[derive(Debug, Clone)]
pub struct HostAddresses {
    interface: String,
    label: String,
}

#[derive(Deserialize)]
struct Link {
    #[serde(default)]
    addr_info: Vec<AddrInfo>,
}

#[derive(Deserialize)]
struct AddrInfo {
    #[serde(default)]
    family: String,
    #[serde(default)]
    local: String,
    #[serde(default)]
    prefixlen: u8,
    #[serde(default)]
    label: String,
}

/// The interface's IPv4 addresses, and those of them carrying `label`.
#[derive(Debug, Default, PartialEq, Eq)]
struct Listing {
    all: BTreeSet<Ipv4Addr>,
    labelled: BTreeSet<Ipv4Addr>,
}

fn parse_listing(json: &[u8], label: &str) -> Result<Listing, String> {
    let links: Vec<Link> =
        serde_json::from_slice(json).map_err(|e| format!("unreadable `ip -j` output: {e}"))?;
    let mut out = Listing::default();
    for info in links.iter().flat_map(|l| &l.addr_info) {
        let Ok(ip) = info.local.parse::<Ipv4Addr>() else {
            continue;
        };
        if info.family != "inet" {
            continue;
        }
        out.all.insert(ip);
        if info.label == label && info.prefixlen == 32 {
            out.labelled.insert(ip);
        }
    }
    Ok(out)
}

impl HostAddresses {
    /// `owner` names this agent (hex digits); the label is `INTERFACE:kOWNER`, cut to the
    /// kernel's 15-byte limit. An interface name too long to leave the label at least four
    /// owner digits (or not a plain interface name) is refused.
    pub fn new(interface: &str, owner: &str) -> Result<HostAddresses, String> {
        let plain = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        };
        if !plain(interface) || interface.len() + 2 + MIN_OWNER > MAX_LABEL {
            return Err(format!(
                "interface {interface:?}: service addresses need a plain interface name of at most {} characters (such as lo)",
                MAX_LABEL - 2 - MIN_OWNER
            ));
        }
        if owner.len() < MIN_OWNER || !owner.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("address owner {owner:?}: expected hex digits"));
        }
        let mut label = format!("{interface}:k{owner}");
        label.truncate(MAX_LABEL);
        Ok(HostAddresses {
            interface: interface.to_string(),
            label,
        })
    }

    pub fn label(&self) -> &str {
        &self.label
    }

    fn failed(&self, detail: impl Into<String>) -> AddressError {
        AddressError::Failed {
            interface: self.interface.clone(),
            detail: detail.into(),
        }
    }

    async fn ip(&self, args: &[&str]) -> Result<Vec<u8>, AddressError> {
        let run = Command::new("ip").args(args).kill_on_drop(true).output();
        // A hung `ip` must not hold up the proxy's frontends behind it.
        let out = tokio::time::timeout(IP_TIMEOUT, run)
            .await
            .map_err(|_| self.failed(format!("`ip {}` took over {IP_TIMEOUT:?}", args.join(" "))))?
            .map_err(|e| self.failed(format!("cannot run iproute2's `ip`: {e}")))?;
        if out.status.success() {
            return Ok(out.stdout);
        }
        let detail = String::from_utf8_lossy(&out.stderr).trim().to_string();
        if detail.contains("Operation not permitted") || detail.contains("Permission denied") {
            return Err(AddressError::Denied {
                interface: self.interface.clone(),
                detail,
            });
        }
        Err(self.failed(format!("`ip {}`: {detail}", args.join(" "))))
    }

    async fn list(&self) -> Result<Listing, AddressError> {
        let json = self
            .ip(&["-j", "-4", "addr", "show", "dev", &self.interface])
            .await?;
        parse_listing(&json, &self.label).map_err(|e| self.failed(e))
    }

    /// Makes the interface carry every address of `wanted` and no other address with this
    /// agent's label. Goes on past a failed address so one problem does not block the rest;
    /// returns the first problem.
    pub async fn reconcile(&self, wanted: &BTreeSet<Ipv4Addr>) -> Result<(), AddressError> {
        let listing = self.list().await?;
        let mut first = None;
        for ip in wanted.difference(&listing.all) {
            let cidr = format!("{ip}/32");
            match self
                .ip(&[
                    "addr",
                    "add",
                    &cidr,
                    "dev",
                    &self.interface,
                    "label",
                    &self.label,
                ])
                .await
            {
                Ok(_) => {
                    tracing::info!(address = %ip, interface = %self.interface, "service address added")
                }
                // Another agent on this host added it in between: it is there, which is all
                // this agent needs.
                Err(AddressError::Failed { detail, .. }) if detail.contains("File exists") => {}
                Err(e) => {
                    first.get_or_insert(e);
                }
            }
        }
        for ip in listing.labelled.difference(wanted) {
            let cidr = format!("{ip}/32");
            match self
                .ip(&["addr", "del", &cidr, "dev", &self.interface])
                .await
            {
                Ok(_) => {
                    tracing::info!(address = %ip, interface = %self.interface, "service address removed")
                }
                Err(e) => {
                    first.get_or_insert(e);
                }
            }
        }
        first.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_ip_json_output() {
        let json = br#"[{"ifindex":1,"ifname":"lo","addr_info":[
            {"family":"inet","local":"127.0.0.1","prefixlen":8,"label":"lo"},
            {"family":"inet","local":"10.96.0.10","prefixlen":32,"label":"lo:k0a1b2c3d"},
            {"family":"inet","local":"10.96.0.11","prefixlen":32,"label":"lo:kffffffff"},
            {"family":"inet6","local":"::1","prefixlen":128}]}]"#;
        let listing = parse_listing(json, "lo:k0a1b2c3d").expect("parses");
        assert_eq!(listing.all.len(), 3);
        assert_eq!(
            listing.labelled.into_iter().collect::<Vec<_>>(),
            vec![Ipv4Addr::new(10, 96, 0, 10)],
            "only this agent's addresses are its to remove"
        );
        assert!(parse_listing(b"not json", "lo:k").is_err());
    }

    #[test]
    fn labels_fit_the_kernel_limit() {
        let a = HostAddresses::new("lo", "0123456789abcdef").expect("fits");
        assert_eq!(a.label(), "lo:k0123456789a");
        let b = HostAddresses::new("enp0s31f6", "deadbeef").expect("fits");
        assert_eq!(b.label(), "enp0s31f6:kdead");
        for bad in ["wlx00c0ca912345", "", "lo:1", "é0"] {
            assert!(HostAddresses::new(bad, "deadbeef").is_err(), "{bad:?}");
        }
    }
}
