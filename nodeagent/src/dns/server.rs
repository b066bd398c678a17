//! Answering DNS messages: the cluster's names from [`Records`], everything else passed to
//! the node's own resolvers as it came (and their answer passed back as it came). UDP and
//! TCP, as resolvers retry over TCP when an answer is truncated.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, PTR, SRV};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use super::records::{Records, TTL, from_reverse_name};

/// How long an upstream resolver gets to answer a forwarded query.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);

/// What to do with one query.
pub enum Reply {
    /// Send these bytes back.
    Answer(Vec<u8>),
    /// Not the cluster's: ask the node's resolvers.
    Forward,
    /// Not a DNS message: say nothing.
    Drop,
}

/// The reply to `bytes` from `records`; `max` is the largest answer the transport carries
/// (the client's UDP payload size, or 65535 over TCP).
pub fn reply(records: &Records, bytes: &[u8], tcp: bool) -> Reply {
    let Ok(request) = Message::from_vec(bytes) else {
        return Reply::Drop;
    };
    if request.metadata.message_type != MessageType::Query {
        return Reply::Drop;
    }
    if request.metadata.op_code != OpCode::Query || request.queries.len() != 1 {
        return error(&request, ResponseCode::NotImp);
    }
    let query = &request.queries[0];
    let name = lower_fqdn(query.name());
    let reverse = from_reverse_name(&name).and_then(|ip| records.ptr.get(&ip));
    if !records.owns(&name) && reverse.is_none() {
        return Reply::Forward;
    }
    let mut response = Message::response(request.metadata.id, OpCode::Query);
    response.metadata.authoritative = true;
    response.metadata.recursion_desired = request.metadata.recursion_desired;
    response.metadata.recursion_available = true;
    response.add_query(query.clone());
    let owner = query.name().clone();
    match (query.query_type(), reverse) {
        (RecordType::PTR, Some(target)) => {
            if let Ok(target) = Name::from_ascii(target) {
                response.add_answer(Record::from_rdata(owner, TTL, RData::PTR(PTR(target))));
            }
        }
        (RecordType::A | RecordType::ANY, _) => {
            for ip in records.a.get(&name).into_iter().flatten() {
                response.add_answer(Record::from_rdata(owner.clone(), TTL, RData::A(A(*ip))));
            }
        }
        (RecordType::SRV, _) => {
            let targets = records
                .srv
                .get(&name)
                .map(Vec::as_slice)
                .unwrap_or_default();
            // Equal shares: the weight splits clients evenly over the targets.
            let weight = u16::try_from(100 / targets.len().max(1)).unwrap_or(1);
            for (port, target) in targets {
                let Ok(target_name) = Name::from_ascii(target) else {
                    continue;
                };
                response.add_answer(Record::from_rdata(
                    owner.clone(),
                    TTL,
                    RData::SRV(SRV::new(0, weight, *port, target_name.clone())),
                ));
                for ip in records.a.get(target).into_iter().flatten() {
                    response.add_additional(Record::from_rdata(
                        target_name.clone(),
                        TTL,
                        RData::A(A(*ip)),
                    ));
                }
            }
        }
        _ => {}
    }
    if response.answers.is_empty() && reverse.is_none() && !records.exists(&name) {
        response.metadata.response_code = ResponseCode::NXDomain;
    }
    let Ok(mut bytes) = response.to_vec() else {
        return error(&request, ResponseCode::ServFail);
    };
    let max = if tcp {
        usize::from(u16::MAX)
    } else {
        usize::from(request.max_payload())
    };
    if bytes.len() > max {
        // Too big for this transport: the header says so and the client asks over TCP.
        response.answers.clear();
        response.additionals.clear();
        response.metadata.truncation = true;
        bytes = response.to_vec().unwrap_or_default();
    }
    Reply::Answer(bytes)
}

fn error(request: &Message, code: ResponseCode) -> Reply {
    let mut response = Message::error_msg(request.metadata.id, request.metadata.op_code, code);
    response.queries = request.queries.clone();
    Reply::Answer(response.to_vec().unwrap_or_default())
}

/// A SERVFAIL for `bytes` (an upstream that did not answer), if it parses.
pub fn server_failure(bytes: &[u8]) -> Option<Vec<u8>> {
    let request = Message::from_vec(bytes).ok()?;
    match error(&request, ResponseCode::ServFail) {
        Reply::Answer(b) => Some(b),
        _ => None,
    }
}

fn lower_fqdn(name: &Name) -> String {
    let mut text = name.to_ascii().to_ascii_lowercase();
    if !text.ends_with('.') {
        text.push('.');
    }
    text
}

/// The node's resolvers from `resolv.conf` text, port 53, without `own` (the cluster DNS's
/// own address: asking itself would loop).
pub fn upstreams(resolv_conf: &str, own: Ipv4Addr) -> Vec<SocketAddr> {
    resolv_conf
        .lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|rest| rest.trim().parse::<IpAddr>().ok())
        .filter(|ip| *ip != IpAddr::V4(own))
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

/// Asks the upstream resolvers over UDP, in order, until one answers.
pub async fn forward_udp(bytes: &[u8], upstreams: &[SocketAddr]) -> Option<Vec<u8>> {
    for upstream in upstreams {
        let local: SocketAddr = if upstream.is_ipv4() {
            (Ipv4Addr::UNSPECIFIED, 0).into()
        } else {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let Ok(socket) = UdpSocket::bind(local).await else {
            continue;
        };
        if socket.connect(upstream).await.is_err() || socket.send(bytes).await.is_err() {
            continue;
        }
        let mut buf = vec![0u8; 65_535];
        if let Ok(Ok(n)) = tokio::time::timeout(UPSTREAM_TIMEOUT, socket.recv(&mut buf)).await {
            buf.truncate(n);
            return Some(buf);
        }
    }
    None
}

/// Asks the upstream resolvers over TCP, in order, until one answers.
pub async fn forward_tcp(bytes: &[u8], upstreams: &[SocketAddr]) -> Option<Vec<u8>> {
    for upstream in upstreams {
        let asked = async {
            let mut conn = TcpStream::connect(upstream).await?;
            write_framed(&mut conn, bytes).await?;
            read_framed(&mut conn).await
        };
        if let Ok(Ok(answer)) = tokio::time::timeout(UPSTREAM_TIMEOUT, asked).await {
            return Some(answer);
        }
    }
    None
}

/// One DNS message over TCP: a two-byte length, then the message.
pub async fn read_framed(conn: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let len = conn.read_u16().await?;
    let mut buf = vec![0u8; usize::from(len)];
    conn.read_exact(&mut buf).await?;
    Ok(buf)
}

pub async fn write_framed(conn: &mut TcpStream, bytes: &[u8]) -> std::io::Result<()> {
    let len = u16::try_from(bytes.len()).map_err(|_| std::io::Error::other("message too long"))?;
    let mut framed = Vec::with_capacity(bytes.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(bytes);
    conn.write_all(&framed).await
}

/// Shared by the UDP and TCP loops.
pub struct Answering {
    pub records: Arc<std::sync::RwLock<Arc<Records>>>,
    pub upstreams: Vec<SocketAddr>,
}

impl Answering {
    fn records(&self) -> Arc<Records> {
        self.records
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The answer to one message, forwarding when it is not the cluster's.
    pub async fn answer(&self, bytes: &[u8], tcp: bool) -> Option<Vec<u8>> {
        let reply = reply(&self.records(), bytes, tcp);
        match reply {
            Reply::Answer(b) => Some(b),
            Reply::Drop => None,
            Reply::Forward => {
                let answered = if tcp {
                    forward_tcp(bytes, &self.upstreams).await
                } else {
                    forward_udp(bytes, &self.upstreams).await
                };
                answered.or_else(|| server_failure(bytes))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::records::{DnsEndpoint, DnsPort, DnsService};
    use hickory_proto::op::Query;

    fn records() -> Records {
        Records::build(
            "cluster.local",
            &[
                DnsService {
                    namespace: "default".into(),
                    name: "web".into(),
                    cluster_ip: Some("10.96.0.7".parse().unwrap()),
                    headless: false,
                    ports: vec![DnsPort {
                        name: "http".into(),
                        protocol: "tcp".into(),
                        port: 80,
                    }],
                    endpoints: vec![],
                },
                DnsService {
                    namespace: "default".into(),
                    name: "db".into(),
                    cluster_ip: None,
                    headless: true,
                    ports: vec![],
                    endpoints: vec![DnsEndpoint {
                        ip: "10.244.1.5".parse().unwrap(),
                        hostname: Some("db-0".into()),
                        ports: Default::default(),
                    }],
                },
            ],
        )
    }

    fn ask(name: &str, kind: RecordType) -> Message {
        let mut m = Message::query();
        m.metadata.id = 4242;
        m.metadata.recursion_desired = true;
        m.add_query(Query::query(Name::from_ascii(name).unwrap(), kind));
        match reply(&records(), &m.to_vec().unwrap(), false) {
            Reply::Answer(b) => Message::from_vec(&b).unwrap(),
            Reply::Forward => panic!("{name} forwarded"),
            Reply::Drop => panic!("{name} dropped"),
        }
    }

    fn ips(m: &Message) -> Vec<String> {
        addresses(&m.answers)
    }

    fn addresses(records: &[Record]) -> Vec<String> {
        records
            .iter()
            .filter_map(|r| r.data.ip_addr().map(|ip| ip.to_string()))
            .collect()
    }

    #[test]
    fn cluster_names_are_answered_with_their_records() {
        let m = ask("Web.default.svc.cluster.local.", RecordType::A);
        assert_eq!(m.metadata.id, 4242);
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert!(m.metadata.authoritative);
        assert_eq!(ips(&m), ["10.96.0.7"]);
        let m = ask("db-0.db.default.svc.cluster.local.", RecordType::A);
        assert_eq!(ips(&m), ["10.244.1.5"]);
        let m = ask("_http._tcp.web.default.svc.cluster.local.", RecordType::SRV);
        assert_eq!(m.answers.len(), 1);
        assert_eq!(
            addresses(&m.additionals),
            ["10.96.0.7"],
            "the target's address"
        );
        let m = ask("7.0.96.10.in-addr.arpa.", RecordType::PTR);
        assert_eq!(m.answers.len(), 1);
    }

    #[test]
    fn unknown_cluster_names_do_not_exist_and_known_ones_have_no_other_types() {
        let m = ask("nope.default.svc.cluster.local.", RecordType::A);
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
        let m = ask("web.default.svc.cluster.local.", RecordType::AAAA);
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert!(m.answers.is_empty());
        let m = ask("default.svc.cluster.local.", RecordType::A);
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    }

    #[test]
    fn other_names_and_unknown_addresses_go_to_the_node_resolvers() {
        let mut m = Message::query();
        m.add_query(Query::query(
            Name::from_ascii("deb.debian.org.").unwrap(),
            RecordType::A,
        ));
        assert!(matches!(
            reply(&records(), &m.to_vec().unwrap(), false),
            Reply::Forward
        ));
        assert!(matches!(reply(&records(), b"not dns", false), Reply::Drop));
        assert_eq!(
            upstreams(
                "# hi\nnameserver 10.255.255.53\nnameserver 169.254.20.10\nsearch x\n",
                "169.254.20.10".parse().unwrap()
            ),
            ["10.255.255.53:53".parse::<SocketAddr>().unwrap()]
        );
    }
}
