//! The agent's side of the control plane's API, against a control plane that records what
//! it is told: registration once the control plane appears, the status stream (pod
//! statuses, heartbeats at the interval registration gave) and sets taken with `NextSet`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use keel_agent_protocol::control_plane_server::{ControlPlane, ControlPlaneServer};
use keel_agent_protocol::status_report::Report;
use keel_agent_protocol::{
    NextSetRequest, NodeDesired, RegisterRequest, RegisterResponse, SetOutcome, StatusAck,
    StatusReport,
};
use keel_nodeagent::agent::{self, AgentConfig};
use keel_nodeagent::runtime::hollow::HollowRuntime;
use serde_json::json;
use tonic::{Request, Response, Status, Streaming};

use crate::harness::{phase, pod};
use crate::protocol::sleeper;

/// A control plane that records what agents tell it, and answers `NextSet` with the sets
/// queued for it.
#[derive(Clone, Default)]
struct RecordingControlPlane {
    /// What registration answers for the heartbeat interval (0: not said).
    heartbeat_interval_ms: u64,
    registrations: Arc<Mutex<Vec<RegisterRequest>>>,
    reports: Arc<Mutex<Vec<StatusReport>>>,
    sets: Arc<Mutex<std::collections::VecDeque<NodeDesired>>>,
    outcomes: Arc<Mutex<Vec<SetOutcome>>>,
}

#[tonic::async_trait]
impl ControlPlane for RecordingControlPlane {
    async fn register(
        &self,
        request: Request<RegisterRequest>,
    ) -> Result<Response<RegisterResponse>, Status> {
        self.registrations
            .lock()
            .unwrap()
            .push(request.into_inner());
        Ok(Response::new(RegisterResponse {
            next_generation: 1,
            pod_cidr: "10.244.7.0/24".into(),
            cluster_cidr: "10.244.0.0/16".into(),
            heartbeat_interval_ms: self.heartbeat_interval_ms,
        }))
    }

    async fn report_status(
        &self,
        request: Request<Streaming<StatusReport>>,
    ) -> Result<Response<StatusAck>, Status> {
        let mut stream = request.into_inner();
        while let Some(report) = stream.message().await? {
            self.reports.lock().unwrap().push(report);
        }
        Ok(Response::new(StatusAck {}))
    }

    async fn next_set(
        &self,
        request: Request<NextSetRequest>,
    ) -> Result<Response<NodeDesired>, Status> {
        if let Some(outcome) = request.into_inner().outcome {
            self.outcomes.lock().unwrap().push(outcome);
        }
        let next = self.sets.lock().unwrap().pop_front();
        if next.is_none() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(Response::new(next.unwrap_or_default()))
    }

    // A plaintext agent never joins or renews.
    async fn join(
        &self,
        _: Request<keel_agent_protocol::JoinRequest>,
    ) -> Result<Response<keel_agent_protocol::JoinResponse>, Status> {
        Err(Status::unimplemented("plaintext test control plane"))
    }

    async fn renew(
        &self,
        _: Request<keel_agent_protocol::RenewRequest>,
    ) -> Result<Response<keel_agent_protocol::RenewResponse>, Status> {
        Err(Status::unimplemented("plaintext test control plane"))
    }
}

#[tokio::test]
async fn registers_when_the_control_plane_appears_and_streams_status() {
    // Reserve a port for the control plane, which is not up yet.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let cp_addr = listener.local_addr().unwrap();
    drop(listener);
    let data = tempfile::tempdir().unwrap();
    let network = keel_nodeagent::network::NodeNetwork::new();
    let running = agent::start(
        AgentConfig {
            server: Some(cp_addr.to_string()),
            labels: [("zone".to_string(), "a".to_string())].into(),
            cpu_millis: 1500,
            memory_bytes: 1 << 30,
            max_pods: 20,
            ..AgentConfig::bare("reporter", data.path().to_path_buf(), network.clone())
        },
        Arc::new(HollowRuntime::new().with_network(network.clone())),
    )
    .await
    .unwrap();
    // The agent serves while the control plane is unreachable.
    let mut client = crate::harness::connect(running.addr).await;
    let (p, uid) = pod("early", sleeper());
    let mut p = p;
    p["spec"]["nodeName"] = json!("reporter");
    let msg = keel_agent_protocol::NodeDesired {
        node_name: "reporter".into(),
        generation: 7,
        pods: vec![serde_json::to_vec(&p).unwrap()],
        ..Default::default()
    };
    let mut applied = None;
    for _ in 0..50 {
        match client.sync(msg.clone()).await {
            Ok(ack) => {
                applied = Some(ack.into_inner().applied_generation);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    assert_eq!(applied, Some(7));
    tokio::time::sleep(Duration::from_millis(700)).await;

    // It asks for a heartbeat every 4 s (a quarter of a 16 s --node-grace), not the agent's
    // default of one a second.
    let cp = RecordingControlPlane {
        heartbeat_interval_ms: 4000,
        ..Default::default()
    };
    let server = cp.clone();
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(ControlPlaneServer::new(server))
            .serve(cp_addr)
            .await
    });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (beats, pod_running) = {
            let reports = cp.reports.lock().unwrap();
            let beats = reports
                .iter()
                .filter(|r| matches!(r.report, Some(Report::Heartbeat(_))))
                .count();
            // Running, with an address from the range registration gave.
            let pod_running = reports.iter().any(|r| match &r.report {
                Some(Report::PodStatus(u)) => {
                    u.uid == uid
                        && serde_json::from_slice::<keel_schema::types::pod::PodStatus>(&u.status)
                            .is_ok_and(|s| {
                                phase(&s) == "Running"
                                    && s.pod_ip
                                        .as_deref()
                                        .is_some_and(|ip| ip.starts_with("10.244.7."))
                            })
                }
                _ => false,
            });
            (beats, pod_running)
        };
        if beats >= 2 && pod_running {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no heartbeats/status: {beats} beats, pod running: {pod_running}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let reg = cp.registrations.lock().unwrap()[0].clone();
    assert_eq!(reg.node_name, "reporter");
    assert_eq!(
        (reg.cpu_millis, reg.memory_bytes, reg.max_pods),
        (1500, 1 << 30, 20)
    );
    assert_eq!(reg.labels.get("zone").map(String::as_str), Some("a"));
    assert_eq!(reg.runtime, "hollow");
    assert_eq!(reg.address, running.addr.to_string());
    assert!(reg.takes_sets, "the agent asks for its sets");
    let hb = cp
        .reports
        .lock()
        .unwrap()
        .iter()
        .rev()
        .find_map(|r| match &r.report {
            Some(Report::Heartbeat(h)) => Some(*h),
            _ => None,
        });
    assert_eq!(hb.map(|h| h.applied_generation), Some(7));
    let beats: Vec<i64> = cp
        .reports
        .lock()
        .unwrap()
        .iter()
        .filter_map(|r| match &r.report {
            Some(Report::Heartbeat(h)) => Some(h.time_unix_ms),
            _ => None,
        })
        .collect();
    assert!(
        beats.windows(2).all(|w| w[1] - w[0] >= 3_900),
        "heartbeats at the interval registration gave (4 s), ms since the first: {:?}",
        beats.iter().map(|t| t - beats[0]).collect::<Vec<_>>()
    );

    // This control plane counts from 1 (it said so on registration, as one that restarted
    // would): its generation 1 is taken although the agent had applied 7; 0 is still stale.
    let mut restarted = msg.clone();
    restarted.generation = 1;
    let ack = client.sync(restarted.clone()).await.unwrap().into_inner();
    assert_eq!(ack.applied_generation, 1);
    restarted.generation = 0;
    let ack = client.sync(restarted).await.unwrap().into_inner();
    assert_eq!(
        ack.applied_generation, 1,
        "older than the control plane's count"
    );

    // Sets it asks for: a whole one is taken, and a change to a set it never applied is
    // refused as Sync would refuse it, each outcome on the agent's next call.
    let mut taken = msg.clone();
    taken.generation = 9;
    let mut change = msg.clone();
    change.generation = 10;
    change.pods_base_generation = 4;
    change.pods = vec![];
    cp.sets.lock().unwrap().extend([taken, change]);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while cp.outcomes.lock().unwrap().len() < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "outcomes so far: {:?}",
            cp.outcomes.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let outcomes = cp.outcomes.lock().unwrap().clone();
    assert_eq!(outcomes[0].generation, 9);
    assert_eq!(
        outcomes[0].ack.as_ref().map(|a| a.applied_generation),
        Some(9)
    );
    assert_eq!(outcomes[1].generation, 10);
    assert_eq!(outcomes[1].ack, None);
    assert_eq!(
        outcomes[1].refused_code,
        tonic::Code::FailedPrecondition as i32,
        "{outcomes:?}"
    );
    assert!(
        outcomes[1].refused_message.contains('9'),
        "names the set it has: {:?}",
        outcomes[1].refused_message
    );
}
