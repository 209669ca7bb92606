//! Open loop: calls go out on a fixed schedule (`--rate`) whether or not earlier ones were
//! answered, several in flight per connection, and each call's latency runs from its
//! *scheduled* send time to its reply, so a server stall shows in the figures instead of
//! silently slowing the client down (no coordinated omission). Calls due in the warm-up are
//! sent but not measured; after the last send the connections wait up to `--drain` seconds for
//! outstanding replies, and those still missing count as lost.
//!
//! The same driver runs [`Kind::Http`]: the identical schedule as plain HTTP POSTs against the
//! provider endpoint itself (one request at a time per keep-alive connection), the baseline for
//! the latency exai adds.

use super::direct;
use super::output::RunReport;
use super::pacer;
use super::progress::Live;
use super::schedule::Schedule;
use super::stats::{self, new_hist, Latency};
use super::wire::{self, Framed, Incoming, Target};
use super::BenchError;
use hdrhistogram::Histogram;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

/// What the calls go to.
#[derive(Debug, Clone)]
pub enum Kind {
    /// A tool over WebSocket.
    Ws(Target),
    /// A JSON POST to a URL.
    Http {
        /// URL.
        url: String,
        /// Body.
        body: String,
    },
}

/// How to drive.
#[derive(Debug, Clone)]
pub struct OpenPlan {
    /// Offered calls/s.
    pub rate: f64,
    /// Connections.
    pub connections: usize,
    /// Client threads.
    pub threads: usize,
    /// Warm-up seconds.
    pub warmup: f64,
    /// Measured seconds.
    pub duration: f64,
    /// Seconds to wait for replies after the last send.
    pub drain: f64,
}

/// State shared by the connection tasks of one run.
pub(crate) struct Ctx {
    pub(crate) live: Arc<Live>,
    pub(crate) schedule: Schedule,
    pub(crate) start: OnceLock<Instant>,
    pub(crate) measured_from: u64,
    pub(crate) window: (Duration, Duration),
    pub(crate) drain: Duration,
    ok: AtomicU64,
    failed: AtomicU64,
    lost: AtomicU64,
    in_window: AtomicU64,
    lag: Mutex<Histogram<u64>>,
}

impl Ctx {
    fn start(&self) -> Instant {
        *self.start.get_or_init(Instant::now)
    }

    fn scheduled(&self, seq: u64) -> Instant {
        self.start() + self.schedule.due(seq)
    }

    /// Call `seq` leaves now.
    pub(crate) fn sent(&self, seq: u64) {
        self.live.sent.fetch_add(1, Ordering::Relaxed);
        let lag = Instant::now().saturating_duration_since(self.scheduled(seq));
        stats::record(&mut self.lag.lock().unwrap_or_else(|e| e.into_inner()), lag.as_micros() as u64);
    }

    /// Call `seq` was answered (`ok`) or failed.
    pub(crate) fn reply(&self, seq: u64, ok: bool) {
        let now = Instant::now();
        let measured = seq >= self.measured_from;
        if ok {
            self.live.done.fetch_add(1, Ordering::Relaxed);
            let at = now.saturating_duration_since(self.start());
            if at >= self.window.0 && at < self.window.1 {
                self.in_window.fetch_add(1, Ordering::Relaxed);
            }
            if measured {
                self.ok.fetch_add(1, Ordering::Relaxed);
                self.live.record(now.saturating_duration_since(self.scheduled(seq)).as_micros() as u64);
            }
        } else {
            self.live.errors.fetch_add(1, Ordering::Relaxed);
            if measured {
                self.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Calls that will never be answered (`seqs` that were sent or queued).
    pub(crate) fn lost(&self, seqs: impl IntoIterator<Item = u64>) {
        for seq in seqs {
            self.live.errors.fetch_add(1, Ordering::Relaxed);
            if seq >= self.measured_from {
                self.lost.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// When the drain period of a connection ends.
    pub(crate) fn drain_deadline(&self) -> tokio::time::Instant {
        tokio::time::Instant::from_std(Instant::now() + self.drain)
    }
}

/// Takes what is left in a connection's queue (never sent).
pub(crate) fn leftovers(rx: &mut UnboundedReceiver<u64>) -> Vec<u64> {
    rx.close();
    let mut v = Vec::new();
    while let Ok(seq) = rx.try_recv() {
        v.push(seq);
    }
    v
}

async fn ws_conn(mut ws: Framed, t: Target, mut rx: UnboundedReceiver<u64>, ctx: Arc<Ctx>) {
    let mut outstanding = std::collections::HashSet::new();
    let mut open = true;
    let mut drain_until = ctx.drain_deadline();
    loop {
        if !open && outstanding.is_empty() {
            break;
        }
        tokio::select! {
            biased;
            v = wire::recv_json(&mut ws) => match v.map(|v| wire::classify(t.protocol, &v)) {
                None => break,
                Some(Incoming::Reply { seq, ok }) => {
                    if outstanding.remove(&seq) {
                        ctx.reply(seq, ok);
                    }
                }
                Some(Incoming::Ping(id)) => {
                    wire::pong(&mut ws, id).await;
                }
                Some(Incoming::Other) => {}
            },
            s = rx.recv(), if open => match s {
                Some(seq) => {
                    ctx.sent(seq);
                    outstanding.insert(seq);
                    if !wire::send_json(&mut ws, &wire::request(&t, seq)).await {
                        break;
                    }
                }
                None => {
                    open = false;
                    drain_until = ctx.drain_deadline();
                }
            },
            _ = tokio::time::sleep_until(drain_until), if !open => break,
        }
    }
    ctx.lost(outstanding.into_iter().chain(leftovers(&mut rx)));
}

/// Runs one open-loop measurement (blocking).
pub fn run(kind: &Kind, plan: &OpenPlan, live: Arc<Live>) -> Result<RunReport, BenchError> {
    let schedule = Schedule::new(plan.rate, plan.connections)?;
    if plan.duration <= 0.0 {
        return Err(BenchError::Options("--duration must be > 0".into()));
    }
    let warm = Duration::from_secs_f64(plan.warmup.max(0.0));
    let end = warm + Duration::from_secs_f64(plan.duration);
    let ctx = Arc::new(Ctx {
        live: live.clone(),
        schedule,
        start: OnceLock::new(),
        measured_from: schedule.count_before(warm),
        window: (warm, end),
        drain: Duration::from_secs_f64(plan.drain.max(0.0)),
        ok: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        lost: AtomicU64::new(0),
        in_window: AtomicU64::new(0),
        lag: Mutex::new(new_hist()?),
    });
    let threads = plan.threads.clamp(1, plan.connections);
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let mut handles = Vec::new();
    for th in 0..threads {
        let mine: Vec<usize> = (0..plan.connections).filter(|c| c % threads == th).collect();
        let (kind, ctx, ready) = (kind.clone(), ctx.clone(), ready_tx.clone());
        handles.push(std::thread::spawn(move || {
            actix_rt::System::new().block_on(conn_thread(kind, mine, ctx, ready));
        }));
    }
    drop(ready_tx);
    let mut senders = vec![None; plan.connections];
    for _ in 0..plan.connections {
        match ready_rx.recv() {
            Ok(Ok((c, tx))) => senders[c] = Some(tx),
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err(BenchError::Thread),
        }
    }
    let senders: Vec<_> = senders.into_iter().flatten().collect();
    let start = Instant::now() + Duration::from_millis(20);
    let _ = ctx.start.set(start);
    let total = schedule.count_before(end);
    let pacer = pacer::start(schedule, start, total, ctx.measured_from, senders, live.clone());
    let undeliverable = pacer.join().map_err(|_| BenchError::Thread)?;
    for h in handles {
        h.join().map_err(|_| BenchError::Thread)?;
    }
    let lost = ctx.lost.load(Ordering::Relaxed) + undeliverable;
    let (mode, protocol, tool) = match kind {
        Kind::Ws(t) => ("open", Some(t.protocol), t.tool.clone()),
        Kind::Http { url, .. } => ("direct", None, url.clone()),
    };
    let lag = Latency::of(&ctx.lag.lock().unwrap_or_else(|e| e.into_inner()));
    Ok(RunReport {
        mode,
        protocol,
        tool,
        connections: plan.connections,
        offered_rate: Some(plan.rate),
        sent: live.sent.load(Ordering::Relaxed),
        calls: ctx.ok.load(Ordering::Relaxed),
        errors: ctx.failed.load(Ordering::Relaxed) + lost,
        lost,
        seconds: plan.duration,
        calls_per_sec: ctx.in_window.load(Ordering::Relaxed) as f64 / plan.duration,
        latency: Latency::of(&live.hist()),
        send_lag: Some(lag),
    })
}

type Ready = Result<(usize, tokio::sync::mpsc::UnboundedSender<u64>), BenchError>;

/// One client thread: connect its connections, hand their queues to the pacer, run them.
async fn conn_thread(kind: Kind, mine: Vec<usize>, ctx: Arc<Ctx>, ready: std::sync::mpsc::Sender<Ready>) {
    let mut tasks = Vec::new();
    for c in mine {
        let (tx, rx) = unbounded_channel();
        match &kind {
            Kind::Ws(t) => match wire::connect(t).await {
                Ok(ws) => tasks.push(futures_util::future::Either::Left(ws_conn(ws, t.clone(), rx, ctx.clone()))),
                Err(e) => {
                    let _ = ready.send(Err(e));
                    return;
                }
            },
            Kind::Http { url, body } => {
                tasks.push(futures_util::future::Either::Right(direct::http_conn(
                    url.clone(),
                    body.clone(),
                    rx,
                    ctx.clone(),
                )));
            }
        }
        let _ = ready.send(Ok((c, tx)));
    }
    futures_util::future::join_all(tasks).await;
}
