//! The agent against the real Docker engine, with a locally imported busybox image.

use std::time::Duration;

use serde_json::json;

use crate::harness::{
    Harness, IMAGE, bridge_of, container_state, http_get, phase, pod, ready, running, sh,
};

macro_rules! docker_or_skip {
    () => {
        match Harness::docker().await {
            Some(h) => h,
            None => return,
        }
    };
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containers_of_a_pod_share_localhost_and_an_empty_dir() {
    let mut h = docker_or_skip!();
    let (p, uid) = pod(
        "shared",
        json!({
            "containers": [
                {"name": "web", "image": IMAGE,
                 "command": ["httpd", "-f", "-p", "8080", "-h", "/shared"],
                 "volumeMounts": [{"name": "scratch", "mountPath": "/shared"}]},
                {"name": "writer", "image": IMAGE,
                 "command": ["sh", "-c",
                    "echo written-by-writer > /shared/index.html; \
                     while true; do printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc 127.0.0.1 8080 > /shared/seen.txt; sleep 1; done"],
                 "volumeMounts": [{"name": "scratch", "mountPath": "/shared"}]}
            ],
            "volumes": [{"name": "scratch", "emptyDir": {}}]
        }),
    );
    h.sync(&[p], &[]).await.unwrap();
    let s = h
        .wait_for(&uid, 60, "both containers running", |s| {
            running(s, "web") && running(s, "writer") && ready(s)
        })
        .await;
    assert_eq!(phase(&s), "Running");
    let ip = s.pod_ip.clone().expect("pod IP");
    // The writer's file, served by the other container, seen from the node.
    let mut body = String::new();
    for _ in 0..50 {
        body = http_get(&format!("{ip}:8080"), "/")
            .await
            .unwrap_or_default();
        if body.contains("written-by-writer") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(body.contains("written-by-writer"), "pod answered: {body:?}");
    // The writer reached the web container over the pod's localhost.
    let seen = h
        .data
        .path()
        .join("pods")
        .join(&uid)
        .join("volumes/scratch/seen.txt");
    let mut text = String::new();
    for _ in 0..50 {
        text = std::fs::read_to_string(&seen).unwrap_or_default();
        if text.contains("written-by-writer") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        text.contains("written-by-writer"),
        "over localhost: {text:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn environment_and_files_from_config_maps_and_secrets() {
    let mut h = docker_or_skip!();
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "settings", "namespace": "default"},
        "data": {"greeting": "hello", "colour": "blue"}});
    let secret = json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "creds", "namespace": "default"},
        "data": {"token": "czNjcmV0"}});
    let (p, uid) = pod(
        "env",
        json!({
            "containers": [{
                "name": "app", "image": IMAGE,
                "command": ["sh", "-c", "echo \"G=$GREETING T=$TOKEN C=$CFG_colour X=$(cat /etc/cfg/greeting) M=$MSG\"; sleep 3600"],
                "env": [
                    {"name": "GREETING", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "greeting"}}},
                    {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}},
                    {"name": "MSG", "value": "$(GREETING) world"}
                ],
                "envFrom": [{"prefix": "CFG_", "configMapRef": {"name": "settings"}}],
                "volumeMounts": [{"name": "cfg", "mountPath": "/etc/cfg"}]
            }],
            "volumes": [{"name": "cfg", "configMap": {"name": "settings"}}],
            "terminationGracePeriodSeconds": 1
        }),
    );
    h.sync(&[p.clone()], &[cm.clone(), secret.clone()])
        .await
        .unwrap();
    h.wait_for(&uid, 60, "running", |s| running(s, "app")).await;
    let mut logs = String::new();
    for _ in 0..50 {
        logs = h.logs("env", "app", false).await.unwrap();
        if !logs.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(logs.trim(), "G=hello T=s3cret C=blue X=hello M=hello world");

    // A reference to a missing ConfigMap is the pod's config error, not a crash.
    let (bad, bad_uid) = pod(
        "missing-ref",
        json!({"containers": [{
            "name": "app", "image": IMAGE, "command": ["sleep", "3600"],
            "env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "nope", "key": "k"}}}]
        }]}),
    );
    h.sync(&[p, bad], &[cm, secret]).await.unwrap();
    let s = h
        .wait_for(&bad_uid, 30, "a config error", |s| {
            container_state(s, "app")
                .state
                .as_ref()
                .and_then(|st| st.waiting.as_ref())
                .is_some_and(|w| w.reason.as_deref() == Some("CreateContainerConfigError"))
        })
        .await;
    let waiting = container_state(&s, "app")
        .state
        .clone()
        .unwrap()
        .waiting
        .unwrap();
    assert_eq!(
        waiting.message.as_deref(),
        Some("configmap \"nope\" not found")
    );
    assert_eq!(phase(&s), "Pending");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_over_its_memory_limit_is_oom_killed() {
    let mut h = docker_or_skip!();
    let (p, uid) = pod(
        "hungry",
        json!({
            "restartPolicy": "Never",
            "containers": [{
                "name": "app", "image": IMAGE,
                "command": ["dd", "if=/dev/zero", "of=/dev/null", "bs=256M", "count=1"],
                "resources": {"limits": {"memory": "32Mi"}}
            }]
        }),
    );
    h.sync(&[p], &[]).await.unwrap();
    let s = h
        .wait_for(&uid, 60, "the pod failed", |s| phase(s) == "Failed")
        .await;
    let term = container_state(&s, "app")
        .state
        .clone()
        .unwrap()
        .terminated
        .expect("terminated");
    assert_eq!(term.reason.as_deref(), Some("OOMKilled"));
    assert_eq!(term.exit_code, 137);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashing_container_restarts_with_growing_backoff() {
    let mut h = docker_or_skip!();
    let (p, uid) = pod(
        "crashy",
        json!({"containers": [sh("app", "echo crashing; exit 3")]}),
    );
    h.sync(&[p], &[]).await.unwrap();
    let waiting_message = |s: &keel_schema::types::pod::PodStatus| {
        container_state(s, "app")
            .state
            .as_ref()
            .and_then(|st| st.waiting.as_ref())
            .filter(|w| w.reason.as_deref() == Some("CrashLoopBackOff"))
            .and_then(|w| w.message.clone())
    };
    // First crash: restarted at once; second: 10s back-off; third: 20s.
    let s = h
        .wait_for(&uid, 60, "a 10s back-off", |s| {
            waiting_message(s).is_some_and(|m| m.starts_with("back-off 10s"))
        })
        .await;
    let c = container_state(&s, "app");
    assert_eq!(c.restart_count, 1);
    let last = c
        .last_state
        .clone()
        .unwrap()
        .terminated
        .expect("last state");
    assert_eq!((last.exit_code, last.reason.as_deref()), (3, Some("Error")));
    let second_run_ended = last.finished_at.expect("finishedAt");
    assert_eq!(phase(&s), "Running", "a restarting pod stays Running");
    let s = h
        .wait_for(&uid, 60, "a 20s back-off", |s| {
            waiting_message(s).is_some_and(|m| m.starts_with("back-off 20s"))
        })
        .await;
    let c = container_state(&s, "app");
    assert_eq!(c.restart_count, 2);
    // The third run really waited out the 10s back-off (timestamps have whole seconds).
    let third = c
        .last_state
        .clone()
        .unwrap()
        .terminated
        .expect("last state");
    let waited = third.started_at.expect("startedAt") - second_run_ended;
    assert!(waited.num_seconds() >= 9, "restarted after only {waited}");
    // The previous run's output is there for `logs --previous`.
    assert_eq!(
        h.logs("crashy", "app", true).await.unwrap().trim(),
        "crashing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_liveness_probe_restarts_the_container() {
    let mut h = docker_or_skip!();
    let (p, uid) = pod(
        "live",
        json!({
            "terminationGracePeriodSeconds": 1,
            "containers": [{
                "name": "app", "image": IMAGE,
                "command": ["sh", "-c", "touch /tmp/healthy; sleep 2; rm /tmp/healthy; sleep 3600"],
                "livenessProbe": {"exec": {"command": ["cat", "/tmp/healthy"]},
                                  "periodSeconds": 1, "failureThreshold": 2}
            }]
        }),
    );
    h.sync(&[p], &[]).await.unwrap();
    let s = h
        .wait_for(&uid, 60, "a restart after the probe failed", |s| {
            container_state(s, "app").restart_count >= 1 && running(s, "app")
        })
        .await;
    let last = container_state(&s, "app")
        .last_state
        .clone()
        .unwrap()
        .terminated;
    assert!(last.is_some(), "the killed run is the last state: {s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_probe_flips_the_ready_condition() {
    let mut h = docker_or_skip!();
    let (p, uid) = pod(
        "ready",
        json!({
            "terminationGracePeriodSeconds": 1,
            "containers": [{
                "name": "app", "image": IMAGE,
                "command": ["sh", "-c",
                    "mkdir -p /w; httpd -p 8080 -h /w; sleep 2; echo ok > /w/ready.html; sleep 4; rm /w/ready.html; sleep 3600"],
                "ports": [{"name": "http", "containerPort": 8080}],
                "readinessProbe": {"httpGet": {"path": "/ready.html", "port": "http"},
                                   "periodSeconds": 1, "failureThreshold": 1}
            }]
        }),
    );
    h.sync(&[p], &[]).await.unwrap();
    let s = h.wait_for(&uid, 30, "running", |s| running(s, "app")).await;
    assert!(!ready(&s), "not ready before the probe passes");
    h.wait_for(&uid, 30, "ready", ready).await;
    let s = h.wait_for(&uid, 30, "not ready again", |s| !ready(s)).await;
    assert!(running(&s, "app"), "readiness never restarts a container");
    assert_eq!(container_state(&s, "app").restart_count, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_sends_sigterm_then_sigkill_after_the_grace_period() {
    let mut h = docker_or_skip!();
    let out = h.allowed_host_paths[0].clone();
    let (polite, polite_uid) = pod(
        "polite",
        json!({
            "terminationGracePeriodSeconds": 30,
            "containers": [{
                "name": "app", "image": IMAGE,
                "command": ["sh", "-c", "trap 'echo got-term > /out/term.txt; exit 0' TERM; while true; do sleep 0.2; done"],
                "volumeMounts": [{"name": "out", "mountPath": "/out"}]
            }],
            "volumes": [{"name": "out", "hostPath": {"path": out.to_string_lossy()}}]
        }),
    );
    let (stubborn, stubborn_uid) = pod(
        "stubborn",
        json!({
            "terminationGracePeriodSeconds": 3,
            "containers": [sh("app", "trap '' TERM; while true; do sleep 0.2; done")]
        }),
    );
    h.sync(&[polite, stubborn], &[]).await.unwrap();
    h.wait_for(&polite_uid, 60, "running", |s| running(s, "app"))
        .await;
    h.wait_for(&stubborn_uid, 60, "running", |s| running(s, "app"))
        .await;
    let stubborn_id = h.containers().await[&stubborn_uid]
        .iter()
        .find(|c| !c.is_sandbox())
        .unwrap()
        .id
        .clone();
    let started = std::time::Instant::now();
    h.sync(&[], &[]).await.unwrap();
    // The polite one got SIGTERM and left well within its 30s.
    h.wait_gone(&polite_uid, 20).await;
    assert_eq!(
        std::fs::read_to_string(out.join("term.txt"))
            .unwrap()
            .trim(),
        "got-term"
    );
    // The stubborn one ignores SIGTERM: still there a moment later, killed after its 3s.
    if started.elapsed() < Duration::from_secs(2) {
        let info = h.runtime.inspect(&stubborn_id).await.unwrap();
        assert!(info.is_some(), "killed before its grace period ended");
    }
    h.wait_gone(&stubborn_uid, 30).await;
    assert!(
        started.elapsed() >= Duration::from_secs(3),
        "the grace period was honoured"
    );
    assert!(
        h.runtime.inspect(&stubborn_id).await.unwrap().is_none(),
        "container removed"
    );
    assert!(h.containers().await.is_empty(), "sandboxes removed too");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_agent_adopts_its_running_containers() {
    let mut h = docker_or_skip!();
    let (p, uid) = pod(
        "steady",
        json!({"containers": [sh("app", "sleep 3600")], "terminationGracePeriodSeconds": 1}),
    );
    h.sync(&[p.clone()], &[]).await.unwrap();
    let before = h.wait_for(&uid, 60, "running", |s| running(s, "app")).await;
    let ids_before: Vec<String> = h.containers().await[&uid]
        .iter()
        .map(|c| c.id.clone())
        .collect();

    h.restart_agent().await;
    h.sync(&[p], &[]).await.unwrap();
    let after = h.wait_for(&uid, 60, "running", |s| running(s, "app")).await;
    let c_before = container_state(&before, "app");
    let c_after = container_state(&after, "app");
    assert_eq!(c_after.restart_count, 0);
    assert_eq!(c_before.container_id, c_after.container_id);
    assert_eq!(
        c_before
            .state
            .as_ref()
            .unwrap()
            .running
            .as_ref()
            .unwrap()
            .started_at,
        c_after
            .state
            .as_ref()
            .unwrap()
            .running
            .as_ref()
            .unwrap()
            .started_at,
    );
    assert_eq!(before.pod_ip, after.pod_ip);
    let mut ids_after: Vec<String> = h.containers().await[&uid]
        .iter()
        .map(|c| c.id.clone())
        .collect();
    let mut ids_before = ids_before;
    ids_before.sort();
    ids_after.sort();
    assert_eq!(ids_before, ids_after, "no container was replaced");
}

/// An agent killed between starting a sandbox and recording its network attachment left a
/// sandbox with no address on record: the next agent replaces it instead of adopting a pod
/// that would never have an IP (and so never pass a network probe).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sandbox_left_half_attached_is_replaced_by_the_next_agent() {
    let mut h = docker_or_skip!();
    let (p, uid) = pod(
        "half",
        json!({
            "containers": [{
                "name": "web", "image": IMAGE,
                "command": ["httpd", "-f", "-p", "8080", "-h", "/"],
                "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1}
            }],
            "terminationGracePeriodSeconds": 1
        }),
    );
    h.sync(&[p.clone()], &[]).await.unwrap();
    let before = h
        .wait_for(&uid, 60, "ready", |s| running(s, "web") && ready(s))
        .await;
    let sandbox = h.containers().await[&uid]
        .iter()
        .find(|c| c.is_sandbox())
        .map(|c| c.id.clone())
        .expect("a sandbox");
    let record = h
        .data
        .path()
        .join("cni/attachments")
        .join(format!("{sandbox}.json"));
    std::fs::remove_file(&record).expect("the sandbox's attachment record");

    h.restart_agent().await;
    h.sync(&[p], &[]).await.unwrap();
    let after = h
        .wait_for(&uid, 60, "ready again, with an address", |s| {
            running(s, "web") && ready(s) && s.pod_ip.is_some()
        })
        .await;
    let sandboxes: Vec<String> = h.containers().await[&uid]
        .iter()
        .filter(|c| c.is_sandbox())
        .map(|c| c.id.clone())
        .collect();
    assert!(
        !sandboxes.contains(&sandbox),
        "the half-attached sandbox was removed: {sandboxes:?}"
    );
    let body = http_get(&format!("{}:8080", after.pod_ip.clone().unwrap()), "/")
        .await
        .unwrap_or_default();
    assert!(
        body.starts_with("HTTP/1."),
        "the new sandbox's address answers: {body:?}"
    );
    assert!(before.pod_ip.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_container_is_recreated_and_foreign_containers_are_untouched() {
    let mut h = docker_or_skip!();
    let docker = h.docker.clone().unwrap();
    // Containers keel did not make on the same engine: one without labels, one that looks
    // like another node's pod. They exist before the agent (re)starts and lists its own.
    let mut foreign = Vec::new();
    let lookalike = [
        ("keel.dev/node", "another-node"),
        ("keel.dev/pod-uid", "not-ours"),
        ("keel.dev/role", "app"),
    ];
    for labels in [vec![], lookalike.to_vec()] {
        let labels = labels
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let id = docker
            .create_container(
                None::<bollard::query_parameters::CreateContainerOptions>,
                bollard::models::ContainerCreateBody {
                    image: Some(IMAGE.into()),
                    cmd: Some(vec!["sleep".into(), "3600".into()]),
                    labels: Some(labels),
                    ..Default::default()
                },
            )
            .await
            .unwrap()
            .id;
        docker.start_container(&id, None).await.unwrap();
        foreign.push(id);
    }
    let _cleanup = RemoveOnDrop(foreign.clone());
    h.restart_agent().await;

    let (p, uid) = pod(
        "victim",
        json!({"containers": [sh("app", "sleep 3600")], "terminationGracePeriodSeconds": 1}),
    );
    h.sync(&[p], &[]).await.unwrap();
    let s = h.wait_for(&uid, 60, "running", |s| running(s, "app")).await;
    let first = container_state(&s, "app").container_id.clone().unwrap();
    let id = first.trim_start_matches("docker://").to_string();
    docker
        .remove_container(
            &id,
            Some(bollard::query_parameters::RemoveContainerOptions {
                force: true,
                ..Default::default()
            }),
        )
        .await
        .unwrap();
    let s = h
        .wait_for(&uid, 60, "a new container", |s| {
            running(s, "app")
                && container_state(s, "app").container_id.as_deref() != Some(first.as_str())
        })
        .await;
    assert_eq!(container_state(&s, "app").restart_count, 1);

    h.sync(&[], &[]).await.unwrap();
    h.wait_gone(&uid, 30).await;
    for id in &foreign {
        let still = docker.inspect_container(id, None).await.unwrap();
        assert_eq!(
            still.state.and_then(|s| s.running),
            Some(true),
            "foreign container untouched"
        );
    }
}

/// Removes containers a test made itself, however the test ends.
struct RemoveOnDrop(Vec<String>);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        for id in &self.0 {
            let _ = std::process::Command::new("docker")
                .args(["rm", "-f", id])
                .output();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_smaller_set_stops_exactly_the_removed_pods() {
    let mut h = docker_or_skip!();
    let spec = json!({"containers": [sh("app", "sleep 3600")], "terminationGracePeriodSeconds": 1});
    let (a, ua) = pod("a", spec.clone());
    let (b, ub) = pod("b", spec.clone());
    let (c, uc) = pod("c", spec);
    h.sync(&[a.clone(), b.clone(), c], &[]).await.unwrap();
    for uid in [&ua, &ub, &uc] {
        h.wait_for(uid, 60, "running", |s| running(s, "app")).await;
    }
    let before = h.containers().await;
    h.sync(&[a, b], &[]).await.unwrap();
    h.wait_gone(&uc, 30).await;
    let after = h.containers().await;
    assert!(!after.contains_key(&uc), "c's containers removed");
    for uid in [&ua, &ub] {
        let ids = |m: &std::collections::BTreeMap<
            String,
            Vec<keel_nodeagent::runtime::ContainerInfo>,
        >| {
            let mut v: Vec<String> = m[uid].iter().map(|c| c.id.clone()).collect();
            v.sort();
            v
        };
        assert_eq!(ids(&before), ids(&after), "pod {uid} untouched");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_that_cannot_be_pulled_is_reported() {
    let mut h = docker_or_skip!();
    let (p, uid) = pod(
        "nopull",
        json!({"containers": [{"name": "app", "image": "keel-test/does-not-exist:1"}]}),
    );
    h.sync(&[p], &[]).await.unwrap();
    let s = h
        .wait_for(&uid, 120, "an image pull error", |s| {
            container_state(s, "app")
                .state
                .as_ref()
                .and_then(|st| st.waiting.as_ref())
                .is_some_and(|w| {
                    matches!(
                        w.reason.as_deref(),
                        Some("ErrImagePull" | "ImagePullBackOff")
                    )
                })
        })
        .await;
    let w = container_state(&s, "app")
        .state
        .clone()
        .unwrap()
        .waiting
        .unwrap();
    assert!(
        !w.message.unwrap_or_default().is_empty(),
        "Docker's message is shown"
    );
    assert_eq!(phase(&s), "Pending");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_cni_plugin_is_reported_with_its_message_and_retried() {
    // An operator's chain with a mistake only the plugin sees: host-local's range is not a
    // network address. The real bridge and host-local plugins run and refuse.
    let conf = tempfile::tempdir().unwrap();
    std::fs::write(
        conf.path().join("10-broken.conflist"),
        r#"{"cniVersion": "1.0.0", "name": "broken", "plugins": [
            {"type": "bridge", "bridge": "ktbroken0", "isGateway": true,
             "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.299.0.0/24"}]]}}]}"#,
    )
    .unwrap();
    let Some(mut h) = Harness::docker_with_cni_conf(Some(conf.path())).await else {
        return;
    };
    let (p, uid) = pod("nonet", json!({"containers": [sh("app", "sleep 3600")]}));
    h.sync(&[p], &[]).await.unwrap();
    let s = h
        .wait_for(&uid, 60, "the sandbox failure on the container", |s| {
            container_state(s, "app")
                .state
                .as_ref()
                .and_then(|st| st.waiting.as_ref())
                .and_then(|w| w.message.as_deref())
                .is_some_and(|m| m.contains("FailedCreatePodSandBox"))
        })
        .await;
    assert_eq!(phase(&s), "Pending", "never reported Running");
    assert!(s.pod_ip.is_none(), "no address: {:?}", s.pod_ip);
    let events = h.agent().hub.take_events();
    let failed: Vec<_> = events
        .iter()
        .filter(|e| e.reason == "FailedCreatePodSandBox")
        .collect();
    assert_eq!(failed.len(), 1, "one try so far, then a pause: {events:?}");
    assert_eq!(failed[0].r#type, "Warning");
    assert!(
        failed[0]
            .message
            .contains("plugin type=\"bridge\" failed (ADD)")
            && failed[0].message.contains("10.299.0.0"),
        "the plugin's own message: {}",
        failed[0].message
    );
    // No sandbox is left to look like a pod; the next try comes after the backoff.
    assert!(
        !h.containers().await.contains_key(&uid),
        "the sandbox without a network was removed"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        h.agent().hub.take_events().is_empty(),
        "no retry within the first pause"
    );
    // The first pause is the kubelet's 10 s; then it tries again, and says so again.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !h
        .agent()
        .hub
        .take_events()
        .iter()
        .any(|e| e.reason == "FailedCreatePodSandBox")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "retried after the pause"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let _ = std::process::Command::new("ip")
        .args(["link", "del", "ktbroken0"])
        .stderr(std::process::Stdio::null())
        .status();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bridge_left_with_an_earlier_range_is_settled_before_the_first_pod() {
    let mut h = docker_or_skip!();
    // The node's bridge as a node deleted and joined again under a new range finds it: with
    // the gateway of its earlier range, which the bridge plugin would refuse to work with.
    let bridge = bridge_of(&h.node);
    let ip = |args: &[&str]| {
        let out = std::process::Command::new("ip")
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    ip(&["link", "add", &bridge, "type", "bridge"]);
    ip(&["addr", "add", "10.99.7.1/24", "dev", &bridge]);
    let (p, uid) = pod(
        "renumbered",
        json!({"containers": [sh("app", "sleep 3600")]}),
    );
    h.sync(&[p], &[]).await.unwrap();
    let s = h
        .wait_for(&uid, 60, "the pod running", |s| running(s, "app"))
        .await;
    let range = h.network.current().unwrap().pod_cidr;
    let pod_ip: std::net::Ipv4Addr = s.pod_ip.unwrap().parse().unwrap();
    assert!(range.contains(&pod_ip), "{pod_ip} in {range}");
    let addresses = ip(&["-4", "-o", "addr", "show", "dev", &bridge]);
    assert!(!addresses.contains("10.99.7.1"), "{addresses}");
    assert!(
        addresses.contains(&format!("{}/24", range.hosts().next().unwrap())),
        "{addresses}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_follow_a_running_container() {
    let mut h = docker_or_skip!();
    let (p, uid) = pod(
        "chatty",
        json!({"terminationGracePeriodSeconds": 1,
               "containers": [sh("app", "i=0; while true; do i=$((i+1)); echo line-$i; sleep 0.2; done")]}),
    );
    h.sync(&[p], &[]).await.unwrap();
    h.wait_for(&uid, 60, "running", |s| running(s, "app")).await;
    let mut stream = h
        .client
        .logs(keel_agent_protocol::LogsRequest {
            namespace: "default".into(),
            pod: "chatty".into(),
            container: String::new(),
            tail_lines: 1,
            follow: true,
            previous: false,
        })
        .await
        .unwrap()
        .into_inner();
    let mut seen = String::new();
    while seen.matches("line-").count() < 5 {
        let chunk = tokio::time::timeout(Duration::from_secs(10), stream.message())
            .await
            .expect("more lines while following")
            .unwrap()
            .expect("stream open");
        seen.push_str(&String::from_utf8_lossy(&chunk.data));
    }
    let numbers: Vec<u32> = seen
        .lines()
        .filter_map(|l| l.strip_prefix("line-")?.parse().ok())
        .collect();
    assert!(
        numbers.windows(2).all(|w| w[1] == w[0] + 1),
        "in order: {numbers:?}"
    );
    // Unknown container and pod names are clear errors.
    let err = h.logs("chatty", "nope", false).await.unwrap_err();
    assert!(
        err.message()
            .contains("container nope is not valid for pod default/chatty"),
        "{}",
        err.message()
    );
    let err = h.logs("ghost", "", false).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_sandbox_brings_the_pod_back_in_a_new_one() {
    let mut h = docker_or_skip!();
    let (p, uid) = pod(
        "netless",
        json!({"terminationGracePeriodSeconds": 1,
               "containers": [{"name": "web", "image": IMAGE,
                               "command": ["httpd", "-f", "-p", "8080", "-h", "/www"]}]}),
    );
    h.sync(&[p], &[]).await.unwrap();
    h.wait_for(&uid, 60, "running", |s| running(s, "web")).await;
    let sandbox = h.containers().await[&uid]
        .iter()
        .find(|c| c.is_sandbox())
        .unwrap()
        .id
        .clone();
    let _ = std::process::Command::new("docker")
        .args(["rm", "-f", &sandbox])
        .output()
        .unwrap();
    let s = h
        .wait_for(&uid, 60, "running again in a new sandbox", |s| {
            running(s, "web") && container_state(s, "web").restart_count == 1
        })
        .await;
    let ip = s.pod_ip.clone().expect("pod IP");
    let body = http_get(&format!("{ip}:8080"), "/")
        .await
        .unwrap_or_default();
    assert!(
        body.contains("hello from keel"),
        "the new pod IP serves: {body:?}"
    );
    let sandboxes: Vec<_> = h.containers().await[&uid]
        .iter()
        .filter(|c| c.is_sandbox())
        .map(|c| c.id.clone())
        .collect();
    assert_eq!(sandboxes.len(), 1);
    assert_ne!(sandboxes[0], sandbox);
}

/// `docker run --rm -v SOURCE:/mnt IMAGE sh -c SCRIPT`: what the container printed.
fn run_with_bind(source: &std::path::Path, script: &str) -> String {
    let out = std::process::Command::new("docker")
        .args(["run", "--rm", "--network", "none", "-v"])
        .arg(format!("{}:/mnt", source.display()))
        .args([IMAGE, "sh", "-c", script])
        .output()
        .expect("docker runs");
    String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr)
}

/// The CVE-2017-1002101 race: a subPath (or a hostPath) is checked, then a container
/// sharing the volume swaps a folder on it for a link to the node's root. What the engine
/// mounts is still what was checked, because the agent gives it the pinned source, never
/// the path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sub_path_swapped_for_a_link_after_its_check_still_mounts_what_was_checked() {
    use keel_nodeagent::pod::pinned::{self, Pin};
    use keel_nodeagent::pod::volumes::HostVolume;
    let h = docker_or_skip!();
    let root = tempfile::tempdir().unwrap();
    let volume = root.path().join("volume");
    std::fs::create_dir_all(volume.join("sub")).unwrap();
    std::fs::write(volume.join("sub/data"), "inside the volume\n").unwrap();
    let outside = root.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("data"), "a node file\n").unwrap();
    let pod_dir = root.path().join("pod");
    for (name, v) in [
        (
            "emptydir",
            HostVolume {
                path: volume.clone(),
                read_only: false,
                host_root: None,
            },
        ),
        (
            "hostpath",
            HostVolume {
                path: std::fs::canonicalize(&volume).unwrap(),
                read_only: false,
                host_root: Some(std::fs::canonicalize(root.path()).unwrap()),
            },
        ),
    ] {
        let _ = std::fs::remove_file(volume.join("sub"));
        std::fs::create_dir_all(volume.join("sub")).unwrap();
        std::fs::write(volume.join("sub/data"), "inside the volume\n").unwrap();
        let source = v.source(Some("sub")).unwrap().expect("a pinned source");
        let staging = pinned::staging(&pod_dir, name, 0);
        pinned::pin_all(
            h.runtime.as_ref(),
            vec![Pin {
                root: source.root,
                rel: source.rel,
                create: source.create,
                staging: staging.clone(),
            }],
        )
        .await
        .unwrap();
        // The swap, after the check: `sub` becomes a link out of the volume.
        std::fs::rename(
            volume.join("sub"),
            root.path().join(format!("moved-{name}")),
        )
        .unwrap();
        std::os::unix::fs::symlink(&outside, volume.join("sub")).unwrap();
        let seen = run_with_bind(&staging, "cat /mnt/data");
        assert_eq!(seen, "inside the volume\n", "{name}");
        // Pinned again now, the link is refused, not followed.
        let again = v.source(Some("sub"));
        let refused = match again {
            Err(e) => e,
            Ok(Some(s)) => pinned::pin_all(
                h.runtime.as_ref(),
                vec![Pin {
                    root: s.root,
                    rel: s.rel,
                    create: s.create,
                    staging: staging.clone(),
                }],
            )
            .await
            .unwrap_err(),
            Ok(None) => panic!("{name}: no source"),
        };
        assert!(
            refused.contains("symbolic link") || refused.contains("outside"),
            "{name}: {refused}"
        );
    }
    // Released: unmounted and removed, and the volumes' files untouched.
    pinned::release(h.runtime.as_ref(), &pod_dir).await.unwrap();
    assert!(!pod_dir.join("pinned").exists());
    assert!(outside.join("data").exists());
    for name in ["emptydir", "hostpath"] {
        assert!(root.path().join(format!("moved-{name}/data")).exists());
    }
    drop(h);
}

/// subPaths of an emptyDir and of a hostPath, end to end: both containers see them, and
/// removing the pod unmounts its pinned paths and leaves the hostPath's files alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sub_paths_are_mounted_and_a_removed_pod_leaves_its_host_path_files() {
    let mut h = docker_or_skip!();
    let host = h.allowed_host_paths[0].join("site");
    std::fs::create_dir_all(host.join("conf")).unwrap();
    std::fs::write(host.join("conf/app.conf"), "from the node\n").unwrap();
    let (p, uid) = pod(
        "subpaths",
        json!({
            "containers": [
                sh("writer", "echo shared > /work/note; sleep 3600"),
                {"name": "reader", "image": IMAGE,
                 "command": ["sh", "-c",
                    "while true; do cat /conf/app.conf /work/note > /tmp/seen 2>&1; sleep 1; done"],
                 "volumeMounts": [
                    {"name": "site", "mountPath": "/conf", "subPath": "conf", "readOnly": true},
                    {"name": "scratch", "mountPath": "/work", "subPath": "deep/er"}]}
            ],
            "volumes": [
                {"name": "scratch", "emptyDir": {}},
                {"name": "site", "hostPath": {"path": host.to_string_lossy(), "type": "Directory"}}
            ],
            "terminationGracePeriodSeconds": 1
        }),
    );
    // The writer mounts the same subPath of the emptyDir.
    let mut p = p;
    p["spec"]["containers"][0]["volumeMounts"] =
        json!([{"name": "scratch", "mountPath": "/work", "subPath": "deep/er"}]);
    h.sync(&[p], &[]).await.unwrap();
    h.wait_for(&uid, 60, "both running", |s| {
        running(s, "writer") && running(s, "reader")
    })
    .await;
    let reader = h.containers().await[&uid]
        .iter()
        .find(|c| c.container.as_deref() == Some("reader"))
        .map(|c| c.id.clone())
        .unwrap();
    let mut seen = String::new();
    for _ in 0..50 {
        let out = std::process::Command::new("docker")
            .args(["exec", &reader, "cat", "/tmp/seen"])
            .output()
            .unwrap();
        seen = String::from_utf8_lossy(&out.stdout).to_string();
        if seen == "from the node\nshared\n" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(seen, "from the node\nshared\n");
    let pod_dir = h.data.path().join("pods").join(&uid);
    assert!(pod_dir.join("volumes/scratch/deep/er/note").exists());
    // The mounts as the engine sees them (the test may run in a mount namespace of its own).
    let mountinfo = match h.runtime.host_binds().unwrap() {
        // `/proc/PID/ns/mnt` → `/proc/PID/mountinfo`.
        keel_nodeagent::runtime::HostBinds::In(ns) => ns
            .parent()
            .and_then(std::path::Path::parent)
            .unwrap()
            .join("mountinfo"),
        _ => "/proc/self/mountinfo".into(),
    };
    let mounts = || std::fs::read_to_string(&mountinfo).unwrap();
    assert!(mounts().contains(&uid), "the pinned paths are mounts");

    h.sync(&[], &[]).await.unwrap();
    h.wait_gone(&uid, 60).await;
    for _ in 0..50 {
        if !pod_dir.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(!pod_dir.exists(), "the pod's folder is removed");
    assert!(!mounts().contains(&uid), "no pinned mount is left");
    assert_eq!(
        std::fs::read_to_string(host.join("conf/app.conf")).unwrap(),
        "from the node\n",
        "the hostPath's files are untouched"
    );
}

fn init_state<'a>(
    s: &'a keel_schema::types::pod::PodStatus,
    name: &str,
) -> &'a keel_schema::types::pod::ContainerStatus {
    s.init_container_statuses
        .iter()
        .flatten()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no init status for {name}"))
}

fn condition(s: &keel_schema::types::pod::PodStatus, type_: &str) -> String {
    s.conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == type_)
        .map(|c| c.status.clone())
        .unwrap_or_default()
}

/// Init containers run one at a time, in order, each to completion, before the app
/// container; one that fails is run again (the default policy) and the pod waits for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_containers_run_in_order_to_completion_before_the_app() {
    let mut h = docker_or_skip!();
    let mount = json!([{"name": "work", "mountPath": "/work"}]);
    let step = |name: &str, script: &str| {
        json!({"name": name, "image": IMAGE, "command": ["sh", "-c", script],
               "volumeMounts": mount})
    };
    let (p, uid) = pod(
        "inits",
        json!({
            "initContainers": [
                step("first", "echo first >> /work/log; echo first-ran"),
                // Fails on its first run: run again at once, then completes.
                step("second", "sleep 1; if [ -f /work/tried ]; then echo second >> /work/log; \
                                else touch /work/tried; exit 3; fi"),
            ],
            "containers": [{"name": "app", "image": IMAGE, "volumeMounts": mount,
                "command": ["sh", "-c", "cat /work/log > /work/seen; echo app >> /work/log; sleep 3600"]}],
            "volumes": [{"name": "work", "emptyDir": {}}],
            "terminationGracePeriodSeconds": 1
        }),
    );
    h.sync(&[p.clone()], &[]).await.unwrap();
    // While the second init container runs, the pod is Pending and the app waits.
    let during = h
        .wait_for(&uid, 60, "the second init container running", |s| {
            s.init_container_statuses.iter().flatten().any(|c| {
                c.name == "second" && c.state.as_ref().is_some_and(|st| st.running.is_some())
            })
        })
        .await;
    assert_eq!(phase(&during), "Pending");
    assert_eq!(condition(&during, "Initialized"), "False");
    let app = container_state(&during, "app");
    assert_eq!(
        app.state
            .as_ref()
            .and_then(|s| s.waiting.as_ref())
            .and_then(|w| w.reason.as_deref()),
        Some("PodInitializing")
    );
    let after = h
        .wait_for(&uid, 60, "the app running", |s| running(s, "app"))
        .await;
    assert_eq!(phase(&after), "Running");
    assert_eq!(condition(&after, "Initialized"), "True");
    for name in ["first", "second"] {
        let st = init_state(&after, name);
        let done = st.state.as_ref().and_then(|s| s.terminated.as_ref());
        assert_eq!(done.map(|t| t.exit_code), Some(0), "{name}");
        assert_eq!(done.and_then(|t| t.reason.as_deref()), Some("Completed"));
    }
    assert_eq!(init_state(&after, "second").restart_count, 1);
    assert_eq!(init_state(&after, "first").restart_count, 0);
    let seen = h
        .data
        .path()
        .join("pods")
        .join(&uid)
        .join("volumes/work/seen");
    let mut text = String::new();
    for _ in 0..50 {
        text = std::fs::read_to_string(&seen).unwrap_or_default();
        if !text.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(text, "first\nsecond\n", "the app saw both, in order");
    // An init container's output is there to read, by its name.
    let logs = h.logs("inits", "first", false).await.expect("init logs");
    assert!(logs.contains("first-ran"), "{logs:?}");
    // A restarted agent adopts the pod as it is: inits completed, not run again, and the
    // app running on.
    let app_id = container_state(&after, "app").container_id.clone();
    h.restart_agent().await;
    h.sync(&[p], &[]).await.unwrap();
    let adopted = h
        .wait_for(&uid, 60, "the app running after a restart", |s| {
            running(s, "app") && condition(s, "Initialized") == "True"
        })
        .await;
    assert_eq!(container_state(&adopted, "app").container_id, app_id);
    let log = h
        .data
        .path()
        .join("pods")
        .join(&uid)
        .join("volumes/work/log");
    assert_eq!(
        std::fs::read_to_string(log).unwrap(),
        "first\nsecond\napp\n",
        "nothing ran twice"
    );
}

/// With restartPolicy Never, a failed init container fails the pod, and the app never
/// starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_init_container_fails_a_pod_that_never_restarts() {
    let mut h = docker_or_skip!();
    let (p, uid) = pod(
        "init-fails",
        json!({
            "restartPolicy": "Never",
            "initContainers": [sh("check", "echo missing config >&2; exit 7")],
            "containers": [sh("app", "sleep 3600")],
            "terminationGracePeriodSeconds": 1
        }),
    );
    h.sync(&[p], &[]).await.unwrap();
    let s = h
        .wait_for(&uid, 60, "Failed", |s| phase(s) == "Failed")
        .await;
    let check = init_state(&s, "check");
    let ended = check.state.as_ref().and_then(|s| s.terminated.as_ref());
    assert_eq!(ended.map(|t| t.exit_code), Some(7));
    assert_eq!(ended.and_then(|t| t.reason.as_deref()), Some("Error"));
    assert_eq!(condition(&s, "Initialized"), "False");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let made: Vec<Option<String>> = h.containers().await[&uid]
        .iter()
        .filter(|c| !c.is_sandbox())
        .map(|c| c.container.clone())
        .collect();
    assert_eq!(
        made,
        [Some("check".to_string())],
        "the app was never created"
    );
}

/// The output of `script` run with `sh -c` in container `container` of pod `uid`.
async fn exec_in(h: &Harness, uid: &str, container: &str, script: &str) -> String {
    let id = h.containers().await[uid]
        .iter()
        .find(|c| c.container.as_deref() == Some(container))
        .map(|c| c.id.clone())
        .expect("the container");
    let out = std::process::Command::new("docker")
        .args(["exec", &id, "sh", "-c", script])
        .output()
        .expect("docker exec");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The pod's securityContext, for every container: its user and group, supplementary
/// groups with fsGroup, fsGroup ownership of emptyDir and configMap volumes, safe sysctls
/// on the pod's own namespaces, and an unconfined seccomp profile where asked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pods_security_context_applies_to_its_containers_and_volumes() {
    let mut h = docker_or_skip!();
    let (p, uid) = pod(
        "secure",
        json!({
            "securityContext": {
                "runAsUser": 1000, "runAsGroup": 3000, "runAsNonRoot": true,
                "fsGroup": 2000, "supplementalGroups": [4000],
                "sysctls": [{"name": "net.ipv4.ip_unprivileged_port_start", "value": "80"}]
            },
            "containers": [
                {"name": "app", "image": IMAGE,
                 "command": ["sh", "-c", "echo hi > /data/made; sleep 3600"],
                 "volumeMounts": [{"name": "data", "mountPath": "/data"},
                                  {"name": "conf", "mountPath": "/conf"}]},
                {"name": "open", "image": IMAGE, "command": ["sleep", "3600"],
                 "securityContext": {"runAsUser": 1001, "seccompProfile": {"type": "Unconfined"}}}
            ],
            "volumes": [{"name": "data", "emptyDir": {}},
                        {"name": "conf", "configMap": {"name": "settings"}}],
            "terminationGracePeriodSeconds": 1
        }),
    );
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "settings", "namespace": "default"}, "data": {"mode": "strict"}});
    h.sync(&[p], &[cm]).await.unwrap();
    h.wait_for(&uid, 60, "both running", |s| {
        running(s, "app") && running(s, "open")
    })
    .await;
    let ids = exec_in(&h, &uid, "app", "id -u; id -g; id -G").await;
    let lines: Vec<&str> = ids.lines().collect();
    assert_eq!(lines[..2], ["1000", "3000"], "{ids}");
    let groups: Vec<&str> = lines[2].split_whitespace().collect();
    for g in ["3000", "4000", "2000"] {
        assert!(groups.contains(&g), "groups {groups:?} lack {g}");
    }
    let owned = exec_in(
        &h,
        &uid,
        "app",
        "sleep 0.5; stat -c '%g %a' /data /data/made /conf/mode",
    )
    .await;
    let owned: Vec<&str> = owned.lines().collect();
    assert_eq!(owned[0], "2000 2777", "the emptyDir: fsGroup, setgid");
    assert!(
        owned[1].starts_with("2000 "),
        "a new file inherits it: {owned:?}"
    );
    assert!(
        owned[2].starts_with("2000 "),
        "configMap files too: {owned:?}"
    );
    // The sysctl is set on the pod's network namespace, which its containers share.
    let port_start = exec_in(
        &h,
        &uid,
        "app",
        "cat /proc/sys/net/ipv4/ip_unprivileged_port_start",
    )
    .await;
    assert_eq!(port_start, "80");
    // The container's own settings win: its user, and no seccomp filter.
    assert_eq!(exec_in(&h, &uid, "open", "id -u").await, "1001");
    let filtered = |status: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix("Seccomp:"))
            .map(|v| v.trim().to_string())
    };
    let open = exec_in(&h, &uid, "open", "cat /proc/self/status").await;
    let app = exec_in(&h, &uid, "app", "cat /proc/self/status").await;
    assert_eq!(filtered(&open).as_deref(), Some("0"), "unconfined");
    assert_eq!(
        filtered(&app).as_deref(),
        Some("2"),
        "the engine's default filter"
    );
}

/// runAsNonRoot is checked against the image's own user when no runAsUser says who the
/// container runs as: busybox runs as root, so the container is refused, as the kubelet
/// refuses it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_as_non_root_refuses_an_image_that_runs_as_root() {
    let mut h = docker_or_skip!();
    let (p, uid) = pod(
        "rooted",
        json!({
            "securityContext": {"runAsNonRoot": true},
            "containers": [sh("app", "sleep 3600")],
            "terminationGracePeriodSeconds": 1
        }),
    );
    h.sync(&[p], &[]).await.unwrap();
    let s = h
        .wait_for(&uid, 60, "refused", |s| {
            container_state(s, "app")
                .state
                .as_ref()
                .and_then(|st| st.waiting.as_ref())
                .and_then(|w| w.reason.as_deref())
                == Some("CreateContainerConfigError")
        })
        .await;
    let message = container_state(&s, "app")
        .state
        .as_ref()
        .and_then(|st| st.waiting.as_ref())
        .and_then(|w| w.message.clone())
        .unwrap_or_default();
    assert!(
        message.contains("container has runAsNonRoot and image will run as root"),
        "{message}"
    );
    assert!(
        !h.containers().await[&uid]
            .iter()
            .any(|c| c.container.is_some()),
        "nothing was started"
    );
}

/// A gRPC readiness probe asks grpc.health.v1 at the pod's address (here a hostNetwork
/// pod, so the node's, where the test serves a real gRPC health service) and follows
/// what it answers: ready while SERVING, not ready otherwise.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grpc_probe_follows_the_health_service() {
    use tonic_health::ServingStatus;
    let mut h = docker_or_skip!();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (reporter, service) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("shop.Checkout", ServingStatus::NotServing)
        .await;
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
    let (p, uid) = pod(
        "grpc",
        json!({
            "hostNetwork": true,
            "containers": [{
                "name": "app", "image": IMAGE, "command": ["sleep", "3600"],
                "readinessProbe": {"grpc": {"port": port, "service": "shop.Checkout"},
                                   "periodSeconds": 1, "failureThreshold": 1}
            }],
            "terminationGracePeriodSeconds": 1
        }),
    );
    h.sync(&[p], &[]).await.unwrap();
    let s = h.wait_for(&uid, 60, "running", |s| running(s, "app")).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        !ready(&h.status(&uid).unwrap()),
        "NOT_SERVING is not ready: {s:?}"
    );
    reporter
        .set_service_status("shop.Checkout", ServingStatus::Serving)
        .await;
    h.wait_for(&uid, 20, "ready once SERVING", ready).await;
    reporter
        .set_service_status("shop.Checkout", ServingStatus::NotServing)
        .await;
    h.wait_for(&uid, 20, "not ready again", |s| !ready(s)).await;
}

/// hostAliases land in the /etc/hosts every container of the pod reads, and with
/// shareProcessNamespace one container sees the others' processes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_aliases_and_a_shared_process_namespace() {
    let mut h = docker_or_skip!();
    let (p, uid) = pod(
        "shared-pid",
        json!({
            "shareProcessNamespace": true,
            "hostAliases": [{"ip": "10.1.2.3", "hostnames": ["db.internal", "cache.internal"]}],
            "containers": [sh("worker", "exec sleep 4242"), sh("watcher", "sleep 3600")],
            "terminationGracePeriodSeconds": 1
        }),
    );
    h.sync(&[p], &[]).await.unwrap();
    h.wait_for(&uid, 60, "both running", |s| {
        running(s, "worker") && running(s, "watcher")
    })
    .await;
    let hosts = exec_in(&h, &uid, "watcher", "cat /etc/hosts").await;
    assert!(
        hosts
            .lines()
            .any(|l| l.starts_with("10.1.2.3") && l.contains("db.internal")),
        "{hosts}"
    );
    assert!(hosts.contains("cache.internal"), "{hosts}");
    let seen = exec_in(&h, &uid, "watcher", "ps -o args").await;
    assert!(seen.contains("sleep 4242"), "the worker's process: {seen}");
}

/// postStart runs in the container right after it starts; preStop runs before the pod's
/// containers are stopped, so a file it writes to a hostPath is there once the pod is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_hooks_run_after_start_and_before_stop() {
    let mut h = docker_or_skip!();
    let host = h.allowed_host_paths[0].join("hooks");
    std::fs::create_dir_all(&host).unwrap();
    let (p, uid) = pod(
        "hooked",
        json!({
            "containers": [{
                "name": "app", "image": IMAGE, "command": ["sleep", "3600"],
                "volumeMounts": [{"name": "out", "mountPath": "/out"}],
                "lifecycle": {
                    "postStart": {"exec": {"command": ["sh", "-c", "echo started > /out/post-start"]}},
                    "preStop": {"exec": {"command": ["sh", "-c", "echo stopping > /out/pre-stop"]}}
                }
            }],
            "volumes": [{"name": "out", "hostPath": {"path": host.to_string_lossy(), "type": "Directory"}}],
            "terminationGracePeriodSeconds": 5
        }),
    );
    h.sync(&[p], &[]).await.unwrap();
    h.wait_for(&uid, 60, "running", |s| running(s, "app")).await;
    // Running is published only once the hook has returned.
    assert_eq!(
        std::fs::read_to_string(host.join("post-start")).unwrap_or_default(),
        "started\n"
    );
    assert!(!host.join("pre-stop").exists());
    h.sync(&[], &[]).await.unwrap();
    h.wait_gone(&uid, 60).await;
    assert_eq!(
        std::fs::read_to_string(host.join("pre-stop")).unwrap_or_default(),
        "stopping\n"
    );
}

/// A failing postStart hook kills its container, which the restart policy brings back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_post_start_hook_restarts_the_container() {
    let mut h = docker_or_skip!();
    let (p, uid) = pod(
        "bad-hook",
        json!({
            "containers": [{
                "name": "app", "image": IMAGE, "command": ["sleep", "3600"],
                "lifecycle": {"postStart": {"exec": {"command": ["sh", "-c", "exit 4"]}}}
            }],
            "terminationGracePeriodSeconds": 1
        }),
    );
    h.sync(&[p], &[]).await.unwrap();
    let s = h
        .wait_for(&uid, 60, "a restart", |s| {
            container_state(s, "app").restart_count >= 1
        })
        .await;
    assert!(!ready(&s));
}

/// A container killed for a failed liveness probe runs its preStop hook first, as the
/// kubelet kills it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_liveness_kill_runs_the_pre_stop_hook() {
    let mut h = docker_or_skip!();
    let host = h.allowed_host_paths[0].join("liveness-hooks");
    std::fs::create_dir_all(&host).unwrap();
    let (p, uid) = pod(
        "drained",
        json!({
            "containers": [{
                "name": "app", "image": IMAGE, "command": ["sleep", "3600"],
                "volumeMounts": [{"name": "out", "mountPath": "/out"}],
                "livenessProbe": {"exec": {"command": ["false"]}, "periodSeconds": 1,
                                  "failureThreshold": 1},
                "lifecycle": {"preStop": {"exec": {"command": ["sh", "-c", "echo drained >> /out/pre-stop"]}}}
            }],
            "volumes": [{"name": "out", "hostPath": {"path": host.to_string_lossy(), "type": "Directory"}}],
            "terminationGracePeriodSeconds": 2
        }),
    );
    h.sync(&[p], &[]).await.unwrap();
    h.wait_for(&uid, 60, "a restart after the liveness kill", |s| {
        container_state(s, "app").restart_count >= 1
    })
    .await;
    let said = std::fs::read_to_string(host.join("pre-stop")).unwrap_or_default();
    assert!(said.starts_with("drained\n"), "{said:?}");
    // Removed by the agent, so its pinned hostPath mount goes with it.
    h.sync(&[], &[]).await.unwrap();
    h.wait_gone(&uid, 60).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_says_why_it_ended_in_its_termination_message() {
    let mut h = docker_or_skip!();
    let (p, uid) = pod(
        "last-words",
        json!({
            "restartPolicy": "Never",
            "containers": [
                sh("file", "printf 'bye: disk full' > /dev/termination-log; exit 3"),
                // One stream: Docker keeps no order between stdout and stderr lines.
                {
                    "name": "logs", "image": IMAGE,
                    "command": ["sh", "-c", "echo starting >&2; echo 'cannot bind :80' >&2; exit 2"],
                    "terminationMessagePolicy": "FallbackToLogsOnError"
                },
                {
                    "name": "user", "image": IMAGE,
                    "command": ["sh", "-c", "echo written as uid $(id -u) > /tmp/why; exit 0"],
                    "terminationMessagePath": "/tmp/why",
                    "securityContext": {"runAsUser": 1000}
                },
                {
                    "name": "quiet", "image": IMAGE,
                    "command": ["sh", "-c", "echo only a log; exit 0"],
                    "terminationMessagePolicy": "FallbackToLogsOnError"
                }
            ]
        }),
    );
    h.sync(&[p], &[]).await.unwrap();
    let s = h
        .wait_for(&uid, 60, "the pod failed", |s| phase(s) == "Failed")
        .await;
    let message = |name: &str| {
        container_state(&s, name)
            .state
            .clone()
            .and_then(|st| st.terminated)
            .and_then(|t| t.message)
    };
    assert_eq!(message("file").as_deref(), Some("bye: disk full"));
    assert_eq!(
        message("logs").as_deref(),
        Some("starting\ncannot bind :80\n"),
        "a failure without a message: the end of its log"
    );
    assert_eq!(message("user").as_deref(), Some("written as uid 1000\n"));
    assert_eq!(message("quiet"), None, "a success keeps its log to itself");
}
