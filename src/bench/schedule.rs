//! The open-loop send schedule: call number `seq` (0, 1, 2, …) is due `seq / rate` seconds
//! after the start, and goes out on connection `seq mod connections`, so the calls of all
//! connections interleave evenly at the offered rate. Pure arithmetic, no clocks.

use super::BenchError;
use std::time::Duration;

/// A fixed-rate schedule over a number of connections.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    rate: f64,
    connections: usize,
}

impl Schedule {
    /// `rate` calls/s (finite, > 0) over `connections` (> 0).
    pub fn new(rate: f64, connections: usize) -> Result<Schedule, BenchError> {
        if !(rate.is_finite() && rate > 0.0) || connections == 0 {
            return Err(BenchError::Options("--rate must be > 0 and --connections > 0".into()));
        }
        Ok(Schedule { rate, connections })
    }

    /// Offered calls per second.
    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// When call `seq` is due, relative to the start.
    pub fn due(&self, seq: u64) -> Duration {
        Duration::from_secs_f64(seq as f64 / self.rate)
    }

    /// The connection that sends call `seq`.
    pub fn connection(&self, seq: u64) -> usize {
        (seq % self.connections as u64) as usize
    }

    /// How many calls are due strictly before `offset` (the first call not due before it).
    pub fn count_before(&self, offset: Duration) -> u64 {
        (offset.as_secs_f64() * self.rate).ceil() as u64
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn calls_are_evenly_spaced_and_round_robin() {
        let s = Schedule::new(1000.0, 4).unwrap();
        assert_eq!(s.due(0), Duration::ZERO);
        assert_eq!(s.due(1), Duration::from_millis(1));
        assert_eq!(s.due(2500), Duration::from_millis(2500));
        let conns: Vec<usize> = (0..6).map(|q| s.connection(q)).collect();
        assert_eq!(conns, [0, 1, 2, 3, 0, 1]);
    }

    #[test]
    fn count_before_matches_due() {
        let s = Schedule::new(300.0, 7).unwrap();
        for secs in [0.0, 0.5, 1.0, 2.0, 3.3333] {
            let offset = Duration::from_secs_f64(secs);
            let n = s.count_before(offset);
            assert!(n == 0 || s.due(n - 1) < offset, "last counted call is before {secs}");
            assert!(s.due(n) >= offset, "first uncounted call is not before {secs}");
        }
        assert_eq!(s.count_before(Duration::from_secs(2)), 600);
    }

    #[test]
    fn invalid_rates_are_refused() {
        assert!(Schedule::new(0.0, 1).is_err());
        assert!(Schedule::new(f64::NAN, 1).is_err());
        assert!(Schedule::new(10.0, 0).is_err());
    }
}
