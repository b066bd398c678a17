//! [`SetHandoff`]: where node sync leaves a node's desired set for an agent that asks for it
//! (`NextSet`), and where the agent's next call leaves how it took it.
//!
//! Node sync sends one set per node at a time and waits for its outcome, as it waits for a
//! `Sync` call's answer; here the set waits for the agent's call instead of going out on a
//! connection the control plane dialed. At 5,000 nodes that second connection per node was
//! about 50 KB of the control plane's memory each (h2's buffers, tower's and hyper's
//! channels, TLS), and one more TLS handshake per node.

use std::sync::Mutex;
use std::time::Duration;

use keel_agent_protocol::{NodeDesired, SetOutcome};
use tokio::sync::{Notify, oneshot};
use tokio::time::Instant;

/// An agent asks again right after each answer: with no call waiting, a set is taken within
/// this long of the last call (or the registration), or the agent is taken to be gone. A
/// dead node then fails at once, as a refused connection did, instead of holding one of
/// node sync's sends for the whole send timeout.
pub const TAKEN_WITHIN: Duration = Duration::from_secs(1);

/// One node's handoff. Both sides hold it briefly; nothing here blocks.
#[derive(Default)]
pub struct SetHandoff {
    state: Mutex<State>,
    /// Wakes the agent's waiting call when a set is left.
    left: Notify,
}

#[derive(Default)]
struct State {
    /// The set left for the agent, not yet taken by a call.
    set: Option<NodeDesired>,
    /// The generation left (taken or not), and where its outcome goes.
    awaiting: Option<(u64, oneshot::Sender<SetOutcome>)>,
    /// Calls waiting now (a call ends when answered, or when its connection drops).
    waiting: usize,
    /// When a call last ended, or the agent registered.
    active: Option<Instant>,
}

/// Why a set left here got no outcome.
#[derive(Debug, PartialEq, Eq)]
pub enum NoOutcome {
    /// No call is waiting and none was made lately: the agent is not connected.
    NotConnected,
    /// No call took it within [`TAKEN_WITHIN`].
    NotTaken,
    /// A call took it, but no later call said how it went within the time given.
    NotAnswered,
    /// The agent's next call did not name it: the agent restarted, or lost the answer.
    Lost,
}

impl SetHandoff {
    /// The agent (re)registered: it is about to ask.
    pub fn registered(&self) {
        self.lock().active = Some(Instant::now());
    }

    /// Leaves `set` for the agent and waits up to `wait` for how it took it. A set left
    /// earlier and not yet taken is replaced (node sync never does that: one at a time).
    pub async fn send(&self, set: NodeDesired, wait: Duration) -> Result<SetOutcome, NoOutcome> {
        let (tx, mut rx) = oneshot::channel();
        {
            let mut state = self.lock();
            let lately = state.active.is_some_and(|t| t.elapsed() <= TAKEN_WITHIN);
            if state.waiting == 0 && !lately {
                return Err(NoOutcome::NotConnected);
            }
            state.awaiting = Some((set.generation, tx));
            state.set = Some(set);
        }
        // A call already waiting wakes; otherwise the next one finds the set at once.
        self.left.notify_one();
        let start = Instant::now();
        if let Ok(outcome) = tokio::time::timeout(TAKEN_WITHIN.min(wait), &mut rx).await {
            return outcome.map_err(|_| NoOutcome::Lost);
        }
        {
            let mut state = self.lock();
            if state.set.take().is_some() {
                state.awaiting = None;
                return Err(NoOutcome::NotTaken);
            }
        }
        let outcome = tokio::time::timeout_at(start + wait, rx).await;
        match outcome {
            Ok(Ok(outcome)) => Ok(outcome),
            Ok(Err(_)) => Err(NoOutcome::Lost),
            Err(_) => {
                self.lock().awaiting = None;
                Err(NoOutcome::NotAnswered)
            }
        }
    }

    /// The agent's call: records how it took the previous set, then waits up to `wait` for
    /// the next one. `None` when none was left in time.
    pub async fn next(&self, outcome: Option<SetOutcome>, wait: Duration) -> Option<NodeDesired> {
        // Counted from the outcome on (in one step, so node sync, hearing it, finds this call
        // waiting) until answered or dropped (its connection went).
        let _waiting = Waiting::new(self, outcome);
        let deadline = Instant::now() + wait;
        loop {
            // Registered before the check, so a set left in between still wakes this call.
            let left = self.left.notified();
            if let Some(set) = self.lock().set.take() {
                return Some(set);
            }
            if tokio::time::timeout_at(deadline, left).await.is_err() {
                return None;
            }
        }
    }

    /// The outcome of the set awaited, if it names it. A call without one (the agent's first
    /// since it registered) or naming another generation means the set awaited is lost.
    fn outcome(state: &mut State, outcome: Option<SetOutcome>) {
        // Still waiting to be taken: this call is the one that will take it.
        if state.set.is_some() {
            return;
        }
        let Some((generation, tx)) = state.awaiting.take() else {
            return;
        };
        match outcome {
            Some(o) if o.generation == generation => {
                let _ = tx.send(o);
            }
            // Dropping the sender tells node sync the set is lost; it sends the next whole.
            _ => drop(tx),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// One waiting call, counted in [`State::waiting`] while it lives.
struct Waiting<'a>(&'a SetHandoff);

impl<'a> Waiting<'a> {
    fn new(handoff: &'a SetHandoff, outcome: Option<SetOutcome>) -> Self {
        let mut state = handoff.lock();
        SetHandoff::outcome(&mut state, outcome);
        state.waiting += 1;
        state.active = Some(Instant::now());
        drop(state);
        Waiting(handoff)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        state.waiting -= 1;
        state.active = Some(Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_agent_protocol::SyncAck;
    use std::sync::Arc;

    const LONG: Duration = Duration::from_secs(5);

    fn set(generation: u64) -> NodeDesired {
        NodeDesired {
            node_name: "n1".into(),
            generation,
            ..Default::default()
        }
    }

    fn taken(generation: u64) -> SetOutcome {
        SetOutcome {
            generation,
            ack: Some(SyncAck {
                applied_generation: generation,
                nodes_as_changes: true,
                pods_as_changes: true,
            }),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn a_set_goes_to_the_waiting_call_and_its_outcome_comes_with_the_next() {
        let h = Arc::new(SetHandoff::default());
        h.registered();
        let agent = {
            let h = h.clone();
            tokio::spawn(async move {
                let first = h.next(None, LONG).await.expect("a set");
                // The next call carries how the first went, then waits for another.
                let second = h.next(Some(taken(first.generation)), LONG).await;
                (first.generation, second.map(|s| s.generation))
            })
        };
        let outcome = h.send(set(7), LONG).await.expect("an outcome");
        assert_eq!(outcome.generation, 7);
        assert_eq!(outcome.ack.map(|a| a.applied_generation), Some(7));
        // A set left while no call waits is found by the next call at once.
        let outcome = tokio::spawn({
            let h = h.clone();
            async move { h.send(set(8), Duration::from_millis(200)).await }
        });
        let (first, second) = agent.await.unwrap();
        assert_eq!((first, second), (7, Some(8)));
        // Nobody says how 8 went: node sync hears that it was taken but not answered.
        assert_eq!(outcome.await.unwrap(), Err(NoOutcome::NotAnswered));
    }

    #[tokio::test]
    async fn a_set_for_an_agent_not_asking_fails_at_once() {
        let h = SetHandoff::default();
        let started = Instant::now();
        let outcome = h.send(set(3), LONG).await;
        assert_eq!(outcome, Err(NoOutcome::NotConnected));
        assert!(
            started.elapsed() < TAKEN_WITHIN,
            "not held for the send's time"
        );
    }

    #[tokio::test]
    async fn a_set_nobody_takes_soon_after_registering_is_withdrawn() {
        let h = SetHandoff::default();
        h.registered();
        let started = Instant::now();
        let outcome = h.send(set(3), LONG).await;
        assert_eq!(outcome, Err(NoOutcome::NotTaken));
        assert!(started.elapsed() < LONG, "withdrawn before the send's time");
        // A call arriving later does not get the stale set.
        assert!(h.next(None, Duration::from_millis(50)).await.is_none());
    }

    #[tokio::test]
    async fn a_call_without_the_outcome_means_the_set_was_lost() {
        let h = Arc::new(SetHandoff::default());
        h.registered();
        let sending = tokio::spawn({
            let h = h.clone();
            async move { h.send(set(4), LONG).await }
        });
        let got = h.next(None, LONG).await.expect("a set");
        assert_eq!(got.generation, 4);
        // The agent restarted: its first call carries no outcome.
        let waiting = tokio::spawn({
            let h = h.clone();
            async move { h.next(None, Duration::from_millis(50)).await }
        });
        assert_eq!(sending.await.unwrap(), Err(NoOutcome::Lost));
        assert!(waiting.await.unwrap().is_none());
    }

    #[tokio::test]
    async fn an_outcome_for_another_generation_does_not_answer_the_set() {
        let h = Arc::new(SetHandoff::default());
        h.registered();
        let sending = tokio::spawn({
            let h = h.clone();
            async move { h.send(set(5), LONG).await }
        });
        h.next(None, LONG).await.expect("a set");
        h.next(Some(taken(2)), Duration::from_millis(10)).await;
        assert_eq!(sending.await.unwrap(), Err(NoOutcome::Lost));
    }
}
