//! Resident memory of the server over time: sampled once a second from `/proc/<pid>/status`
//! (`VmRSS`) when the process is known, else from the server's Prometheus
//! `exai_process_resident_memory_bytes` at `/metrics` (a plain HTTP/1.0 GET on loopback).
//! [`summarize`] reduces a series to start, max, end and the growth over the second half.

use serde::Serialize;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Where RSS comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum RssSource {
    /// `/proc/<pid>/status`.
    Proc(u32),
    /// `host:port` serving `/metrics`.
    Metrics(String),
}

impl RssSource {
    /// One reading, bytes; `None` when the source cannot be read.
    pub fn read(&self) -> Option<u64> {
        match self {
            RssSource::Proc(pid) => parse_vmrss(&std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?),
            RssSource::Metrics(addr) => parse_metric(&http_get(addr, "/metrics")?),
        }
    }
}

fn http_get(addr: &str, path: &str) -> Option<String> {
    let timeout = Duration::from_secs(2);
    let sock = addr.to_socket_addrs().ok()?.next()?;
    let mut s = TcpStream::connect_timeout(&sock, timeout).ok()?;
    s.set_read_timeout(Some(timeout)).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    Some(body)
}

/// `VmRSS:   12345 kB` → bytes.
pub fn parse_vmrss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// The `exai_process_resident_memory_bytes` (or unprefixed) sample in a Prometheus text page.
pub fn parse_metric(page: &str) -> Option<u64> {
    page.lines().find_map(|l| {
        let rest = l
            .strip_prefix("exai_process_resident_memory_bytes ")
            .or(l.strip_prefix("process_resident_memory_bytes "))?;
        rest.trim().parse::<f64>().ok().map(|v| v as u64)
    })
}

/// One reading.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Sample {
    /// Seconds since sampling started.
    pub t_s: f64,
    /// Resident bytes.
    pub rss_bytes: u64,
}

/// A series reduced.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RssSummary {
    /// Where the samples came from.
    pub source: RssSource,
    /// First sample, bytes.
    pub start_bytes: u64,
    /// Largest sample, bytes.
    pub max_bytes: u64,
    /// Last sample, bytes.
    pub end_bytes: u64,
    /// First sample of the second half (at or after half the sampled time), bytes.
    pub mid_bytes: u64,
    /// (largest sample of the second half − `mid_bytes`) / `mid_bytes`, percent.
    pub growth_second_half_pct: f64,
    /// Every sample, once a second.
    pub series: Vec<Sample>,
}

/// Start, max, end and second-half growth; `None` without samples.
pub fn summarize(source: RssSource, series: Vec<Sample>) -> Option<RssSummary> {
    let first = *series.first()?;
    let last = *series.last()?;
    let half = first.t_s + (last.t_s - first.t_s) / 2.0;
    let second: Vec<&Sample> = series.iter().filter(|s| s.t_s >= half).collect();
    let mid = second.first().map_or(last.rss_bytes, |s| s.rss_bytes);
    let max_second = second.iter().map(|s| s.rss_bytes).max().unwrap_or(mid);
    let growth = if mid == 0 { 0.0 } else { (max_second as f64 - mid as f64) / mid as f64 * 100.0 };
    Some(RssSummary {
        source,
        start_bytes: first.rss_bytes,
        max_bytes: series.iter().map(|s| s.rss_bytes).max().unwrap_or(0),
        end_bytes: last.rss_bytes,
        mid_bytes: mid,
        growth_second_half_pct: growth,
        series,
    })
}

/// A background sampler; [`Sampler::finish`] stops it and returns the summary.
pub struct Sampler {
    source: RssSource,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<Vec<Sample>>>,
}

impl Sampler {
    /// Samples `source` now and then every second, publishing the latest reading to `latest`.
    pub fn start(source: RssSource, latest: Arc<AtomicU64>) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let (flag, src) = (stop.clone(), source.clone());
        let handle = std::thread::spawn(move || {
            let t0 = Instant::now();
            let mut series = Vec::new();
            let mut next = t0;
            loop {
                if let Some(b) = src.read() {
                    latest.store(b, Ordering::Relaxed);
                    series.push(Sample { t_s: t0.elapsed().as_secs_f64(), rss_bytes: b });
                }
                next += Duration::from_secs(1);
                while Instant::now() < next {
                    if flag.load(Ordering::Relaxed) {
                        return series;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        });
        Sampler { source, stop, handle: Some(handle) }
    }

    /// Stops sampling (one last reading first) and summarizes.
    pub fn finish(mut self) -> Option<RssSummary> {
        self.stop.store(true, Ordering::Relaxed);
        let mut series = self.handle.take().and_then(|h| h.join().ok()).unwrap_or_default();
        if let (Some(b), Some(last)) = (self.source.read(), series.last()) {
            let t_s = last.t_s + 0.001;
            series.push(Sample { t_s, rss_bytes: b });
        }
        summarize(self.source.clone(), series)
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn series(v: &[u64]) -> Vec<Sample> {
        v.iter().enumerate().map(|(i, &b)| Sample { t_s: i as f64, rss_bytes: b }).collect()
    }

    #[test]
    fn parses_proc_status_and_metrics() {
        let status = "Name:\texai\nVmPeak:\t  99999 kB\nVmRSS:\t   38000 kB\nRssAnon:\t 1 kB\n";
        assert_eq!(parse_vmrss(status), Some(38000 * 1024));
        let page = "# HELP x\nexai_process_resident_memory_bytes 5.7344e7\nexai_process_virtual_memory_bytes 1\n";
        assert_eq!(parse_metric(page), Some(57_344_000));
        assert_eq!(parse_metric("nothing here"), None);
    }

    #[test]
    fn plateau_has_small_second_half_growth() {
        // 0..8 s: grows, then flat: second half starts at t=4 (value 100).
        let s = summarize(RssSource::Proc(1), series(&[40, 60, 80, 95, 100, 101, 100, 102, 101])).unwrap();
        assert_eq!((s.start_bytes, s.max_bytes, s.end_bytes, s.mid_bytes), (40, 102, 101, 100));
        assert!((s.growth_second_half_pct - 2.0).abs() < 1e-9);
    }

    #[test]
    fn a_leak_shows_as_growth() {
        let s = summarize(RssSource::Proc(1), series(&[100, 110, 120, 130, 140])).unwrap();
        assert_eq!(s.mid_bytes, 120);
        assert!((s.growth_second_half_pct - 100.0 * 20.0 / 120.0).abs() < 1e-9);
    }

    #[test]
    fn one_sample_or_none() {
        let s = summarize(RssSource::Proc(1), series(&[7])).unwrap();
        assert_eq!((s.start_bytes, s.end_bytes, s.growth_second_half_pct), (7, 7, 0.0));
        assert!(summarize(RssSource::Proc(1), vec![]).is_none());
    }
}
