//! Node hosts on one machine: each a named network namespace ("node host") with one
//! interface on a bridge that stands in for the LAN, so several keel nodes run the real
//! multi-machine data path (overlay, routes, masquerade) on one kernel. `ip netns list`
//! shows them and `ip netns exec NAME …` reaches them, as operators debug real machines.
//!
//! The machine itself sits on the LAN too, at its first address: processes started in a
//! node host reach the machine there, and the machine reaches every node host directly.
//!
//! # Guarantees
//! - Making a LAN or a host that exists already (a resumed `keel up`) adopts it as it is.
//! - [`Lan::remove`] removes every namespace, link and address the LAN made.
//! - The LAN is a switch, not a firewall: its bridge lives in a namespace of its own, so its
//!   frames never pass the machine's iptables (where Docker's FORWARD policy drops them).
#![forbid(unsafe_code)]

use std::net::Ipv4Addr;
use std::process::{Command, Stdio};

use anyhow::{Context, bail};
use ipnet::Ipv4Net;

mod world;

/// A bridge standing in for the LAN, and the node hosts on it.
#[derive(Debug, Clone)]
pub struct Lan {
    cidr: Ipv4Net,
    /// Namespaces of this LAN are named `PREFIX-lan` (the switch) and `PREFIX-N` (hosts).
    prefix: String,
}

/// One node host: its namespace and its address on the LAN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeHost {
    pub netns: String,
    pub ip: Ipv4Addr,
}

/// Runs `ip ARGS…`; its stdout, or an error with its stderr.
fn ip(args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .context("cannot run `ip` (install iproute2)")?;
    if !out.status.success() {
        bail!(
            "`ip {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `ip -n NETNS ARGS…`.
fn ip_in(netns: &str, args: &[&str]) -> anyhow::Result<String> {
    let mut all = vec!["-n", netns];
    all.extend_from_slice(args);
    ip(&all)
}

fn link_exists(netns: Option<&str>, name: &str) -> bool {
    match netns {
        Some(ns) => ip_in(ns, &["link", "show", "dev", name]).is_ok(),
        None => ip(&["link", "show", "dev", name]).is_ok(),
    }
}

fn netns_exists(name: &str) -> bool {
    ip(&["netns", "list"])
        .map(|l| {
            l.lines()
                .any(|line| line.split_whitespace().next() == Some(name))
        })
        .unwrap_or(false)
}

fn ensure_netns(name: &str) -> anyhow::Result<()> {
    if !netns_exists(name) {
        ip(&["netns", "add", name])?;
    }
    ip_in(name, &["link", "set", "lo", "up"])?;
    Ok(())
}

/// Gives `dev` in `netns` the address `address` (CIDR form) unless it has it, and brings it up.
fn ensure_address(netns: Option<&str>, dev: &str, address: &str) -> anyhow::Result<()> {
    let run = |args: &[&str]| match netns {
        Some(ns) => ip_in(ns, args),
        None => ip(args),
    };
    if !run(&["-4", "addr", "show", "dev", dev])?.contains(&format!("inet {address}")) {
        run(&["addr", "add", address, "dev", dev])?;
    }
    run(&["link", "set", dev, "up"])?;
    Ok(())
}

impl Lan {
    /// The LAN over `cidr` (the machine takes its first address); its switch is a bridge in
    /// namespace `PREFIX-lan` (the machine's own iptables, whose FORWARD policy Docker
    /// sets to drop, never sees the LAN's frames), its hosts `PREFIX-1`, `PREFIX-2`, ….
    /// Made where missing. The prefix must leave room in the kernel's 15-byte interface
    /// names for `-h`.
    pub fn create(cidr: Ipv4Net, prefix: &str) -> anyhow::Result<Lan> {
        if prefix.is_empty() || prefix.len() > 12 {
            bail!("LAN prefix {prefix:?}: 1 to 12 characters");
        }
        let lan = Lan {
            cidr: cidr.trunc(),
            prefix: prefix.to_string(),
        };
        let switch = lan.switch();
        ensure_netns(&switch)?;
        if !link_exists(Some(&switch), "lan") {
            ip_in(&switch, &["link", "add", "lan", "type", "bridge"])?;
        }
        ip_in(&switch, &["link", "set", "lan", "up"])?;
        let uplink = lan.uplink();
        if !link_exists(None, &uplink) {
            ip(&[
                "link", "add", &uplink, "type", "veth", "peer", "name", "uplink", "netns", &switch,
            ])?;
        }
        ip_in(&switch, &["link", "set", "uplink", "master", "lan", "up"])?;
        let gateway = format!("{}/{}", lan.gateway(), cidr.prefix_len());
        ensure_address(None, &uplink, &gateway)?;
        Ok(lan)
    }

    fn switch(&self) -> String {
        format!("{}-lan", self.prefix)
    }

    /// The machine's own address on the LAN.
    pub fn gateway(&self) -> Ipv4Addr {
        self.nth(1)
    }

    fn nth(&self, i: u32) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.cidr.network()) + i)
    }

    /// Node host `n` (from 1): namespace `PREFIX-n` at the LAN's address 10 + n, made if
    /// missing.
    pub fn host(&self, n: u32) -> anyhow::Result<NodeHost> {
        let host = NodeHost {
            netns: format!("{}-{n}", self.prefix),
            ip: self.nth(10 + n),
        };
        if !self.cidr.contains(&host.ip) || host.ip == self.cidr.broadcast() {
            bail!("the LAN {} has no room for node host {n}", self.cidr);
        }
        let switch = self.switch();
        let port = format!("v{n}");
        ensure_netns(&host.netns)?;
        if !link_exists(Some(&host.netns), "eth0") {
            // A port left from a host that was removed by hand goes first.
            if link_exists(Some(&switch), &port) {
                ip_in(&switch, &["link", "del", &port])?;
            }
            ip_in(
                &switch,
                &[
                    "link",
                    "add",
                    &port,
                    "type",
                    "veth",
                    "peer",
                    "name",
                    "eth0",
                    "netns",
                    &host.netns,
                ],
            )?;
        }
        ip_in(&switch, &["link", "set", &port, "master", "lan", "up"])?;
        let address = format!("{}/{}", host.ip, self.cidr.prefix_len());
        ensure_address(Some(&host.netns), "eth0", &address)?;
        let gateway = self.gateway().to_string();
        ip_in(
            &host.netns,
            &["route", "replace", "default", "via", &gateway],
        )?;
        Ok(host)
    }

    /// Removes node host `n` with every link and address in it, if it exists.
    pub fn remove_host(&self, n: u32) {
        let netns = format!("{}-{n}", self.prefix);
        if netns_exists(&netns) {
            let _ = ip(&["netns", "del", &netns]);
        }
        let port = format!("v{n}");
        if link_exists(Some(&self.switch()), &port) {
            let _ = ip_in(&self.switch(), &["link", "del", &port]);
        }
    }

    /// Removes the hosts `1..=n` and the switch, with every link in them (and so the
    /// machine's own link to the LAN), and the way out to the world; what is already gone
    /// is skipped.
    pub fn remove(&self, n: u32) {
        for i in 1..=n {
            self.remove_host(i);
        }
        if netns_exists(&self.switch()) {
            let _ = ip(&["netns", "del", &self.switch()]);
        }
        if link_exists(None, &self.uplink()) {
            let _ = ip(&["link", "del", &self.uplink()]);
        }
        world::close(&self.uplink());
    }

    /// The machine's end of its link to the LAN.
    fn uplink(&self) -> String {
        format!("{}-h", self.prefix)
    }

    /// Lets the node hosts reach beyond the machine, as a LAN's router does: their traffic
    /// leaving through another interface of the machine goes out with the machine's address.
    /// Undone by [`Lan::remove`].
    pub fn open_to_world(&self) -> anyhow::Result<()> {
        world::open(&self.uplink(), self.cidr)
    }
}

impl NodeHost {
    /// `program` to be run inside this host's network namespace.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.netns]).arg(program);
        c
    }
}
