//! Background CPU priority for the SQLite writer connection's worker thread.
//!
//! With conversation write-behind, the writer connection applies turns behind the replies:
//! bursts of a few milliseconds of CPU every group-commit window. On a small machine those
//! bursts land on the same cores as the request path and set the reply's tail (measured: a
//! `chat` p99 of 0.85–0.97 ms with the writer at normal priority, 0.55–0.62 ms at nice 15).
//! Like RocksDB's background threads, the worker then runs at a lower priority (`nice`,
//! `storage.writer_nice`, default 10), so
//! a waking request thread always goes first; under full load the bounded write-behind queue
//! makes callers wait for it, so it cannot fall behind without limit.
//!
//! sqlx runs each SQLite connection on its own thread (`sqlx-sqlite-worker-<n>`) and does not
//! say which; the thread that appears while the writer connection opens is its own (the store
//! opens before anything is served). Linux only; elsewhere, or when the thread cannot be told
//! apart, nothing changes.

use std::collections::HashSet;

const WORKER_PREFIX: &str = "sqlx-sqlite-wor";

/// Thread ids of this process's SQLite worker threads.
pub(super) fn sqlite_workers() -> HashSet<i32> {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return HashSet::new() };
    tasks
        .filter_map(Result::ok)
        .filter_map(|t| {
            let tid: i32 = t.file_name().to_str()?.parse().ok()?;
            let comm = std::fs::read_to_string(t.path().join("comm")).ok()?;
            comm.starts_with(WORKER_PREFIX).then_some(tid)
        })
        .collect()
}

/// Lower the priority of the one worker thread in `after` that is not in `before`. Returns
/// the thread id when it did.
pub(super) fn lower_new_worker(before: &HashSet<i32>, after: &HashSet<i32>, nice: i32) -> Option<i32> {
    let mut new = after.difference(before);
    let (Some(&tid), None) = (new.next(), new.next()) else {
        tracing::debug!("SQLite writer thread not identified; it keeps its priority");
        return None;
    };
    let pid = rustix::process::Pid::from_raw(tid)?;
    match rustix::process::setpriority_process(Some(pid), nice) {
        Ok(()) => Some(tid),
        Err(e) => {
            tracing::debug!(error = %e, "could not lower the SQLite writer thread's priority");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_single_new_thread_is_touched() {
        let before: HashSet<i32> = [1, 2].into_iter().collect();
        let two_new: HashSet<i32> = [1, 2, 3, 4].into_iter().collect();
        assert_eq!(lower_new_worker(&before, &two_new, 10), None);
        assert_eq!(lower_new_worker(&before, &before, 10), None);
    }
}
