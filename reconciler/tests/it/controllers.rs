//! The controllers against a real store, with no agents: objects are written as git or a
//! kubelet would write them, and what the controllers make of them is read back.

use std::time::Duration;

use keel_reconciler::cache::Cache;
use keel_reconciler::controllers;
use keel_reconciler::events::Recorder;
use keel_reconciler::tasks::Tasks;
use keel_schema::Kind;
use keel_schema::object::Object;
use keel_store::{ObjectKey, Store, StoreSpec, Stored};
use serde_json::{Value, json};

struct Cluster {
    store: Store,
    tasks: Tasks,
    _dir: tempfile::TempDir,
}

impl Cluster {
    async fn start() -> Cluster {
        Cluster::start_with(None).await
    }

    async fn start_with(
        load_balancer_pool: Option<controllers::loadbalancer::LoadBalancerPool>,
    ) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&StoreSpec::Redb {
            data_dir: dir.path().to_path_buf(),
        })
        .await
        .unwrap();
        // The parts run until the test's runtime ends.
        let (tasks, _failures) = Tasks::new();
        let (events, writer) = Recorder::new(store.clone(), tasks.stop());
        tasks.spawn(writer);
        let cache = Cache::new();
        {
            let (cache, store, stop) = (cache.clone(), store.clone(), tasks.stop());
            tasks.spawn(async move { cache.run(store, stop).await });
        }
        // A short resync: a permanent error is retried at the resync, never hot.
        let config = controllers::Config {
            resync: Duration::from_secs(1),
            load_balancer_pool,
            ..Default::default()
        };
        let agents = keel_reconciler::nodes::dial::AgentDialer::new(None);
        controllers::start(&tasks, store.clone(), cache, config, events, agents);
        Cluster {
            store,
            tasks,
            _dir: dir,
        }
    }

    async fn create(&self, value: Value) -> Stored {
        self.store
            .create(Object::from_json(value).unwrap())
            .await
            .unwrap()
    }

    async fn list(&self, kind: Kind) -> Vec<Value> {
        self.store
            .list(kind, None, None)
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|s| serde_json::to_value(&s.object).unwrap())
            .collect()
    }

    async fn get(&self, kind: Kind, ns: &str, name: &str) -> Option<Value> {
        self.store
            .get(&ObjectKey::new(kind, ns, name))
            .await
            .unwrap()
            .map(|s| serde_json::to_value(&s.object).unwrap())
    }

    /// Changes an object as its writer would (re-read and retried on conflicts).
    async fn edit(&self, kind: Kind, ns: &str, name: &str, f: impl Fn(&mut Value)) {
        for _ in 0..20 {
            let stored = self
                .store
                .get(&ObjectKey::new(kind, ns, name))
                .await
                .unwrap()
                .expect("object to edit");
            let mut value = serde_json::to_value(&stored.object).unwrap();
            f(&mut value);
            let object = Object::from_json(value).unwrap();
            if self
                .store
                .update(object, stored.resource_version)
                .await
                .is_ok()
            {
                return;
            }
        }
        panic!("kept conflicting while editing {kind} {ns}/{name}");
    }

    /// What a kubelet reports: the pod runs (and is ready), or has finished.
    async fn set_phase(&self, pod: &Value, phase: &str, ip: &str) {
        let (ns, name) = (
            pod["metadata"]["namespace"].as_str().unwrap().to_string(),
            pod["metadata"]["name"].as_str().unwrap().to_string(),
        );
        let (phase, ip) = (phase.to_string(), ip.to_string());
        self.edit(Kind::Pod, &ns, &name, move |p| {
            let ready = if phase == "Running" { "True" } else { "False" };
            p["status"] = json!({"phase": phase, "podIP": ip,
                "conditions": [{"type": "Ready", "status": ready,
                                "lastTransitionTime": "2026-01-01T00:00:00Z"}]});
        })
        .await;
    }

    async fn wait(&self, what: &str, ok: impl AsyncFn(&Cluster) -> bool) {
        for _ in 0..300 {
            if ok(self).await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "timed out waiting for {what}; pods: {:#}",
            Value::Array(self.list(Kind::Pod).await)
        );
    }
}

fn node(name: &str, labels: Value, ready: bool) -> Value {
    json!({"apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": labels},
        "status": {
            "capacity": {"cpu": "2", "memory": "4Gi", "pods": "110"},
            "allocatable": {"cpu": "2", "memory": "4Gi", "pods": "110"},
            "conditions": [{"type": "Ready", "status": if ready { "True" } else { "Unknown" }}]}})
}

fn template(app: &str) -> Value {
    json!({"metadata": {"labels": {"app": app}},
           "spec": {"containers": [{"name": "c", "image": "x:1"}]}})
}

fn owned_by(pod: &Value, uid: &str) -> bool {
    pod["metadata"]["ownerReferences"]
        .as_array()
        .is_some_and(|refs| {
            refs.iter()
                .any(|r| r["uid"] == uid && r["controller"] == true)
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replicaset_keeps_its_count_adopts_orphans_and_releases_relabelled_pods() {
    let c = Cluster::start().await;
    let rs = c
        .create(json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                     "template": template("web")}}))
        .await;
    let uid = rs.object.meta().uid.clone().unwrap();
    let owned = async |c: &Cluster| -> Vec<Value> {
        c.list(Kind::Pod)
            .await
            .into_iter()
            .filter(|p| owned_by(p, &uid))
            .collect()
    };
    c.wait("3 pods", async |c| owned(c).await.len() == 3).await;
    // An orphan that matches is adopted, and one pod too many goes.
    c.create(json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "stray", "namespace": "default", "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "c", "image": "x:1"}]}}))
        .await;
    c.wait("the orphan adopted and the count back to 3", async |c| {
        let pods = owned(c).await;
        pods.len() == 3 && c.list(Kind::Pod).await.len() == 3
    })
    .await;
    // A pod relabelled out of the selector is let go (kept, without an owner) and replaced.
    let victim = owned(&c).await[0]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    c.edit(Kind::Pod, "default", &victim, |p| {
        p["metadata"]["labels"]["app"] = json!("debug");
    })
    .await;
    c.wait("the relabelled pod released and replaced", async |c| {
        let kept = c.get(Kind::Pod, "default", &victim).await;
        owned(c).await.len() == 3
            && kept.is_some_and(|p| {
                p["metadata"]["ownerReferences"]
                    .as_array()
                    .is_none_or(|refs| refs.is_empty())
            })
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        c.get(Kind::Pod, "default", &victim).await.is_some(),
        "a released pod is not garbage"
    );
    let status = c.get(Kind::ReplicaSet, "default", "web").await.unwrap()["status"].clone();
    assert_eq!(status["replicas"], 3, "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_deployment_deletes_its_replicasets_and_pods() {
    let c = Cluster::start().await;
    let d = c
        .create(json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                     "template": template("web")}}))
        .await;
    c.wait("2 pods", async |c| c.list(Kind::Pod).await.len() == 2)
        .await;
    let rs = c.list(Kind::ReplicaSet).await;
    assert_eq!(rs.len(), 1);
    assert!(rs[0]["metadata"]["labels"]["pod-template-hash"].is_string());
    c.store
        .delete(&ObjectKey::of(&d.object), None)
        .await
        .unwrap();
    c.wait("everything it owned gone", async |c| {
        c.list(Kind::ReplicaSet).await.is_empty() && c.list(Kind::Pod).await.is_empty()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_that_fits_nowhere_says_why_and_is_placed_when_room_appears() {
    let c = Cluster::start().await;
    c.create(node("small-1", json!({}), true)).await;
    c.create(node("small-2", json!({"disk": "hdd"}), true))
        .await;
    c.create(json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "big", "namespace": "default"},
        "spec": {"nodeSelector": {"disk": "hdd"},
                 "containers": [{"name": "c", "image": "x:1",
                                 "resources": {"requests": {"cpu": "3"}}}]}}))
        .await;
    let expected = "0/2 nodes are available: 1 Insufficient cpu, 1 node(s) didn't match Pod's node affinity/selector.";
    c.wait("the FailedScheduling condition", async |c| {
        let pod = c.get(Kind::Pod, "default", "big").await.unwrap();
        pod["status"]["conditions"].as_array().is_some_and(|cs| {
            cs.iter().any(|x| {
                x["type"] == "PodScheduled" && x["status"] == "False" && x["message"] == expected
            })
        })
    })
    .await;
    assert_eq!(
        c.get(Kind::Pod, "default", "big").await.unwrap()["status"]["phase"],
        "Pending"
    );
    let mut big = node("big-1", json!({"disk": "hdd"}), true);
    big["status"]["allocatable"]["cpu"] = json!("8");
    c.create(big).await;
    c.wait("the pod bound to the new node", async |c| {
        c.get(Kind::Pod, "default", "big").await.unwrap()["spec"]["nodeName"] == "big-1"
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemonset_runs_one_pod_per_matching_ready_node() {
    let c = Cluster::start().await;
    c.create(node("a", json!({"role": "edge"}), true)).await;
    c.create(node("b", json!({"role": "edge"}), true)).await;
    c.create(node("c", json!({"role": "core"}), true)).await;
    c.create(node("d", json!({"role": "edge"}), false)).await;
    let mut t = template("agent");
    t["spec"]["nodeSelector"] = json!({"role": "edge"});
    c.create(json!({"apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": "agent", "namespace": "default"},
        "spec": {"selector": {"matchLabels": {"app": "agent"}}, "template": t}}))
        .await;
    let nodes_with_pods = async |c: &Cluster| -> Vec<String> {
        let mut n: Vec<String> = c
            .list(Kind::Pod)
            .await
            .iter()
            .map(|p| p["spec"]["nodeName"].as_str().unwrap_or("").to_string())
            .collect();
        n.sort();
        n
    };
    c.wait("pods on a and b only", async |c| {
        nodes_with_pods(c).await == ["a", "b"]
    })
    .await;
    // c joins the selector; b leaves the cluster.
    c.edit(Kind::Node, "", "c", |n| {
        n["metadata"]["labels"]["role"] = json!("edge")
    })
    .await;
    c.store
        .delete(&ObjectKey::new(Kind::Node, "", "b"), None)
        .await
        .unwrap();
    c.wait("pods on a and c", async |c| {
        nodes_with_pods(c).await == ["a", "c"]
    })
    .await;
    c.wait("the status", async |c| {
        let s = c.get(Kind::DaemonSet, "default", "agent").await.unwrap()["status"].clone();
        s["desiredNumberScheduled"] == 2 && s["currentNumberScheduled"] == 2
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_runs_to_its_completions_and_a_failing_one_stops_at_its_backoff_limit() {
    let c = Cluster::start().await;
    let mut t = template("batch");
    t["spec"]["restartPolicy"] = json!("Never");
    c.create(json!({"apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": "migrate", "namespace": "default"},
        "spec": {"completions": 3, "parallelism": 2, "template": t}}))
        .await;
    // `None`: not finished (pending or running).
    let by_phase = async |c: &Cluster, phase: Option<&str>| -> Vec<Value> {
        c.list(Kind::Pod)
            .await
            .into_iter()
            .filter(|p| p["metadata"]["labels"]["job-name"] == "migrate")
            .filter(|p| {
                let now = p["status"]["phase"].as_str();
                match phase {
                    Some(want) => now == Some(want),
                    None => !matches!(now, Some("Succeeded" | "Failed")),
                }
            })
            .collect()
    };
    c.wait("2 pods at a time", async |c| {
        by_phase(c, None).await.len() == 2
    })
    .await;
    let mut done = 0;
    while done < 3 {
        let waiting = by_phase(&c, None).await;
        assert!(waiting.len() <= 2, "parallelism 2: {waiting:?}");
        if let Some(p) = waiting.first() {
            c.set_phase(p, "Succeeded", "10.0.0.1").await;
            done += 1;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    c.wait("the Job complete", async |c| {
        let job = c.get(Kind::Job, "default", "migrate").await.unwrap();
        job["status"]["succeeded"] == 3
            && job["status"]["conditions"]
                .as_array()
                .is_some_and(|cs| cs.iter().any(|x| x["type"] == "Complete"))
    })
    .await;
    assert_eq!(
        by_phase(&c, Some("Succeeded")).await.len(),
        3,
        "no extra pod ran"
    );
    // Its pods removed afterwards (by hand, with a node): the record stands, nothing reruns.
    for p in by_phase(&c, Some("Succeeded")).await {
        let key = ObjectKey::new(
            Kind::Pod,
            "default",
            p["metadata"]["name"].as_str().unwrap(),
        );
        c.store.delete(&key, None).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let job = c.get(Kind::Job, "default", "migrate").await.unwrap();
    assert_eq!(job["status"]["succeeded"], 3, "{job}");
    assert!(by_phase(&c, None).await.is_empty(), "no pod ran again");

    let mut t = template("flaky");
    t["spec"]["restartPolicy"] = json!("Never");
    c.create(json!({"apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": "flaky", "namespace": "default"},
        "spec": {"backoffLimit": 0, "template": t}}))
        .await;
    let flaky = async |c: &Cluster| -> Vec<Value> {
        c.list(Kind::Pod)
            .await
            .into_iter()
            .filter(|p| p["metadata"]["labels"]["job-name"] == "flaky")
            .collect()
    };
    c.wait("its pod", async |c| flaky(c).await.len() == 1).await;
    let pod = flaky(&c).await.remove(0);
    c.set_phase(&pod, "Failed", "10.0.0.2").await;
    c.wait("the Job failed", async |c| {
        let job = c.get(Kind::Job, "default", "flaky").await.unwrap();
        job["status"]["conditions"].as_array().is_some_and(|cs| {
            cs.iter()
                .any(|x| x["type"] == "Failed" && x["reason"] == "BackoffLimitExceeded")
        })
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(flaky(&c).await.len(), 1, "no retry past the backoff limit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_list_ready_pods_with_named_ports_resolved() {
    let c = Cluster::start().await;
    c.create(json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": "http"}]}}))
        .await;
    // Both pods have host names; only a's subdomain is this Service, so only a is named in
    // its Endpoints (and in DNS).
    for (name, port, ip, subdomain) in [
        ("a", 8080, "10.0.0.1", "web"),
        ("b", 9090, "10.0.0.2", "other"),
    ] {
        let pod = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default", "labels": {"app": "web"}},
            "spec": {"hostname": format!("{name}-host"), "subdomain": subdomain,
                     "containers": [{"name": "c", "image": "x:1",
                     "ports": [{"name": "http", "containerPort": port}]}]}});
        c.create(pod.clone()).await;
        c.set_phase(&pod, "Running", ip).await;
    }
    c.wait("two subsets, one per port", async |c| {
        let ep = c.get(Kind::Endpoints, "default", "web").await;
        ep.is_some_and(|e| {
            let subsets = e["subsets"].as_array().cloned().unwrap_or_default();
            subsets.len() == 2
                && subsets.iter().any(|s| {
                    s["ports"][0]["port"] == 8080
                        && s["addresses"][0]["ip"] == "10.0.0.1"
                        && s["addresses"][0]["hostname"] == "a-host"
                })
                && subsets.iter().any(|s| {
                    s["ports"][0]["port"] == 9090
                        && s["addresses"][0]["ip"] == "10.0.0.2"
                        && s["addresses"][0].get("hostname").is_none()
                })
        })
    })
    .await;
    // A pod that stops being ready moves to notReadyAddresses.
    let a = c.get(Kind::Pod, "default", "a").await.unwrap();
    c.set_phase(&a, "Pending", "10.0.0.1").await;
    c.wait("a not ready", async |c| {
        let e = c.get(Kind::Endpoints, "default", "web").await.unwrap();
        e["subsets"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["ports"][0]["port"] == 8080 && s["notReadyAddresses"][0]["ip"] == "10.0.0.1")
    })
    .await;
    // The Service goes: so do its Endpoints.
    c.store
        .delete(&ObjectKey::new(Kind::Service, "default", "web"), None)
        .await
        .unwrap();
    c.wait("the Endpoints gone", async |c| {
        c.get(Kind::Endpoints, "default", "web").await.is_none()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarts_count_toward_backoff_under_on_failure_and_a_work_queue_job_ends_on_one_success() {
    let c = Cluster::start().await;
    let mut t = template("loop");
    t["spec"]["restartPolicy"] = json!("OnFailure");
    c.create(json!({"apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": "crashy", "namespace": "default"},
        "spec": {"backoffLimit": 2, "template": t}}))
        .await;
    let of = async |c: &Cluster, job: &str| -> Vec<Value> {
        c.list(Kind::Pod)
            .await
            .into_iter()
            .filter(|p| p["metadata"]["labels"]["job-name"] == job)
            .collect()
    };
    c.wait("its pod", async |c| of(c, "crashy").await.len() == 1)
        .await;
    let name = of(&c, "crashy").await[0]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    // The kubelet restarted the container three times in place.
    c.edit(Kind::Pod, "default", &name, |p| {
        p["status"] = json!({"phase": "Running", "containerStatuses": [
            {"name": "c", "ready": false, "restartCount": 3}]});
    })
    .await;
    c.wait("the Job failed past its backoff limit", async |c| {
        let job = c.get(Kind::Job, "default", "crashy").await.unwrap();
        job["status"]["conditions"].as_array().is_some_and(|cs| {
            cs.iter()
                .any(|x| x["type"] == "Failed" && x["reason"] == "BackoffLimitExceeded")
        })
    })
    .await;
    c.wait("its running pod stopped", async |c| {
        of(c, "crashy").await.is_empty()
    })
    .await;

    // No completions: `parallelism` workers, done once one succeeded and the rest ended.
    let mut t = template("worker");
    t["spec"]["restartPolicy"] = json!("Never");
    c.create(json!({"apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": "queue", "namespace": "default"},
        "spec": {"parallelism": 3, "template": t}}))
        .await;
    c.wait("3 workers", async |c| of(c, "queue").await.len() == 3)
        .await;
    let workers = of(&c, "queue").await;
    c.set_phase(&workers[0], "Succeeded", "10.0.0.3").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        of(&c, "queue").await.len(),
        3,
        "no new worker after a success"
    );
    for w in &workers[1..] {
        c.set_phase(w, "Succeeded", "10.0.0.4").await;
    }
    c.wait("the work-queue Job complete", async |c| {
        let job = c.get(Kind::Job, "default", "queue").await.unwrap();
        job["status"]["conditions"]
            .as_array()
            .is_some_and(|cs| cs.iter().any(|x| x["type"] == "Complete"))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permanent_error_is_reported_on_its_object_once_and_cleared_when_fixed() {
    let c = Cluster::start().await;
    let spec = json!({"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                      "template": template("web")});
    let hash = keel_reconciler::controllers::deployment::template_hash(
        &serde_json::from_value(template("web")).unwrap(),
    );
    // A ReplicaSet that is not the Deployment's holds the name its ReplicaSet would get.
    c.create(json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": format!("web-{hash}"), "namespace": "default"},
        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "other"}},
                 "template": template("other")}}))
        .await;
    c.create(json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"}, "spec": spec}))
        .await;
    let condition = async |c: &Cluster| {
        let d = c.get(Kind::Deployment, "default", "web").await?;
        let conditions = d["status"]["conditions"].as_array()?.clone();
        conditions
            .into_iter()
            .find(|c| c["type"] == "ReconcileError")
    };
    c.wait("the ReconcileError condition", async |c| {
        condition(c).await.is_some()
    })
    .await;
    let reported = condition(&c).await.unwrap();
    assert_eq!(reported["status"], "True");
    assert_eq!(reported["reason"], "NameConflict");
    assert!(
        reported["message"]
            .as_str()
            .unwrap()
            .contains("exists and is not this Deployment's"),
        "{reported}"
    );
    let warnings = async |c: &Cluster| -> Vec<Value> {
        c.list(Kind::Event)
            .await
            .into_iter()
            .filter(|e| e["reason"] == "NameConflict" && e["involvedObject"]["name"] == "web")
            .collect()
    };
    c.wait("the Warning event", async |c| !warnings(c).await.is_empty())
        .await;
    // Resyncs come and go (every second here): the error is not told again, nor hot-retried.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let events = warnings(&c).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["count"], 1, "reported once: {events:?}");
    assert_eq!(events[0]["type"], "Warning");

    // Fixed: the name is free; the next pass makes the ReplicaSet and clears the condition.
    let squatter = c
        .store
        .get(&ObjectKey::new(
            Kind::ReplicaSet,
            "default",
            &format!("web-{hash}"),
        ))
        .await
        .unwrap()
        .unwrap();
    c.store
        .delete(
            &ObjectKey::of(&squatter.object),
            Some(squatter.resource_version),
        )
        .await
        .unwrap();
    c.wait("the Deployment's own ReplicaSet", async |c| {
        let rs = c
            .get(Kind::ReplicaSet, "default", &format!("web-{hash}"))
            .await;
        rs.is_some_and(|rs| rs["metadata"]["ownerReferences"][0]["kind"] == "Deployment")
    })
    .await;
    c.wait("the condition to go", async |c| {
        condition(c).await.is_none()
    })
    .await;

    // Stopping waits for every controller's tasks, and they all end.
    assert!(c.tasks.shutdown(Duration::from_secs(10)).await);
}

fn load_balancer(name: &str, asked: Option<&str>) -> Value {
    let mut s = json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"type": "LoadBalancer", "clusterIP": "10.96.0.50", "selector": {"app": name},
                 "ports": [{"port": 80, "nodePort": 30080}]}});
    if let Some(ip) = asked {
        s["spec"]["loadBalancerIP"] = json!(ip);
    }
    s
}

fn lb_status(s: &Option<Value>) -> (Option<String>, String, String) {
    let status = s.as_ref().map(|s| s["status"].clone()).unwrap_or_default();
    let ip = status["loadBalancer"]["ingress"][0]["ip"]
        .as_str()
        .map(str::to_string);
    let c = &status["conditions"][0];
    (
        ip,
        c["status"].as_str().unwrap_or_default().to_string(),
        c["message"].as_str().unwrap_or_default().to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_balancers_get_distinct_addresses_from_the_pool_or_say_why_not() {
    let c = Cluster::start_with(Some("10.0.0.240/30".parse().unwrap())).await;
    // (b first: an address asked for is given only while free.)
    c.create(load_balancer("b", Some("10.0.0.241"))).await;
    c.wait("b's address", async |c| {
        lb_status(&c.get(Kind::Service, "default", "b").await)
            .0
            .is_some()
    })
    .await;
    c.create(load_balancer("a", None)).await;
    c.create(load_balancer("outside", Some("10.0.1.9"))).await;
    c.wait("addresses for a and b, a reason for the third", async |c| {
        let a = lb_status(&c.get(Kind::Service, "default", "a").await);
        let b = lb_status(&c.get(Kind::Service, "default", "b").await);
        let out = lb_status(&c.get(Kind::Service, "default", "outside").await);
        a.0.is_some() && b.0.as_deref() == Some("10.0.0.241") && out.1 == "False"
    })
    .await;
    let a = lb_status(&c.get(Kind::Service, "default", "a").await);
    let out = lb_status(&c.get(Kind::Service, "default", "outside").await);
    assert_ne!(
        a.0.as_deref(),
        Some("10.0.0.241"),
        "two Services, one address"
    );
    assert!(
        a.0.as_deref().unwrap_or_default().starts_with("10.0.0.24"),
        "{a:?}"
    );
    assert!(
        out.0.is_none() && out.2.contains("outside the pool 10.0.0.240/30"),
        "{out:?}"
    );

    // No longer a LoadBalancer: its address and condition go.
    c.edit(Kind::Service, "default", "a", |s| {
        s["spec"]["type"] = json!("NodePort");
    })
    .await;
    c.wait("a's address released", async |c| {
        c.get(Kind::Service, "default", "a")
            .await
            .is_some_and(|s| s["status"]["loadBalancer"].is_null())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_pool_a_load_balancer_says_it_is_reachable_by_node_ports_only() {
    let c = Cluster::start().await;
    c.create(load_balancer("web", None)).await;
    c.wait("the NoPool condition", async |c| {
        lb_status(&c.get(Kind::Service, "default", "web").await).1 == "False"
    })
    .await;
    let (ip, _, message) = lb_status(&c.get(Kind::Service, "default", "web").await);
    assert!(ip.is_none());
    assert!(
        message.contains("--loadbalancer-pool") && message.contains("node ports"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_the_nodes_pool_a_port_is_one_services_and_nodes_come_and_go() {
    let c = Cluster::start_with(Some(controllers::loadbalancer::LoadBalancerPool::Nodes)).await;
    c.create(node("n1", json!({}), true)).await;
    c.edit(Kind::Node, "", "n1", |n| {
        n["status"]["addresses"] = json!([{"type": "InternalIP", "address": "10.250.0.11"}]);
    })
    .await;
    c.create(load_balancer("first", None)).await;
    c.wait("first on the node's address", async |c| {
        lb_status(&c.get(Kind::Service, "default", "first").await)
            .0
            .as_deref()
            == Some("10.250.0.11")
    })
    .await;
    c.create(load_balancer("second", None)).await;
    c.wait("second refused its port", async |c| {
        lb_status(&c.get(Kind::Service, "default", "second").await).1 == "False"
    })
    .await;
    let (_, _, why) = lb_status(&c.get(Kind::Service, "default", "second").await);
    assert!(
        why.contains("port 80/TCP") && why.contains("default/first"),
        "{why}"
    );

    // Its only node stops being Ready: no address answers any more, and the Service says so.
    c.edit(Kind::Node, "", "n1", |n| {
        n["status"]["conditions"][0]["status"] = json!("Unknown");
    })
    .await;
    c.wait("first without an address", async |c| {
        let (ip, ready, _) = lb_status(&c.get(Kind::Service, "default", "first").await);
        ip.is_none() && ready == "False"
    })
    .await;
}
