//! Bringing a local cluster up, stage by stage, each with a progress line: the control plane
//! answers, the nodes are ready (heard from in this run), the revision is applied, the pods
//! are ready, the NodePort URLs answer.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use keel_api::client::Client;
use keel_schema::types::core::Node;
use keel_schema::types::pod::{Pod, PodPhase};
use keel_schema::{Kind, Object, SyncResult};

use super::agents::Agents;
use super::hosts::NodeHosts;
use super::{UpConfig, ports, step};

/// A cluster being brought up, and how to reach its control plane.
pub struct Cluster<'a> {
    config: &'a UpConfig,
    hosts: &'a NodeHosts,
    pub(super) url: String,
    /// The control plane's admin token file (it makes the file when it starts).
    pub(super) token_file: PathBuf,
    /// The client, once the token file held a token: made once, its connections reused.
    client: OnceLock<Client>,
}

impl<'a> Cluster<'a> {
    /// Where the API is served over HTTPS, for kubectl.
    pub fn tls_listen(&self) -> Option<String> {
        self.config.tls_listen.clone()
    }

    pub fn new(config: &'a UpConfig, hosts: &'a NodeHosts) -> Cluster<'a> {
        Cluster {
            config,
            hosts,
            url: format!("http://{}", config.listen),
            token_file: config
                .data_dir
                .join("server")
                .join(keel_reconciler::auth::api_token::FILE),
            client: OnceLock::new(),
        }
    }

    /// A client of the control plane, with its token (written when the control plane starts;
    /// until then, without one).
    pub(super) fn client(&self) -> anyhow::Result<Client> {
        if let Some(client) = self.client.get() {
            return Ok(client.clone());
        }
        let token = std::fs::read_to_string(&self.token_file).unwrap_or_default();
        let token = token.trim();
        let client = Client::new(&self.url, Some(token))?.with_timeout(Duration::from_secs(5));
        if !token.is_empty() {
            let _ = self.client.set(client.clone());
        }
        Ok(client)
    }

    /// Objects of `kind` (none while the control plane cannot be asked).
    async fn list(&self, kind: Kind) -> Vec<Object> {
        match self.client() {
            Ok(client) => client.list(kind, None).await.unwrap_or_default(),
            Err(_) => Vec::new(),
        }
    }

    /// Starts the agents and the NodePorts' loopback listeners, and waits through each
    /// stage, printing progress.
    pub async fn bring_up(
        &self,
        agents: &mut Option<Agents>,
        loopback: &mut Option<tokio::task::JoinHandle<()>>,
    ) -> anyhow::Result<()> {
        self.wait_for_control_plane().await?;
        let started = agents.insert(self.start_agents().await?);
        *loopback = Some(ports::spawn(self.client()?, self.hosts.addresses()));
        self.wait_for_nodes(started).await?;
        if let Some(applied) = self.wait_for_revision().await? {
            step(&format!("revision {applied} applied"));
            self.wait_for_pods().await;
        }
        self.wait_for_urls().await;
        Ok(())
    }

    async fn wait_for_control_plane(&self) -> anyhow::Result<()> {
        let started = Instant::now();
        while !self.client()?.healthy().await {
            if started.elapsed() > Duration::from_secs(30) {
                anyhow::bail!(
                    "the control plane did not answer at {} within 30s",
                    self.url
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        step(&format!("control plane at {}", self.url));
        Ok(())
    }

    /// Agents that joined before have their certificates; new ones join with a fresh token,
    /// made through the API as `keel token create` makes one.
    async fn start_agents(&self) -> anyhow::Result<Agents> {
        let token = self
            .client()?
            .create_token(&keel_api::tokens::CreateToken {
                ttl: Some("1h".into()),
                description: Some("keel up".into()),
                role: None,
            })
            .await
            .map_err(|e| anyhow::anyhow!("cannot make a join token for the nodes: {e}"))?;
        Agents::start(
            &self.hosts.hosts,
            &format!("{}:{}", self.hosts.gateway(), self.config.agent_port),
            &self.config.data_dir,
            &token.token,
            &self.config.network_backend,
        )
    }

    async fn wait_for_nodes(&self, agents: &mut Agents) -> anyhow::Result<()> {
        // Less a margin: the API writes times to the second.
        let agents_started = Utc::now() - chrono::Duration::seconds(2);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            // Ready from this run: a resumed cluster's nodes are still Ready in the store.
            let ready: Vec<String> = self
                .list(Kind::Node)
                .await
                .iter()
                .filter_map(|o| Node::try_from(o.clone()).ok())
                .filter(|n| ready_since(n, agents_started))
                .map(|n| n.metadata.name().to_string())
                .collect();
            if ready.len() >= self.config.nodes {
                step(&format!(
                    "{} nodes ready: {}",
                    ready.len(),
                    ready.join(", ")
                ));
                return Ok(());
            }
            if let Some((name, status)) = agents.exited() {
                let log = self
                    .config
                    .data_dir
                    .join("logs")
                    .join(format!("{name}.log"));
                anyhow::bail!(
                    "node {name} stopped ({status}); its log ({}):\n{}",
                    log.display(),
                    tail(&log, 5)
                );
            }
            if Instant::now() > deadline {
                anyhow::bail!(
                    "only {} of {} nodes registered within 60s; see the logs in {}",
                    ready.len(),
                    self.config.nodes,
                    self.config.data_dir.join("logs").display()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The applied commit (short), or `None` when the repository's revision could not be
    /// applied (the cluster runs on; the user fixes the repository and commits).
    async fn wait_for_revision(&self) -> anyhow::Result<Option<String>> {
        loop {
            let status = match self.client() {
                Ok(client) => client.status().await.unwrap_or_default(),
                Err(_) => Default::default(),
            };
            if let Some(commit) = &status.applied_commit {
                return Ok(Some(commit.chars().take(7).collect()));
            }
            if let Some(error) = &status.fetch_error {
                step(&format!("cannot read the repository: {error}"));
                step("fix it (a repository needs a commit on its branch); keel retries");
                return Ok(None);
            }
            if matches!(
                status.last_result,
                Some(SyncResult::Failed | SyncResult::Refused)
            ) {
                step(&format!(
                    "the repository's revision was not applied: {}",
                    status.last_error.as_deref().unwrap_or("unknown error")
                ));
                step("fix it and commit; keel applies the next good revision");
                return Ok(None);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn wait_for_pods(&self) {
        let deadline = Instant::now() + self.config.wait;
        let mut last = (usize::MAX, usize::MAX);
        loop {
            let pods: Vec<Pod> = self
                .list(Kind::Pod)
                .await
                .into_iter()
                .filter_map(|o| o.try_into().ok())
                .collect();
            let done = pods.iter().filter(|p| settled(p)).count();
            if (done, pods.len()) != last {
                step(&format!("pods ready: {done}/{}", pods.len()));
                last = (done, pods.len());
            }
            if !pods.is_empty() && done == pods.len() {
                return;
            }
            if Instant::now() > deadline {
                step(
                    "some pods are still starting: see `keel get pods` and `keel describe pod NAME`",
                );
                return;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// The URLs printed next work when they are printed: each node's proxy listens once its
    /// agent has the Service's ready endpoints, a moment after the pods are ready.
    async fn wait_for_urls(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let http = keel_api::client::http_client();
        for (name, url) in self.node_port_urls().await {
            loop {
                let answered = http
                    .get(&url)
                    .timeout(Duration::from_secs(2))
                    .send()
                    .await
                    .is_ok();
                if answered {
                    break;
                }
                if Instant::now() > deadline {
                    step(&format!(
                        "{name} does not answer at {url} yet: see `keel get endpoints` and `keel describe pod`"
                    ));
                    break;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }

    /// `(service name, http://127.0.0.1:NODEPORT/)` for every TCP NodePort Service port
    /// (passed on to the nodes by [`ports`]).
    pub(super) async fn node_port_urls(&self) -> Vec<(String, String)> {
        ports::node_ports(&self.list(Kind::Service).await)
            .into_iter()
            .filter(|p| p.tcp)
            .map(|p| (p.service, format!("http://127.0.0.1:{}/", p.port)))
            .collect()
    }
}

/// Ready, with its Ready condition written at or after `since` (its agent registered or beat
/// since then).
fn ready_since(node: &Node, since: DateTime<Utc>) -> bool {
    node.is_ready() && node.heard_since(since)
}

/// A Job's pod is done when it succeeded; any other pod when it runs and is Ready.
fn settled(pod: &Pod) -> bool {
    let of_job = pod
        .metadata
        .owner_references
        .iter()
        .flatten()
        .any(|r| r.kind == Kind::Job.as_str());
    pod.phase() == Some(PodPhase::Succeeded)
        || (!of_job && pod.phase() == Some(PodPhase::Running) && pod.is_ready())
}

/// The last lines of a log file, for a message about what failed.
fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
