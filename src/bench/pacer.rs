//! The open-loop pacer: one OS thread that hands each call number to its connection's task
//! when the [`Schedule`] says it is due. A plain thread sleeping with `nanosleep` keeps send
//! times within tens of microseconds of the schedule; the runtimes' own timers tick in whole
//! milliseconds, which would add up to a millisecond of artificial delay to every call.

use super::progress::Live;
use super::schedule::Schedule;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::mpsc::UnboundedSender;

/// Starts pacing calls `0..total` from `start`; call `seq` goes to `conns[schedule.connection(seq)]`.
/// A call whose connection has gone counts as an error (and lost) when `seq >= measured_from`.
pub fn start(
    schedule: Schedule,
    start: Instant,
    total: u64,
    measured_from: u64,
    conns: Vec<UnboundedSender<u64>>,
    live: Arc<Live>,
) -> JoinHandle<u64> {
    std::thread::spawn(move || {
        let mut undeliverable = 0u64;
        let mut seq = 0u64;
        while seq < total {
            let due = start + schedule.due(seq);
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
                continue;
            }
            // Everything due by now goes out in one batch.
            while seq < total && start + schedule.due(seq) <= now + Duration::from_micros(5) {
                let ok = conns.get(schedule.connection(seq)).is_some_and(|tx| tx.send(seq).is_ok());
                if !ok && seq >= measured_from {
                    undeliverable += 1;
                    live.errors.fetch_add(1, Ordering::Relaxed);
                }
                seq += 1;
            }
        }
        undeliverable
    })
}
