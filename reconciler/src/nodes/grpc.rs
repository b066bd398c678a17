//! The `ControlPlane` gRPC service agents call, and the one place its server is built.
//!
//! Over mutual TLS (the default) a caller is who its certificate says: `Register` and
//! `ReportStatus` are taken only from the named node's own certificate, `Renew` renews the
//! caller's own, and `Join` (the one call without a certificate) needs a join token.
//! `--insecure` serves plaintext and trusts the names in the messages.
//!
//! Every server serves this endpoint, but only the leader answers agents: a follower
//! refuses `Register`, `ReportStatus` and `Join` as `UNAVAILABLE`, naming the leader, and
//! the agent moves on to the next server it was given. A leader's open status streams end
//! with its term, so its agents move to the next leader.

use keel_agent_protocol::control_plane_server::{ControlPlane, ControlPlaneServer};
use keel_agent_protocol::status_report::Report;
use keel_agent_protocol::{
    JoinRequest, JoinResponse, NextSetRequest, NodeDesired, RegisterRequest, RegisterResponse,
    RenewRequest, RenewResponse, StatusAck, StatusReport,
};
use keel_tls::Identity;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status, Streaming};

use super::{NodeRegistry, RegisterError};
use crate::auth::node_bindings::{BindingError, NodeBindings};
use crate::auth::pki::ControlPlanePki;
use crate::auth::stored_tokens::{StoredTokens, TokenError};

/// Status reports and registrations are small; this bounds what one message may cost.
const MAX_MESSAGE_BYTES: usize = 1024 * 1024;
/// How long an agent's `NextSet` waits for a set before it is answered with none (and the
/// agent asks again): well inside any proxy's idle timeout.
const NEXT_SET_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Who answers agents now.
#[derive(Clone)]
pub enum Serving {
    /// This server leads: the term's registry, and the term's stop (its streams end then).
    Leader {
        registry: NodeRegistry,
        term: CancellationToken,
    },
    /// Another server leads (its advertised HTTP address, when known), or nobody yet.
    Follower { leader: Option<String> },
}

pub struct ControlPlaneService {
    pub serving: watch::Receiver<Serving>,
    /// Cancelled when the control plane stops: open status streams end then, or a graceful
    /// shutdown would wait for them for ever.
    pub stop: CancellationToken,
    /// `None` under `--insecure`.
    pub pki: Option<Arc<ControlPlanePki>>,
    pub join_tokens: Arc<StoredTokens>,
    pub bindings: NodeBindings,
}

/// A node's certificate as presented on a call: its node name, serial and expiry.
struct NodeCertificate {
    node: String,
    serial: String,
    not_before: Option<i64>,
    expires: Option<chrono::DateTime<chrono::Utc>>,
}

fn binding_refusal(e: BindingError) -> Status {
    match e {
        BindingError::Taken(_) => Status::already_exists(e.to_string()),
        BindingError::Revoked(_) => Status::permission_denied(e.to_string()),
        BindingError::Store(_) => Status::unavailable(e.to_string()),
    }
}

impl ControlPlaneService {
    /// The leader's registry and term, or the refusal a follower gives.
    fn leading(&self) -> Result<(NodeRegistry, CancellationToken), Status> {
        match &*self.serving.borrow() {
            Serving::Leader { registry, term } => Ok((registry.clone(), term.clone())),
            Serving::Follower { leader } => Err(Status::unavailable(match leader {
                Some(l) => format!("not the leader: this keel server follows {l}; try the next server"),
                None => "not the leader: no keel server leads right now (election in progress); try again".to_string(),
            })),
        }
    }

    /// The calling node, from its certificate; `None` under `--insecure`. A call without a
    /// node certificate is refused.
    fn calling_node<T>(&self, request: &Request<T>) -> Result<Option<NodeCertificate>, Status> {
        if self.pki.is_none() {
            return Ok(None);
        }
        let leaf = request
            .peer_certs()
            .and_then(|certs| certs.first().cloned())
            .ok_or_else(|| {
                Status::unauthenticated(
                    "a node certificate is required; start keel-agent with --token to join first",
                )
            })?;
        match Identity::of_certificate(&leaf) {
            Some(Identity::Node(node)) => Ok(Some(NodeCertificate {
                node,
                serial: keel_tls::identity::serial(&leaf).unwrap_or_default(),
                not_before: keel_tls::identity::not_before(&leaf),
                expires: keel_tls::identity::not_after(&leaf)
                    .and_then(|t| chrono::DateTime::from_timestamp(t, 0)),
            })),
            other => Err(Status::permission_denied(format!(
                "only a node's certificate may call this, not {}",
                other
                    .map(|i| i.to_string())
                    .unwrap_or_else(|| "a certificate without a keel identity".into())
            ))),
        }
    }
}

/// One report from a node's status stream, recorded.
async fn take_report(registry: &NodeRegistry, report: &StatusReport) {
    let name = report.node_name.as_str();
    match &report.report {
        Some(Report::Heartbeat(beat)) => {
            registry
                .heartbeat(name, Some(beat.applied_generation))
                .await
        }
        Some(Report::PodEvent(event)) => {
            registry.heartbeat(name, None).await;
            registry.pod_event(name, event).await;
        }
        Some(Report::PodStatus(update)) => {
            registry.heartbeat(name, None).await;
            registry.pod_status(name, update).await;
        }
        Some(Report::VolumeRemoved(removed)) => {
            registry.heartbeat(name, None).await;
            registry.volume_removed(name, &removed.handle).await;
        }
        None => {}
    }
}

fn not_yours(cert: &NodeCertificate, claimed: &str) -> Status {
    tracing::warn!(certificate = %cert.node, claimed = %claimed, "refused a node speaking for another node");
    Status::permission_denied(format!(
        "this certificate is node {:?}'s; it cannot speak for node {claimed:?}",
        cert.node
    ))
}

#[tonic::async_trait]
impl ControlPlane for ControlPlaneService {
    async fn register(
        &self,
        request: Request<RegisterRequest>,
    ) -> Result<Response<RegisterResponse>, Status> {
        let caller = self.calling_node(&request)?;
        let req = request.into_inner();
        if let Some(cert) = &caller
            && cert.node != req.node_name
        {
            return Err(not_yours(cert, &req.node_name));
        }
        let (registry, _) = self.leading()?;
        if let Some(cert) = &caller {
            self.bindings
                .check(&cert.node, &cert.serial, cert.not_before)
                .await
                .map_err(binding_refusal)?;
        }
        let expires = caller.and_then(|c| c.expires);
        let registered = registry
            .register(&req, expires)
            .await
            .map_err(|e| match e {
                RegisterError::Invalid(m) => Status::invalid_argument(m),
                RegisterError::Exhausted(m) => Status::resource_exhausted(m),
                RegisterError::Store(m) => Status::unavailable(m),
            })?;
        // Node sync numbers a node's sets with the store revision they were read at, so the
        // next one is at least the current revision (the agent lowers its floor to it when
        // this control plane restarted and counts from there).
        let next_generation = registry.store_revision().await.max(1);
        Ok(Response::new(RegisterResponse {
            next_generation,
            pod_cidr: registered.pod_cidr.to_string(),
            cluster_cidr: registry.pod_network().cluster().to_string(),
            heartbeat_interval_ms: u64::try_from(registry.heartbeat_interval().as_millis())
                .unwrap_or(u64::MAX),
        }))
    }

    async fn report_status(
        &self,
        request: Request<Streaming<StatusReport>>,
    ) -> Result<Response<StatusAck>, Status> {
        let caller = self.calling_node(&request)?;
        let (registry, term) = self.leading()?;
        let mut stream = request.into_inner();
        let mut node: Option<String> = None;
        let stop = self.stop.clone();
        loop {
            let report = tokio::select! {
                msg = stream.message() => match msg? {
                    Some(r) => r,
                    None => break,
                },
                _ = stop.cancelled() => {
                    return Err(Status::unavailable("the control plane is shutting down"));
                }
                _ = term.cancelled() => {
                    return Err(Status::unavailable("not the leader any more: this keel server's term ended; try the next server"));
                }
            };
            if let Some(cert) = &caller
                && cert.node != report.node_name
            {
                return Err(not_yours(cert, &report.node_name));
            }
            match &node {
                None => {
                    if !registry.is_registered(&report.node_name) {
                        return Err(Status::failed_precondition(format!(
                            "node {:?} is not registered; call Register first",
                            report.node_name
                        )));
                    }
                    if let Some(cert) = &caller {
                        // Boxed for the same reason as the report's handling below: the
                        // check reads (and may write) the store, whose futures are large.
                        Box::pin(
                            self.bindings
                                .check(&cert.node, &cert.serial, cert.not_before),
                        )
                        .await
                        .map_err(binding_refusal)?;
                    }
                    node = Some(report.node_name.clone());
                }
                Some(n) if *n != report.node_name => {
                    return Err(Status::invalid_argument(format!(
                        "this stream is node {n:?}'s, not {:?}",
                        report.node_name
                    )));
                }
                Some(_) => {}
            }
            // Boxed: the stream lives as long as its node, and with the report's handling
            // inline its future was about 18 KB per node, idle or not.
            Box::pin(take_report(&registry, &report)).await;
        }
        Ok(Response::new(StatusAck {}))
    }

    async fn next_set(
        &self,
        request: Request<NextSetRequest>,
    ) -> Result<Response<NodeDesired>, Status> {
        let caller = self.calling_node(&request)?;
        let (registry, term) = self.leading()?;
        let req = request.into_inner();
        if let Some(cert) = &caller {
            if cert.node != req.node_name {
                return Err(not_yours(cert, &req.node_name));
            }
            // On every call, not once per connection: a set carries the node's Secrets, and
            // a revoked certificate must stop getting them at once.
            Box::pin(
                self.bindings
                    .check(&cert.node, &cert.serial, cert.not_before),
            )
            .await
            .map_err(binding_refusal)?;
        }
        let Some(handoff) = registry.handoff(&req.node_name) else {
            return Err(Status::failed_precondition(format!(
                "node {:?} did not register to take its sets; call Register with takes_sets first",
                req.node_name
            )));
        };
        let set = tokio::select! {
            set = handoff.next(req.outcome, NEXT_SET_WAIT) => set,
            _ = self.stop.cancelled() => {
                return Err(Status::unavailable("the control plane is shutting down"));
            }
            _ = term.cancelled() => {
                return Err(Status::unavailable("not the leader any more: this keel server's term ended; try the next server"));
            }
        };
        // None came: an empty set (generation 0), and the agent asks again.
        Ok(Response::new(set.unwrap_or_default()))
    }

    async fn join(&self, request: Request<JoinRequest>) -> Result<Response<JoinResponse>, Status> {
        let Some(pki) = &self.pki else {
            return Err(Status::failed_precondition(
                "this control plane runs with --insecure; start the agent with --insecure too",
            ));
        };
        let peer = request.remote_addr();
        let req = request.into_inner();
        if let Some(why) = keel_schema::validate::names::dns1123_subdomain(&req.node_name) {
            return Err(Status::invalid_argument(format!(
                "node name {:?}: {why}",
                req.node_name
            )));
        }
        // The name goes into the certificate's DNS name (NAME.node.keel), which has limits
        // of its own.
        if Identity::Node(req.node_name.clone()).server_name().is_err()
            || req.node_name.split('.').any(|l| l.len() > 63)
            || req.node_name.len() > 243
        {
            return Err(Status::invalid_argument(format!(
                "node name {:?} is too long for a certificate (at most 243 characters, 63 per label)",
                req.node_name
            )));
        }
        // Checked before anything from this unauthenticated caller is logged or looked up.
        if !keel_tls::join_token::well_formed(&req.token_id, &req.token_secret) {
            return Err(Status::invalid_argument(
                "the join token is malformed; give it as `keel token create` printed it",
            ));
        }
        if let Err(e) = self
            .join_tokens
            .check(&req.token_id, &req.token_secret)
            .await
        {
            tracing::warn!(node = %req.node_name, token = %req.token_id, peer = ?peer, reason = %e, "refused a join");
            // One answer for unknown and wrong: the caller learns nothing about which ids exist.
            let message = match e {
                TokenError::Expired(_) => e.to_string(),
                TokenError::Store(_) => return Err(Status::unavailable(e.to_string())),
                _ => {
                    "the join token is unknown to this control plane, or its secret is wrong".into()
                }
            };
            return Err(Status::unauthenticated(message));
        }
        // A token joins new nodes and nodes that are gone (a wiped machine coming back), not
        // a live one: that would hand its pods and Secrets to whoever holds a token.
        // A follower does not know who is alive: joins go to the leader.
        let (registry, _) = self.leading()?;
        if registry.is_alive(&req.node_name) {
            tracing::warn!(node = %req.node_name, peer = ?peer, "refused a join under the name of a live node");
            return Err(Status::already_exists(format!(
                "node {:?} is registered and alive; stop its agent (or pick another name) to join under this name",
                req.node_name
            )));
        }
        let certificate = pki
            .sign_node(&req.csr, &req.node_name)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        // The name is bound to this first certificate; a name that is bound already is
        // refused, and the certificate just made goes nowhere.
        let serial = keel_tls::identity::serial_of_pem(&certificate)
            .ok_or_else(|| Status::internal("the certificate just issued has no serial"))?;
        if let Err(e) = self.bindings.bind_new(&req.node_name, &serial).await {
            tracing::warn!(node = %req.node_name, peer = ?peer, reason = %e, "refused a join");
            return Err(binding_refusal(e));
        }
        tracing::info!(node = %req.node_name, token = %req.token_id, "node joined: certificate issued");
        Ok(Response::new(JoinResponse {
            certificate,
            ca_certificate: pki.ca_pem().to_string(),
        }))
    }

    async fn renew(
        &self,
        request: Request<RenewRequest>,
    ) -> Result<Response<RenewResponse>, Status> {
        let (Some(pki), Some(cert)) = (&self.pki, self.calling_node(&request)?) else {
            return Err(Status::failed_precondition(
                "this control plane runs with --insecure: there are no certificates to renew",
            ));
        };
        self.leading()?;
        self.bindings
            .check(&cert.node, &cert.serial, cert.not_before)
            .await
            .map_err(binding_refusal)?;
        let certificate = pki
            .sign_node(&request.get_ref().csr, &cert.node)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let serial = keel_tls::identity::serial_of_pem(&certificate)
            .ok_or_else(|| Status::internal("the certificate just issued has no serial"))?;
        self.bindings
            .renewed(&cert.node, &cert.serial, &serial)
            .await
            .map_err(binding_refusal)?;
        tracing::info!(node = %cert.node, "renewed a node's certificate");
        Ok(Response::new(RenewResponse { certificate }))
    }
}

/// Serves the agents' API on `listener` until `stop` turns true.
pub async fn serve(
    listener: TcpListener,
    serving: watch::Receiver<Serving>,
    pki: Option<Arc<ControlPlanePki>>,
    join_tokens: Arc<StoredTokens>,
    stop: CancellationToken,
) -> Result<(), tonic::transport::Error> {
    let shutdown = stop.clone().cancelled_owned();
    let tls = pki.as_ref().map(|p| p.server_config());
    let bindings = NodeBindings::new(join_tokens.store().clone());
    let svc = ControlPlaneServer::new(ControlPlaneService {
        serving,
        stop,
        pki,
        join_tokens,
        bindings,
    })
    .max_decoding_message_size(MAX_MESSAGE_BYTES);
    let router = tonic::transport::Server::builder().add_service(svc);
    let caps = keel_tls::transport::Caps::for_open_files(keel_tls::listen::open_files_limit());
    keel_tls::transport::serve(router, listener, tls, caps, shutdown).await
}
