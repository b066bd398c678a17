//! What iproute2 reports of the node's links, addresses, routes and neighbours (`ip -j`),
//! read into the few fields the overlay compares.

use std::net::Ipv4Addr;

use serde::Deserialize;

use crate::network::command::{self, CommandError};

#[derive(Debug, Default, Deserialize)]
pub struct Link {
    #[serde(default)]
    pub ifname: String,
    #[serde(default)]
    pub mtu: u32,
    #[serde(default)]
    pub addr_info: Vec<AddrInfo>,
    #[serde(default)]
    pub linkinfo: Option<LinkInfo>,
}

#[derive(Debug, Default, Deserialize)]
pub struct AddrInfo {
    #[serde(default)]
    pub family: String,
    #[serde(default)]
    pub local: String,
    #[serde(default)]
    pub prefixlen: u8,
}

#[derive(Debug, Default, Deserialize)]
pub struct LinkInfo {
    #[serde(default)]
    pub info_kind: String,
    #[serde(default)]
    pub info_data: Option<VxlanData>,
}

#[derive(Debug, Default, Deserialize)]
pub struct VxlanData {
    #[serde(default)]
    pub id: u32,
    #[serde(default)]
    pub local: String,
    #[serde(default)]
    pub link: String,
    #[serde(default)]
    pub port: u16,
}

#[derive(Debug, Default, Deserialize, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Route {
    #[serde(default)]
    pub dst: String,
    #[serde(default)]
    pub gateway: String,
    #[serde(default)]
    pub dev: String,
}

#[derive(Debug, Default, Deserialize)]
pub struct Neighbour {
    #[serde(default)]
    pub dst: String,
    #[serde(default)]
    pub lladdr: String,
}

#[derive(Debug, Default, Deserialize)]
pub struct FdbEntry {
    #[serde(default)]
    pub mac: String,
    #[serde(default)]
    pub dst: String,
}

/// The interface that holds `ip`, and its MTU.
pub async fn interface_of(ip: Ipv4Addr) -> Result<Option<(String, u32)>, CommandError> {
    let links: Vec<Link> = command::json("ip", &["-j", "-4", "addr", "show"]).await?;
    Ok(links.into_iter().find_map(|l| {
        l.addr_info
            .iter()
            .any(|a| a.family == "inet" && a.local.parse() == Ok(ip))
            .then_some((l.ifname.clone(), l.mtu))
    }))
}

/// The link named `dev` in detail, or `None`.
pub async fn link(dev: &str) -> Result<Option<Link>, CommandError> {
    match command::json::<Vec<Link>>("ip", &["-j", "-d", "-4", "addr", "show", "dev", dev]).await {
        Ok(mut links) => Ok(links.pop()),
        // iproute2 says "Device ... does not exist." for a missing one.
        Err(CommandError::Failed { detail, .. }) if detail.contains("does not exist") => Ok(None),
        Err(e) => Err(e),
    }
}

pub async fn routes(protocol: u8) -> Result<Vec<Route>, CommandError> {
    let proto = protocol.to_string();
    command::json("ip", &["-j", "-4", "route", "show", "proto", &proto]).await
}

pub async fn neighbours(dev: &str) -> Result<Vec<Neighbour>, CommandError> {
    command::json("ip", &["-j", "-4", "neigh", "show", "dev", dev]).await
}

pub async fn fdb(dev: &str) -> Result<Vec<FdbEntry>, CommandError> {
    command::json("bridge", &["-j", "fdb", "show", "dev", dev]).await
}
