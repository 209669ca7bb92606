//! The rate sweep: open-loop steps at rising offered rates, stopping at the first step the
//! server cannot sustain, and the throughput frontier — for each p99 limit (1, 5 and 10 ms) the
//! most calls/s achieved by a sustained step whose p99 stayed under the limit.

use super::open_loop::{self, Kind, OpenPlan};
use super::output::RunReport;
use super::progress::{Live, Progress};
use super::BenchError;
use serde::Serialize;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

/// The p99 limits of the frontier, µs.
pub const LIMITS_US: [u64; 3] = [1_000, 5_000, 10_000];

/// A step is sustained when nothing failed and the achieved rate is within 5 % of the offered.
pub fn sustained(step: &RunReport) -> bool {
    step.errors == 0 && step.calls_per_sec >= 0.95 * step.offered_rate.unwrap_or(f64::INFINITY)
}

/// A step is saturated (higher rates are pointless) when it fell 20 % short of the offered
/// rate, lost calls, or its p99 passed one second.
pub fn saturated(step: &RunReport) -> bool {
    step.calls_per_sec < 0.8 * step.offered_rate.unwrap_or(0.0) || step.lost > 0 || step.latency.p99_us > 1_000_000
}

/// One point of the frontier.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FrontierPoint {
    /// The p99 limit, µs.
    pub p99_limit_us: u64,
    /// Most calls/s achieved under it (none when no step qualified).
    pub calls_per_sec: Option<f64>,
    /// The offered rate of that step.
    pub offered_rate: Option<f64>,
    /// Its p99, µs.
    pub p99_us: Option<u64>,
}

/// The best sustained step with p99 under `limit_us`.
pub fn frontier(steps: &[RunReport], limit_us: u64) -> FrontierPoint {
    let best = steps
        .iter()
        .filter(|s| sustained(s) && s.latency.p99_us < limit_us)
        .max_by(|a, b| a.calls_per_sec.total_cmp(&b.calls_per_sec));
    FrontierPoint {
        p99_limit_us: limit_us,
        calls_per_sec: best.map(|s| s.calls_per_sec),
        offered_rate: best.and_then(|s| s.offered_rate),
        p99_us: best.map(|s| s.latency.p99_us),
    }
}

/// Steps and frontier.
#[derive(Debug, Clone, Serialize)]
pub struct SweepReport {
    /// Every step run, in order.
    pub steps: Vec<RunReport>,
    /// One point per limit in [`LIMITS_US`].
    pub frontier: Vec<FrontierPoint>,
}

/// Runs the steps (rates ascending) until one saturates.
pub fn run(
    kind: &Kind,
    plan: &OpenPlan,
    rates: &[f64],
    rss: Arc<AtomicU64>,
    quiet: bool,
) -> Result<SweepReport, BenchError> {
    let mut rates = rates.to_vec();
    rates.sort_by(f64::total_cmp);
    let mut steps = Vec::new();
    for rate in rates {
        let live = Live::with_rss(rss.clone())?;
        let progress = Progress::start(&format!("sweep {rate:.0}/s"), live.clone(), quiet);
        let step = open_loop::run(kind, &OpenPlan { rate, ..plan.clone() }, live)?;
        drop(progress);
        let stop = saturated(&step);
        steps.push(step);
        if stop {
            break;
        }
    }
    let frontier = LIMITS_US.iter().map(|&l| frontier(&steps, l)).collect();
    Ok(SweepReport { steps, frontier })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::stats::Latency;

    fn step(offered: f64, achieved: f64, p99: u64, errors: u64) -> RunReport {
        RunReport {
            mode: "open",
            protocol: None,
            tool: "version".into(),
            connections: 64,
            offered_rate: Some(offered),
            sent: 0,
            calls: 0,
            errors,
            lost: 0,
            seconds: 1.0,
            calls_per_sec: achieved,
            latency: Latency { p99_us: p99, ..Latency::default() },
            send_lag: None,
        }
    }

    #[test]
    fn frontier_picks_the_fastest_sustained_step_under_each_limit() {
        let steps = vec![
            step(1000.0, 1000.0, 200, 0),
            step(5000.0, 4990.0, 800, 0),
            step(10000.0, 9980.0, 3000, 0),
            step(20000.0, 19900.0, 9000, 0),
            step(30000.0, 24000.0, 40000, 0), // not sustained
        ];
        let f: Vec<Option<f64>> = LIMITS_US.iter().map(|&l| frontier(&steps, l).calls_per_sec).collect();
        assert_eq!(f, [Some(4990.0), Some(9980.0), Some(19900.0)]);
        assert_eq!(frontier(&steps, 5_000).offered_rate, Some(10000.0));
    }

    #[test]
    fn errors_or_shortfall_disqualify_a_step() {
        let steps = vec![step(1000.0, 1000.0, 900, 3), step(2000.0, 1500.0, 500, 0)];
        assert_eq!(frontier(&steps, 1_000).calls_per_sec, None);
        assert!(!sustained(&steps[0]) && !sustained(&steps[1]));
        assert!(sustained(&step(1000.0, 960.0, 1, 0)));
    }

    #[test]
    fn saturation_stops_the_sweep() {
        assert!(saturated(&step(10000.0, 7000.0, 500, 0)));
        assert!(saturated(&step(10000.0, 9990.0, 2_000_000, 0)));
        assert!(!saturated(&step(10000.0, 9990.0, 20_000, 0)));
    }
}
