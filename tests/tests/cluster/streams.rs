//! exec and port-forward against `keel up`'s real pods, as people use them: kubectl
//! (`exec` with exit codes, stdin, and `-it` through a pseudo-terminal; `port-forward` to a
//! server that listens on the pod's loopback only, megabytes each way), `keel exec` and
//! `keel port-forward`, and kube-rs, a third-party client.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use keel_e2e::binary;

use super::support::wait_until;

/// The bytes one side of a forward carries: enough for many frames and messages.
const BIG: usize = 3_000_000;

/// Runs the checks on `pod` (a Running web pod of the example app).
pub fn check(kubeconfig: &Path, data: &Path, server: &str, pod: &str) {
    let kubectl = |args: &[&str]| {
        Command::new("kubectl")
            .args(args)
            .env("KUBECONFIG", kubeconfig)
            .env("KUBECACHEDIR", kubeconfig.with_extension("cache"))
            .output()
            .expect("kubectl runs")
    };
    // Exit codes, and stdout apart from stderr.
    let out = kubectl(&[
        "exec",
        pod,
        "--",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "out\n");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("err\n") && stderr.contains("exit code 3"),
        "{stderr}"
    );
    // stdin, to its end.
    let cat = piped(
        Command::new("kubectl")
            .args(["exec", "-i", pod, "--", "sh", "-c", "wc -c; echo done"])
            .env("KUBECONFIG", kubeconfig),
        &vec![b'x'; 100_000],
    );
    assert_eq!(cat, "100000\ndone\n");
    // An interactive shell in a terminal of this size.
    let mut kubectl_it = Command::new("kubectl");
    kubectl_it
        .args(["exec", "-it", pod, "--", "sh"])
        .env("KUBECONFIG", kubeconfig);
    interactive(kubectl_it, "kubectl exec -it");
    let mut keel_it = Command::new(binary("keel"));
    keel_it
        .args(["exec", "-it", pod, "--server", server, "--", "sh"])
        .env("KEEL_DATA_DIR", data.join("server"));
    interactive(keel_it, "keel exec -it");
    // keel exec: the exit code is keel's; stdin is passed.
    let keel_exec = |args: &[&str]| {
        let mut command = Command::new(binary("keel"));
        command
            .args(["exec", "--server", server])
            .args(args)
            .env("KEEL_DATA_DIR", data.join("server"));
        command
    };
    let status = keel_exec(&[pod, "--", "sh", "-c", "exit 7"])
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(7));
    let echoed = piped(&mut keel_exec(&["-i", pod, "--", "cat"]), b"through keel\n");
    assert_eq!(echoed, "through keel\n");
    let missing = keel_exec(&["no-such-pod", "--", "true"]).output().unwrap();
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("pods \"no-such-pod\" not found"),
        "{missing:?}"
    );

    // port-forward: a server on the pod's loopback only, reached from inside its namespace.
    let started = kubectl(&[
        "exec",
        pod,
        "--",
        "sh",
        "-c",
        &format!(
            "mkdir -p /tmp/www && head -c {BIG} /dev/urandom > /tmp/www/big && \
             httpd -p 127.0.0.1:7777 -h /tmp/www && (nc -l -p 7001 > /tmp/up &) && \
             sha256sum /tmp/www/big"
        ),
    ]);
    assert!(started.status.success(), "{started:?}");
    let remote_sum = String::from_utf8_lossy(&started.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string();
    // Local ports the system picks (`:REMOTE`), read back from what kubectl says.
    let mut forward = Command::new("kubectl")
        .args(["port-forward", pod, ":7777", ":7001", ":9999"])
        .env("KUBECONFIG", kubeconfig)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let local = listening(&mut forward, 3);
    let (local_http, local_up, local_refused) = (local[&7777], local[&7001], local[&9999]);
    let page = http_body(local_http, "/big");
    assert_eq!(page.len(), BIG);
    assert_eq!(sha256(&page), remote_sum, "the download arrives whole");
    let mut upload = std::net::TcpStream::connect(("127.0.0.1", local_up)).unwrap();
    upload.write_all(&vec![7u8; BIG]).unwrap();
    // Half-closed: the pod's side reads end-of-file, and nc ends.
    upload.shutdown(std::net::Shutdown::Write).unwrap();
    wait_until(
        Duration::from_secs(30),
        "the upload to arrive whole",
        || {
            let counted = kubectl(&["exec", pod, "--", "wc", "-c", "/tmp/up"]);
            String::from_utf8_lossy(&counted.stdout).starts_with(&format!("{BIG} "))
        },
    );
    drop(upload);
    // A port nothing listens on: kubectl reports the pod's refusal (and, as since 1.30, stops).
    let mut refused = std::net::TcpStream::connect(("127.0.0.1", local_refused)).unwrap();
    let _ = refused.set_read_timeout(Some(Duration::from_secs(10)));
    let _ = refused.read(&mut [0u8; 16]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while forward.try_wait().unwrap().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = forward.kill();
    let said = forward.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&said.stderr);
    assert!(
        said.contains("forwarding port 9999") && said.contains("Connection refused"),
        "{said}"
    );

    // keel port-forward, to the web server.
    let mut keel_forward = Command::new(binary("keel"))
        .args(["port-forward", pod, ":8080", "--server", server])
        .env("KEEL_DATA_DIR", data.join("server"))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let local = listening(&mut keel_forward, 1)[&8080];
    let page = String::from_utf8_lossy(&http_body(local, "/")).into_owned();
    assert!(
        page.contains(&format!("Served by pod <b>{pod}</b>")),
        "{page}"
    );
    let _ = keel_forward.kill();
    let _ = keel_forward.wait();

    kube_rs(kubeconfig, pod);
}

/// kube-rs: exec with its exit status, and port-forward.
fn kube_rs(kubeconfig: &Path, pod: &str) {
    use k8s_openapi::api::core::v1::Pod;
    use kube::api::{Api, AttachParams};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let text = std::fs::read_to_string(kubeconfig).unwrap();
        let kubeconfig = kube::config::Kubeconfig::from_yaml(&text).unwrap();
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .unwrap();
        let pods: Api<Pod> = Api::default_namespaced(kube::Client::try_from(config).unwrap());
        let command = ["sh", "-c", "echo $((6*7)); exit 2"];
        let mut attached = pods
            .exec(pod, command, &AttachParams::default().stderr(false))
            .await
            .unwrap();
        let mut output = String::new();
        attached
            .stdout()
            .unwrap()
            .read_to_string(&mut output)
            .await
            .unwrap();
        assert_eq!(output, "42\n");
        let status = attached.take_status().unwrap().await.unwrap();
        let cause = status.details.and_then(|d| d.causes).unwrap_or_default();
        assert_eq!(status.reason.as_deref(), Some("NonZeroExitCode"));
        assert_eq!(cause[0].message.as_deref(), Some("2"));

        let mut forwarder = pods.portforward(pod, &[8080]).await.unwrap();
        let mut connection = forwarder.take_stream(8080).unwrap();
        connection
            .write_all(b"GET / HTTP/1.0\r\nHost: web\r\n\r\n")
            .await
            .unwrap();
        let mut answer = Vec::new();
        connection.read_to_end(&mut answer).await.unwrap();
        let answer = String::from_utf8_lossy(&answer);
        assert!(
            answer.contains(&format!("Served by pod <b>{pod}</b>")),
            "{answer}"
        );
        drop(connection);
        // The server closes the session once the pod's side has ended, as the kubelet does;
        // kube-rs 5 then still sends its own Close, which tungstenite refuses
        // (SendAfterClosing). Anything else, or no end, is a fault.
        let joined = tokio::time::timeout(Duration::from_secs(10), forwarder.join())
            .await
            .expect("the forwarder ends once its connection is dropped");
        if let Err(e) = joined {
            assert!(format!("{e:?}").contains("SendAfterClosing"), "{e:?}");
        }
    });
}

/// Runs `command` in a pseudo-terminal of 101×33, types a few lines, and checks what the
/// shell saw and the exit code.
fn interactive(mut command: Command, what: &str) {
    let size = nix::pty::Winsize {
        ws_row: 33,
        ws_col: 101,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    let pty = nix::pty::openpty(Some(&size), None).unwrap();
    let stdio = |fd: &OwnedFd| Stdio::from(fd.try_clone().unwrap());
    command
        .stdin(stdio(&pty.slave))
        .stdout(stdio(&pty.slave))
        .stderr(stdio(&pty.slave));
    let mut child = command.spawn().unwrap();
    // Only the child holds the terminal now: its end is our end-of-file.
    drop(command);
    drop(pty.slave);
    let mut terminal = std::fs::File::from(pty.master);
    let mut reader = terminal.try_clone().unwrap();
    let all = Arc::new(Mutex::new(Vec::new()));
    let seen = std::thread::spawn({
        let all = all.clone();
        move || {
            let mut buffer = [0u8; 4096];
            while let Ok(n) = reader.read(&mut buffer) {
                if n == 0 {
                    break;
                }
                all.lock().unwrap().extend_from_slice(&buffer[..n]);
            }
        }
    });
    // Typed once the shell is there: its prompt has arrived.
    wait_until(Duration::from_secs(30), "the shell's prompt", || {
        String::from_utf8_lossy(&all.lock().unwrap()).contains("# ")
    });
    terminal
        .write_all(b"tty; stty size; echo $((6*7)); exit 5\r")
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "{what} did not end");
        std::thread::sleep(Duration::from_millis(100));
    };
    seen.join().unwrap();
    let seen = String::from_utf8_lossy(&all.lock().unwrap()).into_owned();
    assert_eq!(status.code(), Some(5), "{what}: {seen}");
    assert!(seen.contains("/dev/pts/"), "{what} has a terminal: {seen}");
    assert!(seen.contains("33 101"), "{what} passes the size: {seen}");
    assert!(seen.contains("42"), "{what}: {seen}");
}

/// Runs `command` with `input` on its stdin; its stdout.
fn piped(command: &mut Command, input: &[u8]) -> String {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Reads a port-forward's "Forwarding from 127.0.0.1:LOCAL -> REMOTE" lines (kubectl's and
/// keel's) until `ports` have been said: remote port to local port. Each is listening by then.
fn listening(forward: &mut std::process::Child, ports: usize) -> HashMap<u16, u16> {
    let mut said = std::io::BufReader::new(forward.stdout.take().unwrap());
    let mut local = HashMap::new();
    while local.len() < ports {
        let mut line = String::new();
        assert!(
            std::io::BufRead::read_line(&mut said, &mut line).unwrap() > 0,
            "port-forward stopped before listening: {local:?}"
        );
        let Some(rest) = line.trim().strip_prefix("Forwarding from 127.0.0.1:") else {
            continue;
        };
        let (from, to) = rest.split_once(" -> ").unwrap();
        local.insert(to.parse().unwrap(), from.parse().unwrap());
    }
    // The rest of what it says goes nowhere, without blocking it.
    std::thread::spawn(move || std::io::copy(&mut said, &mut std::io::sink()));
    local
}

/// The body of `GET path` on 127.0.0.1:`port` (HTTP/1.0: the server closes when done).
fn http_body(port: u16, path: &str) -> Vec<u8> {
    let mut connection = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    connection
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(connection, "GET {path} HTTP/1.0\r\nHost: pod\r\n\r\n").unwrap();
    // Done sending: the answer must still come back whole after a half-close.
    connection.shutdown(std::net::Shutdown::Write).unwrap();
    let mut answer = Vec::new();
    connection.read_to_end(&mut answer).unwrap();
    // The example's server ends its headers with a bare blank line.
    let split = (0..answer.len())
        .find_map(|at| {
            let rest = &answer[at..];
            (rest.starts_with(b"\r\n\r\n").then_some(at + 4))
                .or_else(|| rest.starts_with(b"\n\n").then_some(at + 2))
        })
        .unwrap_or_else(|| panic!("no end of headers: {answer:?}"));
    answer.split_off(split)
}

fn sha256(bytes: &[u8]) -> String {
    let out = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            child.stdin.take().unwrap().write_all(bytes)?;
            child.wait_with_output()
        })
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}
