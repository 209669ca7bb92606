//! The per-provider circuit breaker: [`BreakerHandle`] (the shared state every call consults)
//! and [`BreakerActor`] (its supervised timer).
//!
//! States: `Closed` (calls pass; outcomes are counted in a sliding window) → `Open` (after
//! `consecutive_failures` failures in a row, or a failure ratio ≥ `failure_ratio` over at
//! least `min_requests` requests within `window`; calls are refused with the time left) →
//! `HalfOpen` (once `open_for` has passed; at most `half_open_probes` probe calls in flight)
//! → `Closed` on a probe success, or back to `Open` on a probe failure.
//!
//! The hot path never waits on an actor: [`BreakerHandle::try_acquire`] in `Closed` is one
//! atomic load, and outcomes are reported through the [`BreakerPermit`] it returns, which
//! takes one short lock (no I/O, no await) to update the window. The `Open → HalfOpen` move
//! happens inside `try_acquire` when `open_for` has elapsed, so no timer is needed for
//! correctness; the actor only moves an idle breaker on time so that health and metrics show
//! it. All state lives in the handle's `Arc`, so it survives the actor being recreated.
//!
//! Which outcomes count: report `success` for an answer, `failure` for a failure that says
//! something about the provider's health ([`ProviderError::counts_as_failure`]), and simply
//! drop the permit otherwise (client errors, cancellation): a dropped permit counts nothing
//! and frees its half-open probe slot. [`BreakerPermit::report`] does that sorting. Outcomes
//! of calls admitted while `Closed` that arrive after the breaker opened are ignored; only
//! the probes of the current half-open episode decide how it ends (a late probe of an ended
//! episode still holds its slot until it finishes, so at most `half_open_probes` probes are
//! ever in flight).

mod actor;
mod window;

#[cfg(test)]
mod tests;

pub use actor::{BreakerActor, GetBreakerSnapshot};

use super::types::ProviderError;
use crate::clock::now_ms;
use crate::metrics::Metrics;
use prometheus::{IntCounter, IntGauge};
use serde::Serialize;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use window::Window;

/// How long a caller is told to wait while every half-open probe slot is taken.
pub const HALF_OPEN_BUSY_RETRY: Duration = Duration::from_secs(1);

/// Thresholds of one breaker.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BreakerConfig {
    /// Open when failures / requests within `window` reach this (0 < ratio ≤ 1) …
    pub failure_ratio: f64,
    /// … provided at least this many requests finished within `window`.
    pub min_requests: u32,
    /// Open after this many failures in a row (whatever the ratio).
    pub consecutive_failures: u32,
    /// Length of the sliding window for the ratio rule.
    pub window: Duration,
    /// How long the breaker stays open before it lets probes through.
    pub open_for: Duration,
    /// Probe calls allowed in flight while half-open.
    pub half_open_probes: u32,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            failure_ratio: 0.5,
            min_requests: 10,
            consecutive_failures: 5,
            window: Duration::from_secs(60),
            open_for: Duration::from_secs(30),
            half_open_probes: 2,
        }
    }
}

impl BreakerConfig {
    /// Values a breaker can work with: at least one probe, a non-empty window, a ratio in
    /// (0, 1] (NaN becomes 1).
    fn normalized(mut self) -> BreakerConfig {
        self.half_open_probes = self.half_open_probes.max(1);
        self.window = self.window.max(Duration::from_millis(1));
        self.failure_ratio =
            if self.failure_ratio.is_nan() { 1.0 } else { self.failure_ratio.clamp(f64::MIN_POSITIVE, 1.0) };
        self
    }
}

/// Where a breaker is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    /// Calls pass.
    Closed,
    /// Calls are refused until `open_for` has passed.
    Open,
    /// A limited number of probe calls pass.
    HalfOpen,
}

impl BreakerState {
    /// Metrics/health label.
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }

    /// The value of the `breaker_state` gauge: 0 closed, 1 open, 2 half-open.
    pub fn code(self) -> u8 {
        match self {
            BreakerState::Closed => 0,
            BreakerState::Open => 1,
            BreakerState::HalfOpen => 2,
        }
    }

    fn from_code(code: u8) -> BreakerState {
        match code {
            1 => BreakerState::Open,
            2 => BreakerState::HalfOpen,
            _ => BreakerState::Closed,
        }
    }
}

/// A point-in-time view of a breaker, for health and the dashboard.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BreakerSnapshot {
    /// Provider id.
    pub provider: String,
    /// Current state.
    pub state: BreakerState,
    /// Requests that finished within the window (counted while closed).
    pub window_requests: u32,
    /// Of those, failures.
    pub window_failures: u32,
    /// Failures in a row (while closed).
    pub consecutive_failures: u32,
    /// Probe calls in flight (including late probes of an ended half-open episode).
    pub half_open_inflight: u32,
    /// When the breaker last opened (Unix ms); `None` if it never has.
    pub opened_at_ms: Option<i64>,
    /// While open: milliseconds until probes are let through.
    pub retry_in_ms: Option<u64>,
    /// State changes since the breaker was created.
    pub transitions: u64,
}

/// The time source; tests inject a controllable one.
pub type Clock = Arc<dyn Fn() -> Instant + Send + Sync>;

/// Shared handle of one provider's breaker: cheap to clone, `Send + Sync`.
#[derive(Clone)]
pub struct BreakerHandle {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for BreakerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BreakerHandle").field("provider", &self.shared.provider).field("state", &self.state()).finish()
    }
}

struct Shared {
    provider: String,
    cfg: BreakerConfig,
    clock: Clock,
    /// Mirror of `inner.state` for lock-free reads; written only under the lock.
    state: AtomicU8,
    inner: Mutex<Inner>,
    metrics: BreakerMetrics,
    /// Told of every local transition (cluster mode publishes them to the other nodes).
    observer: std::sync::OnceLock<Arc<dyn BreakerObserver>>,
}

/// Hears a breaker's own transitions (not those applied with
/// [`BreakerHandle::apply_remote`]); must not block.
pub trait BreakerObserver: Send + Sync {
    /// `provider`'s breaker moved to `to`; while open, probes start after `remaining`.
    fn changed(&self, provider: &str, to: BreakerState, remaining: Duration);
}

struct Inner {
    state: BreakerState,
    /// Bumped on every transition; probes carry the value they were admitted under.
    generation: u64,
    window: Window,
    consecutive: u32,
    opened_at: Option<Instant>,
    opened_at_wall_ms: Option<i64>,
    probes_inflight: u32,
    transitions: u64,
}

struct BreakerMetrics {
    state: IntGauge,
    closed_open: IntCounter,
    open_half_open: IntCounter,
    half_open_closed: IntCounter,
    half_open_open: IntCounter,
}

impl BreakerMetrics {
    fn new(provider: &str, metrics: &Metrics) -> BreakerMetrics {
        let t = |from: BreakerState, to: BreakerState| {
            metrics.breaker_transitions.with_label_values(&[provider, from.as_str(), to.as_str()])
        };
        use BreakerState::{Closed, HalfOpen, Open};
        BreakerMetrics {
            state: metrics.breaker_state.with_label_values(&[provider]),
            closed_open: t(Closed, Open),
            open_half_open: t(Open, HalfOpen),
            half_open_closed: t(HalfOpen, Closed),
            half_open_open: t(HalfOpen, Open),
        }
    }

    fn transition(&self, from: BreakerState, to: BreakerState) {
        use BreakerState::{Closed, HalfOpen, Open};
        let counter = match (from, to) {
            (Closed, Open) => Some(&self.closed_open),
            (Open, HalfOpen) => Some(&self.open_half_open),
            (HalfOpen, Closed) => Some(&self.half_open_closed),
            (HalfOpen, Open) => Some(&self.half_open_open),
            _ => None,
        };
        if let Some(c) = counter {
            c.inc();
        }
        self.state.set(i64::from(to.code()));
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PermitKind {
    /// Admitted while closed.
    Normal,
    /// A half-open probe admitted under this generation.
    Probe(u64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Success,
    Failure,
    /// Dropped without a report.
    Abandoned,
}

impl BreakerHandle {
    /// A closed breaker for `provider` on the real clock.
    pub fn new(provider: &str, cfg: BreakerConfig, metrics: &Metrics) -> BreakerHandle {
        BreakerHandle::with_clock(provider, cfg, metrics, Arc::new(Instant::now))
    }

    /// A closed breaker reading time from `clock`.
    pub fn with_clock(provider: &str, cfg: BreakerConfig, metrics: &Metrics, clock: Clock) -> BreakerHandle {
        let cfg = cfg.normalized();
        let now = clock();
        let metrics = BreakerMetrics::new(provider, metrics);
        metrics.state.set(i64::from(BreakerState::Closed.code()));
        BreakerHandle {
            shared: Arc::new(Shared {
                provider: provider.to_owned(),
                cfg,
                clock,
                state: AtomicU8::new(BreakerState::Closed.code()),
                inner: Mutex::new(Inner {
                    state: BreakerState::Closed,
                    generation: 0,
                    window: Window::new(cfg.window, now),
                    consecutive: 0,
                    opened_at: None,
                    opened_at_wall_ms: None,
                    probes_inflight: 0,
                    transitions: 0,
                }),
                metrics,
                observer: std::sync::OnceLock::new(),
            }),
        }
    }

    /// Report this breaker's own transitions to `observer` (set once; later calls are ignored).
    pub fn set_observer(&self, observer: Arc<dyn BreakerObserver>) {
        let _ = self.shared.observer.set(observer);
    }

    /// Apply a transition made by another node: `Open` with the time left before probing, or
    /// `Closed`. Not reported to the observer. A breaker already in that state only takes the
    /// later reopening time.
    pub fn apply_remote(&self, to: BreakerState, remaining: Duration) {
        let now = (self.shared.clock)();
        let mut g = self.shared.lock();
        match to {
            BreakerState::Open => {
                let opened = now.checked_sub(self.shared.cfg.open_for.saturating_sub(remaining)).unwrap_or(now);
                if g.state != BreakerState::Open {
                    self.shared.transition_quiet(&mut g, BreakerState::Open, now);
                }
                if g.opened_at.is_none_or(|at| opened > at) {
                    g.opened_at = Some(opened);
                }
            }
            BreakerState::Closed if g.state != BreakerState::Closed => {
                self.shared.transition_quiet(&mut g, BreakerState::Closed, now);
            }
            _ => {}
        }
    }

    /// Provider id.
    pub fn provider(&self) -> &str {
        &self.shared.provider
    }

    /// The thresholds in use.
    pub fn config(&self) -> BreakerConfig {
        self.shared.cfg
    }

    /// The current state (one atomic load). An open breaker whose `open_for` has passed
    /// reads `Open` until the next [`try_acquire`](Self::try_acquire) or actor tick moves it.
    pub fn state(&self) -> BreakerState {
        BreakerState::from_code(self.shared.state.load(Ordering::Acquire))
    }

    /// Ask to make one call. `Ok` while closed, and while half-open as long as a probe slot is
    /// free; `Err(time until it may be tried again)` otherwise. An open breaker whose
    /// `open_for` has passed becomes half-open here.
    pub fn try_acquire(&self) -> Result<BreakerPermit, Duration> {
        if self.state() == BreakerState::Closed {
            return Ok(self.permit(PermitKind::Normal));
        }
        let now = (self.shared.clock)();
        let mut g = self.shared.lock();
        self.shared.promote(&mut g, now);
        match g.state {
            BreakerState::Closed => Ok(self.permit(PermitKind::Normal)),
            BreakerState::Open => Err(self.shared.remaining(&g, now)),
            BreakerState::HalfOpen => {
                if g.probes_inflight < self.shared.cfg.half_open_probes {
                    g.probes_inflight += 1;
                    Ok(self.permit(PermitKind::Probe(g.generation)))
                } else {
                    Err(HALF_OPEN_BUSY_RETRY)
                }
            }
        }
    }

    /// Move an open breaker to half-open if `open_for` has passed; returns the state. Called
    /// by the actor's timer; harmless to call at any time.
    pub fn poll(&self) -> BreakerState {
        if self.state() == BreakerState::Open {
            let now = (self.shared.clock)();
            let mut g = self.shared.lock();
            self.shared.promote(&mut g, now);
        }
        self.state()
    }

    /// A consistent view of the breaker.
    pub fn snapshot(&self) -> BreakerSnapshot {
        let now = (self.shared.clock)();
        let g = self.shared.lock();
        let (window_requests, window_failures) = g.window.totals(now);
        BreakerSnapshot {
            provider: self.shared.provider.clone(),
            state: g.state,
            window_requests,
            window_failures,
            consecutive_failures: g.consecutive,
            half_open_inflight: g.probes_inflight,
            opened_at_ms: g.opened_at_wall_ms,
            retry_in_ms: (g.state == BreakerState::Open)
                .then(|| u64::try_from(self.shared.remaining(&g, now).as_millis()).unwrap_or(u64::MAX)),
            transitions: g.transitions,
        }
    }

    fn permit(&self, kind: PermitKind) -> BreakerPermit {
        BreakerPermit { shared: Arc::clone(&self.shared), kind, reported: false }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Nothing panics while holding the lock, but a poisoned breaker must keep working.
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn remaining(&self, g: &Inner, now: Instant) -> Duration {
        match g.opened_at {
            Some(at) => (at + self.cfg.open_for).saturating_duration_since(now),
            None => Duration::ZERO,
        }
    }

    fn promote(&self, g: &mut Inner, now: Instant) {
        if g.state == BreakerState::Open && self.remaining(g, now).is_zero() {
            self.transition(g, BreakerState::HalfOpen, now);
        }
    }

    fn transition(&self, g: &mut Inner, to: BreakerState, now: Instant) {
        self.transition_quiet(g, to, now);
        if let Some(o) = self.observer.get() {
            o.changed(&self.provider, to, self.remaining(g, now));
        }
    }

    /// A transition without telling the observer (one applied from another node).
    fn transition_quiet(&self, g: &mut Inner, to: BreakerState, now: Instant) {
        let from = g.state;
        g.state = to;
        g.generation += 1;
        g.transitions += 1;
        match to {
            BreakerState::Open => {
                g.opened_at = Some(now);
                g.opened_at_wall_ms = Some(now_ms());
            }
            BreakerState::Closed => {
                g.window.clear();
                g.consecutive = 0;
            }
            BreakerState::HalfOpen => {}
        }
        self.state.store(to.code(), Ordering::Release);
        self.metrics.transition(from, to);
        let provider = self.provider.as_str();
        if to == BreakerState::Open {
            let open_for_ms = u64::try_from(self.cfg.open_for.as_millis()).unwrap_or(u64::MAX);
            tracing::warn!(provider, from = from.as_str(), open_for_ms, "circuit breaker opened");
        } else {
            tracing::info!(provider, from = from.as_str(), to = to.as_str(), "circuit breaker state change");
        }
    }

    fn should_trip(&self, g: &Inner, now: Instant) -> bool {
        if self.cfg.consecutive_failures > 0 && g.consecutive >= self.cfg.consecutive_failures {
            return true;
        }
        let (requests, failures) = g.window.totals(now);
        requests > 0
            && requests >= self.cfg.min_requests
            && f64::from(failures) / f64::from(requests) >= self.cfg.failure_ratio
    }

    fn on_outcome(&self, kind: PermitKind, outcome: Outcome) {
        if kind == PermitKind::Normal && outcome == Outcome::Abandoned {
            return;
        }
        let now = (self.clock)();
        let mut g = self.lock();
        match kind {
            PermitKind::Normal => {
                if g.state != BreakerState::Closed {
                    return;
                }
                let failed = outcome == Outcome::Failure;
                g.window.record(now, failed);
                if failed {
                    g.consecutive = g.consecutive.saturating_add(1);
                    if self.should_trip(&g, now) {
                        self.transition(&mut g, BreakerState::Open, now);
                    }
                } else {
                    g.consecutive = 0;
                }
            }
            PermitKind::Probe(generation) => {
                // Every probe holds a slot until it ends, even one whose episode is over, so
                // the provider never sees more than `half_open_probes` probes at once.
                g.probes_inflight = g.probes_inflight.saturating_sub(1);
                if g.state != BreakerState::HalfOpen || g.generation != generation {
                    return;
                }
                match outcome {
                    Outcome::Success => self.transition(&mut g, BreakerState::Closed, now),
                    Outcome::Failure => self.transition(&mut g, BreakerState::Open, now),
                    Outcome::Abandoned => {}
                }
            }
        }
    }
}

/// Leave to make one call through a breaker. Report how it went with [`success`](Self::success)
/// or [`failure`](Self::failure); dropping it unreported counts nothing (and frees a
/// half-open probe slot).
#[must_use = "report the outcome, or drop the permit to count nothing"]
pub struct BreakerPermit {
    shared: Arc<Shared>,
    kind: PermitKind,
    reported: bool,
}

impl std::fmt::Debug for BreakerPermit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BreakerPermit")
            .field("provider", &self.shared.provider)
            .field("probe", &self.is_probe())
            .finish()
    }
}

impl BreakerPermit {
    /// Whether this call is a half-open probe.
    pub fn is_probe(&self) -> bool {
        matches!(self.kind, PermitKind::Probe(_))
    }

    /// One attempt of this call failed in a way that counts against the provider: recorded
    /// at once (the breaker counts attempts, not calls). Returns `true` when the call should
    /// not try again — the breaker is no longer closed, or this was a half-open probe (whose
    /// failure reopens it).
    pub fn attempt_failed(&mut self) -> bool {
        if self.reported {
            return true;
        }
        match self.kind {
            PermitKind::Normal => {
                self.shared.on_outcome(self.kind, Outcome::Failure);
                self.shared.state.load(Ordering::Acquire) != BreakerState::Closed.code()
            }
            PermitKind::Probe(_) => {
                self.reported = true;
                self.shared.on_outcome(self.kind, Outcome::Failure);
                true
            }
        }
    }

    /// The call succeeded.
    pub fn success(mut self) {
        if self.reported {
            return;
        }
        self.reported = true;
        self.shared.on_outcome(self.kind, Outcome::Success);
    }

    /// The call failed in a way that counts against the provider.
    pub fn failure(mut self) {
        if self.reported {
            return;
        }
        self.reported = true;
        self.shared.on_outcome(self.kind, Outcome::Failure);
    }

    /// Report a call's result: `Ok` is a success, an error that
    /// [counts as a failure](ProviderError::counts_as_failure) a failure, and anything else
    /// (client errors, cancellation) counts nothing.
    pub fn report<T>(self, result: &Result<T, ProviderError>) {
        match result {
            Ok(_) => self.success(),
            Err(e) if e.counts_as_failure() => self.failure(),
            Err(_) => drop(self),
        }
    }
}

impl Drop for BreakerPermit {
    fn drop(&mut self) {
        if !self.reported {
            self.shared.on_outcome(self.kind, Outcome::Abandoned);
        }
    }
}
