//! NodePorts on the machine's loopback. The nodes are network hosts of their own, so a
//! NodePort listens at each node's LAN address, not on the machine's; a browser on the
//! machine (or a tunnel to it) still opens http://127.0.0.1:NODEPORT/, as it would on a
//! one-machine cluster. Each TCP NodePort Service port gets a loopback listener that passes
//! connections to the first node that accepts them; the set follows the Services.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::time::Duration;

use keel_api::client::Client;
use keel_schema::{Kind, Object};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// A NodePort of a Service: (service name, node port, protocol).
pub struct NodePort {
    pub service: String,
    pub port: u16,
    pub tcp: bool,
}

/// Every NodePort of `services`.
pub fn node_ports(services: &[Object]) -> Vec<NodePort> {
    let mut out = Vec::new();
    for object in services {
        let Object::Service(svc) = object else {
            continue;
        };
        if !matches!(svc.spec.type_.as_deref(), Some("NodePort" | "LoadBalancer")) {
            continue;
        }
        for port in svc.spec.ports.iter().flatten() {
            if let Some(node_port) = port.node_port.and_then(|p| u16::try_from(p).ok()) {
                out.push(NodePort {
                    service: svc.metadata.name().to_string(),
                    port: node_port,
                    tcp: port.protocol.as_deref().is_none_or(|p| p == "TCP"),
                });
            }
        }
    }
    out
}

/// Follows the Services until aborted, with a loopback listener per TCP NodePort.
pub fn spawn(client: Client, nodes: Vec<Ipv4Addr>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut open: BTreeMap<u16, JoinHandle<()>> = BTreeMap::new();
        // Ports another program holds: said once, tried again each round.
        let mut said: BTreeSet<u16> = BTreeSet::new();
        loop {
            // A failed listing changes nothing: the control plane may be restarting.
            if let Ok(services) = client.list(Kind::Service, None).await {
                let wanted: BTreeSet<u16> = node_ports(&services)
                    .into_iter()
                    .filter(|p| p.tcp)
                    .map(|p| p.port)
                    .collect();
                open.retain(|port, task| {
                    let keep = wanted.contains(port);
                    if !keep {
                        task.abort();
                    }
                    keep
                });
                for port in wanted {
                    if open.contains_key(&port) {
                        continue;
                    }
                    match TcpListener::bind((Ipv4Addr::LOCALHOST, port)).await {
                        Ok(listener) => {
                            said.remove(&port);
                            open.insert(port, tokio::spawn(pass_on(listener, port, nodes.clone())));
                        }
                        Err(e) if said.insert(port) => tracing::warn!(
                            "NodePort {port} is not on 127.0.0.1 ({e}); it answers at each node's address"
                        ),
                        Err(_) => {}
                    }
                }
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    })
}

/// Accepts on `listener` and joins each connection to the first node that answers on `port`.
async fn pass_on(listener: TcpListener, port: u16, nodes: Vec<Ipv4Addr>) {
    loop {
        let mut inbound = match listener.accept().await {
            Ok((inbound, _)) => inbound,
            Err(_) => {
                // Out of descriptors, say: a pause, not a busy loop.
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let nodes = nodes.clone();
        tokio::spawn(async move {
            for node in nodes {
                let connect = TcpStream::connect((node, port));
                if let Ok(Ok(mut outbound)) =
                    tokio::time::timeout(Duration::from_secs(2), connect).await
                {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    return;
                }
            }
        });
    }
}
