//! The Services test's checks of the paths into the cluster: an Ingress over HTTP and TLS, a
//! LoadBalancer address on the LAN, and what the nftables data path brings (the client's
//! address kept, ClientIP affinity, refusal without endpoints, drift repaired).

use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration, Instant};

use keel_e2e::{Server, commit, write};
use keel_nodehost::NodeHost;

use super::services::{nft_table, ready_endpoints, table_handle};
use super::support::{TestLan, http_get, http_get_in};

fn lo_addresses(host: &NodeHost) -> String {
    Command::new("ip")
        .args(["-n", &host.netns, "-4", "-o", "addr", "show", "dev", "lo"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
        .unwrap_or_default()
}

fn cluster_ip_of(server: &Server, service: &str) -> String {
    let s = server
        .get(&format!("/api/v1/namespaces/default/services/{service}"))
        .unwrap_or_else(|| panic!("Service {service}"));
    s["spec"]["clusterIP"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// An Ingress with two hosts, one over TLS (HTTP/2 by ALPN), on every node's address: each
/// host reaches its backend, the endpoint sees who asked (X-Forwarded-For), and an unknown
/// host gets 404. Checked with curl, as users would.
pub(super) fn check_ingress(server: &Server, lan: &TestLan, repo: &std::path::Path) {
    let cert =
        rcgen::generate_simple_self_signed(vec!["a.example".to_string()]).expect("a certificate");
    let b64 = |s: String| {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(s)
    };
    let ca = tempfile::NamedTempFile::new().expect("a temp file");
    std::fs::write(ca.path(), cert.cert.pem()).expect("the CA file");
    write(
        repo,
        "ingress.yaml",
        &format!(
            r#"apiVersion: v1
kind: Secret
metadata: {{name: a-tls}}
type: kubernetes.io/tls
data: {{tls.crt: {}, tls.key: {}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {{name: web}}
spec:
  tls: [{{hosts: [a.example], secretName: a-tls}}]
  rules:
  - host: a.example
    http: {{paths: [{{path: /, pathType: Prefix, backend: {{service: {{name: echo, port: {{number: 80}}}}}}}}]}}
  - host: b.example
    http: {{paths: [{{path: /cgi-bin, pathType: Prefix, backend: {{service: {{name: echo-pods, port: {{number: 8080}}}}}}}}]}}
"#,
            b64(cert.cert.pem()),
            b64(cert.signing_key.serialize_pem())
        ),
    );
    commit(repo, "an ingress");
    server.wait_for("the Ingress's addresses: every node", |s| {
        s.get("/apis/networking.k8s.io/v1/namespaces/default/ingresses/web")
            .and_then(|i| {
                i["status"]["loadBalancer"]["ingress"]
                    .as_array()
                    .map(Vec::len)
            })
            == Some(3)
    });
    let node = lan.hosts[2].ip.to_string();
    let curl = |args: &[&str]| {
        let out = Command::new("curl")
            .args(["-s", "--max-time", "5"])
            .args(args)
            .output()
            .expect("curl runs");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let pods = ready_endpoints(server, "echo");
    let resolve_a = format!("a.example:443:{node}");
    let ca_path = ca.path().to_str().unwrap_or_default();
    server.wait_for("https://a.example/ through the ingress proxy", |_| {
        let out = curl(&[
            "--resolve",
            &resolve_a,
            "--cacert",
            ca_path,
            "-w",
            "\n%{http_version}",
            "https://a.example/",
        ]);
        let mut lines = out.lines();
        let (who, version) = (
            lines.next().unwrap_or_default(),
            lines.last().unwrap_or_default(),
        );
        pods.contains(who) && version == "2"
    });
    let resolve_b = format!("b.example:80:{node}");
    let seen = curl(&["--resolve", &resolve_b, "http://b.example/cgi-bin/client"]);
    assert!(
        seen.contains(&format!("xff={} proto=http", lan.lan.gateway())),
        "the endpoint sees the client in X-Forwarded-For: {seen}"
    );
    let resolve_c = format!("c.example:80:{node}");
    let status = curl(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "--resolve",
        &resolve_c,
        "http://c.example/",
    ]);
    assert_eq!(status, "404");
}

/// A LoadBalancer Service gets an address of the pool, one node answers for it on the LAN,
/// and the machine (outside the cluster) reaches the pods through it.
pub(super) fn check_load_balancer(server: &Server, lan: &TestLan, pool: &str) {
    let external = |s: &Server| {
        s.get("/api/v1/namespaces/default/services/echo-lb")
            .and_then(|v| {
                v["status"]["loadBalancer"]["ingress"][0]["ip"]
                    .as_str()
                    .map(str::to_string)
            })
    };
    server.wait_for("an external address for echo-lb", |s| external(s).is_some());
    let ip = external(server).unwrap_or_default();
    let net: ipnet::Ipv4Net = pool.parse().expect("pool");
    assert!(
        net.contains(&ip.parse::<std::net::Ipv4Addr>().expect("an IPv4 address")),
        "{ip} in {pool}"
    );
    let front = format!("{ip}:8081");
    let pods: BTreeSet<String> = ready_endpoints(server, "echo");
    server.wait_for("the LoadBalancer address to answer", |_| {
        http_get(&front).is_some_and(|who| pods.contains(&who))
    });
    let holders = lan
        .hosts
        .iter()
        .filter(|h| {
            let out = Command::new("ip")
                .args(["-n", &h.netns, "-4", "-o", "addr", "show", "dev", "eth0"])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
                .unwrap_or_default();
            out.contains(&format!(" {ip}/32 "))
        })
        .count();
    assert_eq!(holders, 1, "one node answers for {ip}");
}

/// What the nftables data path brings: no ClusterIP on the host, the client's address kept
/// with `externalTrafficPolicy: Local`, ClientIP affinity, refusal without endpoints, and
/// a table repaired after someone flushed it by hand.
pub(super) fn check_kernel_path(
    server: &Server,
    lan: &TestLan,
    names: &[String],
    cluster_ip: &str,
) {
    let host = &lan.hosts[0];
    let table = nft_table(host);
    assert!(
        table.contains("map service-ips") && table.contains(cluster_ip),
        "{table}"
    );
    let (handle, since) = (table_handle(host), Instant::now());
    assert!(
        !lo_addresses(host).contains(cluster_ip),
        "the kernel path needs no ClusterIP on the host"
    );

    // externalTrafficPolicy: Local, from outside: the node asked answers with its own pods,
    // and they see the client's own address.
    let local = server
        .get("/api/v1/namespaces/default/services/echo-local")
        .expect("echo-local");
    let port = local["spec"]["ports"][0]["nodePort"]
        .as_u64()
        .expect("a node port");
    let pods = super::support::pods(server);
    let mut checked = 0;
    for (node, h) in names.iter().zip(&lan.hosts) {
        let here: BTreeSet<String> = pods
            .iter()
            .filter(|p| {
                p["metadata"]["labels"]["app"] == "echo" && p["spec"]["nodeName"] == node.as_str()
            })
            .filter_map(|p| p["metadata"]["name"].as_str().map(str::to_string))
            .collect();
        if here.is_empty() {
            continue;
        }
        let addr = format!("{}:{port}", h.ip);
        server.wait_for("the Local NodePort to answer", |_| {
            http_get(&addr).is_some()
        });
        for _ in 0..5 {
            let who = http_get(&addr).unwrap_or_default();
            assert!(here.contains(&who), "{who} is not on {node} ({here:?})");
        }
        let seen = super::support::http_get_path(&addr, "/cgi-bin/client").unwrap_or_default();
        assert!(
            seen.contains(&format!(":{}]", lan.lan.gateway())),
            "the pod sees the client's address {}: {seen}",
            lan.lan.gateway()
        );
        checked += 1;
    }
    assert!(checked > 0, "some node runs an echo pod");

    // ClientIP affinity: one client, one pod, however many requests.
    let sticky = format!("{}:80", cluster_ip_of(server, "echo-sticky"));
    let answered: BTreeSet<String> = (0..10).filter_map(|_| http_get_in(host, &sticky)).collect();
    assert_eq!(answered.len(), 1, "{answered:?}");

    // The agent compares its table with what it applied every 10 s. One nobody touched is
    // never taken for changed by hand and made anew, which would also forget every
    // client's affinity.
    if let Some(rest) = Duration::from_secs(12).checked_sub(since.elapsed()) {
        std::thread::sleep(rest);
    }
    assert_eq!(
        table_handle(host),
        handle,
        "the untouched table was replaced"
    );
    let again: BTreeSet<String> = (0..5).filter_map(|_| http_get_in(host, &sticky)).collect();
    assert_eq!(
        again, answered,
        "ClientIP affinity across the agent's checks"
    );

    // No ready endpoint: refused at once, not left to time out.
    let nobody = cluster_ip_of(server, "nobody");
    let out = super::support::in_host(
        host,
        &format!("/bin/busybox nc -w 5 {nobody} 80 </dev/null 2>&1"),
    );
    assert!(out.contains("refused"), "{out}");

    // Someone flushes the table by hand: the agent notices and puts it back.
    let flushed = host
        .command("nft")
        .args(["flush", "table", "ip", "keel-services"])
        .status()
        .expect("nft runs");
    assert!(flushed.success());
    // (`flush table` empties every chain; map elements stay.)
    assert!(!nft_table(host).contains("jump services"));
    let front = format!("{cluster_ip}:80");
    server.wait_for("the flushed table repaired", |_| {
        nft_table(host).contains("jump services") && http_get_in(host, &front).is_some()
    });
}
