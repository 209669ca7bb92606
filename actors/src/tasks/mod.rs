//! Durable MCP Tasks (spec 2025-11-25, experimental): a task-augmented `tools/call` runs
//! detached from the connection that asked for it, and its status and result are stored
//! through the [`TaskStore`] port, so they outlive the connection, the session and the
//! process.
//!
//! - [`TaskRecord`] / [`TaskStatus`]: the stored task; [`TaskStore`]: the port (implemented
//!   for SQLite and PostgreSQL in the `exai` crate, reached through `Store::task_store`).
//! - [`TaskRunner`] (in `RuntimeState`): the tasks running in this process — their abort
//!   handles and completion signals — so `tasks/cancel` can stop one, `tasks/result` can wait
//!   for one, and a shutdown drain can wait for them up to its deadline and then fail them.
//! - [`rpc`]: the transport-neutral handlers of `tools/call` with `task`, `tasks/get`,
//!   `tasks/result`, `tasks/list` and `tasks/cancel`.
//!
//! Task ids are 128-bit random (UUIDv4 text: unguessable) and every read is scoped to the
//! caller's principal, so one principal can neither see nor cancel another's tasks. A task
//! is kept for its TTL from creation (the client's `task.ttl`, capped at [`MAX_TTL_MS`]):
//! reads ignore expired rows, and the coordinator's maintenance tick deletes them.

pub mod rpc;

use crate::ports::StoreError;
use async_trait::async_trait;
use futures_util::future::AbortHandle;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use tokio::sync::watch;

/// TTL when the client gives none: one hour.
pub const DEFAULT_TTL_MS: i64 = 3_600_000;
/// Longest TTL granted: one day.
pub const MAX_TTL_MS: i64 = 86_400_000;
/// Shortest TTL granted: one second (a smaller request is raised to it).
pub const MIN_TTL_MS: i64 = 1_000;
/// Suggested interval between `tasks/get` polls.
pub const POLL_INTERVAL_MS: i64 = 1_000;

/// Status of a task (the spec's five states; exai never asks for input, so it never stores
/// `input_required`, but it reads it back).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskStatus {
    /// Running.
    Working,
    /// Waiting for the client.
    InputRequired,
    /// Finished with a result.
    Completed,
    /// Finished with an error (a tool error, or the server shut down under it).
    Failed,
    /// Cancelled by `tasks/cancel`.
    Cancelled,
}

impl TaskStatus {
    /// Wire and stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Working => "working",
            TaskStatus::InputRequired => "input_required",
            TaskStatus::Completed => "completed",
            TaskStatus::Failed => "failed",
            TaskStatus::Cancelled => "cancelled",
        }
    }

    /// Parse the stored name.
    pub fn parse(s: &str) -> Option<TaskStatus> {
        Some(match s {
            "working" => TaskStatus::Working,
            "input_required" => TaskStatus::InputRequired,
            "completed" => TaskStatus::Completed,
            "failed" => TaskStatus::Failed,
            "cancelled" => TaskStatus::Cancelled,
            _ => return None,
        })
    }

    /// True for completed, failed and cancelled.
    pub fn is_terminal(self) -> bool {
        matches!(self, TaskStatus::Completed | TaskStatus::Failed | TaskStatus::Cancelled)
    }
}

/// A stored task.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskRecord {
    /// Unguessable id (UUIDv4 text).
    pub task_id: String,
    /// Whose task it is: only this principal reads or cancels it.
    pub principal: String,
    /// Session that created it (for the log; any session of the principal may read it).
    pub session_id: String,
    /// Tool it runs.
    pub tool: String,
    /// Current status.
    pub status: TaskStatus,
    /// Why it failed or was cancelled, if it did.
    pub status_message: Option<String>,
    /// The `CallToolResult` once terminal.
    pub result: Option<Value>,
    /// Creation, Unix ms.
    pub created_at_ms: i64,
    /// Last status change, Unix ms.
    pub updated_at_ms: i64,
    /// Retention from creation, ms.
    pub ttl_ms: i64,
    /// `created_at_ms + ttl_ms`: after this the task is gone.
    pub expires_at_ms: i64,
    /// Suggested poll interval, ms.
    pub poll_interval_ms: i64,
}

/// A position in a principal's task listing (newest first): the last row of the previous
/// page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskCursor {
    /// `created_at_ms` of the last row returned.
    pub created_at_ms: i64,
    /// `task_id` of the last row returned.
    pub task_id: String,
}

impl TaskCursor {
    /// The opaque text form.
    pub fn encode(&self) -> String {
        format!("t{}.{}", self.created_at_ms, self.task_id)
    }

    /// Parse the opaque form; `None` for anything this server did not write.
    pub fn decode(s: &str) -> Option<TaskCursor> {
        let (ms, id) = s.strip_prefix('t')?.split_once('.')?;
        let created_at_ms = ms.parse().ok()?;
        uuid::Uuid::parse_str(id).ok()?;
        Some(TaskCursor { created_at_ms, task_id: id.to_string() })
    }
}

/// Storage of tasks. Every read ignores rows whose `expires_at_ms <= now_ms`.
#[async_trait]
pub trait TaskStore: Send + Sync + 'static {
    /// Insert a new task (ids are unique: a repeat is `Constraint`).
    async fn create_task(&self, t: &TaskRecord) -> Result<(), StoreError>;
    /// The principal's task, unless unknown, another principal's, or expired.
    async fn get_task(&self, principal: &str, task_id: &str, now_ms: i64) -> Result<Option<TaskRecord>, StoreError>;
    /// Move a task that is still `working` (or `input_required`) to a terminal status with
    /// its result; false (and nothing written) when it is already terminal or gone.
    async fn finish_task(
        &self,
        task_id: &str,
        status: TaskStatus,
        status_message: Option<&str>,
        result: Option<&Value>,
        now_ms: i64,
    ) -> Result<bool, StoreError>;
    /// The principal's live tasks, newest first, after `after`, at most `limit`.
    async fn list_tasks(
        &self,
        principal: &str,
        after: Option<&TaskCursor>,
        limit: u32,
        now_ms: i64,
    ) -> Result<Vec<TaskRecord>, StoreError>;
    /// Delete expired tasks; returns how many.
    async fn delete_expired_tasks(&self, now_ms: i64) -> Result<u64, StoreError>;
    /// Fail every non-terminal task (at start-up of a single-node store: whatever was running
    /// died with the previous process); returns how many.
    async fn fail_unfinished_tasks(&self, message: &str, now_ms: i64) -> Result<u64, StoreError>;
}

/// One task running in this process.
struct Running {
    abort: AbortHandle,
    done: watch::Sender<bool>,
}

/// The tasks running in this process (shared by every worker thread).
///
/// States of an entry: registered (running) → removed (its terminal status is stored, the
/// completion signal sent). Messages: [`TaskRunner::cancel`] aborts one; the drain calls
/// [`TaskRunner::abort_all`] at its deadline and waits for [`TaskRunner::running`] to reach 0.
#[derive(Default)]
pub struct TaskRunner {
    running: Mutex<HashMap<String, Running>>,
    aborted_all: AtomicBool,
}

impl TaskRunner {
    /// Register a task that is about to run.
    pub(crate) fn register(&self, task_id: &str, abort: AbortHandle) {
        let (done, _) = watch::channel(false);
        if let Ok(mut m) = self.running.lock() {
            m.insert(task_id.to_string(), Running { abort, done });
        }
    }

    /// The task finished (its status is stored): wake its waiters and forget it.
    pub(crate) fn finished(&self, task_id: &str) {
        let r = self.running.lock().ok().and_then(|mut m| m.remove(task_id));
        if let Some(r) = r {
            let _ = r.done.send(true);
        }
    }

    /// A receiver that turns true when the task finishes, if it runs here.
    pub(crate) fn watch(&self, task_id: &str) -> Option<watch::Receiver<bool>> {
        self.running.lock().ok().and_then(|m| m.get(task_id).map(|r| r.done.subscribe()))
    }

    /// Abort a task running here; false when it does not run here.
    pub fn cancel(&self, task_id: &str) -> bool {
        match self.running.lock().ok().and_then(|m| m.get(task_id).map(|r| r.abort.clone())) {
            Some(a) => {
                a.abort();
                true
            }
            None => false,
        }
    }

    /// How many tasks run in this process.
    pub fn running(&self) -> usize {
        self.running.lock().map(|m| m.len()).unwrap_or(0)
    }

    /// Abort every running task (the drain deadline passed); each stores itself as failed.
    /// Returns how many were aborted; later calls abort nothing new.
    pub fn abort_all(&self) -> usize {
        if self.aborted_all.swap(true, Ordering::AcqRel) {
            return 0;
        }
        let handles: Vec<AbortHandle> =
            self.running.lock().map(|m| m.values().map(|r| r.abort.clone()).collect()).unwrap_or_default();
        for h in &handles {
            h.abort();
        }
        handles.len()
    }
}

/// ISO 8601 / RFC 3339 text (UTC, milliseconds) of a Unix-ms time.
pub fn iso8601(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let milli = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{milli:03}Z", rem / 3600, (rem % 3600) / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn iso8601_matches_known_instants() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso8601(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(iso8601(1_796_409_376_000), "2026-12-04T18:36:16.000Z");
    }

    #[test]
    fn cursors_round_trip_and_foreign_ones_are_refused() {
        let c = TaskCursor { created_at_ms: 42, task_id: uuid::Uuid::new_v4().to_string() };
        assert_eq!(TaskCursor::decode(&c.encode()), Some(c));
        for bad in ["", "t", "t12", "tx.abc", "page-1", "t1.not-a-uuid"] {
            assert_eq!(TaskCursor::decode(bad), None, "{bad}");
        }
    }

    #[test]
    fn statuses_round_trip() {
        for s in [
            TaskStatus::Working,
            TaskStatus::InputRequired,
            TaskStatus::Completed,
            TaskStatus::Failed,
            TaskStatus::Cancelled,
        ] {
            assert_eq!(TaskStatus::parse(s.as_str()), Some(s));
        }
        assert!(!TaskStatus::Working.is_terminal());
        assert!(TaskStatus::Cancelled.is_terminal());
    }
}
