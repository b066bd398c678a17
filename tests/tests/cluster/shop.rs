//! The release manifest of an 11-service microservices shop demo, committed unchanged and
//! run under `keel up` until every pod is Ready. Only its images are local stand-ins (no
//! registry is reachable here), made from `shop-stub`, and its one `:latest` image is
//! renamed (see [`LOCAL_BUSYBOX`]): the backends answer their grpc
//! probes, the frontend answers `/` only when every backend it names answers through its
//! Service name, and the load generator's init container waits for that answer.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use keel_e2e::{binary, commit, docker_available, free_port, git, import_image, workspace_root};

use super::keel_up::Up;
use super::support::{docker, http_get_path, wait_until};

/// The demo's backends, each answering grpc.health.v1 on its port.
const GRPC_SERVICES: [(&str, &str); 9] = [
    ("emailservice", "8080"),
    ("checkoutservice", "5050"),
    ("recommendationservice", "8080"),
    ("paymentservice", "50051"),
    ("productcatalogservice", "3550"),
    // The real cart listens on 7070 without being told: its manifest sets no PORT.
    ("cartservice", "7070"),
    ("currencyservice", "7000"),
    ("shippingservice", "50051"),
    ("adservice", "9555"),
];

/// What `docker commit --change` sets as an image's entrypoint, as JSON.
fn entrypoint(args: &[&str]) -> String {
    format!("ENTRYPOINT {}", serde_json::to_string(args).unwrap())
}

/// `reference` made from `base` with `entrypoint` (a new image sharing `base`'s layer).
fn derive(base: &str, reference: &str, entrypoint_args: &[&str]) {
    let container = docker(&["create", base, "/bin/true"]);
    let container = container.trim();
    assert!(!container.is_empty(), "docker create {base}");
    docker(&[
        "commit",
        "--change",
        &entrypoint(entrypoint_args),
        container,
        reference,
    ]);
    docker(&["rm", container]);
    assert!(
        !docker(&["image", "ls", "-q", reference]).trim().is_empty(),
        "image {reference} made"
    );
}

fn present(reference: &str) -> bool {
    !docker(&["image", "ls", "-q", reference]).trim().is_empty()
}

/// The demo's images, as stand-ins. `redis:alpine` is made only when missing, so a real one
/// on a developer's machine is left alone.
fn shop_images() {
    let base = "keel-test/shop-base:1";
    import_image(base, &[], &[binary("shop-stub")]);
    for (service, port) in GRPC_SERVICES {
        derive(
            base,
            &format!("shop/{service}:v0.10.0"),
            &["/bin/shop-stub", "grpc", port],
        );
    }
    derive(
        base,
        "shop/frontend:v0.10.0",
        &["/bin/shop-stub", "frontend"],
    );
    derive(
        base,
        "shop/loadgenerator:v0.10.0",
        &[
            "/bin/sh",
            "-c",
            "while true; do wget -q -O /dev/null \"http://$FRONTEND_ADDR/\" || echo 'the frontend did not answer'; sleep 1; done",
        ],
    );
    if !present("redis:alpine") {
        derive(base, "redis:alpine", &["/bin/shop-stub", "tcp", "6379"]);
    }
    derive(base, LOCAL_BUSYBOX, &["/bin/sh"]);
}

/// What the init container's `busybox:latest` becomes: a `:latest` tag means
/// `imagePullPolicy: Always`, in keel as in Kubernetes, and no registry is reachable here.
const LOCAL_BUSYBOX: &str = "shop/busybox:local";

fn keel(data: &Path, server: &str, args: &[&str]) -> String {
    let out = Command::new(binary("keel"))
        .env("KEEL_DATA_DIR", data.join("server"))
        .args(args)
        .args(["--server", server])
        .output()
        .expect("keel runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_microservices_demo_runs_unchanged_until_every_pod_is_ready() {
    if !docker_available() {
        return;
    }
    shop_images();
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("shop");
    std::fs::create_dir_all(&repo).unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    let release = std::fs::read_to_string(
        workspace_root().join("tests/fixtures/microservices-demo/kubernetes-manifests.yaml"),
    )
    .unwrap();
    assert_eq!(release.matches("image: busybox:latest").count(), 1);
    std::fs::write(
        repo.join("kubernetes-manifests.yaml"),
        release.replace("image: busybox:latest", &format!("image: {LOCAL_BUSYBOX}")),
    )
    .unwrap();
    commit(&repo, "the shop's release manifest");

    let data = work.path().join("up");
    let listen = format!("127.0.0.1:{}", free_port());
    let server = format!("http://{listen}");
    let agents = free_port().to_string();
    let mut up = Up::start_with(
        &data,
        &listen,
        &agents,
        &[
            "--repo",
            repo.to_str().unwrap(),
            "--loadbalancer-pool",
            "10.250.0.240/29",
        ],
    );
    up.wait_output("keel is up.", Duration::from_secs(300));
    let output = up.output();
    assert!(
        output.contains("pods ready: 12/12"),
        "every pod of the 12 Deployments is Ready:\n{output}\n{}",
        keel(&data, &server, &["get", "pods"])
    );

    // Every pod runs and is Ready, the load generator's after its init container finished.
    let pods = keel(&data, &server, &["get", "pods"]);
    let rows: Vec<&str> = pods.lines().skip(1).collect();
    assert_eq!(rows.len(), 12, "{pods}");
    for row in &rows {
        let columns: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(columns.get(1..3), Some(&["1/1", "Running"][..]), "{pods}");
    }
    // The init container's check passed: the frontend answered 200, which it does only when
    // every backend answered its health check through cluster DNS and its Service.
    let loadgenerator = rows
        .iter()
        .find_map(|r| {
            r.split_whitespace()
                .next()
                .filter(|n| n.starts_with("loadgenerator-"))
        })
        .expect("a loadgenerator pod");
    let check = keel(
        &data,
        &server,
        &["logs", loadgenerator, "-c", "frontend-check"],
    );
    assert!(check.contains("Frontend is reachable."), "{check}");

    // The LoadBalancer Service got an address from the pool, and it answers from the
    // machine, which reaches keel up's LAN.
    let services = keel(&data, &server, &["get", "svc", "frontend-external"]);
    let external = services
        .lines()
        .nth(1)
        .and_then(|row| row.split_whitespace().nth(3))
        .unwrap_or_default()
        .to_string();
    assert!(external.starts_with("10.250.0.24"), "{services}");
    wait_until(
        Duration::from_secs(30),
        "the shop's frontend at its external address",
        || {
            http_get_path(&format!("{external}:80"), "/")
                .is_some_and(|body| body.contains("every backend is serving"))
        },
    );

    // A backend going away shows on the frontend, named (the check is not a constant), and
    // `git revert` brings it back.
    let manifest = repo.join("kubernetes-manifests.yaml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    let without_cart: Vec<&str> = text
        .split("\n---\n")
        .filter(|doc| !(doc.contains("kind: Deployment") && doc.contains("name: cartservice\n")))
        .collect();
    assert_eq!(without_cart.len(), text.split("\n---\n").count() - 1);
    std::fs::write(&manifest, without_cart.join("\n---\n")).unwrap();
    commit(&repo, "no cart");
    let frontend = || http_get_path(&format!("{external}:80"), "/").unwrap_or_default();
    wait_until(
        Duration::from_secs(60),
        "the frontend to name the missing cart",
        || frontend().contains("not serving: CART_SERVICE_ADDR=cartservice:7070"),
    );
    git(&repo, &["revert", "--no-edit", "HEAD"]);
    wait_until(Duration::from_secs(60), "the cart back", || {
        frontend().contains("every backend is serving")
    });
    assert_eq!(up.interrupt(), Some(0), "{}", up.output());
}
