//! An agent started in-process on a fresh node name and data dir, driven over its real gRPC
//! API the way the control plane drives it.
//!
//! Docker tests skip with a printed reason when no engine answers, unless
//! `KEEL_REQUIRE_DOCKER=1` (as `scripts/test` and CI set), where they fail.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use keel_agent_protocol::node_agent_client::NodeAgentClient;
use keel_agent_protocol::{LogsRequest, NodeDesired, SyncAck};
use keel_nodeagent::agent::{self, AgentConfig, RunningAgent};
use keel_nodeagent::network::cni::{Cni, CniSettings};
use keel_nodeagent::network::{Assignment, NodeNetwork};
use keel_nodeagent::runtime::Runtime;
use keel_nodeagent::runtime::docker::DockerRuntime;
use keel_nodeagent::runtime::docker::image_import::{Rootfs, import_image};
use keel_nodeagent::runtime::hollow::HollowRuntime;
use keel_schema::types::pod::PodStatus;
use serde_json::{Value, json};
use tonic::transport::Channel;

/// The image every Docker test uses: busybox with all its applets.
pub const IMAGE: &str = "keel-test/busybox:1";

static IMAGE_READY: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();

pub struct Harness {
    pub node: String,
    pub data: tempfile::TempDir,
    /// The node's pod range, assigned as registration would.
    pub network: NodeNetwork,
    pub agent: Option<RunningAgent>,
    pub client: NodeAgentClient<Channel>,
    pub runtime: Arc<dyn Runtime>,
    /// The same runtime, when it is the hollow one: to script its engine.
    pub hollow: Option<Arc<HollowRuntime>>,
    pub docker: Option<bollard::Docker>,
    pub generation: u64,
    pub allowed_host_paths: Vec<std::path::PathBuf>,
    /// The operator's CNI configuration (`--cni-conf-dir`), if not keel's default chain.
    pub cni_conf_dir: Option<std::path::PathBuf>,
}

fn unique_node() -> String {
    format!("test-{}", &uuid::Uuid::new_v4().simple().to_string()[..10])
}

/// A pod range of its own for each harness of this process (test processes run one at a
/// time; the process id spreads the ranges of consecutive runs).
fn unique_network() -> NodeNetwork {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let index = (std::process::id().wrapping_mul(61).wrapping_add(n)) % 4096;
    let base = u32::from(std::net::Ipv4Addr::new(10, 240, 0, 0)) + index * 256;
    let pod_cidr = format!("{}/24", std::net::Ipv4Addr::from(base));
    NodeNetwork::assigned(Assignment::parse(&pod_cidr, "10.240.0.0/12").expect("a range"))
}

/// The bridge of a harness's node: its own, so that harnesses running at once in this
/// network namespace never share one.
pub fn bridge_of(node: &str) -> String {
    format!("kt{}", &node[node.len() - 10..])
}

/// A Docker runtime for a node, or `None` (after saying why) when the test should skip.
pub async fn docker_runtime(
    node: &str,
    data: &std::path::Path,
    network: &NodeNetwork,
    cni_conf_dir: Option<&std::path::Path>,
) -> Option<Arc<DockerRuntime>> {
    let required = std::env::var("KEEL_REQUIRE_DOCKER").is_ok_and(|v| v == "1");
    let mut settings = CniSettings::default_chain(data.join("cni"), &bridge_of(node));
    settings.conf_dir = cni_conf_dir.map(std::path::Path::to_path_buf);
    let cni = Arc::new(Cni::new(settings, network.clone()));
    match DockerRuntime::connect(
        node,
        keel_nodeagent::runtime::docker::DEFAULT_PAUSE_IMAGE,
        cni,
    )
    .await
    {
        Ok(rt) => {
            IMAGE_READY
                .get_or_init(|| async {
                    let rootfs =
                        Rootfs::busybox().file("/www/index.html", "hello from keel\n", 0o644);
                    import_image(rt.client(), IMAGE, rootfs)
                        .await
                        .expect("import the test image");
                })
                .await;
            Some(Arc::new(rt))
        }
        Err(e) if required => panic!("KEEL_REQUIRE_DOCKER=1 but Docker is not usable: {e:#}"),
        Err(e) => {
            eprintln!(
                "skipping: Docker is not usable ({e:#}); set KEEL_REQUIRE_DOCKER=1 to fail instead"
            );
            None
        }
    }
}

impl Harness {
    pub async fn docker() -> Option<Harness> {
        Harness::docker_with_cni_conf(None).await
    }

    /// On Docker, with the CNI configuration in `cni_conf_dir` instead of keel's default.
    pub async fn docker_with_cni_conf(cni_conf_dir: Option<&std::path::Path>) -> Option<Harness> {
        let node = unique_node();
        let data = tempfile::tempdir().expect("tempdir");
        let network = unique_network();
        let rt = docker_runtime(&node, data.path(), &network, cni_conf_dir).await?;
        let docker = rt.client().clone();
        let mut h = Harness::with_runtime(node, data, network, rt).await;
        h.docker = Some(docker);
        h.cni_conf_dir = cni_conf_dir.map(std::path::Path::to_path_buf);
        Some(h)
    }

    pub async fn hollow() -> Harness {
        let network = unique_network();
        let runtime = Arc::new(HollowRuntime::new().with_network(network.clone()));
        let data = tempfile::tempdir().expect("tempdir");
        let mut h = Harness::with_runtime(unique_node(), data, network, runtime.clone()).await;
        h.hollow = Some(runtime);
        h
    }

    async fn with_runtime(
        node: String,
        data: tempfile::TempDir,
        network: NodeNetwork,
        runtime: Arc<dyn Runtime>,
    ) -> Harness {
        let allowed = vec![data.path().join("host")];
        std::fs::create_dir_all(&allowed[0]).expect("host dir");
        let agent = start_agent(&node, data.path(), &allowed, &network, runtime.clone()).await;
        let client = connect(agent.addr).await;
        Harness {
            node,
            data,
            network,
            agent: Some(agent),
            client,
            runtime,
            hollow: None,
            docker: None,
            generation: 0,
            allowed_host_paths: allowed,
            cni_conf_dir: None,
        }
    }

    /// Stops the agent (its containers keep running) and starts a new one on the same node,
    /// data dir and engine, as a restarted `keel-agent` process would be.
    pub async fn restart_agent(&mut self) {
        if let Some(a) = self.agent.take() {
            a.stop();
        }
        let runtime: Arc<dyn Runtime> = match &self.docker {
            Some(_) => docker_runtime(
                &self.node,
                self.data.path(),
                &self.network,
                self.cni_conf_dir.as_deref(),
            )
            .await
            .expect("docker still there"),
            None => self.runtime.clone(),
        };
        self.runtime = runtime.clone();
        let agent = start_agent(
            &self.node,
            self.data.path(),
            &self.allowed_host_paths,
            &self.network,
            runtime,
        )
        .await;
        self.client = connect(agent.addr).await;
        self.agent = Some(agent);
    }

    pub fn agent(&self) -> &RunningAgent {
        self.agent.as_ref().expect("agent running")
    }

    /// Sends `pods` (JSON objects from [`pod`]) as the node's full desired set, with a new
    /// generation; retried while the agent is still listing its containers.
    pub async fn sync(
        &mut self,
        pods: &[Value],
        extra: &[Value],
    ) -> Result<SyncAck, tonic::Status> {
        self.generation += 1;
        let msg = self.desired(self.generation, pods, extra);
        self.sync_message(msg).await
    }

    /// Sends `msg` as it is; retried while the agent is still listing its containers.
    pub async fn sync_message(&mut self, msg: NodeDesired) -> Result<SyncAck, tonic::Status> {
        for _ in 0..100 {
            match self.client.sync(msg.clone()).await {
                Err(s) if s.code() == tonic::Code::Unavailable => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                other => return other.map(|r| r.into_inner()),
            }
        }
        panic!("the agent never became ready");
    }

    pub fn desired(&self, generation: u64, pods: &[Value], extra: &[Value]) -> NodeDesired {
        let kind = |v: &Value, k: &str| v["kind"] == k;
        NodeDesired {
            node_name: self.node.clone(),
            generation,
            pods: pods.iter().map(|p| self.bind(p)).collect(),
            config_maps: extra
                .iter()
                .filter(|v| kind(v, "ConfigMap"))
                .map(|v| serde_json::to_vec(v).unwrap())
                .collect(),
            secrets: extra
                .iter()
                .filter(|v| kind(v, "Secret"))
                .map(|v| serde_json::to_vec(v).unwrap())
                .collect(),
            services: Vec::new(),
            volumes: Vec::new(),
            released_volumes: Vec::new(),
            nodes: Vec::new(),
            announce: Vec::new(),
            ingresses: Vec::new(),
            ingress_secrets: Vec::new(),
            ..Default::default()
        }
    }

    fn bind(&self, pod: &Value) -> Vec<u8> {
        let mut pod = pod.clone();
        pod["spec"]["nodeName"] = json!(self.node);
        serde_json::to_vec(&pod).unwrap()
    }

    pub fn status(&self, uid: &str) -> Option<PodStatus> {
        let update = self.agent().hub.get(uid)?;
        Some(serde_json::from_slice(&update.status).expect("status JSON"))
    }

    /// Waits (up to `secs`) until the pod's status satisfies `ok`; panics with the last status.
    pub async fn wait_for(
        &self,
        uid: &str,
        secs: u64,
        what: &str,
        ok: impl Fn(&PodStatus) -> bool,
    ) -> PodStatus {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let status = self.status(uid);
            if let Some(s) = &status
                && ok(s)
            {
                return s.clone();
            }
            if tokio::time::Instant::now() > deadline {
                panic!(
                    "pod {uid}: {what} did not happen within {secs}s; last status: {}",
                    serde_json::to_string_pretty(&status).unwrap()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the pod is gone (its tombstone published).
    pub async fn wait_gone(&self, uid: &str, secs: u64) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        while self.agent().hub.get(uid).is_some() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "pod {uid} still there after {secs}s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn logs(
        &mut self,
        pod: &str,
        container: &str,
        previous: bool,
    ) -> Result<String, tonic::Status> {
        let mut stream = self
            .client
            .logs(LogsRequest {
                namespace: "default".into(),
                pod: pod.into(),
                container: container.into(),
                tail_lines: 0,
                follow: false,
                previous,
            })
            .await?
            .into_inner();
        let mut out = Vec::new();
        while let Some(chunk) = stream.message().await? {
            out.extend_from_slice(&chunk.data);
        }
        Ok(String::from_utf8_lossy(&out).into_owned())
    }

    /// Docker container ids of this node, by `keel.dev/pod-uid`, running or not.
    pub async fn containers(
        &self,
    ) -> BTreeMap<String, Vec<keel_nodeagent::runtime::ContainerInfo>> {
        let mut out: BTreeMap<String, Vec<_>> = BTreeMap::new();
        for c in self.runtime.list().await.expect("list") {
            out.entry(c.pod_uid.clone()).or_default().push(c);
        }
        out
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        // Stop the agent's workers first, so none recreates what is removed below.
        if let Some(agent) = self.agent.take() {
            agent.stop();
            std::thread::sleep(Duration::from_millis(300));
        }
        if self.docker.is_some() {
            // Leave no containers behind, whatever the test did.
            let _ = std::process::Command::new("sh")
                .arg("-c")
                .arg(format!(
                    "docker ps -aq --filter label=keel.dev/node={} | xargs -r docker rm -f >/dev/null 2>&1",
                    self.node
                ))
                .status();
            // And no bridge: CNI's DEL leaves it, as a node keeps its bridge.
            let _ = std::process::Command::new("ip")
                .args(["link", "del", &bridge_of(&self.node)])
                .stderr(std::process::Stdio::null())
                .status();
        }
    }
}

async fn start_agent(
    node: &str,
    data: &std::path::Path,
    allowed: &[std::path::PathBuf],
    network: &NodeNetwork,
    runtime: Arc<dyn Runtime>,
) -> RunningAgent {
    agent::start(
        AgentConfig {
            cpu_millis: 2000,
            memory_bytes: 4 << 30,
            allowed_host_paths: allowed.to_vec(),
            ..AgentConfig::bare(node, data.to_path_buf(), network.clone())
        },
        runtime,
    )
    .await
    .expect("agent starts")
}

pub async fn connect(addr: std::net::SocketAddr) -> NodeAgentClient<Channel> {
    NodeAgentClient::connect(format!("http://{addr}"))
        .await
        .expect("connect to the agent")
}

/// A pod named `name` with a fresh uid and the given spec (nodeName is set on sync).
pub fn pod(name: &str, spec: Value) -> (Value, String) {
    let uid = uuid::Uuid::new_v4().to_string();
    let pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "uid": uid},
        "spec": spec,
    });
    (pod, uid)
}

/// One busybox container running `script` with `sh -c`.
pub fn sh(name: &str, script: &str) -> Value {
    json!({"name": name, "image": IMAGE, "command": ["sh", "-c", script]})
}

pub fn container_state<'a>(
    s: &'a PodStatus,
    name: &str,
) -> &'a keel_schema::types::pod::ContainerStatus {
    s.container_statuses
        .as_ref()
        .and_then(|cs| cs.iter().find(|c| c.name == name))
        .unwrap_or_else(|| panic!("no status for container {name}"))
}

pub fn phase(s: &PodStatus) -> &str {
    s.phase.map_or("", |p| p.as_str())
}

pub fn ready(s: &PodStatus) -> bool {
    s.conditions
        .iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True")
}

pub fn running(s: &PodStatus, name: &str) -> bool {
    container_state(s, name)
        .state
        .as_ref()
        .is_some_and(|st| st.running.is_some())
}

/// An HTTP GET with busybox-free tooling: a raw request over TCP, for what pods serve.
pub async fn http_get(addr: &str, path: &str) -> std::io::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::time::timeout(Duration::from_secs(3), tokio::net::TcpStream::connect(addr))
        .await
        .map_err(|_| std::io::Error::other("connect timeout"))??;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes())
        .await?;
    let mut out = String::new();
    tokio::time::timeout(Duration::from_secs(3), s.read_to_string(&mut out))
        .await
        .map_err(|_| std::io::Error::other("read timeout"))??;
    Ok(out)
}
