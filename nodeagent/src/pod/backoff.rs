//! Restart backoff, as the kubelet does it: the first restart is immediate, then 10s, 20s,
//! 40s… capped at 300s; a container that ran cleanly for 10 minutes starts over.

use std::time::Duration;

pub const INITIAL: Duration = Duration::from_secs(10);
pub const MAX: Duration = Duration::from_secs(300);
pub const RESET_AFTER: Duration = Duration::from_secs(600);

#[derive(Debug, Clone, Default)]
pub struct Backoff {
    next: Duration,
}

impl Backoff {
    /// The wait before restarting a container that ran for `ran_for`.
    pub fn on_exit(&mut self, ran_for: Duration) -> Duration {
        if ran_for >= RESET_AFTER {
            self.next = Duration::ZERO;
        }
        let delay = self.next;
        self.next = if delay.is_zero() {
            INITIAL
        } else {
            (delay * 2).min(MAX)
        };
        delay
    }

    /// The wait before retrying something that failed (an image pull, a create).
    pub fn on_failure(&mut self) -> Duration {
        let delay = if self.next.is_zero() {
            INITIAL
        } else {
            self.next
        };
        self.next = (delay * 2).min(MAX);
        delay
    }

    pub fn reset(&mut self) {
        self.next = Duration::ZERO;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_to_the_cap_and_resets_after_a_clean_run() {
        let mut b = Backoff::default();
        let short = Duration::from_secs(1);
        let delays: Vec<u64> = (0..8).map(|_| b.on_exit(short).as_secs()).collect();
        assert_eq!(delays, [0, 10, 20, 40, 80, 160, 300, 300]);
        assert_eq!(b.on_exit(RESET_AFTER), Duration::ZERO);
        assert_eq!(b.on_exit(short), INITIAL);
    }

    #[test]
    fn failures_start_at_ten_seconds() {
        let mut b = Backoff::default();
        assert_eq!(b.on_failure(), INITIAL);
        assert_eq!(b.on_failure(), INITIAL * 2);
    }
}
