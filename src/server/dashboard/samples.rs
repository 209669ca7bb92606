//! Per-second samples for the dashboard chart, read from the Prometheus metrics.
//!
//! [`CallTotals::read`] sums the tool-call counters and the whole-call latency histograms over
//! every tool; [`SampleRing::record`] turns the difference to the previous reading into one
//! [`Sample`] (calls, non-ok calls, mean and approximate p95 latency of the calls that
//! finished in that second, plus in-flight calls and live sessions) and keeps the newest
//! `capacity` of them. A task started by [`spawn_sampler`] records one sample per second
//! until shutdown begins.

use exai_actors::env::{now_ms, RuntimeState};
use exai_actors::metrics::{Metrics, PROTOCOLS};
use prometheus::core::Collector;
use serde::Serialize;
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Cumulative call counts and latency since start, over all tools.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CallTotals {
    /// Finished calls.
    pub calls: u64,
    /// Finished calls whose outcome is not `ok`.
    pub not_ok: u64,
    /// Calls by outcome.
    pub by_outcome: Vec<(String, u64)>,
    /// Latency observations.
    pub latency_count: u64,
    /// Sum of latencies, seconds.
    pub latency_sum: f64,
    /// Cumulative bucket counts by upper bound (seconds), ascending.
    pub buckets: Vec<(f64, u64)>,
}

impl CallTotals {
    /// Read the current totals from the metrics.
    pub fn read(m: &Metrics) -> CallTotals {
        let mut t = CallTotals::default();
        for fam in m.tool_calls.collect() {
            for metric in fam.get_metric() {
                let v = metric.get_counter().get_value() as u64;
                let outcome = metric.get_label().iter().find(|l| l.name() == "outcome").map(|l| l.value());
                let outcome = outcome.unwrap_or("unknown");
                t.calls += v;
                if outcome != "ok" {
                    t.not_ok += v;
                }
                match t.by_outcome.iter_mut().find(|(o, _)| o == outcome) {
                    Some((_, n)) => *n += v,
                    None => t.by_outcome.push((outcome.to_string(), v)),
                }
            }
        }
        t.by_outcome.sort();
        for fam in m.call_seconds.collect() {
            for metric in fam.get_metric() {
                let h = metric.get_histogram();
                t.latency_count += h.get_sample_count();
                t.latency_sum += h.get_sample_sum();
                for (i, b) in h.get_bucket().iter().enumerate() {
                    match t.buckets.get_mut(i) {
                        Some(slot) => slot.1 += b.cumulative_count(),
                        None => t.buckets.push((b.upper_bound(), b.cumulative_count())),
                    }
                }
            }
        }
        t
    }

    /// Mean latency in ms of everything counted, if anything was.
    pub fn mean_ms(&self) -> Option<f64> {
        (self.latency_count > 0).then(|| self.latency_sum * 1000.0 / self.latency_count as f64)
    }

    /// Approximate p95 latency in ms (the upper bound of the bucket holding it).
    pub fn p95_ms(&self) -> Option<f64> {
        quantile_ms(&self.buckets, self.latency_count, 0.95)
    }
}

/// The upper bound (ms) of the bucket holding quantile `q` of `count` observations.
fn quantile_ms(buckets: &[(f64, u64)], count: u64, q: f64) -> Option<f64> {
    if count == 0 {
        return None;
    }
    let rank = (count as f64 * q).ceil() as u64;
    let bound = buckets.iter().find(|(_, c)| *c >= rank).map(|(b, _)| *b);
    // Beyond the largest finite bucket: report that bound (a lower limit of the truth).
    Some(bound.or_else(|| buckets.last().map(|(b, _)| *b)).unwrap_or(0.0) * 1000.0)
}

/// One second of activity.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Sample {
    /// End of the second (Unix ms).
    pub t_ms: i64,
    /// Calls that finished.
    pub calls: u64,
    /// Of those, calls whose outcome was not `ok`.
    pub errors: u64,
    /// Mean latency of those calls, ms.
    pub mean_ms: Option<f64>,
    /// Approximate p95 latency of those calls, ms.
    pub p95_ms: Option<f64>,
    /// Calls in flight at the sample time.
    pub inflight: usize,
    /// Live sessions at the sample time.
    pub sessions: usize,
}

/// The newest samples, oldest first.
pub struct SampleRing {
    capacity: usize,
    inner: Mutex<(Option<CallTotals>, VecDeque<Sample>)>,
}

impl SampleRing {
    /// A ring keeping `capacity` samples.
    pub fn new(capacity: usize) -> SampleRing {
        SampleRing { capacity: capacity.max(1), inner: Mutex::new((None, VecDeque::new())) }
    }

    /// Record a sample from the current totals (the first reading only sets the baseline).
    pub fn record(&self, now: CallTotals, t_ms: i64, inflight: usize, sessions: usize) -> Option<Sample> {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let prev = g.0.replace(now.clone())?;
        let count = now.latency_count.saturating_sub(prev.latency_count);
        let diff: Vec<(f64, u64)> = now
            .buckets
            .iter()
            .map(|(b, c)| (*b, c.saturating_sub(prev.buckets.iter().find(|(pb, _)| pb == b).map_or(0, |p| p.1))))
            .collect();
        let s = Sample {
            t_ms,
            calls: now.calls.saturating_sub(prev.calls),
            errors: now.not_ok.saturating_sub(prev.not_ok),
            mean_ms: (count > 0).then(|| (now.latency_sum - prev.latency_sum).max(0.0) * 1000.0 / count as f64),
            p95_ms: quantile_ms(&diff, count, 0.95),
            inflight,
            sessions,
        };
        if g.1.len() >= self.capacity {
            g.1.pop_front();
        }
        g.1.push_back(s.clone());
        Some(s)
    }

    /// Samples of the last `secs` seconds, oldest first.
    pub fn last(&self, secs: usize) -> Vec<Sample> {
        let g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let skip = g.1.len().saturating_sub(secs);
        g.1.iter().skip(skip).cloned().collect()
    }

    /// The newest sample.
    pub fn latest(&self) -> Option<Sample> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).1.back().cloned()
    }
}

/// Live sessions over all protocols.
pub fn sessions(rt: &RuntimeState) -> usize {
    PROTOCOLS.iter().map(|p| rt.session_counter(p).load(Ordering::Relaxed)).sum()
}

/// Record one sample per second on the current actix system until shutdown begins.
pub fn spawn_sampler(ring: Arc<SampleRing>, metrics: Metrics, runtime: Arc<RuntimeState>) {
    actix_rt::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(1));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while !runtime.is_shutting_down() {
            every.tick().await;
            ring.record(CallTotals::read(&metrics), now_ms(), runtime.inflight.in_use(), sessions(&runtime));
        }
    });
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn samples_are_differences_between_readings() {
        let m = Metrics::new().unwrap();
        let ring = SampleRing::new(3);
        assert_eq!(ring.record(CallTotals::read(&m), 1, 0, 0), None, "the first reading is the baseline");
        let ok = m.tool_calls.with_label_values(&["version", "ok"]);
        let err = m.tool_calls.with_label_values(&["version", "error"]);
        let h = m.call_seconds.with_label_values(&["version"]);
        ok.inc_by(3);
        err.inc();
        for s in [0.002, 0.002, 0.002, 0.2] {
            h.observe(s);
        }
        let s = ring.record(CallTotals::read(&m), 2, 1, 2).unwrap();
        assert_eq!((s.calls, s.errors, s.inflight, s.sessions), (4, 1, 1, 2));
        assert!((s.mean_ms.unwrap() - 51.5).abs() < 1e-6, "{s:?}");
        assert_eq!(s.p95_ms, Some(250.0), "p95 of 4 calls is the slowest one's bucket (0.25 s)");
        let quiet = ring.record(CallTotals::read(&m), 3, 0, 2).unwrap();
        assert_eq!((quiet.calls, quiet.mean_ms, quiet.p95_ms), (0, None, None));
        ring.record(CallTotals::read(&m), 4, 0, 2);
        ring.record(CallTotals::read(&m), 5, 0, 2);
        let all = ring.last(10);
        assert_eq!(all.iter().map(|s| s.t_ms).collect::<Vec<_>>(), [3, 4, 5], "bounded to capacity");
        assert_eq!(ring.last(1)[0].t_ms, 5);
        assert_eq!(ring.latest().unwrap().t_ms, 5);
        let totals = CallTotals::read(&m);
        assert_eq!((totals.calls, totals.not_ok), (4, 1));
        assert_eq!(totals.by_outcome.iter().find(|(o, _)| o == "ok").map(|x| x.1), Some(3));
        assert_eq!(totals.p95_ms(), Some(250.0));
    }
}
