//! The [`TaskStore`] port over both stores: the `tasks` table (MCP tasks with their status
//! and, once terminal, their `CallToolResult` as JSON text).
//!
//! The SQL is shared (`$N` parameters, all values bound). Every read filters on the
//! principal and on `expires_at > now`, so an expired task is gone for readers before the
//! maintenance tick deletes it. A terminal status is written only over a non-terminal one
//! (`WHERE status IN ('working', 'input_required')`): a cancel and a finish racing each
//! other leave exactly one of them.

use async_trait::async_trait;
use exai_actors::ports::StoreError;
use exai_actors::tasks::{TaskCursor, TaskRecord, TaskStatus, TaskStore};
use serde_json::Value;
use sqlx::Row;

use super::error::map_sqlx;
use super::postgres::PgStore;
use super::sqlite::SqliteStore;

const COLUMNS: &str = "task_id, principal, session_id, tool, status, status_message, result, created_at, \
     updated_at, ttl_ms, expires_at, poll_interval_ms";
const INSERT: &str = "INSERT INTO tasks (task_id, principal, session_id, tool, status, status_message, result, \
     created_at, updated_at, ttl_ms, expires_at, poll_interval_ms) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)";
const FINISH: &str = "UPDATE tasks SET status = $1, status_message = $2, result = $3, updated_at = $4 \
     WHERE task_id = $5 AND status IN ('working', 'input_required') AND expires_at > $4";
const DELETE_EXPIRED: &str = "DELETE FROM tasks WHERE expires_at <= $1";
const FAIL_UNFINISHED: &str = "UPDATE tasks SET status = 'failed', status_message = $1, result = $2, \
     updated_at = $3 WHERE status IN ('working', 'input_required')";

fn select_one() -> String {
    format!("SELECT {COLUMNS} FROM tasks WHERE task_id = $1 AND principal = $2 AND expires_at > $3")
}

fn select_page(after: bool) -> String {
    if after {
        format!(
            "SELECT {COLUMNS} FROM tasks WHERE principal = $1 AND expires_at > $2 AND \
             (created_at < $3 OR (created_at = $3 AND task_id < $4)) \
             ORDER BY created_at DESC, task_id DESC LIMIT $5"
        )
    } else {
        format!(
            "SELECT {COLUMNS} FROM tasks WHERE principal = $1 AND expires_at > $2 \
             ORDER BY created_at DESC, task_id DESC LIMIT $3"
        )
    }
}

fn task<R: Row>(r: &R) -> Result<TaskRecord, StoreError>
where
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    i64: sqlx::Type<R::Database> + for<'a> sqlx::Decode<'a, R::Database>,
    String: sqlx::Type<R::Database> + for<'a> sqlx::Decode<'a, R::Database>,
{
    let status: String = r.try_get("status").map_err(map_sqlx)?;
    let result: Option<String> = r.try_get("result").map_err(map_sqlx)?;
    let result = match result {
        Some(text) => Some(
            serde_json::from_str::<Value>(&text)
                .map_err(|e| StoreError::Corrupt(format!("task result is not JSON: {e}")))?,
        ),
        None => None,
    };
    Ok(TaskRecord {
        task_id: r.try_get("task_id").map_err(map_sqlx)?,
        principal: r.try_get("principal").map_err(map_sqlx)?,
        session_id: r.try_get("session_id").map_err(map_sqlx)?,
        tool: r.try_get("tool").map_err(map_sqlx)?,
        status: TaskStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown task status '{status}'")))?,
        status_message: r.try_get("status_message").map_err(map_sqlx)?,
        result,
        created_at_ms: r.try_get("created_at").map_err(map_sqlx)?,
        updated_at_ms: r.try_get("updated_at").map_err(map_sqlx)?,
        ttl_ms: r.try_get("ttl_ms").map_err(map_sqlx)?,
        expires_at_ms: r.try_get("expires_at").map_err(map_sqlx)?,
        poll_interval_ms: r.try_get("poll_interval_ms").map_err(map_sqlx)?,
    })
}

/// The task methods, identical for both pools.
macro_rules! tasks_impl {
    ($store:ty) => {
        #[async_trait]
        impl TaskStore for $store {
            async fn create_task(&self, t: &TaskRecord) -> Result<(), StoreError> {
                sqlx::query(INSERT)
                    .bind(&t.task_id)
                    .bind(&t.principal)
                    .bind(&t.session_id)
                    .bind(&t.tool)
                    .bind(t.status.as_str())
                    .bind(&t.status_message)
                    .bind(t.result.as_ref().map(Value::to_string))
                    .bind(t.created_at_ms)
                    .bind(t.updated_at_ms)
                    .bind(t.ttl_ms)
                    .bind(t.expires_at_ms)
                    .bind(t.poll_interval_ms)
                    .execute(self.pool())
                    .await
                    .map_err(map_sqlx)?;
                Ok(())
            }

            async fn get_task(
                &self,
                principal: &str,
                task_id: &str,
                now_ms: i64,
            ) -> Result<Option<TaskRecord>, StoreError> {
                let row = sqlx::query(&select_one())
                    .bind(task_id)
                    .bind(principal)
                    .bind(now_ms)
                    .fetch_optional(self.pool())
                    .await
                    .map_err(map_sqlx)?;
                row.as_ref().map(task).transpose()
            }

            async fn finish_task(
                &self,
                task_id: &str,
                status: TaskStatus,
                status_message: Option<&str>,
                result: Option<&Value>,
                now_ms: i64,
            ) -> Result<bool, StoreError> {
                let r = sqlx::query(FINISH)
                    .bind(status.as_str())
                    .bind(status_message)
                    .bind(result.map(Value::to_string))
                    .bind(now_ms)
                    .bind(task_id)
                    .execute(self.pool())
                    .await
                    .map_err(map_sqlx)?;
                Ok(r.rows_affected() > 0)
            }

            async fn list_tasks(
                &self,
                principal: &str,
                after: Option<&TaskCursor>,
                limit: u32,
                now_ms: i64,
            ) -> Result<Vec<TaskRecord>, StoreError> {
                let limit = i64::from(limit.clamp(1, 1_000));
                let sql = select_page(after.is_some());
                let q = sqlx::query(&sql).bind(principal).bind(now_ms);
                let q = match after {
                    Some(c) => q.bind(c.created_at_ms).bind(&c.task_id).bind(limit),
                    None => q.bind(limit),
                };
                let rows = q.fetch_all(self.pool()).await.map_err(map_sqlx)?;
                rows.iter().map(task).collect()
            }

            async fn delete_expired_tasks(&self, now_ms: i64) -> Result<u64, StoreError> {
                let r = sqlx::query(DELETE_EXPIRED).bind(now_ms).execute(self.pool()).await.map_err(map_sqlx)?;
                Ok(r.rows_affected())
            }

            async fn fail_unfinished_tasks(&self, message: &str, now_ms: i64) -> Result<u64, StoreError> {
                let e = exai_actors::error::ToolError::Cancelled { reason: message.to_string() };
                let result = exai_actors::protocol::mcp::tool_error_result(&e, None);
                let r = sqlx::query(FAIL_UNFINISHED)
                    .bind(format!("{}: {e}", e.code()))
                    .bind(result.to_string())
                    .bind(now_ms)
                    .execute(self.pool())
                    .await
                    .map_err(map_sqlx)?;
                Ok(r.rows_affected())
            }
        }
    };
}

tasks_impl!(SqliteStore);
tasks_impl!(PgStore);
