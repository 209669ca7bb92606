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

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};
use tokio::sync::Notify;

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
        self.0.polling.set(false);
        self.0.gone.set(true);
    }
}

thread_local! {
    static POLLER: RefCell<Option<Rc<Poller>>> = const { RefCell::new(None) };
}

/// Traffic was just handled on this thread: keep polling until `window` from now. Must be
/// called on a worker thread inside its runtime (the first call starts the poller there).
pub fn touch(window: Duration) {
    if window.is_zero() {
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
        if Instant::now() < p.until.get() {
            p.polling.set(true);
            std::thread::yield_now();
            tokio::task::yield_now().await;
        } else {
            p.polling.set(false);
            p.wake.notified().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[actix_rt::test]
    async fn polls_for_the_window_after_a_touch_then_parks() {
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

    #[actix_rt::test]
    async fn a_zero_window_starts_nothing() {
        touch(Duration::ZERO);
        tokio::task::yield_now().await;
        assert!(!is_polling());
        POLLER.with(|p| assert!(p.borrow().is_none()));
    }

    #[actix_rt::test]
    async fn other_tasks_and_events_from_other_threads_go_on_while_it_polls() {
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
