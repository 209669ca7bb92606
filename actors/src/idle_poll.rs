//! Idle polling: a worker thread that has just handled traffic keeps polling its sockets for
//! a short window before it parks.
//!
//! On a virtual machine whose vCPUs halt as soon as they are idle (guest halt-polling off, as
//! on the project machine), every wake-up of a parked thread costs an exit to the hypervisor
//! and back: measured here at about 30 µs at the median and several times that in the tail,
//! per wake-up. A gateway adds two such wake-ups to every call (the client's request, the
//! provider's answer). With idle polling the worker that sent a provider request or answered
//! a client is still awake when the next event arrives, so it picks it up without the exit —
//! the technique of Seastar's `--idle-poll-time-us` and of the kernel's own haltpoll.
//!
//! One poller per worker thread, started by the first [`touch`] on that thread. States:
//! *parked* (waiting for a touch) and *polling* (until `window` after the last touch). While
//! polling it yields the thread to any other runnable thread (`sched_yield`) and to every
//! other task of its runtime, whose turn polls the sockets without blocking — so it delays
//! no work, it only spends otherwise idle CPU time. The cost is bounded by the window per
//! burst of traffic: an idle server polls nothing. `window` zero turns it off.
//!
//! Adaptive: polling only pays while a core would otherwise idle. When the machine is busy
//! (other runnable threads fill every core), a polling thread competes with them for CPU
//! time and a yield hands the core back too late: measured, p99 at one connection went from
//! 75–109 µs without polling to 244–835 µs with it. So no poller starts, and a polling one
//! parks, while the machine is [`contended`]: the runnable threads other than the pollers
//! themselves (`/proc/loadavg`'s running count, read at most every [`CHECK_EVERY`] by
//! whichever thread asks first, never per event) are at least the number of CPUs.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// How often the machine's run queue is looked at.
pub const CHECK_EVERY: Duration = Duration::from_millis(50);

/// Threads polling right now (they are runnable themselves and do not count as contention).
static POLLING: AtomicUsize = AtomicUsize::new(0);
/// The last verdict of [`contended`].
static CONTENDED: AtomicBool = AtomicBool::new(false);
/// When the run queue was last read (ms since [`epoch`]).
static LAST_CHECK_MS: AtomicU64 = AtomicU64::new(0);

fn epoch() -> Instant {
    static START: OnceLock<Instant> = OnceLock::new();
    *START.get_or_init(Instant::now)
}

fn cpus() -> usize {
    static CPUS: OnceLock<usize> = OnceLock::new();
    *CPUS.get_or_init(|| std::thread::available_parallelism().map_or(1, usize::from))
}

/// The running-threads count of a `/proc/loadavg` line (`0.10 0.20 0.30 3/412 9876` → 3).
pub fn parse_running(loadavg: &str) -> Option<usize> {
    loadavg.split_whitespace().nth(3)?.split('/').next()?.parse().ok()
}

/// Is the machine too busy to poll? `running` threads are runnable machine-wide, `polling` of
/// them are pollers (at least one runnable thread is the one asking); contended when the rest
/// would fill all `cpus`.
pub fn contended(running: usize, polling: usize, cpus: usize) -> bool {
    running.saturating_sub(polling.max(1)) >= cpus.max(1)
}

/// The current verdict, refreshed from `/proc/loadavg` when [`CHECK_EVERY`] has passed (one
/// caller does the read; the others use the last verdict). Never contended where the file
/// does not exist.
fn contended_now() -> bool {
    #[cfg(test)]
    if let Some(forced) = FORCED.with(Cell::get) {
        return forced;
    }
    let now = u64::try_from(epoch().elapsed().as_millis()).unwrap_or(u64::MAX);
    let last = LAST_CHECK_MS.load(Ordering::Relaxed);
    let due = now.saturating_sub(last) >= CHECK_EVERY.as_millis() as u64;
    if due && LAST_CHECK_MS.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_ok() {
        if let Some(running) = std::fs::read_to_string("/proc/loadavg").ok().as_deref().and_then(parse_running) {
            CONTENDED.store(contended(running, POLLING.load(Ordering::Relaxed), cpus()), Ordering::Relaxed);
        }
    }
    CONTENDED.load(Ordering::Relaxed)
}

#[cfg(test)]
thread_local! {
    /// Tests decide the verdict for their thread (the test machine may be busy or not).
    static FORCED: Cell<Option<bool>> = const { Cell::new(None) };
}

fn set_polling(p: &Poller, on: bool) {
    if p.polling.replace(on) != on {
        if on {
            POLLING.fetch_add(1, Ordering::Relaxed);
        } else {
            POLLING.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

struct Poller {
    until: Cell<Instant>,
    polling: Cell<bool>,
    /// Its task is gone (the runtime it ran on was dropped; the thread lives on).
    gone: Cell<bool>,
    wake: Notify,
}

/// Marks the poller gone when its task is dropped.
struct Running(Rc<Poller>);

impl Drop for Running {
    fn drop(&mut self) {
        set_polling(&self.0, false);
        self.0.gone.set(true);
    }
}

thread_local! {
    static POLLER: RefCell<Option<Rc<Poller>>> = const { RefCell::new(None) };
}

/// Traffic was just handled on this thread: keep polling until `window` from now. Must be
/// called on a worker thread inside its runtime (the first call starts the poller there).
pub fn touch(window: Duration) {
    if window.is_zero() || contended_now() {
        return;
    }
    let until = Instant::now() + window;
    POLLER.with(|p| {
        let mut slot = p.borrow_mut();
        match slot.as_ref().filter(|p| !p.gone.get()) {
            Some(poller) => {
                poller.until.set(until);
                if !poller.polling.get() {
                    poller.wake.notify_one();
                }
            }
            None => {
                let poller = Rc::new(Poller {
                    until: Cell::new(until),
                    polling: Cell::new(false),
                    gone: Cell::new(false),
                    wake: Notify::new(),
                });
                *slot = Some(Rc::clone(&poller));
                actix_rt::spawn(run(Running(poller)));
            }
        }
    });
}

/// Whether this thread's poller is polling now (false when it has none).
#[cfg(test)]
fn is_polling() -> bool {
    POLLER.with(|p| p.borrow().as_ref().is_some_and(|p| p.polling.get()))
}

async fn run(running: Running) {
    let p = &running.0;
    loop {
        if Instant::now() < p.until.get() && !contended_now() {
            set_polling(p, true);
            std::thread::yield_now();
            tokio::task::yield_now().await;
        } else {
            set_polling(p, false);
            p.wake.notified().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn machine(contended: bool) {
        FORCED.with(|f| f.set(Some(contended)));
    }

    #[actix_rt::test]
    async fn polls_for_the_window_after_a_touch_then_parks() {
        machine(false);
        assert!(!is_polling());
        touch(Duration::from_millis(30));
        tokio::task::yield_now().await;
        assert!(is_polling(), "polling right after a touch");
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert!(!is_polling(), "parked once the window passed");
        touch(Duration::from_millis(30));
        tokio::task::yield_now().await;
        assert!(is_polling(), "a later touch wakes it again");
    }

    #[test]
    fn a_thread_that_outlives_its_runtime_gets_a_new_poller_in_the_next_one() {
        machine(false);
        for _ in 0..2 {
            actix_rt::System::new().block_on(async {
                touch(Duration::from_millis(20));
                tokio::task::yield_now().await;
                assert!(is_polling());
                // Only a live task ever parks again.
                tokio::time::sleep(Duration::from_millis(60)).await;
                assert!(!is_polling());
            });
        }
    }

    #[test]
    fn reads_the_running_count_of_proc_loadavg() {
        assert_eq!(parse_running("0.10 0.20 0.30 3/412 9876\n"), Some(3));
        assert_eq!(parse_running("0.10 0.20 0.30 17/4120 9876"), Some(17));
        assert_eq!(parse_running("garbage"), None);
        assert_eq!(parse_running(""), None);
        if let Ok(text) = std::fs::read_to_string("/proc/loadavg") {
            assert!(parse_running(&text).is_some_and(|n| n >= 1), "{text}");
        }
    }

    #[test]
    fn contended_when_other_runnable_threads_fill_every_cpu() {
        // Two CPUs: the asking thread alone, or with one other busy thread, leaves a core idle.
        assert!(!contended(1, 0, 2));
        assert!(!contended(2, 0, 2));
        // Two other busy threads besides the asker: no idle core to poll on.
        assert!(contended(3, 0, 2));
        // The pollers themselves are runnable; they are not contention.
        assert!(!contended(3, 2, 2));
        assert!(contended(5, 2, 2));
        // One CPU: any other runnable thread fills it.
        assert!(!contended(1, 0, 1));
        assert!(contended(2, 0, 1));
        assert!(!contended(0, 0, 0));
    }

    #[actix_rt::test]
    async fn a_contended_machine_starts_no_polling_and_stops_a_poller() {
        machine(false);
        touch(Duration::from_millis(500));
        tokio::task::yield_now().await;
        assert!(is_polling());
        machine(true);
        tokio::task::yield_now().await;
        tokio::task::yield_now().await;
        assert!(!is_polling(), "a polling thread parks once the machine is contended");
        touch(Duration::from_millis(500));
        tokio::task::yield_now().await;
        assert!(!is_polling(), "no polling starts while contended");
    }

    #[actix_rt::test]
    async fn a_zero_window_starts_nothing() {
        machine(false);
        touch(Duration::ZERO);
        tokio::task::yield_now().await;
        assert!(!is_polling());
        POLLER.with(|p| assert!(p.borrow().is_none()));
    }

    #[actix_rt::test]
    async fn other_tasks_and_events_from_other_threads_go_on_while_it_polls() {
        machine(false);
        touch(Duration::from_millis(500));
        // A timer on the same thread fires on time.
        let t0 = Instant::now();
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(t0.elapsed() < Duration::from_millis(200), "timer delayed: {:?}", t0.elapsed());
        // A message from another thread arrives while the poller spins.
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(10));
            let _ = tx.send(7);
        });
        let got = tokio::time::timeout(Duration::from_secs(2), rx).await;
        assert_eq!(got.ok().and_then(Result::ok), Some(7));
        assert!(is_polling());
    }
}
