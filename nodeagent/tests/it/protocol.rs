//! The agent's gRPC contract, on the hollow runtime (no Docker needed): level-triggered sync,
//! stale generations, refusal of bad messages, restart policies and sets as changes.
//! Registration and the status stream are in `reporting.rs`.

use std::time::Duration;

use serde_json::json;

use crate::harness::{Harness, container_state, phase, pod, ready, running};

pub(crate) fn sleeper() -> serde_json::Value {
    json!({"containers": [{"name": "app", "image": "example/app:1"}]})
}

/// ConfigMap `conf` with `k: v`.
fn cm(v: &str) -> serde_json::Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
           "metadata": {"name": "conf", "namespace": "default"}, "data": {"k": v}})
}

/// A pod spec with ConfigMap `conf` mounted at /etc/conf.
fn mounting_conf() -> serde_json::Value {
    json!({"containers": [{"name": "app", "image": "example/app:1",
                           "volumeMounts": [{"name": "conf", "mountPath": "/etc/conf"}]}],
           "volumes": [{"name": "conf", "configMap": {"name": "conf"}}]})
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

#[tokio::test]
async fn a_container_lost_while_the_engine_did_not_answer_is_noticed_once_it_answers() {
    let mut h = Harness::hollow().await;
    let hollow = h.hollow.clone().expect("the hollow runtime");
    let (p, uid) = pod("lost", mounting_conf());
    h.sync(&[p.clone()], &[cm("one")]).await.unwrap();
    h.wait_for(&uid, 10, "running", |s| running(s, "app")).await;
    let app = h.containers().await[&uid]
        .iter()
        .find(|c| c.container.as_deref() == Some("app"))
        .expect("the app container")
        .id
        .clone();

    // The engine stops answering, and the app container goes without an event (as a lost
    // event would). A pass runs (new ConfigMap data) and cannot look.
    hollow.set_answering(false);
    h.runtime.remove(&app).await.unwrap();
    h.sync(&[p.clone()], &[cm("two")]).await.unwrap();
    let file = h.data.path().join("pods").join(&uid).join("volumes/conf/k");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while std::fs::read_to_string(&file).unwrap_or_default() != "two" {
        assert!(tokio::time::Instant::now() < deadline, "no pass ran");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        h.status(&uid).is_some_and(|s| running(&s, "app")),
        "nothing is known of the loss while the engine does not answer"
    );

    // Once it answers, the worker looks again within seconds, not at its periodic look a
    // minute away, and restarts the container.
    hollow.set_answering(true);
    let s = h
        .wait_for(&uid, 8, "the lost container restarted", |s| {
            running(s, "app") && container_state(s, "app").restart_count == 1
        })
        .await;
    let new_id = container_state(&s, "app").container_id.clone().unwrap();
    assert!(!new_id.ends_with(&app), "{new_id} is the lost {app}");
}

#[tokio::test]
async fn a_changed_spec_replaces_the_pod_and_config_changes_do_not() {
    let mut h = Harness::hollow().await;
    let (p, uid) = pod("changing", mounting_conf());
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
