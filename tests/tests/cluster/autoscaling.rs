//! A HorizontalPodAutoscaler on `keel up`'s real pods: CPU-bound pods are measured by their
//! agents and scaled up to the autoscaler's max; git's `replicas` is only the starting count
//! (plans show no drift, and a changed count in git is not applied); a memory target far
//! above the pods' use scales them back down one pod per period, as its policy says; and
//! removing it all from git leaves nothing behind.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use keel_e2e::{binary, git};

use super::kubectl::{kubectl, ok};
use super::support::wait_until;

/// Pods that spin: each uses all of its 100m limit, twice its 50m request.
const BURN: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata: {name: burn}
spec:
  replicas: REPLICAS
  selector: {matchLabels: {app: burn}}
  template:
    metadata: {labels: {app: burn}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: burn
        image: keel-example/web:1
        imagePullPolicy: Never
        command: [sh, -c, 'while :; do :; done']
        resources: {requests: {cpu: 50m, memory: 8Mi}, limits: {cpu: 100m}}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: burn}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: burn}
  minReplicas: 1
  maxReplicas: 3
  metrics:
  - type: Resource
    resource: {name: RESOURCE, target: TARGET}
  behavior:
    scaleDown:
      stabilizationWindowSeconds: 0
      policies: [{type: Pods, value: 1, periodSeconds: 20}]
";

/// The scale-down policy's period in [`BURN`], and a little more.
const SCALE_DOWN_PERIOD: Duration = Duration::from_secs(22);

fn commit(repo: &Path, replicas: u32, resource: &str, target: &str, message: &str) {
    let text = BURN
        .replace("REPLICAS", &replicas.to_string())
        .replace("RESOURCE", resource)
        .replace("TARGET", target);
    std::fs::create_dir_all(repo.join("burn")).unwrap();
    std::fs::write(repo.join("burn/burn.yaml"), text).unwrap();
    git(repo, &["add", "-A"]);
    git(repo, &["commit", "-qm", message]);
}

/// The Deployment's replicas, as the store has them.
fn replicas(k: &Path) -> Option<u32> {
    let (_, text) = kubectl(
        k,
        &[
            "get",
            "deployment",
            "burn",
            "-o",
            "jsonpath={.spec.replicas}",
        ],
    );
    text.trim().parse().ok()
}

fn plan(data: &Path, server: &str) -> (Option<i32>, String) {
    let out = Command::new(binary("keel"))
        .env("KEEL_DATA_DIR", data.join("server"))
        .args(["plan", "--repo", data.join("repo").to_str().unwrap()])
        .args(["--to", "main", "--server", server])
        .output()
        .expect("keel plan --server");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

pub fn check(k: &Path, data: &Path, server: &str) {
    let repo = data.join("repo");
    commit(
        &repo,
        1,
        "cpu",
        "{type: Utilization, averageUtilization: 50}",
        "burn: CPU-bound pods, autoscaled",
    );
    // Measured from each pod's second sample (15 s apart), looked at every 15 s: 200% of
    // the request against 50% asks for 4, and max holds it at 3.
    wait_until(Duration::from_secs(150), "burn scaled up to 3", || {
        replicas(k) == Some(3)
    });
    let scaled_up = Instant::now();
    let hpa = ok(k, &["get", "hpa", "burn"]);
    let row = hpa.lines().nth(1).unwrap_or_default().to_string();
    let columns: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(columns[..2], ["burn", "Deployment/burn"], "{hpa}");
    assert!(row.contains("cpu: ") && row.contains("%/50%"), "{hpa}");
    let events = ok(
        k,
        &[
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=burn",
        ],
    );
    assert!(
        events.contains("SuccessfulRescale") && events.contains("New size: 3"),
        "{events}"
    );
    let described = ok(k, &["describe", "hpa", "burn"]);
    assert!(described.contains("ScalingLimited"), "{described}");

    // Git says 1, the autoscaler 3: no drift.
    let (code, text) = plan(data, server);
    assert_eq!(code, Some(0), "the autoscaler's count is not drift: {text}");

    // A memory target far above use, and a new count in git: the count is not applied,
    // and the pods go one per 20 s, as the policy allows. (Pods added within a period count
    // against it, as in Kubernetes: right after 1 -> 3 the policy's period would start at 1,
    // so the change comes once that period is over.)
    std::thread::sleep(SCALE_DOWN_PERIOD.saturating_sub(scaled_up.elapsed()));
    commit(
        &repo,
        2,
        "memory",
        "{type: AverageValue, averageValue: 1Gi}",
        "burn: scale on memory",
    );
    let mut seen = Vec::new();
    wait_until(Duration::from_secs(150), "burn scaled down to 1", || {
        let Some(now) = replicas(k) else {
            return false;
        };
        if seen.last() != Some(&now) {
            seen.push(now);
        }
        now == 1
    });
    assert!(
        seen.windows(2).all(|w| w[1] < w[0]),
        "one pod at a time, never git's count again: {seen:?}"
    );
    assert!(seen.contains(&2), "one pod per period: {seen:?}");
    let hpa = ok(k, &["get", "hpa", "burn"]);
    assert!(hpa.contains("memory: ") && hpa.contains("Ki/1Gi"), "{hpa}");

    // Gone from git: gone from the cluster.
    std::fs::remove_dir_all(repo.join("burn")).unwrap();
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-qm", "burn: removed"]);
    wait_until(Duration::from_secs(60), "burn removed", || {
        let (_, pods) = kubectl(k, &["get", "pods", "-l", "app=burn", "--no-headers"]);
        replicas(k).is_none() && !pods.contains("burn-")
    });
}
