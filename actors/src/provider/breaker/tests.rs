//! Breaker transitions on a controllable clock, probe limits, permit drop, concurrency and
//! the supervised actor.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use actix::Actor;
use std::sync::atomic::{AtomicU32, AtomicU64};

/// A clock that only moves when told to.
#[derive(Clone)]
struct ManualClock {
    base: Instant,
    offset_ms: Arc<AtomicU64>,
}

impl ManualClock {
    fn new() -> ManualClock {
        ManualClock { base: Instant::now(), offset_ms: Arc::new(AtomicU64::new(0)) }
    }

    fn advance(&self, d: Duration) {
        self.offset_ms.fetch_add(u64::try_from(d.as_millis()).unwrap(), Ordering::SeqCst);
    }

    fn clock(&self) -> Clock {
        let me = self.clone();
        Arc::new(move || me.base + Duration::from_millis(me.offset_ms.load(Ordering::SeqCst)))
    }
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn cfg() -> BreakerConfig {
    BreakerConfig::default()
}

fn breaker(cfg: BreakerConfig) -> (BreakerHandle, ManualClock, Metrics) {
    let clock = ManualClock::new();
    let metrics = Metrics::new().unwrap();
    let h = BreakerHandle::with_clock("kimi", cfg, &metrics, clock.clock());
    (h, clock, metrics)
}

fn fail(h: &BreakerHandle, n: u32) {
    for _ in 0..n {
        h.try_acquire().unwrap().failure();
    }
}

fn succeed(h: &BreakerHandle, n: u32) {
    for _ in 0..n {
        h.try_acquire().unwrap().success();
    }
}

fn transitions(m: &Metrics, from: &str, to: &str) -> u64 {
    m.breaker_transitions.with_label_values(&["kimi", from, to]).get()
}

fn gauge(m: &Metrics) -> i64 {
    m.breaker_state.with_label_values(&["kimi"]).get()
}

#[test]
fn defaults_match_the_documented_values() {
    let c = BreakerConfig::default();
    assert_eq!(c.failure_ratio, 0.5);
    assert_eq!(c.min_requests, 10);
    assert_eq!(c.consecutive_failures, 5);
    assert_eq!(c.window, secs(60));
    assert_eq!(c.open_for, secs(30));
    assert_eq!(c.half_open_probes, 2);
}

#[test]
fn starts_closed_and_successes_keep_it_closed() {
    let (h, _, m) = breaker(cfg());
    assert_eq!(h.state(), BreakerState::Closed);
    assert_eq!(gauge(&m), 0);
    succeed(&h, 100);
    let s = h.snapshot();
    assert_eq!(s.state, BreakerState::Closed);
    assert_eq!((s.window_requests, s.window_failures, s.transitions), (100, 0, 0));
    assert_eq!(s.opened_at_ms, None);
}

#[test]
fn consecutive_failures_open_it() {
    let (h, _, m) = breaker(cfg());
    fail(&h, 4);
    assert_eq!(h.state(), BreakerState::Closed);
    assert_eq!(h.snapshot().consecutive_failures, 4);
    fail(&h, 1);
    assert_eq!(h.state(), BreakerState::Open);
    assert_eq!(gauge(&m), 1);
    assert_eq!(transitions(&m, "closed", "open"), 1);
    let s = h.snapshot();
    assert!(s.opened_at_ms.is_some());
    assert_eq!(s.retry_in_ms, Some(30_000));
    assert_eq!(s.transitions, 1);
}

#[test]
fn a_success_resets_the_run_of_failures() {
    // The ratio rule is out of reach here (min_requests), so only runs count.
    let (h, _, _) = breaker(BreakerConfig { min_requests: 1_000, ..cfg() });
    for _ in 0..3 {
        fail(&h, 4);
        succeed(&h, 1);
    }
    // 12 failures of 15 requests, but never 5 in a row.
    assert_eq!(h.state(), BreakerState::Closed);
    assert_eq!(h.snapshot().consecutive_failures, 0);
}

#[test]
fn ratio_rule_needs_min_requests() {
    let c = BreakerConfig { consecutive_failures: 100, ..cfg() };
    let (h, _, _) = breaker(c);
    // 4 failures of 8 requests is 50 %, but fewer than min_requests (10).
    for _ in 0..4 {
        fail(&h, 1);
        succeed(&h, 1);
    }
    assert_eq!(h.state(), BreakerState::Closed);
    succeed(&h, 1);
    // 4 of 9, then the 10th request fails: 5 of 10 = 50 % ≥ 0.5.
    fail(&h, 1);
    assert_eq!(h.state(), BreakerState::Open);
}

#[test]
fn ratio_below_threshold_stays_closed() {
    let c = BreakerConfig { consecutive_failures: 100, ..cfg() };
    let (h, _, _) = breaker(c);
    for _ in 0..50 {
        fail(&h, 1);
        succeed(&h, 2);
    }
    let s = h.snapshot();
    assert_eq!(s.state, BreakerState::Closed);
    assert_eq!((s.window_requests, s.window_failures), (150, 50));
}

#[test]
fn failures_outside_the_window_do_not_count() {
    let c = BreakerConfig { consecutive_failures: 100, ..cfg() };
    let (h, clock, _) = breaker(c);
    // 4 failures of 9, then they age out of the 60 s window.
    fail(&h, 4);
    succeed(&h, 5);
    clock.advance(secs(61));
    assert_eq!(h.snapshot().window_requests, 0);
    // 5 failures of 10 within the window would open it; with the old ones forgotten,
    // one failure among ten fresh requests does not.
    succeed(&h, 9);
    fail(&h, 1);
    assert_eq!(h.state(), BreakerState::Closed);
    let s = h.snapshot();
    assert_eq!((s.window_requests, s.window_failures), (10, 1));
}

#[test]
fn window_slides_bucket_by_bucket() {
    let c = BreakerConfig { consecutive_failures: 100, min_requests: 1, failure_ratio: 1.0, ..cfg() };
    let (h, clock, _) = breaker(c);
    succeed(&h, 1);
    clock.advance(secs(30));
    succeed(&h, 1);
    assert_eq!(h.snapshot().window_requests, 2);
    clock.advance(secs(31));
    assert_eq!(h.snapshot().window_requests, 1, "the first request has left the window");
    clock.advance(secs(30));
    assert_eq!(h.snapshot().window_requests, 0);
}

#[test]
fn open_rejects_with_the_time_left() {
    let (h, clock, _) = breaker(cfg());
    fail(&h, 5);
    assert_eq!(h.try_acquire().unwrap_err(), secs(30));
    clock.advance(secs(12));
    assert_eq!(h.try_acquire().unwrap_err(), secs(18));
    assert_eq!(h.snapshot().retry_in_ms, Some(18_000));
    assert_eq!(h.state(), BreakerState::Open);
}

#[test]
fn open_becomes_half_open_on_acquire_after_open_for() {
    let (h, clock, m) = breaker(cfg());
    fail(&h, 5);
    clock.advance(secs(30));
    // No timer ran: the state still reads open until someone asks.
    assert_eq!(h.state(), BreakerState::Open);
    let probe = h.try_acquire().unwrap();
    assert!(probe.is_probe());
    assert_eq!(h.state(), BreakerState::HalfOpen);
    assert_eq!(gauge(&m), 2);
    assert_eq!(transitions(&m, "open", "half_open"), 1);
    drop(probe);
}

#[test]
fn poll_moves_an_idle_open_breaker() {
    let (h, clock, _) = breaker(cfg());
    fail(&h, 5);
    assert_eq!(h.poll(), BreakerState::Open);
    clock.advance(secs(31));
    assert_eq!(h.poll(), BreakerState::HalfOpen);
    assert_eq!(h.snapshot().half_open_inflight, 0);
}

#[test]
fn half_open_admits_only_the_probe_limit() {
    let (h, clock, _) = breaker(cfg());
    fail(&h, 5);
    clock.advance(secs(30));
    let p1 = h.try_acquire().unwrap();
    let p2 = h.try_acquire().unwrap();
    assert!(p1.is_probe() && p2.is_probe());
    assert_eq!(h.try_acquire().unwrap_err(), HALF_OPEN_BUSY_RETRY);
    assert_eq!(h.snapshot().half_open_inflight, 2);
    drop(p1);
    assert_eq!(h.snapshot().half_open_inflight, 1);
    let p3 = h.try_acquire().unwrap();
    assert!(h.try_acquire().is_err());
    drop((p2, p3));
}

#[test]
fn probe_success_closes_and_resets_counts() {
    let (h, clock, m) = breaker(cfg());
    fail(&h, 5);
    clock.advance(secs(30));
    h.try_acquire().unwrap().success();
    assert_eq!(h.state(), BreakerState::Closed);
    assert_eq!(gauge(&m), 0);
    assert_eq!(transitions(&m, "half_open", "closed"), 1);
    let s = h.snapshot();
    assert_eq!((s.window_requests, s.window_failures, s.consecutive_failures), (0, 0, 0));
    assert_eq!(s.transitions, 3);
    // Closed again: it takes a full run of failures to reopen.
    fail(&h, 4);
    assert_eq!(h.state(), BreakerState::Closed);
}

#[test]
fn probe_failure_reopens_for_another_open_for() {
    let (h, clock, m) = breaker(cfg());
    fail(&h, 5);
    clock.advance(secs(30));
    let p1 = h.try_acquire().unwrap();
    let p2 = h.try_acquire().unwrap();
    p1.failure();
    assert_eq!(h.state(), BreakerState::Open);
    assert_eq!(transitions(&m, "half_open", "open"), 1);
    assert_eq!(h.try_acquire().unwrap_err(), secs(30));
    // The other probe of the ended episode reports late: ignored.
    p2.success();
    assert_eq!(h.state(), BreakerState::Open);
    clock.advance(secs(30));
    h.try_acquire().unwrap().success();
    assert_eq!(h.state(), BreakerState::Closed);
    assert_eq!(h.snapshot().transitions, 5);
}

#[test]
fn a_late_probe_keeps_its_slot_in_the_next_episode() {
    let (h, clock, _) = breaker(cfg());
    fail(&h, 5);
    clock.advance(secs(30));
    let p1 = h.try_acquire().unwrap();
    let slow = h.try_acquire().unwrap();
    p1.failure();
    clock.advance(secs(30));
    // Half-open again, but the slow probe of the last episode is still out there.
    let p2 = h.try_acquire().unwrap();
    assert_eq!(h.try_acquire().unwrap_err(), HALF_OPEN_BUSY_RETRY);
    assert_eq!(h.snapshot().half_open_inflight, 2);
    slow.failure();
    assert_eq!(h.state(), BreakerState::HalfOpen, "a stale probe decides nothing");
    assert_eq!(h.snapshot().half_open_inflight, 1);
    p2.success();
    assert_eq!(h.state(), BreakerState::Closed);
    assert_eq!(h.snapshot().half_open_inflight, 0);
}

#[test]
fn dropped_permit_counts_nothing() {
    let (h, clock, _) = breaker(cfg());
    for _ in 0..20 {
        drop(h.try_acquire().unwrap());
    }
    assert_eq!(h.snapshot().window_requests, 0);
    fail(&h, 5);
    clock.advance(secs(30));
    // A cancelled probe frees its slot and decides nothing.
    for _ in 0..10 {
        let a = h.try_acquire().unwrap();
        let b = h.try_acquire().unwrap();
        drop((a, b));
    }
    assert_eq!(h.state(), BreakerState::HalfOpen);
    assert_eq!(h.snapshot().half_open_inflight, 0);
}

#[test]
fn late_outcomes_of_calls_admitted_while_closed_are_ignored() {
    let (h, clock, _) = breaker(cfg());
    let slow_ok = h.try_acquire().unwrap();
    let slow_err = h.try_acquire().unwrap();
    fail(&h, 5);
    slow_ok.success();
    assert_eq!(h.state(), BreakerState::Open, "a late success does not close it");
    clock.advance(secs(30));
    let probe = h.try_acquire().unwrap();
    slow_err.failure();
    assert_eq!(h.state(), BreakerState::HalfOpen, "a late failure does not reopen it");
    probe.success();
    assert_eq!(h.state(), BreakerState::Closed);
}

#[test]
fn report_sorts_errors_by_whether_they_count() {
    let (h, _, _) = breaker(cfg());
    let bad_request = ProviderError::BadRequest { status: 400, message: "no".into() };
    let auth = ProviderError::Auth { status: 401, message: "key".into() };
    for _ in 0..10 {
        h.try_acquire().unwrap().report::<()>(&Err(bad_request.clone()));
        h.try_acquire().unwrap().report::<()>(&Err(auth.clone()));
        h.try_acquire().unwrap().report::<()>(&Err(ProviderError::Cancelled));
    }
    assert_eq!(h.snapshot().window_requests, 0);
    h.try_acquire().unwrap().report(&Ok(()));
    assert_eq!(h.snapshot().window_requests, 1);
    for _ in 0..5 {
        h.try_acquire().unwrap().report::<()>(&Err(ProviderError::Server { status: 502, message: String::new() }));
    }
    assert_eq!(h.state(), BreakerState::Open);
}

#[test]
fn config_is_normalized() {
    let c = BreakerConfig { half_open_probes: 0, failure_ratio: f64::NAN, window: Duration::ZERO, ..cfg() };
    let (h, clock, _) = breaker(c);
    assert_eq!(h.config().half_open_probes, 1);
    assert_eq!(h.config().failure_ratio, 1.0);
    fail(&h, 5);
    clock.advance(secs(30));
    let p = h.try_acquire().unwrap();
    assert!(h.try_acquire().is_err(), "one probe at a time");
    p.success();
}

#[test]
fn breakers_are_per_provider() {
    let metrics = Metrics::new().unwrap();
    let kimi = BreakerHandle::new("kimi", cfg(), &metrics);
    let glm = BreakerHandle::new("glm", cfg(), &metrics);
    fail(&kimi, 5);
    assert_eq!(kimi.state(), BreakerState::Open);
    assert_eq!(glm.state(), BreakerState::Closed);
    assert_eq!(metrics.breaker_state.with_label_values(&["kimi"]).get(), 1);
    assert_eq!(metrics.breaker_state.with_label_values(&["glm"]).get(), 0);
    let text = metrics.render();
    assert!(text.contains("exai_breaker_state{provider=\"kimi\"} 1"), "{text}");
    assert!(text.contains("exai_breaker_transitions_total{from=\"closed\",provider=\"kimi\",to=\"open\"} 1"), "{text}");
}

#[test]
fn snapshot_serializes_for_health() {
    let (h, _, _) = breaker(cfg());
    fail(&h, 5);
    let v = serde_json::to_value(h.snapshot()).unwrap();
    assert_eq!(v["provider"], "kimi");
    assert_eq!(v["state"], "open");
    assert_eq!(v["window_requests"], 5);
    assert_eq!(v["window_failures"], 5);
    assert_eq!(v["consecutive_failures"], 5);
    assert_eq!(v["transitions"], 1);
    assert!(v["opened_at_ms"].as_i64().unwrap() > 0);
}

#[test]
fn concurrent_callers_never_exceed_the_probe_limit() {
    let metrics = Metrics::new().unwrap();
    let c = BreakerConfig {
        consecutive_failures: 3,
        min_requests: 5,
        open_for: Duration::from_millis(2),
        half_open_probes: 2,
        ..cfg()
    };
    let h = BreakerHandle::new("kimi", c, &metrics);
    let probes_held = Arc::new(AtomicU32::new(0));
    let max_probes = Arc::new(AtomicU32::new(0));
    let admitted = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..8u64)
        .map(|t| {
            let (h, held, max, admitted) =
                (h.clone(), Arc::clone(&probes_held), Arc::clone(&max_probes), Arc::clone(&admitted));
            std::thread::spawn(move || {
                let deadline = Instant::now() + Duration::from_millis(400);
                let mut i = t;
                while Instant::now() < deadline {
                    i = i.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    let Ok(p) = h.try_acquire() else {
                        std::thread::yield_now();
                        continue;
                    };
                    admitted.fetch_add(1, Ordering::Relaxed);
                    if p.is_probe() {
                        let now = held.fetch_add(1, Ordering::SeqCst) + 1;
                        max.fetch_max(now, Ordering::SeqCst);
                        std::thread::yield_now();
                        held.fetch_sub(1, Ordering::SeqCst);
                    }
                    match (i >> 33) % 3 {
                        0 => p.success(),
                        1 => p.failure(),
                        _ => drop(p),
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert!(admitted.load(Ordering::Relaxed) > 100, "the breaker let calls through");
    assert!(max_probes.load(Ordering::SeqCst) <= 2, "probe limit exceeded: {}", max_probes.load(Ordering::SeqCst));
    let s = h.snapshot();
    assert!(s.transitions > 0, "failures should have opened it at least once");
    assert_eq!(s.half_open_inflight, 0, "every probe slot was given back");
    let m = |f: &str, t: &str| metrics.breaker_transitions.with_label_values(&["kimi", f, t]).get();
    let total = m("closed", "open") + m("open", "half_open") + m("half_open", "closed") + m("half_open", "open");
    assert_eq!(total, s.transitions);
    assert_eq!(metrics.breaker_state.with_label_values(&["kimi"]).get(), i64::from(s.state.code()));
}

#[actix_rt::test]
async fn actor_moves_an_idle_breaker_to_half_open() {
    let (h, clock, m) = breaker(cfg());
    let addr = BreakerActor::with_tick(h.clone(), Duration::from_millis(10), None).start();
    fail(&h, 5);
    clock.advance(secs(30));
    let deadline = Instant::now() + secs(5);
    while h.state() != BreakerState::HalfOpen && Instant::now() < deadline {
        actix_rt::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(h.state(), BreakerState::HalfOpen);
    assert_eq!(gauge(&m), 2);
    let snap = addr.send(GetBreakerSnapshot).await.unwrap();
    assert_eq!(snap.state, BreakerState::HalfOpen);
    addr.send(crate::supervision::Drain).await.unwrap();
}

#[actix_rt::test]
async fn state_survives_the_actor_crashing() {
    let (h, clock, _) = breaker(cfg());
    let first = BreakerActor::with_tick(h.clone(), Duration::from_millis(10), None).start();
    fail(&h, 5);
    first.do_send(crate::supervision::Crash("test".into()));
    let deadline = Instant::now() + secs(5);
    while first.connected() && Instant::now() < deadline {
        actix_rt::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(!first.connected(), "the actor should have died");
    assert_eq!(h.state(), BreakerState::Open, "state lives in the handle");
    let second = BreakerActor::new(h.clone(), None).start();
    let snap = second.send(GetBreakerSnapshot).await.unwrap();
    assert_eq!(snap.state, BreakerState::Open);
    assert_eq!(snap.transitions, 1);
    clock.advance(secs(30));
    h.try_acquire().unwrap().success();
    assert_eq!(h.state(), BreakerState::Closed);
}

#[test]
fn child_spec_names_the_breaker() {
    use crate::supervision::ChildSpec;
    let (h, _, _) = breaker(cfg());
    let (child, addr) = BreakerActor::child("breaker:kimi", h);
    assert_eq!(child.name(), "breaker:kimi");
    assert!(!child.alive(), "not started until the coordinator starts it");
    assert!(addr.get().is_none());
}

#[test]
fn failed_attempts_of_one_call_count_and_stop_its_retries_once_open() {
    let (h, clock, _) = breaker(cfg());
    // One call retrying: each failed attempt counts; the fifth in a row opens the breaker.
    let mut permit = h.try_acquire().unwrap();
    for attempt in 1..=4 {
        assert!(!permit.attempt_failed(), "attempt {attempt}: still closed, may retry");
    }
    assert!(permit.attempt_failed(), "the fifth failure opened it: stop retrying");
    assert_eq!(h.state(), BreakerState::Open);
    drop(permit);
    // A half-open probe's failed attempt reopens at once and ends the probe.
    clock.advance(cfg().open_for);
    let mut probe = h.try_acquire().unwrap();
    assert!(probe.is_probe());
    assert!(probe.attempt_failed());
    assert_eq!(h.state(), BreakerState::Open);
    probe.success(); // already reported: counts nothing
    assert_eq!(h.state(), BreakerState::Open);
    // A call that failed an attempt and then succeeded resets the run of failures.
    clock.advance(cfg().open_for);
    h.try_acquire().unwrap().success();
    assert_eq!(h.state(), BreakerState::Closed);
    let mut p = h.try_acquire().unwrap();
    assert!(!p.attempt_failed());
    p.success();
    fail(&h, 4);
    assert_eq!(h.state(), BreakerState::Closed, "the success in between reset the count");
}
