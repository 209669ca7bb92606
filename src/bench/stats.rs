//! Latency summaries of HDR histograms (microseconds) and the gateway-minus-direct difference.

use super::BenchError;
use hdrhistogram::Histogram;
use serde::Serialize;

/// Highest latency the histograms record, microseconds (larger values are clamped).
pub const MAX_US: u64 = 60_000_000;

/// A histogram of microseconds from 1 µs to [`MAX_US`], three significant digits.
pub fn new_hist() -> Result<Histogram<u64>, BenchError> {
    Histogram::new_with_bounds(1, MAX_US, 3).map_err(|e| BenchError::Histogram(e.to_string()))
}

/// Records one latency, clamped into the histogram's range.
pub fn record(h: &mut Histogram<u64>, us: u64) {
    let _ = h.record(us.clamp(1, MAX_US));
}

/// Percentiles of one histogram, microseconds (all zero when it is empty).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Latency {
    /// p50.
    pub p50_us: u64,
    /// p90.
    pub p90_us: u64,
    /// p99.
    pub p99_us: u64,
    /// p99.9.
    pub p999_us: u64,
    /// Max.
    pub max_us: u64,
}

impl Latency {
    /// The percentiles of `h`.
    pub fn of(h: &Histogram<u64>) -> Latency {
        if h.is_empty() {
            return Latency::default();
        }
        Latency {
            p50_us: h.value_at_quantile(0.50),
            p90_us: h.value_at_quantile(0.90),
            p99_us: h.value_at_quantile(0.99),
            p999_us: h.value_at_quantile(0.999),
            max_us: h.max(),
        }
    }
}

/// Latency added by the gateway: gateway percentile minus direct percentile (may be negative
/// within noise).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Added {
    /// p50 difference.
    pub p50_us: i64,
    /// p99 difference.
    pub p99_us: i64,
    /// p99.9 difference.
    pub p999_us: i64,
}

/// `gateway - direct`, percentile by percentile.
pub fn added(gateway: &Latency, direct: &Latency) -> Added {
    let d = |a: u64, b: u64| a as i64 - b as i64;
    Added {
        p50_us: d(gateway.p50_us, direct.p50_us),
        p99_us: d(gateway.p99_us, direct.p99_us),
        p999_us: d(gateway.p999_us, direct.p999_us),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn empty_histogram_gives_zeros() {
        assert_eq!(Latency::of(&new_hist().unwrap()), Latency::default());
    }

    #[test]
    fn percentiles_of_a_uniform_spread() {
        let mut h = new_hist().unwrap();
        for us in 1..=1000 {
            record(&mut h, us);
        }
        let l = Latency::of(&h);
        assert_eq!((l.p50_us, l.p90_us, l.p99_us, l.p999_us, l.max_us), (500, 900, 990, 999, 1000));
    }

    #[test]
    fn out_of_range_values_are_clamped() {
        let mut h = new_hist().unwrap();
        record(&mut h, 0);
        record(&mut h, MAX_US * 10);
        assert_eq!(h.len(), 2);
        assert!(h.max() >= MAX_US);
    }

    #[test]
    fn added_is_a_signed_difference() {
        let g = Latency { p50_us: 300, p90_us: 0, p99_us: 500, p999_us: 900, max_us: 0 };
        let d = Latency { p50_us: 100, p90_us: 0, p99_us: 600, p999_us: 400, max_us: 0 };
        assert_eq!(added(&g, &d), Added { p50_us: 200, p99_us: -100, p999_us: 500 });
    }
}
