//! Closed loop: each connection sends a call, waits for its reply, and sends the next, for a
//! fixed duration (or until a total number of calls) after a warm-up. Latency is from send to
//! reply; under load it includes the queueing the connection itself caused, so use the open
//! loop for latency at a given rate.

use super::output::RunReport;
use super::progress::Live;
use super::stats::Latency;
use super::wire::{self, Framed, Incoming, Target};
use super::BenchError;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How to drive.
#[derive(Debug, Clone)]
pub struct ClosedPlan {
    /// Connections.
    pub connections: usize,
    /// Client threads.
    pub threads: usize,
    /// Warm-up seconds.
    pub warmup: f64,
    /// Measured seconds (a cap when `calls` is set).
    pub duration: f64,
    /// Stop after this many measured calls in all.
    pub calls: Option<u64>,
}

/// One call; `None` when the connection broke.
async fn call_once(ws: &mut Framed, t: &Target, seq: u64) -> Option<bool> {
    if !wire::send_json(ws, &wire::request(t, seq)).await {
        return None;
    }
    loop {
        let v = wire::recv_json(ws).await?;
        match wire::classify(t.protocol, &v) {
            Incoming::Reply { seq: s, ok } if s == seq => return Some(ok),
            Incoming::Ping(id) => {
                wire::pong(ws, id).await;
            }
            _ => {}
        }
    }
}

struct Shared {
    live: Arc<Live>,
    claimed: AtomicU64,
    limit: u64,
    warm_until: Instant,
    end: Instant,
}

/// Returns when this connection finished.
async fn run_conn(t: Target, s: Arc<Shared>) -> Result<Instant, BenchError> {
    let mut ws = wire::connect(&t).await?;
    let mut seq = 0u64;
    loop {
        let t0 = Instant::now();
        if t0 >= s.end {
            break;
        }
        let measured = t0 >= s.warm_until;
        if measured && s.claimed.fetch_add(1, Ordering::Relaxed) >= s.limit {
            break;
        }
        seq += 1;
        s.live.sent.fetch_add(1, Ordering::Relaxed);
        let ok = call_once(&mut ws, &t, seq).await;
        let us = t0.elapsed().as_micros() as u64;
        if !measured {
            continue;
        }
        match ok {
            Some(true) => {
                s.live.done.fetch_add(1, Ordering::Relaxed);
                s.live.record(us);
            }
            Some(false) => {
                s.live.errors.fetch_add(1, Ordering::Relaxed);
            }
            None => {
                s.live.errors.fetch_add(1, Ordering::Relaxed);
                break;
            }
        }
    }
    Ok(Instant::now())
}

/// Runs the closed loop (blocking; one single-threaded runtime per client thread).
pub fn run(t: &Target, plan: &ClosedPlan, live: Arc<Live>) -> Result<RunReport, BenchError> {
    if plan.connections == 0 || plan.duration <= 0.0 {
        return Err(BenchError::Options("connections and duration must be > 0".into()));
    }
    let threads = plan.threads.clamp(1, plan.connections);
    let start = Instant::now();
    let warm_until = start + Duration::from_secs_f64(plan.warmup.max(0.0));
    let shared = Arc::new(Shared {
        live: live.clone(),
        claimed: AtomicU64::new(0),
        limit: plan.calls.unwrap_or(u64::MAX),
        warm_until,
        end: warm_until + Duration::from_secs_f64(plan.duration),
    });
    let mut handles = Vec::new();
    for th in 0..threads {
        let n = (0..plan.connections).filter(|c| c % threads == th).count();
        let (t, shared) = (t.clone(), shared.clone());
        handles.push(std::thread::spawn(move || {
            actix_rt::System::new().block_on(async move {
                let futs = (0..n).map(|_| run_conn(t.clone(), shared.clone()));
                futures_util::future::join_all(futs).await
            })
        }));
    }
    let mut last = warm_until;
    for h in handles {
        for r in h.join().map_err(|_| BenchError::Thread)? {
            last = last.max(r?);
        }
    }
    let seconds = last.duration_since(warm_until).as_secs_f64().max(1e-9);
    let snap = live.snapshot();
    Ok(RunReport {
        mode: "closed",
        protocol: Some(t.protocol),
        tool: t.tool.clone(),
        connections: plan.connections,
        offered_rate: None,
        sent: snap.sent,
        calls: snap.done,
        errors: snap.errors,
        lost: 0,
        seconds,
        calls_per_sec: snap.done as f64 / seconds,
        latency: Latency::of(&live.hist()),
        send_lag: None,
    })
}
