//! Retry policy by error class: how long to wait before the next attempt, or whether to give
//! up.
//!
//! "N attempts" means N attempts in total (the first call plus N − 1 retries). Defaults:
//!
//! | Class | Attempts | Delay |
//! |---|---|---|
//! | rate limit (429) | 3 | `Retry-After` when given (above 60 s: give up at once), else exponential 1 s × 2ⁿ, cap 30 s |
//! | timeout | 2 | fixed 1 s |
//! | server (5xx) | 5 | exponential 0.5 s × 2ⁿ, cap 10 s |
//! | network | 4 | exponential with full jitter: uniform in [0, min(5 s, 0.25 s × 2ⁿ)] |
//! | auth, account (balance, locked, quota), client (4xx), protocol, local | 1 | never retried |
//!
//! The policy only answers "how long until the next try". The caller must still not retry
//! once streamed output has reached the client, after the client cancelled or went away, or
//! when the wait would overrun the call's own deadline.

use super::types::{ErrorClass, ProviderError};
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The configurable numbers (the `[retry]` config section). Delays in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryConfig {
    /// Rate limit (429): attempts in total.
    pub rate_limit_attempts: u32,
    /// Rate limit: first backoff without `Retry-After` (doubles per attempt).
    pub rate_limit_base_ms: u64,
    /// Rate limit: longest backoff without `Retry-After`.
    pub rate_limit_max_ms: u64,
    /// Longest wait honoured from a `Retry-After` header (a longer one ends the call at once).
    pub retry_after_max_ms: u64,
    /// Timeout: attempts in total.
    pub timeout_attempts: u32,
    /// Timeout: the fixed delay.
    pub timeout_base_ms: u64,
    /// Timeout: cap on the delay.
    pub timeout_max_ms: u64,
    /// Server error (5xx): attempts in total.
    pub server_attempts: u32,
    /// Server error: first backoff (doubles per attempt).
    pub server_base_ms: u64,
    /// Server error: longest backoff.
    pub server_max_ms: u64,
    /// Network error: attempts in total.
    pub network_attempts: u32,
    /// Network error: first backoff ceiling (doubles per attempt; the delay is uniform below it).
    pub network_base_ms: u64,
    /// Network error: largest backoff ceiling.
    pub network_max_ms: u64,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            rate_limit_attempts: 3,
            rate_limit_base_ms: 1_000,
            rate_limit_max_ms: 30_000,
            retry_after_max_ms: 60_000,
            timeout_attempts: 2,
            timeout_base_ms: 1_000,
            timeout_max_ms: 1_000,
            server_attempts: 5,
            server_base_ms: 500,
            server_max_ms: 10_000,
            network_attempts: 4,
            network_base_ms: 250,
            network_max_ms: 5_000,
        }
    }
}

/// How the delay grows with each attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backoff {
    /// Always `base` (capped at `max`).
    Fixed,
    /// `base × 2ⁿ⁻¹` after the n-th attempt, capped at `max`.
    Exponential,
    /// Uniform in `[0, min(max, base × 2ⁿ⁻¹)]` ("full jitter").
    FullJitter,
}

/// The rule for one error class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryRule {
    /// Attempts in total (1 = no retry).
    pub attempts: u32,
    /// How the delay grows.
    pub backoff: Backoff,
    /// First delay.
    pub base: Duration,
    /// Largest delay.
    pub max: Duration,
}

impl RetryRule {
    /// The delay (for [`Backoff::FullJitter`]: its upper bound) after `attempts_made` attempts.
    pub fn ceiling(&self, attempts_made: u32) -> Duration {
        match self.backoff {
            Backoff::Fixed => self.base.min(self.max),
            Backoff::Exponential | Backoff::FullJitter => {
                let doublings = attempts_made.saturating_sub(1).min(31);
                self.base.saturating_mul(1u32 << doublings).min(self.max)
            }
        }
    }
}

/// Retry decisions for one provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// 429.
    pub rate_limit: RetryRule,
    /// Timeouts.
    pub timeout: RetryRule,
    /// 5xx.
    pub server: RetryRule,
    /// Transport failures.
    pub network: RetryRule,
    /// Longest wait honoured from `Retry-After`.
    pub retry_after_max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy::from(&RetryConfig::default())
    }
}

impl From<&RetryConfig> for RetryPolicy {
    fn from(c: &RetryConfig) -> Self {
        let rule = |attempts: u32, backoff, base_ms: u64, max_ms: u64| RetryRule {
            attempts: attempts.max(1),
            backoff,
            base: Duration::from_millis(base_ms),
            max: Duration::from_millis(max_ms),
        };
        RetryPolicy {
            rate_limit: rule(c.rate_limit_attempts, Backoff::Exponential, c.rate_limit_base_ms, c.rate_limit_max_ms),
            timeout: rule(c.timeout_attempts, Backoff::Fixed, c.timeout_base_ms, c.timeout_max_ms),
            server: rule(c.server_attempts, Backoff::Exponential, c.server_base_ms, c.server_max_ms),
            network: rule(c.network_attempts, Backoff::FullJitter, c.network_base_ms, c.network_max_ms),
            retry_after_max: Duration::from_millis(c.retry_after_max_ms),
        }
    }
}

impl RetryPolicy {
    /// The rule for a class; `None` for classes that are never retried (auth, client,
    /// protocol, local).
    pub fn rule(&self, class: ErrorClass) -> Option<&RetryRule> {
        match class {
            ErrorClass::RateLimit => Some(&self.rate_limit),
            ErrorClass::Timeout => Some(&self.timeout),
            ErrorClass::Server => Some(&self.server),
            ErrorClass::Network => Some(&self.network),
            ErrorClass::Auth | ErrorClass::Client | ErrorClass::Protocol | ErrorClass::Account | ErrorClass::Local => {
                None
            }
        }
    }

    /// Attempts in total for a class (1 = no retry).
    pub fn max_attempts(&self, class: ErrorClass) -> u32 {
        self.rule(class).map_or(1, |r| r.attempts)
    }

    /// How long to wait before the next attempt after `err` ended attempt number
    /// `attempts_made` (1 for the first call); `None` = give up.
    pub fn next_delay(&self, err: &ProviderError, attempts_made: u32) -> Option<Duration> {
        self.next_delay_with(err, attempts_made, &mut rand::rng())
    }

    /// [`next_delay`](Self::next_delay) drawing jitter from `rng`.
    pub fn next_delay_with<R: Rng + ?Sized>(
        &self,
        err: &ProviderError,
        attempts_made: u32,
        rng: &mut R,
    ) -> Option<Duration> {
        let rule = self.rule(err.class())?;
        if attempts_made.max(1) >= rule.attempts {
            return None;
        }
        if let ProviderError::RateLimited { retry_after: Some(after), .. } = err {
            // A wait longer than we honour is not shortened (the vendor would refuse again):
            // the caller gets the error, with the vendor's `retry_after`, at once.
            return (*after <= self.retry_after_max).then_some(*after);
        }
        let ceiling = rule.ceiling(attempts_made);
        Some(match rule.backoff {
            Backoff::Fixed | Backoff::Exponential => ceiling,
            Backoff::FullJitter => {
                let micros = u64::try_from(ceiling.as_micros()).unwrap_or(u64::MAX);
                Duration::from_micros(rng.random_range(0..=micros))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn rate_limited(after: Option<Duration>) -> ProviderError {
        ProviderError::RateLimited { retry_after: after, message: "slow down".into() }
    }

    /// Delays after attempts 1, 2, … until the policy gives up.
    fn schedule(p: &RetryPolicy, err: &ProviderError) -> Vec<Duration> {
        (1..100).map_while(|n| p.next_delay(err, n)).collect()
    }

    #[test]
    fn rate_limit_backs_off_exponentially_for_three_attempts() {
        let p = RetryPolicy::default();
        assert_eq!(schedule(&p, &rate_limited(None)), vec![ms(1_000), ms(2_000)]);
        assert_eq!(p.max_attempts(ErrorClass::RateLimit), 3);
    }

    #[test]
    fn rate_limit_honours_retry_after_with_a_cap() {
        let p = RetryPolicy::default();
        assert_eq!(p.next_delay(&rate_limited(Some(ms(7_500))), 1), Some(ms(7_500)));
        assert_eq!(p.next_delay(&rate_limited(Some(ms(0))), 2), Some(ms(0)));
        assert_eq!(p.next_delay(&rate_limited(Some(ms(60_000))), 1), Some(ms(60_000)));
        assert_eq!(p.next_delay(&rate_limited(Some(Duration::from_secs(3_600))), 1), None, "beyond the cap: give up");
        // Still only three attempts in total.
        assert_eq!(p.next_delay(&rate_limited(Some(ms(10))), 3), None);
        let custom = RetryPolicy::from(&RetryConfig { retry_after_max_ms: 5_000, ..RetryConfig::default() });
        assert_eq!(custom.next_delay(&rate_limited(Some(ms(9_000))), 1), None);
    }

    #[test]
    fn rate_limit_backoff_is_capped() {
        let cfg = RetryConfig { rate_limit_attempts: 10, ..RetryConfig::default() };
        let s = schedule(&RetryPolicy::from(&cfg), &rate_limited(None));
        let secs: Vec<u64> = s.iter().map(Duration::as_secs).collect();
        assert_eq!(secs, vec![1, 2, 4, 8, 16, 30, 30, 30, 30]);
    }

    #[test]
    fn timeout_retries_once_after_a_fixed_delay() {
        let p = RetryPolicy::default();
        for phase in ["connect", "first_byte", "idle", "total"] {
            let e = ProviderError::Timeout { phase, limit: ms(5) };
            assert_eq!(schedule(&p, &e), vec![ms(1_000)], "{phase}");
        }
        let cfg = RetryConfig { timeout_attempts: 4, timeout_base_ms: 300, ..RetryConfig::default() };
        assert_eq!(
            schedule(&RetryPolicy::from(&cfg), &ProviderError::Timeout { phase: "total", limit: ms(5) }),
            vec![ms(300); 3]
        );
    }

    #[test]
    fn server_errors_back_off_for_five_attempts() {
        let p = RetryPolicy::default();
        let err = ProviderError::Server { status: 503, message: "unavailable".into() };
        assert_eq!(schedule(&p, &err), vec![ms(500), ms(1_000), ms(2_000), ms(4_000)]);
        let cfg = RetryConfig { server_attempts: 8, ..RetryConfig::default() };
        let s = schedule(&RetryPolicy::from(&cfg), &err);
        assert_eq!(s.last(), Some(&ms(10_000)));
        assert_eq!(s.len(), 7);
    }

    #[test]
    fn network_errors_use_full_jitter_within_bounds() {
        let p = RetryPolicy::default();
        let err = ProviderError::Network("connection reset".into());
        let mut rng = StdRng::seed_from_u64(7);
        let ceilings = [ms(250), ms(500), ms(1_000)];
        for (i, ceiling) in ceilings.iter().enumerate() {
            let attempt = u32::try_from(i).unwrap() + 1;
            let draws: Vec<Duration> =
                (0..2_000).map(|_| p.next_delay_with(&err, attempt, &mut rng).unwrap()).collect();
            assert!(draws.iter().all(|d| d <= ceiling), "attempt {attempt}: above {ceiling:?}");
            // Spread over the whole range, not a constant.
            assert!(draws.iter().any(|d| *d < *ceiling / 4), "attempt {attempt}: no low draws");
            assert!(draws.iter().any(|d| *d > *ceiling * 3 / 4), "attempt {attempt}: no high draws");
        }
        assert_eq!(p.next_delay_with(&err, 4, &mut rng), None, "four attempts in total");
        let cfg = RetryConfig { network_attempts: 20, ..RetryConfig::default() };
        let capped = RetryPolicy::from(&cfg);
        for _ in 0..500 {
            assert!(capped.next_delay_with(&err, 15, &mut rng).unwrap() <= ms(5_000));
        }
    }

    #[test]
    fn never_retried_classes() {
        let p = RetryPolicy::default();
        let errors = [
            ProviderError::Auth { status: 401, message: "bad key".into() },
            ProviderError::BadRequest { status: 400, message: "bad".into() },
            ProviderError::Protocol("garbage".into()),
            ProviderError::Cancelled,
            ProviderError::CircuitOpen { provider: "kimi".into(), retry_after_secs: 3 },
            ProviderError::OverCapacity { provider: "glm".into(), limit: "provider".into(), retry_after_secs: 1 },
            ProviderError::Unsupported("no files".into()),
            ProviderError::Account { status: 429, code: "1113".into(), message: "balance".into() },
        ];
        for e in &errors {
            assert_eq!(p.next_delay(e, 1), None, "{e}");
            assert_eq!(p.max_attempts(e.class()), 1, "{e}");
        }
    }

    #[test]
    fn zero_attempts_in_config_means_no_retry() {
        let cfg = RetryConfig { server_attempts: 0, ..RetryConfig::default() };
        let err = ProviderError::Server { status: 500, message: String::new() };
        assert_eq!(RetryPolicy::from(&cfg).next_delay(&err, 1), None);
    }

    #[test]
    fn huge_attempt_numbers_do_not_overflow() {
        let cfg = RetryConfig { server_attempts: u32::MAX, ..RetryConfig::default() };
        let err = ProviderError::Server { status: 500, message: String::new() };
        assert_eq!(RetryPolicy::from(&cfg).next_delay(&err, u32::MAX - 1), Some(ms(10_000)));
    }
}
