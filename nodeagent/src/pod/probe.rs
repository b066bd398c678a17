//! Liveness, readiness and startup probes: httpGet, tcpSocket and exec, with Kubernetes'
//! defaults and thresholds. A probe's result counts only after `successThreshold` successes or
//! `failureThreshold` failures in a row.

use std::sync::Arc;
use std::time::Duration;

use keel_schema::intorstr::IntOrString;
use keel_schema::types::pod::{Container, Probe};
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

fn secs(v: Option<i64>, default: i64) -> Duration {
    Duration::from_secs(v.unwrap_or(default).max(0) as u64)
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
    pub fn record(&mut self, result: Result<(), String>, now: Instant) -> bool {
        self.in_flight = false;
        self.next_at = now + self.period();
        let before = self.verdict;
        match result {
            Ok(()) => {
                self.failures = 0;
                self.successes += 1;
                if self.successes >= self.probe.success_threshold.unwrap_or(1).max(1) {
                    self.verdict = Verdict::Success;
                }
            }
            Err(message) => {
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
) -> Result<(), String> {
    if !runtime.probes_are_real() {
        return Ok(());
    }
    if let Some(exec) = &probe.exec {
        let cmd = exec.command.clone().unwrap_or_default();
        let outcome = runtime
            .exec(&container_id, &cmd, timeout)
            .await
            .map_err(|e| e.to_string())?;
        return if outcome.exit_code == 0 {
            Ok(())
        } else {
            Err(format!(
                "command {cmd:?} exited with {}: {}",
                outcome.exit_code,
                outcome.output.trim()
            ))
        };
    }
    let host = |h: Option<&String>| {
        h.filter(|h| !h.is_empty())
            .cloned()
            .or(pod_ip.clone())
            .ok_or_else(|| "the pod has no IP yet".to_string())
    };
    if let Some(tcp) = &probe.tcp_socket {
        let port = resolve_port(tcp.port.as_ref(), &container)?;
        let host = host(tcp.host.as_ref())?;
        let addr = format!("{host}:{port}");
        return match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(&addr)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(format!("dial tcp {addr}: {e}")),
            Err(_) => Err(format!("dial tcp {addr}: i/o timeout")),
        };
    }
    if let Some(http) = &probe.http_get {
        let port = resolve_port(http.port.as_ref(), &container)?;
        let host = host(http.host.as_ref())?;
        let scheme = http.scheme.as_deref().unwrap_or("HTTP");
        if scheme.eq_ignore_ascii_case("HTTPS") {
            return Err("HTTPS probes are not supported by this agent yet".to_string());
        }
        let path = http.path.as_deref().unwrap_or("/");
        let path = if path.starts_with('/') {
            path.to_string()
        } else {
            format!("/{path}")
        };
        let url = format!("http://{host}:{port}{path}");
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::limited(10))
            .no_proxy()
            .build()
            .map_err(|e| e.to_string())?;
        let mut req = client.get(&url).header("User-Agent", "keel-probe/1.0");
        for h in http.http_headers.iter().flatten() {
            req = req.header(h.name.as_str(), h.value.as_str());
        }
        return match req.send().await {
            Ok(resp) if (200..400).contains(&resp.status().as_u16()) => Ok(()),
            Ok(resp) => Err(format!(
                "HTTP probe failed with statuscode: {}",
                resp.status().as_u16()
            )),
            Err(e) if e.is_timeout() => Err(format!(
                "Get \"{url}\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
            )),
            Err(e) => Err(format!("Get \"{url}\": {e}")),
        };
    }
    Err("the probe has no handler (httpGet, tcpSocket or exec)".to_string())
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
        assert!(!p.record(Ok(()), now));
        assert_eq!(p.verdict, Verdict::Unknown);
        assert!(p.record(Ok(()), now));
        assert_eq!(p.verdict, Verdict::Success);
        assert!(!p.record(Err("x".into()), now));
        assert!(!p.record(Err("x".into()), now));
        assert_eq!(p.verdict, Verdict::Success);
        assert!(p.record(Err("x".into()), now));
        assert_eq!(p.verdict, Verdict::Failure);
        assert_eq!(p.next_at, now + Duration::from_secs(10));
    }
}
