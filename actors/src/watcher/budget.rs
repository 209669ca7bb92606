//! A hard budget of model calls per hour (sliding window), shared by the error watcher and
//! the auditor: at most `limit` calls start within any window of one hour; a limit of 0
//! allows none. Pure and deterministic: the caller passes the current instant.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Calls allowed per sliding window.
#[derive(Debug, Clone)]
pub struct HourlyBudget {
    limit: u32,
    window: Duration,
    used: VecDeque<Instant>,
}

impl HourlyBudget {
    /// `limit` calls per hour.
    pub fn per_hour(limit: u32) -> HourlyBudget {
        HourlyBudget::with_window(limit, Duration::from_secs(3600))
    }

    /// `limit` calls per `window` (tests use short windows).
    pub fn with_window(limit: u32, window: Duration) -> HourlyBudget {
        HourlyBudget { limit, window, used: VecDeque::new() }
    }

    fn expire(&mut self, now: Instant) {
        while self.used.front().is_some_and(|t| now.saturating_duration_since(*t) >= self.window) {
            self.used.pop_front();
        }
    }

    /// Take one call if the budget allows it at `now`.
    pub fn try_take(&mut self, now: Instant) -> bool {
        self.expire(now);
        if self.used.len() as u64 >= u64::from(self.limit) {
            return false;
        }
        self.used.push_back(now);
        true
    }

    /// Calls still allowed at `now`.
    pub fn remaining(&mut self, now: Instant) -> u32 {
        self.expire(now);
        self.limit.saturating_sub(self.used.len() as u32)
    }

    /// The limit per window.
    pub fn limit(&self) -> u32 {
        self.limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn n_calls_then_refusals_until_the_window_slides() {
        let t0 = Instant::now();
        let mut b = HourlyBudget::per_hour(3);
        assert_eq!(b.remaining(t0), 3);
        assert!(b.try_take(t0));
        assert!(b.try_take(t0 + Duration::from_secs(10)));
        assert!(b.try_take(t0 + Duration::from_secs(20)));
        assert!(!b.try_take(t0 + Duration::from_secs(30)), "the 4th call within the hour is refused");
        assert!(!b.try_take(t0 + Duration::from_secs(3599)));
        assert_eq!(b.remaining(t0 + Duration::from_secs(3599)), 0);
        // One hour after the first call, its slot is free again (and only that one).
        assert!(b.try_take(t0 + Duration::from_secs(3600)));
        assert!(!b.try_take(t0 + Duration::from_secs(3601)));
        assert_eq!(b.remaining(t0 + Duration::from_secs(3615)), 1);
        assert_eq!(b.remaining(t0 + Duration::from_secs(3620)), 2);
    }

    #[test]
    fn zero_allows_nothing() {
        let mut b = HourlyBudget::per_hour(0);
        assert!(!b.try_take(Instant::now()));
        assert_eq!(b.limit(), 0);
    }
}
