//! Live counters shared by the client threads, and the once-a-second progress line on stderr:
//! elapsed, sent, done, errors, current rate, p99 so far and the server's RSS when sampled.

use super::stats::{self, new_hist};
use super::BenchError;
use hdrhistogram::Histogram;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Counters and the measured-latency histogram of one run (or one sweep step).
#[derive(Debug)]
pub struct Live {
    /// Calls sent.
    pub sent: AtomicU64,
    /// Calls answered successfully.
    pub done: AtomicU64,
    /// Error replies and calls that never got a reply.
    pub errors: AtomicU64,
    /// Latest server RSS sample, bytes (0 = none), shared with the sampler.
    pub rss_bytes: Arc<AtomicU64>,
    hist: Mutex<Histogram<u64>>,
}

impl Live {
    /// Fresh counters.
    pub fn new() -> Result<Arc<Live>, BenchError> {
        Self::with_rss(Arc::new(AtomicU64::new(0)))
    }

    /// Fresh counters showing the RSS an [`super::rss::Sampler`] publishes to `rss`.
    pub fn with_rss(rss: Arc<AtomicU64>) -> Result<Arc<Live>, BenchError> {
        Ok(Arc::new(Live {
            sent: AtomicU64::new(0),
            done: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            rss_bytes: rss,
            hist: Mutex::new(new_hist()?),
        }))
    }

    /// The measured-latency histogram (a poisoned lock is still usable: it holds only numbers).
    pub fn hist(&self) -> MutexGuard<'_, Histogram<u64>> {
        self.hist.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a measured latency.
    pub fn record(&self, us: u64) {
        stats::record(&mut self.hist(), us);
    }

    /// Sent, done, errors and p99 so far.
    pub fn snapshot(&self) -> Snapshot {
        let p99 = {
            let h = self.hist();
            if h.is_empty() {
                0
            } else {
                h.value_at_quantile(0.99)
            }
        };
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Snapshot { sent: load(&self.sent), done: load(&self.done), errors: load(&self.errors), p99_us: p99 }
    }
}

/// The counters at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Snapshot {
    /// Calls sent.
    pub sent: u64,
    /// Calls answered successfully.
    pub done: u64,
    /// Errors.
    pub errors: u64,
    /// p99 of the measured calls so far, µs.
    pub p99_us: u64,
}

/// One progress line.
pub fn format_line(label: &str, elapsed: f64, s: Snapshot, rate: f64, rss: u64) -> String {
    let Snapshot { sent, done, errors, p99_us } = s;
    let mut line =
        format!("[{label} {elapsed:6.1}s] sent {sent} done {done} errors {errors} rate {rate:.0}/s p99 {p99_us} us");
    if rss > 0 {
        line.push_str(&format!(" rss {:.1} MB", rss as f64 / 1e6));
    }
    line
}

/// The progress printer; stops (and prints nothing more) when dropped.
pub struct Progress {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl Progress {
    /// Prints a line for `live` every second until dropped; does nothing when `quiet`.
    pub fn start(label: &str, live: Arc<Live>, quiet: bool) -> Progress {
        let stop = Arc::new(AtomicBool::new(false));
        if quiet {
            return Progress { stop, handle: None };
        }
        let (flag, label) = (stop.clone(), label.to_string());
        let handle = std::thread::spawn(move || {
            let t0 = Instant::now();
            let mut last = (t0, 0u64);
            let mut next = t0 + Duration::from_secs(1);
            while !flag.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(50));
                let now = Instant::now();
                if now < next {
                    continue;
                }
                next += Duration::from_secs(1);
                let snap = live.snapshot();
                let rate = (snap.done - last.1.min(snap.done)) as f64 / now.duration_since(last.0).as_secs_f64();
                last = (now, snap.done);
                let rss = live.rss_bytes.load(Ordering::Relaxed);
                let secs = now.duration_since(t0).as_secs_f64();
                eprintln!("{}", format_line(&label, secs, snap, rate, rss));
            }
        });
        Progress { stop, handle: Some(handle) }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn line_shows_every_counter() {
        let s = Snapshot { sent: 3000, done: 2990, errors: 1, p99_us: 250 };
        let l = format_line("open", 3.04, s, 1000.4, 0);
        assert_eq!(l, "[open    3.0s] sent 3000 done 2990 errors 1 rate 1000/s p99 250 us");
        assert!(format_line("x", 1.0, s, 0.0, 57_400_000).ends_with("rss 57.4 MB"));
    }

    #[test]
    fn live_snapshot_reports_p99() {
        let live = Live::new().unwrap();
        for us in 1..=100 {
            live.record(us);
        }
        live.sent.store(100, Ordering::Relaxed);
        assert_eq!(live.snapshot(), Snapshot { sent: 100, done: 0, errors: 0, p99_us: 99 });
    }
}
