//! The pod network across machines, for real: three node hosts (network namespaces on a
//! bridge standing in for the LAN), each with its own agent, for each overlay backend.
//! Pods reach pods on other nodes by their own addresses over TCP and UDP, a Service whose
//! only endpoint is elsewhere, and the world outside, which sees the node's address. A
//! deleted node's routes vanish and its range goes to the next node; an agent restart keeps
//! every pod's address.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::Duration;

use keel_e2e::{Server, binary, commit, docker_available, git, import_image, write};
use keel_nodehost::NodeHost;
use serde_json::Value;

use super::support::{Agent, TestLan, docker, pods, ready, wait_until};

const CGI: &str =
    "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\nfrom %s\\n' \"$REMOTE_ADDR\"\n";

/// `solo_node` runs the solo pod; `host_dir` is a node folder the net pods mount a subPath
/// of (with a subPath of an emptyDir), through the pinned sources an agent in a node host
/// must make in the host's mount namespace.
fn manifests(solo_node: &str, host_dir: &str) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: DaemonSet
metadata: {{name: net}}
spec:
  selector: {{matchLabels: {{app: net}}}}
  template:
    metadata: {{labels: {{app: net}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: web
        image: keel-e2e/net:1
        imagePullPolicy: Never
        command: ["sh", "-c", "chmod +x /www/cgi-bin/ip; udp-echo 9000 & exec httpd -f -p 8080 -h /www"]
        volumeMounts:
        - {{name: scratch, mountPath: /scratch, subPath: a/b}}
        - {{name: site, mountPath: /site, subPath: site, readOnly: true}}
      volumes:
      - {{name: scratch, emptyDir: {{}}}}
      - name: site
        hostPath: {{path: {host_dir}, type: Directory}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: solo}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: solo}}}}
  template:
    metadata: {{labels: {{app: solo}}}}
    spec:
      terminationGracePeriodSeconds: 1
      nodeSelector: {{kubernetes.io/hostname: {solo_node}}}
      containers:
      - name: web
        image: keel-e2e/net:1
        imagePullPolicy: Never
        command: ["sh", "-c", "chmod +x /www/cgi-bin/ip; exec httpd -f -p 8080 -h /www"]
---
apiVersion: v1
kind: Service
metadata: {{name: solo}}
spec:
  selector: {{app: solo}}
  ports: [{{port: 80, targetPort: 8080}}]
"#
    )
}

/// The running pod of `app` on `node`: (its IP, its web container's id).
fn pod_on(server: &Server, app: &str, node: &str) -> Option<(String, String)> {
    let pod = pods(server).into_iter().find(|p| {
        p["metadata"]["labels"]["app"] == app && p["spec"]["nodeName"] == node && ready(p)
    })?;
    let ip = pod["status"]["podIP"].as_str()?.to_string();
    let uid = pod["metadata"]["uid"].as_str()?.to_string();
    let id = docker(&[
        "ps",
        "-q",
        "--filter",
        &format!("label=keel.dev/pod-uid={uid}"),
        "--filter",
        "label=keel.dev/container=web",
    ]);
    (!id.is_empty()).then_some((ip, id))
}

/// Runs `script` with `sh -c` in container `id`; its output.
fn in_pod(id: &str, script: &str) -> String {
    docker(&["exec", id, "sh", "-c", script])
}

fn http_from_pod(id: &str, addr: &str) -> String {
    in_pod(
        id,
        &format!("printf 'GET /cgi-bin/ip HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {addr}"),
    )
}

fn node_cidr(server: &Server, node: &str) -> String {
    server
        .get(&format!("/api/v1/nodes/{node}"))
        .and_then(|n| n["spec"]["podCIDR"].as_str().map(str::to_string))
        .unwrap_or_default()
}

/// The routes the agent in `host` made (protocol 77), as `ip` prints them.
fn keel_routes(host: &NodeHost) -> String {
    let out = std::process::Command::new("ip")
        .args(["-n", &host.netns, "-4", "route", "show", "proto", "77"])
        .output()
        .expect("ip");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn fdb(host: &NodeHost) -> String {
    let out = host
        .command("bridge")
        .args(["fdb", "show", "dev", "keel.vxlan"])
        .output()
        .expect("bridge");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn across_nodes(backend: &str, lan_index: u32) {
    if !docker_available() {
        return;
    }
    import_image(
        "keel-e2e/net:1",
        &[("/www/cgi-bin/ip", CGI)],
        &[binary("udp-echo")],
    );
    let tag = format!("{}{lan_index}", std::process::id() % 1000);
    let test_lan = TestLan::new(lan_index, 4);
    let (lan, hosts) = (&test_lan.lan, &test_lan.hosts);
    let names: Vec<String> = (1..=4).map(|i| format!("net{tag}-{i}")).collect();

    let repo = tempfile::tempdir().unwrap();
    git(repo.path(), &["init", "-q"]);
    let data = tempfile::tempdir().unwrap();
    let host_dir = data.path().join("host");
    std::fs::create_dir_all(host_dir.join("site")).unwrap();
    std::fs::write(host_dir.join("site/hello"), "from the node's disk\n").unwrap();
    write(
        repo.path(),
        "net.yaml",
        &manifests(&names[2], host_dir.to_str().unwrap()),
    );
    commit(repo.path(), "net");
    let agents_at = test_lan.agents_at();
    let server = Server::start(
        repo.path().to_str().unwrap(),
        &["--agent-listen", &agents_at, "--node-grace", "3s"],
    );
    let allowed = host_dir.to_str().unwrap();
    let flags = ["--network-backend", backend, "--allowed-host-path", allowed];
    let mut agents: Vec<Agent> = (0..3)
        .map(|i| Agent::start(&names[i], &server, data.path(), &hosts[i], &flags))
        .collect();
    wait_until(
        Duration::from_secs(90),
        "a net pod on each node and solo",
        || {
            names[..3]
                .iter()
                .all(|n| pod_on(&server, "net", n).is_some())
                && pod_on(&server, "solo", &names[2]).is_some()
        },
    );
    let cidrs: Vec<String> = names[..3].iter().map(|n| node_cidr(&server, n)).collect();
    let mut sorted = cidrs.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        ["10.244.0.0/24", "10.244.1.0/24", "10.244.2.0/24"],
        "one range per node, lowest first"
    );
    let (ip1, client) = pod_on(&server, "net", &names[0]).unwrap();
    let range1: ipnet::Ipv4Net = cidrs[0].parse().unwrap();
    assert!(
        range1.contains(&ip1.parse::<std::net::Ipv4Addr>().unwrap()),
        "node 1's pod has an address of its range: {ip1} in {range1}"
    );

    // subPaths of a hostPath and of an emptyDir, pinned by an agent in a node host.
    let mounted = in_pod(
        &client,
        "cat /site/hello; echo kept > /scratch/note; cat /scratch/note",
    );
    assert_eq!(mounted, "from the node's disk\nkept", "subPath mounts");

    // Pod to pod on the other nodes, by pod IP, over TCP (the server sees the client pod's
    // own address: no NAT between pods) and UDP.
    for n in &names[1..3] {
        let (ip, _) = pod_on(&server, "net", n).unwrap();
        wait_until(
            Duration::from_secs(20),
            &format!("node 1's pod to reach {ip} on {n}"),
            || {
                // busybox httpd says `[::ffff:IP]` for an IPv4 client on its dual-stack socket.
                let said = http_from_pod(&client, &format!("{ip} 8080"));
                said.contains(&format!("from [::ffff:{ip1}]"))
                    || said.contains(&format!("from {ip1}\n"))
            },
        );
        let udp = in_pod(&client, &format!("udp-echo ask {ip}:9000 ping"));
        assert!(udp.ends_with(":ping"), "UDP to {ip} answered {udp:?}");
    }

    // A Service whose only endpoint is on node 3, from node 1's pod and from node 2's host.
    let solo = server
        .get("/api/v1/namespaces/default/services/solo")
        .unwrap();
    let cluster_ip = solo["spec"]["clusterIP"].as_str().unwrap().to_string();
    wait_until(
        Duration::from_secs(20),
        "the Service from a pod on another node",
        || http_from_pod(&client, &format!("{cluster_ip} 80")).contains("200 OK"),
    );
    let from_host = hosts[1]
        .command("/bin/busybox")
        .args(["sh", "-c", &format!("printf 'GET /cgi-bin/ip HTTP/1.0\\r\\n\\r\\n' | /bin/busybox nc -w 3 {cluster_ip} 80")])
        .output()
        .expect("busybox");
    assert!(
        String::from_utf8_lossy(&from_host.stdout).contains("200 OK"),
        "from node 2's host: {from_host:?}"
    );

    // Outside the cluster (the machine, on the LAN): the node's address, masqueraded.
    let outside = TcpListener::bind((lan.gateway(), 0)).unwrap();
    let port = outside.local_addr().unwrap().port();
    let accept = std::thread::spawn(move || {
        let (mut s, peer) = outside.accept().unwrap();
        let mut b = [0u8; 16];
        let _ = s.read(&mut b);
        let _ = s.write_all(b"bye\n");
        peer.ip().to_string()
    });
    let said = in_pod(
        &client,
        &format!("echo hi | nc -w 3 {} {port}", lan.gateway()),
    );
    assert_eq!(said, "bye");
    assert_eq!(
        accept.join().unwrap(),
        hosts[0].ip.to_string(),
        "the world sees node 1's address"
    );

    // An agent restart keeps every pod's address and connectivity, and adds nothing twice.
    let sandboxes = |node: &str| {
        docker(&[
            "ps",
            "-q",
            "--filter",
            &format!("label=keel.dev/node={node}"),
            "--filter",
            "label=keel.dev/role=sandbox",
        ])
        .lines()
        .count()
    };
    let before = sandboxes(&names[0]);
    let (ip2, _) = pod_on(&server, "net", &names[1]).unwrap();
    agents[0].kill();
    agents[0].spawn();
    std::thread::sleep(Duration::from_secs(3));
    wait_until(
        Duration::from_secs(30),
        "node 1's pod to keep its address and reach node 2",
        || {
            pod_on(&server, "net", &names[0]).is_some_and(|(ip, id)| ip == ip1 && id == client)
                && http_from_pod(&client, &format!("{ip2} 8080")).contains("200 OK")
        },
    );
    assert_eq!(
        sandboxes(&names[0]),
        before,
        "no sandbox added by the restart"
    );

    // A node that goes away: refused while Ready; once deleted, its routes vanish from the
    // others and its range goes to the next node.
    let delete = |name: &str| {
        server
            .keel()
            .args(["delete", "node", name, "--server", &server.url])
            .output()
            .unwrap()
    };
    let refused = delete(&names[2]);
    assert!(
        !refused.status.success() && String::from_utf8_lossy(&refused.stderr).contains("is Ready"),
        "{refused:?}"
    );
    assert!(
        keel_routes(&hosts[0]).contains(&cidrs[2]),
        "{}",
        keel_routes(&hosts[0])
    );
    agents[2].kill();
    wait_until(
        Duration::from_secs(30),
        "node 3 to be deleted once NotReady",
        || delete(&names[2]).status.success(),
    );
    wait_until(
        Duration::from_secs(30),
        "node 3's routes to vanish from node 1",
        || {
            !keel_routes(&hosts[0]).contains(&cidrs[2])
                && (backend != "vxlan" || !fdb(&hosts[0]).contains(&hosts[2].ip.to_string()))
        },
    );
    if backend == "vxlan" {
        assert!(
            fdb(&hosts[0]).contains(&hosts[1].ip.to_string()),
            "node 2's entry stays"
        );
    }
    let _fourth = Agent::start(&names[3], &server, data.path(), &hosts[3], &flags);
    wait_until(
        Duration::from_secs(30),
        "node 4 to get the freed range",
        || node_cidr(&server, &names[3]) == cidrs[2],
    );
    let node4: Value = server.get(&format!("/api/v1/nodes/{}", names[3])).unwrap();
    assert_eq!(node4["spec"]["podCIDRs"][0], cidrs[2].as_str());
}

#[test]
fn pods_reach_pods_on_every_node_over_vxlan() {
    across_nodes("vxlan", 0);
}

#[test]
fn pods_reach_pods_on_every_node_over_host_gw() {
    across_nodes("host-gw", 1);
}
