//! Who may hold how many TCP connections through the proxy. Three budgets, each checked when
//! a connection is accepted: the node's (file descriptors: UDP sessions draw on it too), each
//! frontend's, and each client address's across all frontends. A connection past any of them
//! is reset at once rather than left in the listen backlog, so one client holding thousands
//! of idle connections to one Service neither starves the other Services nor the other
//! clients of that one: they keep being accepted and served.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The node's budgets (see [`crate::ProxyConfig`]).
pub struct Limits {
    node: Arc<Semaphore>,
    per_frontend: usize,
    per_client: usize,
    clients: Mutex<HashMap<IpAddr, usize>>,
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Node,
    Frontend,
    Client,
}

impl Refusal {
    fn says(self) -> &'static str {
        match self {
            Refusal::Node => "the node's connection limit is reached",
            Refusal::Frontend => "this Service port's connection limit is reached",
            Refusal::Client => "the client address holds its limit of connections",
        }
    }
}

/// What an accepted connection holds until it ends.
pub struct Admission {
    _node: OwnedSemaphorePermit,
    _frontend: OwnedSemaphorePermit,
    _client: ClientSlot,
}

struct ClientSlot {
    limits: Arc<Limits>,
    address: IpAddr,
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut clients = self
            .limits
            .clients
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = clients.get_mut(&self.address) {
            *n -= 1;
            if *n == 0 {
                clients.remove(&self.address);
            }
        }
    }
}

impl Limits {
    pub fn new(node: usize, per_frontend: usize, per_client: usize) -> Arc<Limits> {
        Arc::new(Limits {
            node: Arc::new(Semaphore::new(node.max(1))),
            per_frontend: per_frontend.max(1),
            per_client: per_client.max(1),
            clients: Mutex::new(HashMap::new()),
        })
    }

    /// The node's budget, which UDP sessions draw on.
    pub fn node(&self) -> Arc<Semaphore> {
        self.node.clone()
    }

    /// A fresh budget for one frontend.
    pub fn frontend(self: &Arc<Limits>, service: &str) -> FrontendLimit {
        FrontendLimit {
            limits: self.clone(),
            open: Arc::new(Semaphore::new(self.per_frontend)),
            service: service.to_string(),
            refused: Mutex::new(Refused::default()),
        }
    }
}

/// One frontend's budget, and its refusals for the log.
pub struct FrontendLimit {
    limits: Arc<Limits>,
    open: Arc<Semaphore>,
    service: String,
    refused: Mutex<Refused>,
}

#[derive(Default)]
struct Refused {
    since_said: u64,
    said: Option<Instant>,
}

/// Refusals are logged at most this often per frontend, with the count since the last line.
const SAY_EVERY: Duration = Duration::from_secs(10);

impl FrontendLimit {
    /// Admits a connection from `client`, or says which budget is spent.
    pub fn admit(&self, client: IpAddr) -> Result<Admission, Refusal> {
        let result = self.try_admit(client);
        if let Err(why) = result {
            self.note_refusal(client, why);
        }
        result
    }

    fn try_admit(&self, client: IpAddr) -> Result<Admission, Refusal> {
        let frontend = self
            .open
            .clone()
            .try_acquire_owned()
            .map_err(|_| Refusal::Frontend)?;
        {
            let mut clients = self
                .limits
                .clients
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let n = clients.entry(client).or_insert(0);
            if *n >= self.limits.per_client {
                return Err(Refusal::Client);
            }
            *n += 1;
        }
        // From here the slot is counted: dropping it on a refusal below gives it back.
        let client = ClientSlot {
            limits: self.limits.clone(),
            address: client,
        };
        let node = self
            .limits
            .node
            .clone()
            .try_acquire_owned()
            .map_err(|_| Refusal::Node)?;
        Ok(Admission {
            _node: node,
            _frontend: frontend,
            _client: client,
        })
    }

    fn note_refusal(&self, client: IpAddr, why: Refusal) {
        let mut refused = self.refused.lock().unwrap_or_else(PoisonError::into_inner);
        refused.since_said += 1;
        if refused.said.is_none_or(|t| t.elapsed() >= SAY_EVERY) {
            tracing::warn!(
                service = %self.service,
                %client,
                refused = refused.since_said,
                "connection refused: {}",
                why.says()
            );
            refused.since_said = 0;
            refused.said = Some(Instant::now());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    #[test]
    fn each_budget_refuses_past_its_size_and_gives_back_on_drop() {
        let limits = Limits::new(10, 4, 2);
        let a = limits.frontend("default/a:80");
        let b = limits.frontend("default/b:80");
        let first = a.admit(ip(1)).unwrap();
        let _second = a.admit(ip(1)).unwrap();
        assert_eq!(a.admit(ip(1)).err(), Some(Refusal::Client), "per client");
        assert_eq!(
            b.admit(ip(1)).err(),
            Some(Refusal::Client),
            "across frontends"
        );
        let _others: Vec<Admission> = [2, 3].iter().map(|i| a.admit(ip(*i)).unwrap()).collect();
        assert_eq!(
            a.admit(ip(4)).err(),
            Some(Refusal::Frontend),
            "per frontend"
        );
        assert!(b.admit(ip(4)).is_ok(), "another frontend still admits");
        drop(first);
        assert!(a.admit(ip(5)).is_ok(), "a closed connection gives back");
        assert_eq!(first_client_count(&limits, ip(1)), 1);
    }

    #[test]
    fn the_node_budget_is_shared_and_a_refusal_there_leaves_no_count() {
        let limits = Limits::new(2, 10, 10);
        let a = limits.frontend("a");
        let b = limits.frontend("b");
        let _x = a.admit(ip(1)).unwrap();
        let _y = b.admit(ip(2)).unwrap();
        assert_eq!(a.admit(ip(3)).err(), Some(Refusal::Node));
        assert_eq!(first_client_count(&limits, ip(3)), 0);
    }

    fn first_client_count(limits: &Limits, client: IpAddr) -> usize {
        limits
            .clients
            .lock()
            .unwrap()
            .get(&client)
            .copied()
            .unwrap_or(0)
    }
}
