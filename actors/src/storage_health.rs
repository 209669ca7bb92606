//! Whether the server can store what it must store right now: the data directory's free
//! space and the last outcome of every background writer (conversation turns, tool-call log
//! rows, the conversation journal).
//!
//! A full disk must never cost the user a billed provider call whose turn is then lost, nor a
//! hang: while the data directory has less than [`MIN_FREE_BYTES`] free, or for [`MARK_HOLD`]
//! after a writer's write failed because the disk was full, [`StorageHealth::check`] refuses
//! new conversation turns *before* the provider is called, with `SERVICE_UNAVAILABLE` naming
//! the full disk, and `/health/ready` reports the store as degraded (503). The writers keep
//! retrying; once space returns the free-space probe says so and the marks lapse (a write
//! that succeeds clears its mark at once), so the server recovers without a restart and
//! without needing a write to prove it first. Where there is no directory to probe (a
//! PostgreSQL server whose disk is full), the marks alone decide: each lapses after
//! [`MARK_HOLD`], letting the next turn try again.
//!
//! The free-space probe (`statvfs`) runs at most every [`PROBE_EVERY`] and is read from an
//! atomic otherwise, so the per-call cost is one atomic load while healthy.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Below this much free space on the data directory's file system, new turns are refused.
pub const MIN_FREE_BYTES: u64 = 4 * 1024 * 1024;

/// How long a free-space reading is trusted.
pub const PROBE_EVERY: Duration = Duration::from_millis(250);

/// How long one disk-full failure keeps storage degraded (unless a write succeeds first).
pub const MARK_HOLD: Duration = Duration::from_secs(3);

/// Who reports write outcomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Writer {
    /// The conversation writer and direct turn writes.
    Conversations,
    /// The conversation journal.
    Journal,
    /// The tool-call log writer.
    ToolLog,
}

impl Writer {
    fn name(self) -> &'static str {
        match self {
            Writer::Conversations => "conversation store",
            Writer::Journal => "conversation journal",
            Writer::ToolLog => "tool-call log",
        }
    }
    fn index(self) -> usize {
        self as usize
    }
}

const WRITERS: usize = 3;

/// Shared storage health (one per server, in [`crate::env::RuntimeState`]).
#[derive(Debug, Default)]
pub struct StorageHealth {
    dir: OnceLock<PathBuf>,
    /// Any writer currently failing on a full disk (fast path for `check`).
    any_full: AtomicBool,
    full: Mutex<[Option<(String, Instant)>; WRITERS]>,
    /// Free bytes at the last probe (`-1`: never probed or no directory).
    free_bytes: AtomicI64,
    /// When the last probe ran, ms since `epoch`.
    probed_ms: AtomicU64,
    epoch: OnceLock<Instant>,
}

impl StorageHealth {
    /// Health of nothing yet: no directory to probe, no failures.
    pub fn new() -> StorageHealth {
        StorageHealth { free_bytes: AtomicI64::new(-1), ..StorageHealth::default() }
    }

    /// Probe the file system holding `dir` (the data directory) from now on.
    pub fn watch_dir(&self, dir: &Path) {
        let _ = self.dir.set(dir.to_path_buf());
        let _ = self.epoch.set(Instant::now());
        self.probe();
    }

    fn full(&self) -> std::sync::MutexGuard<'_, [Option<(String, Instant)>; WRITERS]> {
        self.full.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A write by `who` failed because the disk is full.
    pub fn disk_full(&self, who: Writer, detail: &str) {
        let mut f = self.full();
        if f[who.index()].is_none() {
            tracing::error!(writer = who.name(), error = %detail, "disk full: storing is suspended until space returns");
        }
        f[who.index()] = Some((detail.to_string(), Instant::now()));
        self.any_full.store(true, Ordering::Release);
        self.probed_ms.store(0, Ordering::Relaxed);
    }

    /// A write by `who` succeeded: clear its mark.
    pub fn wrote(&self, who: Writer) {
        if !self.any_full.load(Ordering::Acquire) {
            return;
        }
        let mut f = self.full();
        if f[who.index()].take().is_some() {
            tracing::info!(writer = who.name(), "storing resumed: the write succeeded again");
        }
        self.any_full.store(f.iter().any(Option::is_some), Ordering::Release);
    }

    fn now_ms(&self) -> u64 {
        self.epoch.get().map_or(0, |e| e.elapsed().as_millis() as u64 + 1)
    }

    fn probe(&self) {
        let Some(dir) = self.dir.get() else { return };
        let free = match rustix::fs::statvfs(dir) {
            Ok(s) => (s.f_bavail.saturating_mul(s.f_frsize)) as i64,
            Err(_) => -1,
        };
        self.free_bytes.store(free, Ordering::Relaxed);
        self.probed_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    /// Free bytes on the data directory's file system (probed at most every [`PROBE_EVERY`]);
    /// `None` when there is no directory (in-memory or PostgreSQL-only set-ups) or it cannot
    /// be read.
    pub fn free_bytes(&self) -> Option<u64> {
        self.dir.get()?;
        let last = self.probed_ms.load(Ordering::Relaxed);
        if last == 0 || self.now_ms().saturating_sub(last) >= PROBE_EVERY.as_millis() as u64 {
            self.probe();
        }
        u64::try_from(self.free_bytes.load(Ordering::Relaxed)).ok()
    }

    /// Why storing is impossible now, if it is.
    pub fn problem(&self) -> Option<String> {
        if let Some(free) = self.free_bytes() {
            if free < MIN_FREE_BYTES {
                let dir = self.dir.get().map(|d| d.display().to_string()).unwrap_or_default();
                return Some(format!(
                    "the disk holding the data directory {dir} is full ({free} bytes free, {MIN_FREE_BYTES} needed)"
                ));
            }
        }
        if !self.any_full.load(Ordering::Acquire) {
            return None;
        }
        let mut f = self.full();
        let mut failing = Vec::new();
        for w in [Writer::Conversations, Writer::Journal, Writer::ToolLog] {
            let slot = &mut f[w.index()];
            match slot {
                Some((_, at)) if at.elapsed() >= MARK_HOLD => *slot = None,
                Some((d, _)) => failing.push(format!("{}: {d}", w.name())),
                None => {}
            }
        }
        self.any_full.store(f.iter().any(Option::is_some), Ordering::Release);
        (!failing.is_empty()).then(|| format!("the disk is full ({})", failing.join("; ")))
    }

    /// Refuse new turns while storing is impossible (checked before the provider is called).
    pub fn check(&self) -> Result<(), crate::error::ToolError> {
        match self.problem() {
            None => Ok(()),
            Some(p) => Err(crate::error::ToolError::Unavailable(format!(
                "{p}; the call was refused before the provider was called, so nothing was billed or lost — retry once space is freed"
            ))),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_writer_failing_on_a_full_disk_refuses_until_it_writes_again() {
        let h = StorageHealth::new();
        assert!(h.check().is_ok(), "no directory, no failure: healthy");
        h.disk_full(Writer::ToolLog, "database or disk is full");
        h.disk_full(Writer::Conversations, "database or disk is full");
        let e = h.check().unwrap_err().to_string();
        assert!(e.contains("disk is full") && e.contains("tool-call log") && e.contains("before the provider"), "{e}");
        h.wrote(Writer::ToolLog);
        assert!(h.check().is_err(), "the conversation writer still fails");
        h.wrote(Writer::Conversations);
        assert!(h.check().is_ok());
        assert_eq!(h.problem(), None);
        h.disk_full(Writer::Journal, "No space left on device");
        assert!(h.problem().is_some());
        std::thread::sleep(MARK_HOLD + Duration::from_millis(50));
        assert_eq!(h.problem(), None, "a mark lapses so the next turn may try again");
    }

    #[test]
    fn free_space_is_probed_on_the_data_directory() {
        let dir = std::env::temp_dir();
        let h = StorageHealth::new();
        h.watch_dir(&dir);
        let free = h.free_bytes().unwrap();
        assert!(free > 0);
    }
}
