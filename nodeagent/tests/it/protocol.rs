//! The agent's gRPC contract, on the hollow runtime (no Docker needed): level-triggered sync,
//! stale generations, refusal of bad messages, registration, the status stream and sets
//! taken with `NextSet`.

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

use crate::harness::{Harness, container_state, phase, pod, ready, running};

fn sleeper() -> serde_json::Value {
    json!({"containers": [{"name": "app", "image": "example/app:1"}]})
}

#[tokio::test]
async fn sync_is_level_triggered_and_ignores_stale_generations() {
    let mut h = Harness::hollow().await;
    let (a, ua) = pod("a", sleeper());
    let (b, ub) = pod("b", sleeper());
    let ack = h.sync(&[a.clone(), b.clone()], &[]).await.unwrap();
    assert_eq!(ack.applied_generation, 1);
    h.wait_for(&ua, 10, "running", |s| running(s, "app") && ready(s))
        .await;
    h.wait_for(&ub, 10, "running", |s| running(s, "app")).await;

    // Generation 3 keeps only a; a late generation 2 saying "a and b" is ignored.
    let msg3 = h.desired(3, &[a.clone()], &[]);
    let msg2 = h.desired(2, &[a.clone(), b.clone()], &[]);
    assert_eq!(
        h.client
            .sync(msg3)
            .await
            .unwrap()
            .into_inner()
            .applied_generation,
        3
    );
    h.wait_gone(&ub, 10).await;
    assert_eq!(
        h.client
            .sync(msg2)
            .await
            .unwrap()
            .into_inner()
            .applied_generation,
        3
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(h.status(&ub).is_none(), "a stale set must not bring b back");
    assert!(h.status(&ua).is_some());
    // The same set again changes nothing.
    let before = h.status(&ua).unwrap();
    let msg3 = h.desired(3, &[a], &[]);
    h.client.sync(msg3).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(h.status(&ua).unwrap(), before);
}

#[tokio::test]
async fn a_bad_message_is_refused_whole_with_what_and_where() {
    let mut h = Harness::hollow().await;
    let (good, good_uid) = pod("good", sleeper());
    h.sync(&[good.clone()], &[]).await.unwrap();
    h.wait_for(&good_uid, 10, "running", |s| running(s, "app"))
        .await;

    let (bad, bad_uid) = pod(
        "bad",
        json!({"containers": [{"name": "app", "image": "x:1", "ports": [{"containerPort": 70000}]}]}),
    );
    let err = h.sync(&[good.clone(), bad], &[]).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(
        err.message().contains("pods[1] (Pod default/bad)")
            && err
                .message()
                .contains("spec.containers[0].ports[0].containerPort"),
        "{}",
        err.message()
    );
    // Garbage bytes, a pod for another node, a pod without a uid.
    let mut msg = h.desired(100, &[good.clone()], &[]);
    msg.pods.push(b"{not json".to_vec());
    let err = h.client.sync(msg).await.unwrap_err();
    assert!(
        err.message().contains("pods[1]: not a valid Pod"),
        "{}",
        err.message()
    );
    let mut other = h.desired(101, &[good.clone()], &[]);
    let mut foreign: serde_json::Value = serde_json::from_slice(&other.pods[0]).unwrap();
    foreign["metadata"]["uid"] = json!("another");
    foreign["metadata"]["name"] = json!("foreign");
    foreign["spec"]["nodeName"] = json!("some-other-node");
    other.pods.push(serde_json::to_vec(&foreign).unwrap());
    let err = h.client.sync(other).await.unwrap_err();
    assert!(
        err.message()
            .contains("spec.nodeName: \"some-other-node\" is not this node"),
        "{}",
        err.message()
    );
    let mut wrong_node = h.desired(102, &[], &[]);
    wrong_node.node_name = "elsewhere".into();
    assert_eq!(
        h.client.sync(wrong_node).await.unwrap_err().code(),
        tonic::Code::InvalidArgument
    );

    // A Service the proxy could not serve is refused with the rest.
    let mut bad_service = h.desired(103, &[good.clone()], &[]);
    bad_service
        .services
        .push(keel_agent_protocol::ServiceEntry {
            service: serde_json::to_vec(&json!({
                "apiVersion": "v1", "kind": "Service",
                "metadata": {"name": "web", "namespace": "default"},
                "spec": {"clusterIP": "10.96.0.300", "ports": [{"port": 80}]}
            }))
            .unwrap(),
            endpoints: Vec::new(),
        });
    let err = h.client.sync(bad_service).await.unwrap_err();
    assert!(
        err.message().contains("services[0]") && err.message().contains("clusterIP"),
        "{}",
        err.message()
    );

    // Nothing of the refused sets was applied: the good pod still runs, the bad one never did.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(h.status(&good_uid).is_some_and(|s| running(&s, "app")));
    assert!(h.status(&bad_uid).is_none());
    assert_eq!(h.agent().supervisor.applied_generation(), 1);
}

#[tokio::test]
async fn hollow_containers_obey_restart_policies_for_scripted_failures() {
    let mut h = Harness::hollow().await;
    let failing = |policy: &str| {
        json!({
            "restartPolicy": policy,
            "containers": [{"name": "app", "image": "example/app:1"}]
        })
    };
    let script = |mut p: serde_json::Value, code: i64| {
        p["metadata"]["annotations"] = json!({
            "hollow.keel.dev/exit-after": "100ms",
            "hollow.keel.dev/exit-code": code.to_string(),
        });
        p
    };
    let (never, u_never) = pod("never", failing("Never"));
    let (onfail_ok, u_ok) = pod("onfailure-ok", failing("OnFailure"));
    let (always, u_always) = pod("always", failing("Always"));
    h.sync(
        &[script(never, 2), script(onfail_ok, 0), script(always, 1)],
        &[],
    )
    .await
    .unwrap();
    let s = h
        .wait_for(&u_never, 10, "failed", |s| phase(s) == "Failed")
        .await;
    let t = container_state(&s, "app")
        .state
        .clone()
        .unwrap()
        .terminated
        .unwrap();
    assert_eq!((t.exit_code, t.reason.as_deref()), (2, Some("Error")));
    let s = h
        .wait_for(&u_ok, 10, "succeeded", |s| phase(s) == "Succeeded")
        .await;
    assert_eq!(container_state(&s, "app").restart_count, 0);
    let s = h
        .wait_for(&u_always, 10, "crash loop", |s| {
            container_state(s, "app")
                .state
                .as_ref()
                .and_then(|st| st.waiting.as_ref())
                .is_some_and(|w| w.reason.as_deref() == Some("CrashLoopBackOff"))
        })
        .await;
    assert_eq!(container_state(&s, "app").restart_count, 1);
    assert_eq!(phase(&s), "Running");
}

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
            metrics_listen: None,
            node: "reporter".into(),
            listen: "127.0.0.1:0".parse().unwrap(),
            advertise: None,
            server: Some(cp_addr.to_string()),
            labels: [("zone".to_string(), "a".to_string())].into(),
            cpu_millis: 1500,
            memory_bytes: 1 << 30,
            max_pods: 20,
            data_dir: data.path().to_path_buf(),
            allowed_host_paths: vec![],
            service_proxy: None,
            ingress: None,
            dns: None,
            identity: None,
            network: network.clone(),
            overlay: None,
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

#[tokio::test]
async fn a_changed_spec_replaces_the_pod_and_config_changes_do_not() {
    let mut h = Harness::hollow().await;
    let cm = |v: &str| {
        json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": "conf", "namespace": "default"}, "data": {"k": v}})
    };
    let (p, uid) = pod(
        "changing",
        json!({"containers": [{"name": "app", "image": "example/app:1",
                               "volumeMounts": [{"name": "conf", "mountPath": "/etc/conf"}]}],
               "volumes": [{"name": "conf", "configMap": {"name": "conf"}}]}),
    );
    h.sync(&[p.clone()], &[cm("one")]).await.unwrap();
    let first = h.wait_for(&uid, 10, "running", |s| running(s, "app")).await;
    let id =
        |s: &keel_schema::types::pod::PodStatus| container_state(s, "app").container_id.clone();
    let file = h.data.path().join("pods").join(&uid).join("volumes/conf/k");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "one");

    // New ConfigMap data: the file is rewritten in place, the container keeps running.
    h.sync(&[p.clone()], &[cm("two")]).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while std::fs::read_to_string(&file).unwrap_or_default() != "two" {
        assert!(tokio::time::Instant::now() < deadline, "file not refreshed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(id(&h.status(&uid).unwrap()), id(&first));

    // A new image: the pod's containers are replaced.
    let mut changed = p;
    changed["spec"]["containers"][0]["image"] = json!("example/app:2");
    h.sync(&[changed], &[cm("two")]).await.unwrap();
    let s = h
        .wait_for(&uid, 10, "replaced", |s| {
            running(s, "app") && id(s) != id(&first)
        })
        .await;
    assert_eq!(
        container_state(&s, "app").image.as_deref(),
        Some("example/app:2")
    );
    assert_eq!(
        container_state(&s, "app").restart_count,
        0,
        "a new pod, not a restart"
    );
}

#[tokio::test]
async fn a_pod_the_control_plane_holds_as_finished_never_runs_again() {
    let mut h = Harness::hollow().await;
    // As after its containers were removed: the control plane still holds it as Succeeded.
    let (mut done, done_uid) = pod("migrate", sleeper());
    done["status"] = json!({"phase": "Succeeded"});
    let (live, live_uid) = pod("live", sleeper());
    h.sync(&[done, live], &[]).await.unwrap();
    h.wait_for(&live_uid, 10, "running", |s| running(s, "app"))
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !h.containers().await.contains_key(&done_uid),
        "a finished pod's containers are not made again"
    );
    assert!(h.status(&done_uid).is_none(), "its recorded status stands");
}

#[tokio::test]
async fn the_nodes_list_travels_as_changes_to_the_set_the_agent_applied() {
    use keel_agent_protocol::NetworkPeer;
    let peer = |name: &str, ip: &str, cidr: &str| NetworkPeer {
        name: name.into(),
        node_ip: ip.into(),
        pod_cidr: cidr.into(),
    };
    let mut h = Harness::hollow().await;
    // A whole list first; the agent says it takes changes.
    let mut whole = h.desired(10, &[], &[]);
    whole.nodes = vec![peer("a", "192.0.2.1", "10.244.1.0/24")];
    let ack = h.sync_message(whole).await.expect("a whole list is taken");
    assert_eq!(ack.applied_generation, 10);
    assert!(ack.nodes_as_changes);

    // A change to generation 10: b joins, a leaves.
    let mut change = h.desired(11, &[], &[]);
    change.nodes_base_generation = 10;
    change.nodes = vec![peer("b", "192.0.2.2", "10.244.2.0/24")];
    change.removed_nodes = vec!["a".into()];
    assert_eq!(h.sync_message(change).await.unwrap().applied_generation, 11);

    // A change to a set it no longer has is refused, naming both generations.
    let mut stale = h.desired(12, &[], &[]);
    stale.nodes_base_generation = 10;
    let refused = h.sync_message(stale).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
    assert!(
        refused.message().contains("generation 10") && refused.message().contains("applied 11"),
        "{}",
        refused.message()
    );

    // The list a change makes is checked like a whole one: a bad entry refuses the set.
    let mut bad = h.desired(13, &[], &[]);
    bad.nodes_base_generation = 11;
    bad.nodes = vec![peer("c", "not-an-ip", "10.244.3.0/24")];
    let refused = h.sync_message(bad).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    assert!(
        refused.message().contains("(c): node_ip"),
        "{}",
        refused.message()
    );

    // Refused sets changed nothing: a change to 11 is still taken.
    let mut good = h.desired(14, &[], &[]);
    good.nodes_base_generation = 11;
    assert_eq!(h.sync_message(good).await.unwrap().applied_generation, 14);

    // A restarted agent has no list: a change is refused until a whole list comes.
    h.restart_agent().await;
    let mut after = h.desired(15, &[], &[]);
    after.nodes_base_generation = 14;
    let refused = h.sync_message(after).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
    let mut whole = h.desired(16, &[], &[]);
    whole.nodes = vec![peer("b", "192.0.2.2", "10.244.2.0/24")];
    assert_eq!(h.sync_message(whole).await.unwrap().applied_generation, 16);
}

#[tokio::test]
async fn the_pods_travel_as_changes_to_the_set_the_agent_applied() {
    let mut h = Harness::hollow().await;
    let (a, a_uid) = pod("a", sleeper());
    let (b, b_uid) = pod("b", sleeper());
    let (c, c_uid) = pod("c", sleeper());
    let whole = h.desired(10, &[a, b.clone(), c.clone()], &[]);
    let ack = h.sync_message(whole).await.expect("a whole set is taken");
    assert!(ack.pods_as_changes);
    for uid in [&a_uid, &b_uid, &c_uid] {
        h.wait_for(uid, 10, "running", |s| running(s, "app")).await;
    }
    let id = |h: &Harness, uid: &str| {
        container_state(&h.status(uid).expect("a status"), "app")
            .container_id
            .clone()
    };
    let (b_before, c_before) = (id(&h, &b_uid), id(&h, &c_uid));

    // A change to generation 10: a goes, b gets a new image, d comes; c is not mentioned.
    let mut b2 = b;
    b2["spec"]["containers"][0]["image"] = json!("example/app:2");
    let (d, d_uid) = pod("d", sleeper());
    let mut change = h.desired(11, &[b2, d], &[]);
    change.pods_base_generation = 10;
    change.removed_pods = vec!["default/a".into(), "default/b".into()];
    assert_eq!(h.sync_message(change).await.unwrap().applied_generation, 11);
    h.wait_for(&d_uid, 10, "running", |s| running(s, "app"))
        .await;
    let b_after = h
        .wait_for(&b_uid, 10, "replaced", |s| {
            running(s, "app") && container_state(s, "app").container_id != b_before
        })
        .await;
    assert_eq!(
        container_state(&b_after, "app").image.as_deref(),
        Some("example/app:2")
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while h.containers().await.contains_key(&a_uid) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "a's containers stay"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        id(&h, &c_uid),
        c_before,
        "a kept pod keeps running untouched"
    );

    // Removing a pod the set does not hold: the two sides disagree, so a whole set it is.
    let mut unknown = h.desired(12, &[], &[]);
    unknown.pods_base_generation = 11;
    unknown.removed_pods = vec!["default/a".into()];
    let refused = h.sync_message(unknown).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
    assert!(
        refused.message().contains("\"default/a\""),
        "{}",
        refused.message()
    );
    // Adding a pod the set keeps is a bad set, naming the pod carried.
    let mut twice = h.desired(13, &[c], &[]);
    twice.pods_base_generation = 11;
    let refused = h.sync_message(twice).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    assert!(
        refused.message().contains("pods[0] (Pod default/c)"),
        "{}",
        refused.message()
    );
    // Neither changed anything: the set of 11 stands, and no change is still a change.
    let same = {
        let mut m = h.desired(14, &[], &[]);
        m.pods_base_generation = 11;
        m
    };
    assert_eq!(h.sync_message(same).await.unwrap().applied_generation, 14);
    assert_eq!(id(&h, &c_uid), c_before);
    assert!(h.status(&d_uid).is_some_and(|s| running(&s, "app")));

    // A restarted agent has no set: a change is refused until a whole one comes.
    h.restart_agent().await;
    let mut after = h.desired(15, &[], &[]);
    after.pods_base_generation = 14;
    let refused = h.sync_message(after).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
}
