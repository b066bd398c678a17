//! The README's demo, run as a new user runs it: `keel up`, changes, plan, revert, stop, resume.

use std::process::Command;
use std::time::{Duration, Instant};

use keel_e2e::{binary, docker_available, free_port, git};

use super::keel_up::Up;
use super::support::{app_containers, docker, http_get_path, wait_until};

/// The node hosts of keel up (namespaces `keel-…`), the machine's link to their LAN, and its
/// masquerade table, as `ip` and `nft` list them.
fn node_hosts() -> (Vec<String>, bool, bool) {
    let list = |program: &str, args: &[&str]| {
        Command::new(program)
            .args(args)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    };
    let namespaces = list("ip", &["netns", "list"])
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with("keel-"))
        .map(str::to_string)
        .collect();
    let uplink = !list("ip", &["-o", "link", "show", "dev", "keel-h"]).is_empty();
    let table = list("nft", &["list", "tables"]).contains("keel-h-world");
    (namespaces, uplink, table)
}

/// Node host `keel-N`'s address on the LAN.
fn host_address(n: u32) -> String {
    let out = Command::new("ip")
        .args([
            "-n",
            &format!("keel-{n}"),
            "-4",
            "-o",
            "addr",
            "show",
            "dev",
            "eth0",
        ])
        .output()
        .expect("ip");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .unwrap_or_default()
        .to_string()
}

fn local_containers() -> usize {
    ["local-1", "local-2", "local-3"]
        .iter()
        .map(|n| {
            docker(&["ps", "-aq", "--filter", &format!("label=keel.dev/node={n}")])
                .lines()
                .count()
        })
        .sum()
}

#[test]
fn the_readme_demo_runs_changes_plans_reverts_stops_and_resumes() {
    if !docker_available() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("up");
    let listen = format!("127.0.0.1:{}", free_port());
    let agents = free_port().to_string();
    let mut up = Up::start(&data, &listen, &agents);
    up.wait_output("keel is up.", Duration::from_secs(240));
    let output = up.output();
    for stage in [
        "images ready",
        "created a repository with the example app",
        "3 nodes ready: local-1, local-2, local-3",
        "pods ready: 6/6",
    ] {
        assert!(output.contains(stage), "{stage:?} in:\n{output}");
    }
    assert!(
        output.contains("web    http://127.0.0.1:30080/"),
        "{output}"
    );
    assert!(!output.contains("change-me"), "no Secret value is printed");
    // Each node is a network host of its own, on the LAN keel up made.
    let (mut namespaces, uplink, table) = node_hosts();
    namespaces.sort();
    assert_eq!(namespaces, ["keel-1", "keel-2", "keel-3", "keel-lan"]);
    assert!(
        uplink && table,
        "the machine's link to the LAN, and its way out"
    );
    let addresses: Vec<String> = (1..=3).map(host_address).collect();
    assert_eq!(
        addresses,
        ["10.250.0.11/24", "10.250.0.12/24", "10.250.0.13/24"]
    );
    let repo = data.join("repo");
    let page = || http_get_path("127.0.0.1:30080", "/").unwrap_or_default();
    // The URL works once printed.
    let first = page();
    assert!(first.contains("<h1>Hello from keel</h1>"), "{first}");
    assert!(first.contains("image keel-example/web:1"), "{first}");
    assert!(
        first.contains("api answered: hello from api-") && first.contains("token of 9 characters"),
        "web reached api through its Service: {first}"
    );

    // A node's agent that dies is started again, and keel up says so.
    // (Killed: SIGTERM would be a clean stop, which removes the node's Service table.)
    let _ = Command::new("pkill")
        .args(["-KILL", "-f", "keel-agent --name local-2 "])
        .status();
    up.wait_output(
        "node local-2's agent stopped (signal: 9 (SIGKILL)); started it again",
        Duration::from_secs(30),
    );

    // Change the page in a commit: served within seconds.
    let configmap = repo.join("web/configmap.yaml");
    let text = std::fs::read_to_string(&configmap).unwrap();
    std::fs::write(
        &configmap,
        text.replace("Hello from keel", "Hello, reviewers"),
    )
    .unwrap();
    git(&repo, &["commit", "-qam", "new page"]);
    let changed = Instant::now();
    wait_until(Duration::from_secs(60), "the new page served", || {
        page().contains("Hello, reviewers")
    });
    eprintln!("commit to new page served: {:?}", changed.elapsed());

    // A branch's change, described by keel plan.
    git(&repo, &["checkout", "-q", "-b", "v2"]);
    let deployment = repo.join("web/deployment.yaml");
    let text = std::fs::read_to_string(&deployment).unwrap();
    std::fs::write(&deployment, text.replace("web:1", "web:2")).unwrap();
    git(&repo, &["commit", "-qam", "web 2"]);
    git(&repo, &["checkout", "-q", "main"]);
    let plan = Command::new(binary("keel"))
        .args([
            "plan",
            "--repo",
            repo.to_str().unwrap(),
            "--from",
            "main",
            "--to",
            "v2",
        ])
        .output()
        .expect("keel plan");
    let plan_text = String::from_utf8_lossy(&plan.stdout);
    assert_eq!(plan.status.code(), Some(2), "changes: {plan_text}");
    assert!(
        plan_text
            .contains("image keel-example/web:1 → keel-example/web:2, rolling update of 3 pods"),
        "{plan_text}"
    );

    // Merged: a rolling update to web:2; reverted: back to web:1.
    let serving =
        |tag: &str| (0..6).all(|_| page().contains(&format!("image keel-example/web:{tag}")));
    git(&repo, &["merge", "-q", "v2"]);
    wait_until(Duration::from_secs(90), "every pod serving web:2", || {
        serving("2")
    });
    git(&repo, &["revert", "--no-edit", "HEAD"]);
    wait_until(Duration::from_secs(90), "every pod back on web:1", || {
        serving("1")
    });
    // As the summary says: the CLI finds the API token through KEEL_DATA_DIR.
    let rs = Command::new(binary("keel"))
        .env("KEEL_DATA_DIR", data.join("server"))
        .args(["get", "rs", "--server", &format!("http://{listen}")])
        .output()
        .expect("keel get rs");
    let rs = String::from_utf8_lossy(&rs.stdout).to_string();
    assert_eq!(
        rs.lines().count(),
        3,
        "two ReplicaSets, the first reused: {rs}"
    );
    assert!(page().contains("Hello, reviewers"), "the page change stays");

    // Will it fit? A branch asking more memory than any node has: the plan against the
    // running server says which pods would stay Pending, in the scheduler's words.
    git(&repo, &["checkout", "-q", "-b", "huge"]);
    let text = std::fs::read_to_string(&deployment).unwrap();
    let huge = text
        .replace("memory: 16Mi", "memory: 4000Gi")
        .replace("memory: 64Mi", "memory: 4000Gi");
    assert_ne!(huge, text, "the example's memory request changed");
    std::fs::write(&deployment, huge).unwrap();
    git(&repo, &["commit", "-qam", "huge pods"]);
    git(&repo, &["checkout", "-q", "main"]);
    let plan = Command::new(binary("keel"))
        .env("KEEL_DATA_DIR", data.join("server"))
        .args(["plan", "--repo", repo.to_str().unwrap(), "--to", "huge"])
        .args(["--server", &format!("http://{listen}")])
        .output()
        .expect("keel plan --server");
    let plan_text = String::from_utf8_lossy(&plan.stdout);
    assert_eq!(plan.status.code(), Some(2), "changes: {plan_text}");
    assert!(
        plan_text.contains("3 pods of Deployment default/web would stay Pending: 0/")
            && plan_text.contains("Insufficient memory"),
        "{plan_text}"
    );

    // kubectl, as an operator uses it on the running cluster.
    super::kubectl::operate(&data, &up.tls, &format!("http://{listen}"));

    // The web UI, in a browser: v2 is the branch that changes web's image.
    super::browser::check(&data, &format!("http://{listen}"), &repo, "v2");

    // Ctrl-C: everything stops and the containers go.
    assert_eq!(up.interrupt(), Some(0), "{}", up.output());
    assert_eq!(local_containers(), 0, "keel up removed its containers");
    assert!(http_get_path("127.0.0.1:30080", "/").is_none());
    assert_eq!(
        node_hosts(),
        (Vec::new(), false, false),
        "keel up removed its namespaces, link and rules"
    );

    // Again on the same data dir: it resumes, and the finished Job is not run again.
    drop(up); // its turn ends: the next run takes it
    let mut up = Up::start(&data, &listen, &agents);
    up.wait_output("keel is up.", Duration::from_secs(240));
    assert!(
        up.output().contains("resuming with the repository"),
        "{}",
        up.output()
    );
    wait_until(Duration::from_secs(60), "web answering again", || {
        page().contains("Hello, reviewers")
    });
    assert_eq!(
        (1..=3).map(host_address).collect::<Vec<_>>(),
        addresses,
        "the nodes come back at their addresses"
    );
    let server = format!("http://{listen}");
    let job = Command::new(binary("keel"))
        .env("KEEL_DATA_DIR", data.join("server"))
        .args(["get", "jobs", "--server", &server])
        .output()
        .expect("keel get jobs");
    let jobs = String::from_utf8_lossy(&job.stdout);
    let describe = Command::new(binary("keel"))
        .env("KEEL_DATA_DIR", data.join("server"))
        .args(["describe", "job", "migrate", "--server", &server])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
        .unwrap_or_default();
    assert!(
        jobs.contains("1/1"),
        "the migration stays done: {jobs}\n{describe}\n{}",
        std::fs::read_to_string(data.join("logs/server.log")).unwrap_or_default()
    );
    let migrate_lines: Vec<String> = (1..=3)
        .flat_map(|i| {
            std::fs::read_to_string(data.join(format!("logs/local-{i}.log")))
                .unwrap_or_default()
                .lines()
                .filter(|l| l.contains("pod=default/migrate"))
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect();
    let runs = migrate_lines
        .iter()
        .filter(|l| l.contains("container started"))
        .count();
    assert_eq!(
        runs,
        1,
        "the Job ran once across both runs:\n{}",
        migrate_lines.join("\n")
    );

    // kill -9 in the middle of a rollout: its agents go with it, and the next run on the
    // same data dir converges with one agent per node and exactly the declared containers.
    // (v2 is merged already: reverting the revert brings web:2 back. Other commits came
    // since, from the kubectl checks: the revert is found by its message.)
    let revert = git(
        &repo,
        &["log", "-1", "--format=%H", "--grep=^Revert \"web 2\""],
    );
    assert!(!revert.is_empty(), "the revert of web 2 is in the history");
    git(&repo, &["revert", "--no-edit", &revert]);
    wait_until(Duration::from_secs(60), "the rollout to start", || {
        page().contains("image keel-example/web:2")
    });
    up.kill();
    wait_until(
        Duration::from_secs(15),
        "the agents to die with keel up",
        || agent_processes().is_empty(),
    );
    drop(up);
    let mut up = Up::start(&data, &listen, &agents);
    up.wait_output("keel is up.", Duration::from_secs(240));
    wait_until(Duration::from_secs(90), "every pod serving web:2", || {
        serving("2")
    });
    let mut agents_now = agent_processes();
    agents_now.sort();
    assert_eq!(
        agents_now,
        ["local-1", "local-2", "local-3"],
        "one agent per node"
    );
    // Running pods in the API and running app containers in Docker, once old pods finished
    // terminating: web's 3 and api's 2.
    let counts = || {
        let pods = Command::new(binary("keel"))
            .env("KEEL_DATA_DIR", data.join("server"))
            .args(["get", "pods", "--server", &server])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
            .unwrap_or_default();
        let running = pods
            .lines()
            .filter(|l| l.split_whitespace().any(|w| w == "Running"))
            .count();
        let terminating = pods.contains("Terminating");
        let containers: usize = ["local-1", "local-2", "local-3"]
            .iter()
            .map(|n| app_containers(n, "{{.ID}}").len())
            .sum();
        (running, terminating, containers)
    };
    wait_until(
        Duration::from_secs(60),
        "exactly the declared containers",
        || {
            let (running, terminating, containers) = counts();
            !terminating && running == 5 && containers == running
        },
    );
    assert_eq!(up.interrupt(), Some(0), "{}", up.output());
    assert!(
        agent_processes().is_empty(),
        "no keel-agent left after Ctrl-C"
    );
    assert_eq!(local_containers(), 0, "no container left after Ctrl-C");
}

/// The node names of running `keel-agent --name local-N` processes (keel up's).
fn agent_processes() -> Vec<String> {
    let out = Command::new("pgrep")
        .args(["-a", "-f", "keel-agent --name local-"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
        .unwrap_or_default();
    out.lines()
        .filter_map(|l| l.split(" --name ").nth(1))
        .filter_map(|rest| rest.split_whitespace().next())
        .map(str::to_string)
        .collect()
}
