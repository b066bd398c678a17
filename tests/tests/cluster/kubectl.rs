//! kubectl against `keel up`'s running cluster, as an operator uses it on real nodes:
//! `keel kubeconfig`, get and describe, logs, exec and port-forward ([`super::streams`]),
//! top, autoscaling ([`super::autoscaling`]), and the operations that are not desired state
//! (delete pod, rollout restart, cordon, drain, uncordon), each recorded as an Event; a
//! view token reads and is refused the rest.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use keel_e2e::binary;

use super::support::{http_get_path, wait_until};

/// kubectl with a kubeconfig: success, and stdout then stderr.
pub(super) fn kubectl(config: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new("kubectl")
        .args(args)
        .env("KUBECONFIG", config)
        .env("KUBECACHEDIR", config.with_extension("cache"))
        .output()
        .expect("kubectl runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

pub(super) fn ok(config: &Path, args: &[&str]) -> String {
    let (success, text) = kubectl(config, args);
    assert!(success, "kubectl {args:?}: {text}");
    text
}

/// The kubeconfig `keel kubeconfig` prints for the HTTPS API at `tls` (with `token`, or
/// the admin token of the server's data dir).
fn kubeconfig(data: &Path, tls: &str, token: Option<&str>, name: &str) -> PathBuf {
    let mut command = Command::new(binary("keel"));
    command
        .args([
            "kubeconfig",
            "--server",
            &format!("https://{tls}"),
            "--data-dir",
        ])
        .arg(data.join("server"));
    if let Some(token) = token {
        command.args(["--token", token]);
    }
    let out = command.output().expect("keel kubeconfig");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let path = data.with_extension(format!("{name}.kubeconfig"));
    std::fs::write(&path, &out.stdout).unwrap();
    path
}

/// `NAME NODE` of each Running pod whose name starts with `prefix`.
fn running(config: &Path, prefix: &str) -> Vec<(String, String)> {
    let (_, text) = kubectl(
        config,
        &[
            "get",
            "pods",
            "--field-selector",
            "status.phase=Running",
            "-o",
            "custom-columns=NAME:.metadata.name,NODE:.spec.nodeName,GONE:.metadata.deletionTimestamp",
            "--no-headers",
        ],
    );
    text.lines()
        .filter(|l| l.starts_with(prefix) && l.ends_with("<none>"))
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            Some((w.next()?.to_string(), w.next()?.to_string()))
        })
        .collect()
}

/// Runs the checks; the cluster is keel up's example app, every pod Running.
pub fn operate(data: &Path, tls: &str, server: &str) {
    if Command::new("kubectl")
        .arg("version")
        .arg("--client")
        .output()
        .is_err()
    {
        assert!(std::env::var_os("CI").is_none(), "kubectl is not installed");
        eprintln!("kubectl is not installed; skipping the kubectl checks outside CI");
        return;
    }
    let admin = kubeconfig(data, tls, None, "admin");
    let k = admin.as_path();
    let nodes = ok(k, &["get", "nodes"]);
    assert_eq!(
        nodes.lines().filter(|l| l.contains(" Ready ")).count(),
        3,
        "{nodes}"
    );
    let logs = ok(k, &["logs", "job/migrate"]);
    assert!(logs.contains("migrating the example schema"), "{logs}");
    // The revert's rollout may still be scaling the old ReplicaSet down.
    wait_until(
        Duration::from_secs(60),
        "web's 3 pods, the old ones gone",
        || running(k, "web-").len() == 3,
    );
    let web = running(k, "web-");
    assert_eq!(web.len(), 3, "{web:?}");
    let described = ok(k, &["describe", "pod", &web[0].0]);
    assert!(
        described
            .lines()
            .any(|l| l.starts_with("Node:") && l.contains(&format!(" {}/", web[0].1)))
            && described.contains("Events:"),
        "{described}"
    );

    // exec and port-forward, with kubectl, keel and kube-rs.
    super::streams::check(k, data, server, &web[0].0);

    // top: each container's use, sampled by its agent every 15 s from its cgroup (a new
    // container shows from its second sample).
    wait_until(
        Duration::from_secs(60),
        "kubectl top to show every web pod",
        || {
            let (_, top) = kubectl(k, &["top", "pods", "-l", "app=web", "--no-headers"]);
            top.lines()
                .filter(|l| l.starts_with("web-") && l.trim_end().ends_with("Mi"))
                .count()
                == 3
        },
    );
    let top = ok(k, &["top", "nodes"]);
    assert_eq!(
        top.lines()
            .filter(|l| l.starts_with("local-") && l.contains('%'))
            .count(),
        3,
        "{top}"
    );
    // Each node's agent serves the same samples as Prometheus series (keel up: port 10255).
    let web_series: usize = (11..=13)
        .map(|n| {
            let text =
                http_get_path(&format!("10.250.0.{n}:10255"), "/metrics").unwrap_or_default();
            assert!(
                text.contains("keel_agent_node_memory_working_set_bytes "),
                "{text}"
            );
            text.lines()
                .filter(|l| {
                    l.starts_with("keel_agent_pod_cpu_usage_cores{namespace=\"default\",pod=\"web-")
                })
                .count()
        })
        .sum();
    assert_eq!(web_series, 3, "one series per web pod, on its node");
    let keel_top = Command::new(binary("keel"))
        .env("KEEL_DATA_DIR", data.join("server"))
        .args(["top", "pods", "-A", "--containers", "--server", server])
        .output()
        .expect("keel top");
    let keel_top = String::from_utf8_lossy(&keel_top.stdout);
    assert!(
        keel_top.starts_with("NAMESPACE   NAME") && keel_top.contains(" web "),
        "{keel_top}"
    );

    // A HorizontalPodAutoscaler, scaling on what the agents measure.
    super::autoscaling::check(k, data, server);

    // delete pod: a restart; its ReplicaSet replaces it.
    let victim = web[0].0.clone();
    ok(
        k,
        &["delete", "pod", &victim, "--wait=true", "--timeout=60s"],
    );
    wait_until(Duration::from_secs(60), "a replacement Running", || {
        let now = running(k, "web-");
        now.len() == 3 && now.iter().all(|(n, _)| *n != victim)
    });
    let events = ok(
        k,
        &[
            "get",
            "events",
            "--field-selector",
            &format!("involvedObject.name={victim}"),
        ],
    );
    assert!(events.contains("Deleted"), "{events}");

    // rollout restart: every pod replaced, git unchanged.
    let before: Vec<String> = running(k, "web-").into_iter().map(|(n, _)| n).collect();
    ok(k, &["rollout", "restart", "deployment/web"]);
    wait_until(Duration::from_secs(120), "every web pod replaced", || {
        let now = running(k, "web-");
        now.len() == 3 && now.iter().all(|(n, _)| !before.contains(n))
    });
    let plan = Command::new(binary("keel"))
        .env("KEEL_DATA_DIR", data.join("server"))
        .args([
            "plan",
            "--repo",
            data.join("repo").to_str().unwrap(),
            "--to",
            "main",
        ])
        .args(["--server", server])
        .output()
        .expect("keel plan --server");
    assert_eq!(
        plan.status.code(),
        Some(0),
        "a restart is not drift: {}",
        String::from_utf8_lossy(&plan.stdout)
    );

    // cordon, drain, uncordon: the node's pods run elsewhere; keel status says so.
    let node = running(k, "web-")[0].1.clone();
    ok(k, &["cordon", &node]);
    let nodes = ok(k, &["get", "nodes"]);
    assert!(nodes.contains("Ready,SchedulingDisabled"), "{nodes}");
    let status = Command::new(binary("keel"))
        .env("KEEL_DATA_DIR", data.join("server"))
        .args(["status", "--server", server])
        .output()
        .expect("keel status");
    let status = String::from_utf8_lossy(&status.stdout);
    assert!(status.contains(&format!("Cordoned:   {node}")), "{status}");
    ok(
        k,
        &[
            "drain",
            &node,
            "--ignore-daemonsets",
            "--delete-emptydir-data",
            "--force",
            "--timeout=120s",
        ],
    );
    wait_until(
        Duration::from_secs(90),
        "web back to 3 pods, none on the drained node",
        || {
            let now = running(k, "web-");
            now.len() == 3 && now.iter().all(|(_, n)| *n != node)
        },
    );
    ok(k, &["uncordon", &node]);
    assert!(!ok(k, &["get", "nodes"]).contains("SchedulingDisabled"));

    // A view token reads, and changes nothing.
    let made = Command::new(binary("keel"))
        .env("KEEL_DATA_DIR", data.join("server"))
        .args(["token", "create", "--role", "view", "--server", server])
        .output()
        .expect("keel token create");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let token = String::from_utf8_lossy(&made.stdout).trim().to_string();
    let viewer = kubeconfig(data, tls, Some(&token), "view");
    let pods = ok(&viewer, &["get", "pods"]);
    assert!(pods.contains("Running"), "{pods}");
    let someone = running(k, "web-")[0].0.clone();
    let (deleted, said) = kubectl(&viewer, &["delete", "pod", &someone]);
    assert!(!deleted && said.contains("Forbidden"), "{said}");
    assert!(said.contains("view tokens only read"), "{said}");
    let (ran, said) = kubectl(&viewer, &["exec", &someone, "--", "true"]);
    assert!(!ran && said.contains("needs the admin token"), "{said}");
    // (kubectl cordon reports a refused node and exits 0.)
    let (_, said) = kubectl(&viewer, &["cordon", &node]);
    assert!(
        said.contains("forbidden: this needs the admin token"),
        "{said}"
    );
    assert!(!ok(k, &["get", "nodes"]).contains("SchedulingDisabled"));
}
