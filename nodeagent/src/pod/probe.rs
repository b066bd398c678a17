//! Liveness, readiness and startup probes: httpGet, tcpSocket, grpc ([`super::grpc_probe`])
//! and exec, with Kubernetes' defaults and thresholds. A probe's result counts only after
//! `successThreshold` successes or `failureThreshold` failures in a row.

use std::sync::Arc;
use std::time::Duration;

use keel_schema::intorstr::IntOrString;
use keel_schema::types::pod::{Container, HttpGetAction, Probe};
use tokio::time::Instant;

use crate::runtime::Runtime;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProbeKind {
    Liveness,
    Readiness,
    Startup,
}

impl ProbeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProbeKind::Liveness => "Liveness",
            ProbeKind::Readiness => "Readiness",
            ProbeKind::Startup => "Startup",
        }
    }
}

/// A probe's verdict, once its threshold is met.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Unknown,
    Success,
    Failure,
}

/// One probe of one running container.
#[derive(Debug, Clone)]
pub struct ProbeState {
    pub kind: ProbeKind,
    pub probe: Probe,
    pub next_at: Instant,
    pub in_flight: bool,
    successes: i64,
    failures: i64,
    pub verdict: Verdict,
    pub last_message: Option<String>,
}

/// Kubernetes' probe fields are int32; anything beyond is clamped so no deadline overflows.
fn secs(v: Option<i64>, default: i64) -> Duration {
    Duration::from_secs(v.unwrap_or(default).clamp(0, i64::from(i32::MAX)) as u64)
}

/// One probe run's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure(String),
    /// The probe could not be run (the engine did not answer): counts neither way, as the
    /// kubelet does.
    Unknown(String),
}

impl ProbeState {
    pub fn new(kind: ProbeKind, probe: Probe, started: Instant) -> Self {
        Self {
            kind,
            next_at: started + secs(probe.initial_delay_seconds, 0),
            probe,
            in_flight: false,
            successes: 0,
            failures: 0,
            verdict: Verdict::Unknown,
            last_message: None,
        }
    }

    pub fn period(&self) -> Duration {
        secs(self.probe.period_seconds, 10).max(Duration::from_secs(1))
    }

    pub fn timeout(&self) -> Duration {
        secs(self.probe.timeout_seconds, 1).max(Duration::from_secs(1))
    }

    /// Records one result; returns true when the verdict changed.
    pub fn record(&mut self, result: Outcome, now: Instant) -> bool {
        self.in_flight = false;
        self.next_at = now + self.period();
        let before = self.verdict;
        match result {
            Outcome::Unknown(_) => {}
            Outcome::Success => {
                self.failures = 0;
                self.successes += 1;
                if self.successes >= self.probe.success_threshold.unwrap_or(1).max(1) {
                    self.verdict = Verdict::Success;
                }
            }
            Outcome::Failure(message) => {
                self.successes = 0;
                self.failures += 1;
                self.last_message = Some(message);
                if self.failures >= self.probe.failure_threshold.unwrap_or(3).max(1) {
                    self.verdict = Verdict::Failure;
                }
            }
        }
        before != self.verdict
    }
}

fn resolve_port(port: Option<&IntOrString>, c: &Container) -> Result<u16, String> {
    match port {
        Some(IntOrString::Int(p)) => {
            u16::try_from(*p).map_err(|_| format!("port {p} is out of range"))
        }
        Some(IntOrString::Str(name)) => c
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some(name.as_str()))
            .and_then(|p| u16::try_from(p.container_port).ok())
            .ok_or_else(|| format!("no container port named {name:?}")),
        None => Err("no port given".to_string()),
    }
}

/// Runs `probe` once against container `container_id` (pod IP `pod_ip`).
pub async fn run(
    runtime: Arc<dyn Runtime>,
    container_id: String,
    pod_ip: Option<String>,
    container: Container,
    probe: Probe,
    timeout: Duration,
) -> Outcome {
    if !runtime.probes_are_real() {
        return Outcome::Success;
    }
    if let Some(exec) = &probe.exec {
        let cmd = exec.command.clone().unwrap_or_default();
        return match runtime.exec(&container_id, &cmd, timeout).await {
            Ok(o) if o.exit_code == 0 => Outcome::Success,
            Ok(o) => Outcome::Failure(format!(
                "command {cmd:?} exited with {}: {}",
                o.exit_code,
                o.output.trim()
            )),
            Err(crate::runtime::RuntimeError::Unavailable(e)) => Outcome::Unknown(e),
            Err(e) => Outcome::Failure(e.to_string()),
        };
    }
    match network_probe(pod_ip, &container, &probe, timeout).await {
        Ok(()) => Outcome::Success,
        Err(message) => Outcome::Failure(message),
    }
}

/// Installs rustls' ring provider once, for HTTPS probes.
fn crypto() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

async fn network_probe(
    pod_ip: Option<String>,
    container: &Container,
    probe: &Probe,
    timeout: Duration,
) -> Result<(), String> {
    let host = |h: Option<&String>| {
        h.filter(|h| !h.is_empty())
            .cloned()
            .or(pod_ip.clone())
            .ok_or_else(|| "the pod has no IP yet".to_string())
    };
    if let Some(tcp) = &probe.tcp_socket {
        let port = resolve_port(tcp.port.as_ref(), container)?;
        return tcp_probe(&host(tcp.host.as_ref())?, port, timeout).await;
    }
    if let Some(http) = &probe.http_get {
        let port = resolve_port(http.port.as_ref(), container)?;
        return http_probe(http, &host(http.host.as_ref())?, port, timeout).await;
    }
    if let Some(grpc) = &probe.grpc {
        let port =
            u16::try_from(grpc.port).map_err(|_| format!("port {} is out of range", grpc.port))?;
        let service = grpc.service.as_deref().unwrap_or("");
        return super::grpc_probe::check(&host(None)?, port, service, timeout).await;
    }
    Err("the probe has no handler (httpGet, tcpSocket, grpc or exec)".to_string())
}

async fn tcp_probe(
    host: &str,
    port: impl std::fmt::Display,
    timeout: Duration,
) -> Result<(), String> {
    let addr = format!("{host}:{port}");
    match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(&addr)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(format!("dial tcp {addr}: {e}")),
        Err(_) => Err(format!("dial tcp {addr}: i/o timeout")),
    }
}

/// The URL an HTTP probe asks for.
fn probe_url(http: &HttpGetAction, host: &str, port: impl std::fmt::Display) -> String {
    let https = http
        .scheme
        .as_deref()
        .is_some_and(|s| s.eq_ignore_ascii_case("HTTPS"));
    let scheme = if https { "https" } else { "http" };
    let path = http.path.as_deref().unwrap_or("/");
    let path = if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/{path}")
    };
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    };
    format!("{scheme}://{host}:{port}{path}")
}

/// As the kubelet: 200–399 is success; redirects are followed on the same host only
/// (another host's redirect counts as success), and HTTPS certificates are not verified.
async fn http_probe(
    http: &HttpGetAction,
    host: &str,
    port: impl std::fmt::Display,
    timeout: Duration,
) -> Result<(), String> {
    // reqwest's TLS layer wants a crypto provider even for plain HTTP clients.
    crypto();
    let url = probe_url(http, host, port);
    let same_host = host.to_string();
    let client = reqwest::Client::builder()
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() >= 10 {
                attempt.error("stopped after 10 redirects")
            } else if attempt.url().host_str().map(|h| h.trim_matches(['[', ']']))
                == Some(same_host.as_str())
            {
                attempt.follow()
            } else {
                attempt.stop()
            }
        }))
        .danger_accept_invalid_certs(true)
        .no_proxy()
        .build()
        .map_err(|e| e.to_string())?;
    let mut req = client.get(&url).header("User-Agent", "keel-probe/1.0");
    for h in http.http_headers.iter().flatten() {
        req = req.header(h.name.as_str(), h.value.as_str());
    }
    match req.send().await {
        Ok(resp) if (200..400).contains(&resp.status().as_u16()) => Ok(()),
        Ok(resp) => Err(format!(
            "HTTP probe failed with statuscode: {}",
            resp.status().as_u16()
        )),
        Err(e) if e.is_timeout() => Err(format!(
            "Get \"{url}\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
        )),
        Err(e) => Err(format!("Get \"{url}\": {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(success: i64, failure: i64) -> Probe {
        Probe {
            success_threshold: Some(success),
            failure_threshold: Some(failure),
            ..Default::default()
        }
    }

    #[test]
    fn verdicts_wait_for_their_thresholds() {
        let now = Instant::now();
        let mut p = ProbeState::new(ProbeKind::Readiness, probe(2, 3), now);
        let fail = || Outcome::Failure("x".into());
        assert!(!p.record(Outcome::Success, now));
        assert_eq!(p.verdict, Verdict::Unknown);
        assert!(p.record(Outcome::Success, now));
        assert_eq!(p.verdict, Verdict::Success);
        assert!(!p.record(fail(), now));
        assert!(!p.record(fail(), now));
        assert!(!p.record(Outcome::Unknown("engine down".into()), now));
        assert_eq!(p.verdict, Verdict::Success);
        assert!(p.record(fail(), now));
        assert_eq!(p.verdict, Verdict::Failure);
        assert_eq!(p.next_at, now + Duration::from_secs(10));
    }

    #[test]
    fn huge_periods_do_not_overflow_deadlines() {
        let now = Instant::now();
        let mut huge = probe(1, 1);
        huge.initial_delay_seconds = Some(i64::MAX);
        huge.period_seconds = Some(i64::MAX);
        let mut p = ProbeState::new(ProbeKind::Liveness, huge, now);
        p.record(Outcome::Success, now);
        assert!(p.next_at > now);
    }
}
