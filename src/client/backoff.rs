//! Reconnect delays: capped exponential backoff with full jitter
//! (`delay = random(0, min(max, initial · factor^attempt))`).

use rand::Rng;
use std::time::Duration;

/// Backoff settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BackoffConfig {
    /// Base delay of the first retry.
    pub initial: Duration,
    /// Upper bound of any delay.
    pub max: Duration,
    /// Growth factor per attempt (≥ 1).
    pub factor: f64,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        BackoffConfig { initial: Duration::from_millis(100), max: Duration::from_secs(5), factor: 2.0 }
    }
}

impl BackoffConfig {
    /// The ceiling for `attempt` (0-based), before jitter.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let factor = self.factor.max(1.0);
        let secs = self.initial.as_secs_f64() * factor.powi(attempt.min(64) as i32);
        let max = self.max.as_secs_f64();
        Duration::from_secs_f64(if secs.is_finite() { secs.min(max) } else { max })
    }

    /// The delay before retry `attempt`, with full jitter.
    pub fn delay(&self, attempt: u32, rng: &mut impl Rng) -> Duration {
        let ceiling = self.ceiling(attempt);
        if ceiling.is_zero() {
            return ceiling;
        }
        Duration::from_secs_f64(rng.random_range(0.0..=ceiling.as_secs_f64()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    #[test]
    fn grows_exponentially_and_is_capped() {
        let b = BackoffConfig { initial: Duration::from_millis(100), max: Duration::from_secs(2), factor: 2.0 };
        assert_eq!(b.ceiling(0), Duration::from_millis(100));
        assert_eq!(b.ceiling(3), Duration::from_millis(800));
        assert_eq!(b.ceiling(10), Duration::from_secs(2));
        assert_eq!(b.ceiling(1000), Duration::from_secs(2));
        let mut rng = StdRng::seed_from_u64(7);
        for attempt in 0..20 {
            let d = b.delay(attempt, &mut rng);
            assert!(d <= b.ceiling(attempt), "{d:?} above ceiling at attempt {attempt}");
        }
    }
}
