//! The work queue controllers run from, as client-go's: a key queued twice is queued once; a
//! key being reconciled is never handed out again until it is done (a change meanwhile
//! queues it once more, for after); failures come back after a growing delay.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The first retry delay after a failure; doubled per failure up to [`MAX_BACKOFF`].
const BASE_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(60);

struct State<K> {
    queue: VecDeque<K>,
    queued: HashSet<K>,
    active: HashSet<K>,
    /// Keys added while being reconciled: queued again when done.
    again: HashSet<K>,
    failures: HashMap<K, u32>,
    /// The one pending delayed add per key (the earliest wins; later ones are dropped).
    delayed: HashMap<K, tokio::time::Instant>,
}

/// A deduplicating queue of keys. Cheap to clone.
/// A drained queue keeps at most this many slots: a rollout of 100,000 pods grows a pod
/// queue's set and list to hold them all, some 15 MB that would otherwise stay allocated.
const KEPT_WHEN_DRAINED: usize = 1024;

impl<K: Eq + Hash> State<K> {
    fn release_drained(&mut self) {
        if self.queue.capacity() > KEPT_WHEN_DRAINED {
            self.queue.shrink_to(KEPT_WHEN_DRAINED);
        }
        if self.queued.capacity() > KEPT_WHEN_DRAINED {
            self.queued.shrink_to(KEPT_WHEN_DRAINED);
        }
    }
}

pub struct WorkQueue<K> {
    state: Arc<Mutex<State<K>>>,
    ready: Arc<Notify>,
    /// Where delayed adds wait (tracked, and ended by `stop`, so a shutdown waits for them
    /// and none outlives it).
    timers: TaskTracker,
    stop: CancellationToken,
}

impl<K> Clone for WorkQueue<K> {
    fn clone(&self) -> Self {
        Self {
            state: self.state.clone(),
            ready: self.ready.clone(),
            timers: self.timers.clone(),
            stop: self.stop.clone(),
        }
    }
}

impl<K: Clone + Eq + Hash + Send + 'static> Default for WorkQueue<K> {
    fn default() -> Self {
        Self::new(TaskTracker::new(), CancellationToken::new())
    }
}

impl<K: Clone + Eq + Hash + Send + 'static> WorkQueue<K> {
    /// A queue whose delayed adds wait on `timers` until `stop`.
    pub fn new(timers: TaskTracker, stop: CancellationToken) -> Self {
        Self {
            state: Arc::new(Mutex::new(State {
                queue: VecDeque::new(),
                queued: HashSet::new(),
                active: HashSet::new(),
                again: HashSet::new(),
                failures: HashMap::new(),
                delayed: HashMap::new(),
            })),
            ready: Arc::new(Notify::new()),
            timers,
            stop,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State<K>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn add(&self, key: K) {
        let mut st = self.lock();
        if st.active.contains(&key) {
            st.again.insert(key);
            return;
        }
        if st.queued.insert(key.clone()) {
            st.queue.push_back(key);
            drop(st);
            self.ready.notify_one();
        }
    }

    /// Adds `key` after `delay`.
    pub fn add_after(&self, key: K, delay: Duration) {
        if delay.is_zero() {
            self.add(key);
            return;
        }
        let at = tokio::time::Instant::now() + delay;
        {
            let mut st = self.lock();
            match st.delayed.get(&key) {
                Some(pending) if *pending <= at => return,
                _ => {
                    st.delayed.insert(key.clone(), at);
                }
            }
        }
        let queue = self.clone();
        let stop = self.stop.clone();
        self.timers.spawn(async move {
            tokio::select! {
                () = tokio::time::sleep_until(at) => {}
                () = stop.cancelled() => return,
            }
            let due = {
                let mut st = queue.lock();
                // Superseded by an earlier one, which already fired or will.
                let mine = st.delayed.get(&key) == Some(&at);
                if mine {
                    st.delayed.remove(&key);
                }
                mine
            };
            if due {
                queue.add(key);
            }
        });
    }

    /// The next key to reconcile; it is active until [`WorkQueue::done`].
    pub async fn next(&self) -> K {
        loop {
            let notified = self.ready.notified();
            {
                let mut st = self.lock();
                if let Some(key) = st.queue.pop_front() {
                    st.queued.remove(&key);
                    st.active.insert(key.clone());
                    let more = !st.queue.is_empty();
                    if !more {
                        st.release_drained();
                    }
                    drop(st);
                    if more {
                        // Wake another worker for the rest.
                        self.ready.notify_one();
                    }
                    return key;
                }
            }
            notified.await;
        }
    }

    /// `key` is reconciled; if it changed meanwhile it is queued again.
    pub fn done(&self, key: &K) {
        let mut st = self.lock();
        st.active.remove(key);
        if st.again.remove(key) && st.queued.insert(key.clone()) {
            st.queue.push_back(key.clone());
            drop(st);
            self.ready.notify_one();
        }
    }

    /// The delay before retrying `key` after one more failure.
    pub fn backoff(&self, key: &K) -> Duration {
        let mut st = self.lock();
        let n = st.failures.entry(key.clone()).or_insert(0);
        *n = n.saturating_add(1);
        BASE_BACKOFF
            .saturating_mul(1u32 << (*n - 1).min(20))
            .min(MAX_BACKOFF)
    }

    /// `key` succeeded: its next failure starts the backoff over.
    pub fn forget(&self, key: &K) {
        self.lock().failures.remove(key);
    }

    pub fn len(&self) -> usize {
        self.lock().queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_key_is_queued_once_and_never_handed_out_twice_at_once() {
        let q = WorkQueue::default();
        q.add("a");
        q.add("a");
        q.add("b");
        assert_eq!(q.len(), 2);
        let first = q.next().await;
        assert_eq!(first, "a");
        // Changed while active: not handed out again until done.
        q.add("a");
        assert_eq!(q.next().await, "b");
        assert!(q.is_empty());
        q.done(&"a");
        assert_eq!(q.next().await, "a");
    }

    #[tokio::test]
    async fn a_drained_queue_gives_back_what_a_burst_grew() {
        let q = WorkQueue::default();
        for i in 0..20_000 {
            q.add(i);
        }
        for i in 0..20_000 {
            assert_eq!(q.next().await, i, "handed out in order");
            q.done(&i);
        }
        assert!(q.is_empty());
        let (listed, set) = {
            let st = q.lock();
            (st.queue.capacity(), st.queued.capacity())
        };
        assert!(
            listed <= KEPT_WHEN_DRAINED,
            "the list keeps room for {listed}"
        );
        assert!(set <= 2 * KEPT_WHEN_DRAINED, "the set keeps room for {set}");
        // Still a working queue.
        q.add(7);
        assert_eq!(q.next().await, 7);
    }

    #[tokio::test(start_paused = true)]
    async fn delayed_adds_of_one_key_collapse_to_the_earliest() {
        let q = WorkQueue::default();
        q.add_after("k", Duration::from_secs(30));
        q.add_after("k", Duration::from_secs(10));
        q.add_after("k", Duration::from_secs(20));
        tokio::time::sleep(Duration::from_secs(11)).await;
        assert_eq!(q.len(), 1);
        assert_eq!(q.next().await, "k");
        q.done(&"k");
        // The later timers were dropped: nothing comes back.
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert!(q.is_empty());
    }

    #[tokio::test]
    async fn failures_back_off_exponentially_and_reset_on_success() {
        let q: WorkQueue<&str> = WorkQueue::default();
        assert_eq!(q.backoff(&"k"), Duration::from_millis(50));
        assert_eq!(q.backoff(&"k"), Duration::from_millis(100));
        assert_eq!(q.backoff(&"k"), Duration::from_millis(200));
        for _ in 0..30 {
            q.backoff(&"k");
        }
        assert_eq!(q.backoff(&"k"), MAX_BACKOFF);
        q.forget(&"k");
        assert_eq!(q.backoff(&"k"), Duration::from_millis(50));
    }
}
