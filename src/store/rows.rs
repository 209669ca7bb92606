//! Backend-neutral row decoding shared by the SQLite and PostgreSQL adapters.
//!
//! Both adapters select the same column names (PostgreSQL casts JSONB to text), so a
//! record is decoded once here through the small [`Cols`] accessor trait.

use exai_actors::ports::{
    CallOutcome, ConversationRecord, MessageRecord, MessageRole, SessionRecord, StoreError, ToolCallRecord,
};
use serde_json::Value;
use sqlx::migrate::Migrator;
use sqlx::Row;

use super::error::map_sqlx;

/// Upper bound on rows returned by one listing call; a limit of 0 means this cap.
pub(crate) const MAX_ROWS: u32 = 10_000;

/// The row count a listing call uses: `limit`, or [`MAX_ROWS`] when 0 or larger.
pub(crate) fn effective_limit(limit: u32) -> i64 {
    i64::from(if limit == 0 { MAX_ROWS } else { limit.min(MAX_ROWS) })
}

/// Retention by age: the oldest rows started before `$1`, at most `$2` of them (through the
/// `started_at` index). The same text serves both backends.
pub(crate) const PRUNE_TOOL_CALLS_BY_AGE: &str = "DELETE FROM tool_calls WHERE id IN \
     (SELECT id FROM tool_calls WHERE started_at < $1 ORDER BY started_at LIMIT $2)";

/// Retention by count: the oldest rows beyond the newest `$1` ids, at most `$2` of them. Ids
/// only grow and only the oldest rows are deleted, so at most `$1` rows remain (a little
/// fewer where an insert left a gap); no `COUNT(*)` over the table.
pub(crate) const PRUNE_TOOL_CALLS_BY_COUNT: &str = "DELETE FROM tool_calls WHERE id IN \
     (SELECT id FROM tool_calls WHERE id <= (SELECT MAX(id) FROM tool_calls) - $1 ORDER BY id LIMIT $2)";

/// Versions of the up-migrations a migrator embeds, ascending.
pub(crate) fn known_versions(migrator: &Migrator) -> Vec<i64> {
    let mut v: Vec<i64> =
        migrator.iter().filter(|m| !m.migration_type.is_down_migration()).map(|m| m.version).collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// Typed column access by name, mapping failures into [`StoreError`].
pub(crate) trait Cols {
    fn int(&self, col: &str) -> Result<i64, StoreError>;
    fn opt_int(&self, col: &str) -> Result<Option<i64>, StoreError>;
    fn real(&self, col: &str) -> Result<f64, StoreError>;
    fn text(&self, col: &str) -> Result<String, StoreError>;
    fn opt_text(&self, col: &str) -> Result<Option<String>, StoreError>;
    fn opt_real(&self, col: &str) -> Result<Option<f64>, StoreError>;
    /// A boolean (SQLite stores 0/1, PostgreSQL BOOLEAN).
    fn flag(&self, col: &str) -> Result<bool, StoreError>;

    /// A JSON column stored as text.
    fn json(&self, col: &str) -> Result<Value, StoreError> {
        let raw = self.text(col)?;
        serde_json::from_str(&raw).map_err(|e| StoreError::Corrupt(format!("column {col} holds invalid JSON: {e}")))
    }

    /// A nullable JSON column stored as text.
    fn opt_json(&self, col: &str) -> Result<Option<Value>, StoreError> {
        match self.opt_text(col)? {
            None => Ok(None),
            Some(raw) => serde_json::from_str(&raw)
                .map(Some)
                .map_err(|e| StoreError::Corrupt(format!("column {col} holds invalid JSON: {e}"))),
        }
    }
}

macro_rules! impl_cols {
    ($row:ty) => {
        impl Cols for $row {
            fn int(&self, col: &str) -> Result<i64, StoreError> {
                self.try_get(col).map_err(map_sqlx)
            }
            fn opt_int(&self, col: &str) -> Result<Option<i64>, StoreError> {
                self.try_get(col).map_err(map_sqlx)
            }
            fn real(&self, col: &str) -> Result<f64, StoreError> {
                self.try_get(col).map_err(map_sqlx)
            }
            fn text(&self, col: &str) -> Result<String, StoreError> {
                self.try_get(col).map_err(map_sqlx)
            }
            fn opt_text(&self, col: &str) -> Result<Option<String>, StoreError> {
                self.try_get(col).map_err(map_sqlx)
            }
            fn opt_real(&self, col: &str) -> Result<Option<f64>, StoreError> {
                self.try_get(col).map_err(map_sqlx)
            }
            fn flag(&self, col: &str) -> Result<bool, StoreError> {
                self.try_get(col).map_err(map_sqlx)
            }
        }
    };
}

impl_cols!(sqlx::sqlite::SqliteRow);
impl_cols!(sqlx::postgres::PgRow);

/// Decode a `tool_calls` row.
pub(crate) fn tool_call(row: &impl Cols) -> Result<ToolCallRecord, StoreError> {
    let outcome = row.text("outcome")?;
    Ok(ToolCallRecord {
        id: row.int("id")?,
        started_at_ms: row.int("started_at")?,
        session_id: row.text("session_id")?,
        request_id: row.text("request_id")?,
        tool: row.text("tool")?,
        protocol: row.text("protocol")?,
        outcome: CallOutcome::parse(&outcome)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown call outcome `{outcome}`")))?,
        error_code: row.opt_text("error_code")?,
        total_ms: row.real("total_ms")?,
        global_wait_ms: row.real("global_wait_ms")?,
        provider_wait_ms: row.real("provider_wait_ms")?,
        processing_ms: row.real("processing_ms")?,
        provider: row.opt_text("provider")?,
        model: row.opt_text("model")?,
        args_bytes: row.int("args_bytes")?,
    })
}

/// Decode a `sessions` row.
pub(crate) fn session(row: &impl Cols) -> Result<SessionRecord, StoreError> {
    Ok(SessionRecord {
        id: row.text("id")?,
        protocol: row.text("protocol")?,
        client_name: row.opt_text("client_name")?,
        client_version: row.opt_text("client_version")?,
        created_at_ms: row.int("created_at")?,
        last_seen_at_ms: row.int("last_seen_at")?,
        closed_at_ms: row.opt_int("closed_at")?,
        metadata: row.json("metadata")?,
    })
}

/// Decode a `conversations` row.
pub(crate) fn conversation(row: &impl Cols) -> Result<ConversationRecord, StoreError> {
    Ok(ConversationRecord {
        id: row.text("id")?,
        continuation_id: row.text("continuation_id")?,
        session_id: row.opt_text("session_id")?,
        tool: row.text("tool")?,
        model: row.opt_text("model")?,
        provider: row.opt_text("provider")?,
        turn_count: row.int("turn_count")?,
        created_at_ms: row.int("created_at")?,
        updated_at_ms: row.int("updated_at")?,
        expires_at_ms: row.int("expires_at")?,
        metadata: row.json("metadata")?,
    })
}

/// Decode a `messages` row.
pub(crate) fn message(row: &impl Cols) -> Result<MessageRecord, StoreError> {
    let role = row.text("role")?;
    Ok(MessageRecord {
        id: row.int("id")?,
        conversation_id: row.text("conversation_id")?,
        seq: row.int("seq")?,
        role: MessageRole::parse(&role).ok_or_else(|| StoreError::Corrupt(format!("unknown message role `{role}`")))?,
        content: row.text("content")?,
        model: row.opt_text("model")?,
        metadata: row.json("metadata")?,
        idempotency_key: row.text("idempotency_key")?,
        created_at_ms: row.int("created_at")?,
    })
}

/// Check that a row found by idempotency key belongs to the conversation being appended to.
pub(crate) fn same_conversation(existing: MessageRecord, conversation_id: &str) -> Result<MessageRecord, StoreError> {
    if existing.conversation_id == conversation_id {
        Ok(existing)
    } else {
        Err(StoreError::Constraint(format!(
            "idempotency key is already used by a message of another conversation ({})",
            existing.conversation_id
        )))
    }
}
