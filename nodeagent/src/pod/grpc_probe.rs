//! gRPC probes, as the kubelet runs them: one `grpc.health.v1.Health/Check` call over
//! plaintext HTTP/2 to the pod's IP, healthy only when the answer is `SERVING`. Failures are
//! worded as the kubelet words them, so they read the same in events.

use std::time::Duration;

use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// Asks `host:port` whether `service` (`""`: the whole server) is serving, within `timeout`
/// for the connection and again for the call.
pub async fn check(host: &str, port: u16, service: &str, timeout: Duration) -> Result<(), String> {
    let authority = match host.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V6(ip)) => format!("[{ip}]:{port}"),
        _ => format!("{host}:{port}"),
    };
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{authority}"))
        .map_err(|e| format!("invalid address {authority}: {e}"))?
        .connect_timeout(timeout)
        .timeout(timeout);
    let within = humantime::format_duration(timeout);
    let channel = match tokio::time::timeout(timeout, endpoint.connect()).await {
        Ok(Ok(channel)) => channel,
        Ok(Err(e)) => return Err(format!("failed to connect service {authority:?}: {e}")),
        Err(_) => {
            return Err(format!(
                "timeout: failed to connect service {authority:?} within {within}"
            ));
        }
    };
    let request = HealthCheckRequest {
        service: service.to_string(),
    };
    let answer = tokio::time::timeout(timeout, HealthClient::new(channel).check(request)).await;
    match answer {
        Ok(Ok(response)) => {
            let status = response.into_inner().status();
            if status == ServingStatus::Serving {
                Ok(())
            } else {
                Err(format!(
                    "service unhealthy (responded with {:?})",
                    status.as_str_name()
                ))
            }
        }
        Ok(Err(status)) => Err(format!(
            "rpc error: code = {:?} desc = {}",
            status.code(),
            status.message()
        )),
        Err(_) => Err(format!(
            "timeout: health rpc did not complete within {within}"
        )),
    }
}
