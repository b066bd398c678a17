//! Which server leads: several `keel server`s on one etcd elect one leader, which alone runs
//! git sync and apply, the controllers, the scheduler, the node lifecycle and node sync.
//! Every server serves the HTTP API and the agents' endpoint.
//!
//! # Guarantees
//! - At most one term is current: a term is the etcd election key's `create_revision`, and
//!   every write of a leader's parts goes through a store fenced with it
//!   ([`keel_store::etcd::Fence`]), so writes of a term that ended are refused by etcd
//!   itself, however late they arrive (a paused process, a slow network).
//! - A leader that cannot renew within the renew deadline steps down (stops its parts)
//!   before its lease can expire, so in the normal case no part of an old term is still
//!   running when the next begins; fencing covers the abnormal ones.
//! - On the embedded store there is one server and it always leads ([`Role::Sole`]).
//!
//! # Layout
//! - this file: [`Role`], [`Leadership`] (what the rest of the server asks);
//!   [`election`]: the campaign and renewal loop with Kubernetes' timings.

mod election;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use keel_store::etcd::Fence;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

pub use election::{Timing, run};

/// What a leader writes as the election key's value: who it is, for the others to show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaderRecord {
    /// The leader's advertised HTTP address (`--advertise-address`).
    pub server: String,
    pub since: DateTime<Utc>,
}

/// This server's place now.
#[derive(Debug, Clone, PartialEq)]
pub enum Role {
    /// The embedded store: one server, leading for its whole life.
    Sole,
    /// Leading for the term `fence`.
    Leader { fence: Fence, since: DateTime<Utc> },
    /// Another server leads (`leader`, when known), or nobody does yet; `error` says why the
    /// election cannot be run (etcd unreachable, say).
    Follower {
        leader: Option<(LeaderRecord, i64)>,
        error: Option<String>,
    },
}

impl Role {
    /// The fence for this role's writes: `Some(None)` writes unfenced (the sole server),
    /// `None` must not write as leader at all.
    pub fn fence(&self) -> Option<Option<Fence>> {
        match self {
            Role::Sole => Some(None),
            Role::Leader { fence, .. } => Some(Some(fence.clone())),
            Role::Follower { .. } => None,
        }
    }

    pub fn leads(&self) -> bool {
        self.fence().is_some()
    }
}

/// This server's role, as every part of it sees it. Cheap to clone.
#[derive(Clone)]
pub struct Leadership {
    me: Arc<str>,
    role: watch::Receiver<Role>,
    metrics: Arc<crate::metrics::Metrics>,
}

impl Leadership {
    pub fn new(
        me: String,
        role: watch::Receiver<Role>,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> Leadership {
        Leadership {
            me: me.into(),
            role,
            metrics,
        }
    }

    /// The only server of an embedded store: leading for good.
    pub fn sole(me: String, metrics: Arc<crate::metrics::Metrics>) -> Leadership {
        metrics.leader.set(1);
        let (_, role) = watch::channel(Role::Sole);
        Leadership::new(me, role, metrics)
    }

    /// This server's name (its advertised HTTP address).
    pub fn me(&self) -> &str {
        &self.me
    }

    pub fn role(&self) -> Role {
        self.role.borrow().clone()
    }

    pub fn subscribe(&self) -> watch::Receiver<Role> {
        self.role.clone()
    }

    /// The leader's advertised HTTP address, when another server is known to lead.
    pub fn other_leader(&self) -> Option<String> {
        match &*self.role.borrow() {
            Role::Follower {
                leader: Some((record, _)),
                ..
            } if record.server != *self.me => Some(record.server.clone()),
            _ => None,
        }
    }

    /// What `keel status` and `/healthz` show of it.
    pub fn view(&self) -> keel_api::status::ServerRole {
        let transitions = self.metrics.leader_transitions.get();
        let mut view = keel_api::status::ServerRole {
            server: self.me.to_string(),
            transitions,
            ..Default::default()
        };
        match self.role() {
            Role::Sole => {
                view.role = "sole".into();
                view.leader = Some(self.me.to_string());
            }
            Role::Leader { fence, since } => {
                view.role = "leader".into();
                view.leader = Some(self.me.to_string());
                view.term = Some(fence.term);
                view.leader_since = Some(since);
            }
            Role::Follower { leader, error } => {
                view.role = "follower".into();
                if let Some((record, term)) = leader {
                    view.leader = Some(record.server);
                    view.term = Some(term);
                    view.leader_since = Some(record.since);
                }
                view.error = error;
            }
        }
        view
    }
}
