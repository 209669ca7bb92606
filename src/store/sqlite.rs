//! SQLite adapter for the [`Store`] port (the embedded default).
//!
//! Opens the file with WAL journaling, `synchronous = NORMAL`, foreign keys on and a busy
//! timeout, creating the file and its parent directory when missing. Every write runs in a
//! `BEGIN IMMEDIATE` transaction, so writers queue on SQLite's write lock (waiting up to
//! the busy timeout) instead of failing when a read snapshot goes stale.
//!
//! The frequent writes (conversation turns, tool-call log batches, sessions) go through one
//! dedicated writer connection, taken in turn, instead of any pooled connection: SQLite has
//! one writer anyway, so nothing is lost in parallelism, writers never meet in the busy
//! handler's sleeps, and the writer's page cache stays warm (a connection that finds the WAL
//! changed by another connection starts its next transaction with an empty cache). Reads use
//! the pool. An in-memory database has only its one pooled connection.

use std::ops::{Deref, DerefMut};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use exai_actors::ports::{
    ConversationRecord, MessageRecord, MigrationStatus, NewMessage, SessionRecord, Store, StoreError, ToolCallQuery,
    ToolCallRecord, TurnRecord,
};
use sqlx::migrate::Migrator;
use sqlx::pool::PoolConnection;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{ConnectOptions, Connection, QueryBuilder, Sqlite};

use super::error::{connect_failed, map_migrate, map_sqlx};
use super::rows::{self, effective_limit, known_versions};
use super::{redact_url, StoreOptions};

/// The SQLite migrations, embedded at compile time.
pub static MIGRATOR: Migrator = sqlx::migrate!("migrations/sqlite");

const BEGIN_WRITE: &str = "BEGIN IMMEDIATE";

/// `cache_size` of the writer connection for `storage.sqlite_cache_mib` (negative: KiB;
/// SQLite's default is 2 MiB). A batch's pages are mostly at the ends of the indexes (ids are
/// time-ordered), so a few MiB keep them; the cache fills only as pages are used and counts
/// fully in the process's RSS (a fixed 64 MiB put the plateau under load at 124 MB).
fn writer_cache_size(mib: u32) -> String {
    format!("-{}", u64::from(mib.max(1)) * 1024)
}

const TOOL_CALL_COLUMNS: &str = "SELECT id, started_at, session_id, request_id, tool, protocol, \
     outcome, error_code, total_ms, global_wait_ms, provider_wait_ms, processing_ms, provider, \
     model, args_bytes FROM tool_calls WHERE 1 = 1";

/// Column list of `messages` as the decoder expects it (a macro so SQL stays `concat!`-ed
/// string literals).
macro_rules! message_columns {
    () => {
        "id, conversation_id, seq, role, content, model, metadata, idempotency_key, created_at"
    };
}

/// [`Store`] over a SQLite connection pool.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    writer: Option<Arc<tokio::sync::Mutex<Option<SqliteConnection>>>>,
    /// How to open the writer connection again (after it got stuck, see [`Self::writer`]).
    writer_opts: Option<(SqliteConnectOptions, i32)>,
}

/// The connection a write runs on: the dedicated writer, or a pooled one.
enum WriteConn<'a> {
    Own(tokio::sync::MappedMutexGuard<'a, SqliteConnection>),
    Pool(PoolConnection<Sqlite>),
}

impl Deref for WriteConn<'_> {
    type Target = SqliteConnection;
    fn deref(&self) -> &SqliteConnection {
        match self {
            WriteConn::Own(g) => g,
            WriteConn::Pool(c) => c,
        }
    }
}

impl DerefMut for WriteConn<'_> {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        match self {
            WriteConn::Own(g) => g,
            WriteConn::Pool(c) => c,
        }
    }
}

impl SqliteStore {
    /// Open (creating if missing) the database at `url` — a `sqlite:` URL or a plain file
    /// path — and run the migrations when `opts.migrate` is set. An in-memory database
    /// (`sqlite::memory:`) uses a single connection that lives as long as the pool.
    pub async fn connect(url: &str, opts: &StoreOptions) -> Result<Self, StoreError> {
        let memory = is_memory(url);
        let connect_opts = connect_options(url, opts)?;
        if !memory {
            ensure_parent_dir(&connect_opts).await?;
        }
        // No ping before handing out a connection: a SQLite connection is a local file handle
        // that does not go stale, and the ping is a round trip to its worker thread.
        let mut pool_opts = SqlitePoolOptions::new()
            .test_before_acquire(false)
            .max_connections(opts.max_connections.max(1))
            .acquire_timeout(Duration::from_millis(opts.acquire_timeout_ms.max(1)));
        if memory {
            pool_opts = pool_opts.max_connections(1).min_connections(1).idle_timeout(None).max_lifetime(None);
        }
        let pool =
            pool_opts.connect_with(connect_opts.clone()).await.map_err(|e| connect_failed(&redact_url(url), e))?;
        let mut store = Self { pool, writer: None, writer_opts: None };
        if opts.migrate {
            store.run_migrations().await?;
        }
        if !memory {
            let wopts = connect_opts.clone().pragma("cache_size", writer_cache_size(opts.sqlite_cache_mib));
            let conn = open_writer(&wopts, opts.writer_nice).await.map_err(|e| connect_failed(&redact_url(url), e))?;
            store.writer = Some(Arc::new(tokio::sync::Mutex::new(Some(conn))));
            store.writer_opts = Some((wopts, opts.writer_nice));
        }
        Ok(store)
    }

    /// The connection for a write: the dedicated writer (waiting for its turn), or a pooled
    /// connection for an in-memory database or after `close`.
    ///
    /// A writer left inside a transaction is replaced by a fresh connection first: when a
    /// COMMIT fails because the disk is full, SQLite has already rolled the transaction back,
    /// so the driver's own ROLLBACK fails too and its transaction depth stays above zero —
    /// every later `BEGIN` would fail ("begin_with at non-zero transaction depth") until a
    /// restart, even after space returns.
    async fn writer(&self) -> Result<WriteConn<'_>, StoreError> {
        if let Some(w) = &self.writer {
            let mut slot = w.lock().await;
            if slot.as_ref().is_some_and(|c| c.is_in_transaction()) {
                if let Some((opts, nice)) = &self.writer_opts {
                    tracing::warn!("SQLite writer connection left inside a failed transaction; opening a fresh one");
                    let fresh = open_writer(opts, *nice).await.map_err(map_sqlx)?;
                    if let Some(stuck) = slot.replace(fresh) {
                        // Its worker thread ends when the handle goes; nothing is left to commit.
                        drop(stuck);
                    }
                }
            }
            if let Ok(g) = tokio::sync::MutexGuard::try_map(slot, Option::as_mut) {
                return Ok(WriteConn::Own(g));
            }
        }
        self.pool.acquire().await.map(WriteConn::Pool).map_err(map_sqlx)
    }

    /// Apply every pending migration (a no-op when the schema is current).
    pub async fn run_migrations(&self) -> Result<(), StoreError> {
        MIGRATOR.run(&self.pool).await.map_err(map_migrate)
    }

    /// The underlying pool, for adapters of later features that share this database.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

/// Open the dedicated writer connection; with `nice > 0` its worker thread runs at
/// background priority.
async fn open_writer(opts: &SqliteConnectOptions, nice: i32) -> Result<SqliteConnection, sqlx::Error> {
    let workers = (nice > 0).then(super::priority::sqlite_workers);
    let conn = opts.clone().connect().await?;
    if let Some(before) = workers {
        let after = super::priority::sqlite_workers();
        if let Some(tid) = super::priority::lower_new_worker(&before, &after, nice) {
            tracing::debug!(thread = tid, nice, "SQLite writer thread runs at background priority");
        }
    }
    Ok(conn)
}

#[cfg(test)]
#[test]
fn writer_cache_size_is_negative_kib() {
    assert_eq!(writer_cache_size(8), "-8192");
    assert_eq!(writer_cache_size(0), "-1024", "at least 1 MiB");
}

fn is_memory(url: &str) -> bool {
    url.contains(":memory:") || url.contains("mode=memory")
}

fn connect_options(url: &str, opts: &StoreOptions) -> Result<SqliteConnectOptions, StoreError> {
    let trimmed = url.trim();
    let base = if trimmed.len() >= 7 && trimmed[..7].eq_ignore_ascii_case("sqlite:") {
        SqliteConnectOptions::from_str(trimmed)
            .map_err(|e| StoreError::Unavailable(format!("invalid SQLite URL {}: {e}", redact_url(trimmed))))?
    } else {
        SqliteConnectOptions::new().filename(trimmed)
    };
    Ok(base
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        // `maintain()` checkpoints every few seconds; the automatic checkpoint (which runs
        // inside whichever commit crosses the threshold, fsync included) is only a backstop.
        .pragma("wal_autocheckpoint", "10000")
        // Statement journals (a multi-row insert with a conflict clause inside a transaction
        // keeps one) in memory, not in a temporary file created and unlinked per statement.
        .pragma("temp_store", "memory")
        .foreign_keys(true)
        .busy_timeout(Duration::from_millis(opts.busy_timeout_ms)))
}

async fn ensure_parent_dir(opts: &SqliteConnectOptions) -> Result<(), StoreError> {
    let Some(parent) = opts.get_filename().parent() else {
        return Ok(());
    };
    if parent.as_os_str().is_empty() {
        return Ok(());
    }
    tokio::fs::create_dir_all(parent)
        .await
        .map_err(|e| StoreError::Unavailable(format!("cannot create database directory {}: {e}", parent.display())))
}

#[async_trait]
impl Store for SqliteStore {
    fn file_registry(&self) -> Option<std::sync::Arc<dyn exai_actors::files::ports::FileRegistry>> {
        Some(std::sync::Arc::new(self.clone()))
    }

    fn task_store(&self) -> Option<std::sync::Arc<dyn exai_actors::tasks::TaskStore>> {
        Some(std::sync::Arc::new(self.clone()))
    }

    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map(|_| ()).map_err(map_sqlx)
    }

    async fn migration_status(&self) -> Result<MigrationStatus, StoreError> {
        let exists: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'")
                .fetch_one(&self.pool)
                .await
                .map_err(map_sqlx)?;
        let applied = if exists > 0 {
            sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version")
                .fetch_all(&self.pool)
                .await
                .map_err(map_sqlx)?
        } else {
            Vec::new()
        };
        Ok(MigrationStatus { applied, known: known_versions(&MIGRATOR) })
    }

    async fn record_tool_calls(&self, rows: &[ToolCallRecord]) -> Result<u64, StoreError> {
        if rows.is_empty() {
            return Ok(0);
        }
        let mut conn = self.writer().await?;
        let mut tx = conn.begin_with(BEGIN_WRITE).await.map_err(map_sqlx)?;
        let mut written = 0;
        // Multi-row inserts: 14 binds per row, 64 rows per statement stays far below
        // SQLite's bind limit and cuts per-statement overhead for large batches.
        for chunk in rows.chunks(64) {
            let mut qb = QueryBuilder::<Sqlite>::new(
                "INSERT INTO tool_calls (started_at, session_id, request_id, tool, protocol, \
                 outcome, error_code, total_ms, global_wait_ms, provider_wait_ms, processing_ms, \
                 provider, model, args_bytes) ",
            );
            qb.push_values(chunk, |mut b, r| {
                b.push_bind(r.started_at_ms)
                    .push_bind(&r.session_id)
                    .push_bind(&r.request_id)
                    .push_bind(&r.tool)
                    .push_bind(&r.protocol)
                    .push_bind(r.outcome.as_str())
                    .push_bind(&r.error_code)
                    .push_bind(r.total_ms)
                    .push_bind(r.global_wait_ms)
                    .push_bind(r.provider_wait_ms)
                    .push_bind(r.processing_ms)
                    .push_bind(&r.provider)
                    .push_bind(&r.model)
                    .push_bind(r.args_bytes);
            });
            written += qb.build().execute(&mut *tx).await.map_err(map_sqlx)?.rows_affected();
        }
        tx.commit().await.map_err(map_sqlx)?;
        Ok(written)
    }

    async fn recent_tool_calls(&self, q: &ToolCallQuery) -> Result<Vec<ToolCallRecord>, StoreError> {
        let mut qb = QueryBuilder::<Sqlite>::new(TOOL_CALL_COLUMNS);
        if let Some(tool) = &q.tool {
            qb.push(" AND tool = ").push_bind(tool);
        }
        if let Some(session) = &q.session_id {
            qb.push(" AND session_id = ").push_bind(session);
        }
        if let Some(outcome) = q.outcome {
            qb.push(" AND outcome = ").push_bind(outcome.as_str());
        }
        if let Some(since) = q.since_ms {
            qb.push(" AND started_at >= ").push_bind(since);
        }
        qb.push(" ORDER BY started_at DESC, id DESC LIMIT ").push_bind(effective_limit(q.limit));
        let found = qb.build().fetch_all(&self.pool).await.map_err(map_sqlx)?;
        found.iter().map(rows::tool_call).collect()
    }

    async fn prune_tool_calls(
        &self,
        before_ms: Option<i64>,
        keep_rows: Option<u64>,
        batch: u32,
    ) -> Result<u64, StoreError> {
        let mut conn = self.writer().await?;
        let mut deleted = 0;
        if let Some(before) = before_ms {
            let q = sqlx::query(rows::PRUNE_TOOL_CALLS_BY_AGE).bind(before).bind(i64::from(batch));
            deleted += q.execute(&mut *conn).await.map_err(map_sqlx)?.rows_affected();
        }
        if let (Some(keep), true) = (keep_rows, deleted < u64::from(batch)) {
            let left = i64::from(batch) - deleted as i64;
            let q =
                sqlx::query(rows::PRUNE_TOOL_CALLS_BY_COUNT).bind(i64::try_from(keep).unwrap_or(i64::MAX)).bind(left);
            deleted += q.execute(&mut *conn).await.map_err(map_sqlx)?.rows_affected();
        }
        Ok(deleted)
    }

    async fn upsert_session(&self, s: &SessionRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO sessions (id, protocol, client_name, client_version, created_at, \
             last_seen_at, closed_at, metadata) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (id) DO UPDATE SET protocol = excluded.protocol, \
             client_name = COALESCE(excluded.client_name, sessions.client_name), \
             client_version = COALESCE(excluded.client_version, sessions.client_version), \
             last_seen_at = excluded.last_seen_at, closed_at = excluded.closed_at, \
             metadata = excluded.metadata",
        )
        .bind(&s.id)
        .bind(&s.protocol)
        .bind(&s.client_name)
        .bind(&s.client_version)
        .bind(s.created_at_ms)
        .bind(s.last_seen_at_ms)
        .bind(s.closed_at_ms)
        .bind(s.metadata.to_string())
        .execute(&mut *self.writer().await?)
        .await
        .map(|_| ())
        .map_err(map_sqlx)
    }

    async fn close_session(&self, id: &str, at_ms: i64) -> Result<(), StoreError> {
        let done = sqlx::query(
            "UPDATE sessions SET closed_at = $2, last_seen_at = MAX(last_seen_at, $2) \
             WHERE id = $1",
        )
        .bind(id)
        .bind(at_ms)
        .execute(&mut *self.writer().await?)
        .await
        .map_err(map_sqlx)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("session {id}")));
        }
        Ok(())
    }

    async fn get_session(&self, id: &str) -> Result<Option<SessionRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT id, protocol, client_name, client_version, created_at, last_seen_at, \
             closed_at, metadata FROM sessions WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_sqlx)?;
        row.as_ref().map(rows::session).transpose()
    }

    async fn create_conversation(&self, c: &ConversationRecord) -> Result<(), StoreError> {
        let mut conn = self.writer().await?;
        insert_conversations(&[c]).build().execute(&mut *conn).await.map(|_| ()).map_err(map_sqlx)
    }

    async fn apply_turns(&self, turns: &[&TurnRecord]) -> Result<(), StoreError> {
        let mut conn = self.writer().await?;
        let mut tx = conn.begin_with(BEGIN_WRITE).await.map_err(map_sqlx)?;
        super::sqlite_turns::apply(&mut tx, turns).await?;
        tx.commit().await.map_err(map_sqlx)
    }

    async fn get_conversation(&self, continuation_id: &str) -> Result<Option<ConversationRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT id, continuation_id, session_id, tool, model, provider, turn_count, \
             created_at, updated_at, expires_at, metadata FROM conversations \
             WHERE continuation_id = $1",
        )
        .bind(continuation_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_sqlx)?;
        row.as_ref().map(rows::conversation).transpose()
    }

    async fn append_message(&self, m: &NewMessage) -> Result<MessageRecord, StoreError> {
        let mut rows = self.append_messages(std::slice::from_ref(m)).await?;
        rows.pop().ok_or_else(|| StoreError::Corrupt("append returned no row".into()))
    }

    async fn append_messages(&self, msgs: &[NewMessage]) -> Result<Vec<MessageRecord>, StoreError> {
        let Some(first) = msgs.first() else { return Ok(Vec::new()) };
        let conv = &first.conversation_id;
        if msgs.iter().any(|m| &m.conversation_id != conv) {
            return Err(StoreError::Constraint("messages of one append must share a conversation".into()));
        }
        // One statement, so one round trip and one implicit transaction: SQLite holds the
        // write lock for the whole statement, so max(seq) cannot race; a trigger bumps the
        // conversation's turn count; repeated idempotency keys insert nothing.
        let mut qb = append_query(conv, msgs);
        let mut conn = self.writer().await?;
        let inserted = qb.build().fetch_all(&mut *conn).await.map_err(map_sqlx)?;
        let mut out: Vec<MessageRecord> = inserted.iter().map(rows::message).collect::<Result<_, _>>()?;
        if out.len() < msgs.len() {
            // Repeated keys (a retried request) or a missing conversation.
            for m in msgs {
                if out.iter().any(|r| r.idempotency_key == m.idempotency_key) {
                    continue;
                }
                let row =
                    sqlx::query(concat!("SELECT ", message_columns!(), " FROM messages WHERE idempotency_key = $1"))
                        .bind(&m.idempotency_key)
                        .fetch_optional(&mut *conn)
                        .await
                        .map_err(map_sqlx)?;
                match row {
                    Some(row) => out.push(rows::same_conversation(rows::message(&row)?, conv)?),
                    None => return Err(StoreError::NotFound(format!("conversation {conv}"))),
                }
            }
        }
        out.sort_by_key(|r| r.seq);
        Ok(out)
    }

    async fn maintain(&self) -> Result<(), StoreError> {
        // Checkpoint here, off the request path, instead of inside some caller's commit.
        sqlx::query("PRAGMA wal_checkpoint(PASSIVE)").execute(&self.pool).await.map_err(map_sqlx)?;
        Ok(())
    }

    async fn list_messages(&self, conversation_id: &str, limit: u32) -> Result<Vec<MessageRecord>, StoreError> {
        // The newest `limit` messages, returned oldest first.
        let found = sqlx::query(concat!(
            "SELECT ",
            message_columns!(),
            " FROM (SELECT ",
            message_columns!(),
            " FROM messages WHERE conversation_id = $1 ORDER BY seq DESC LIMIT $2) AS recent \
             ORDER BY seq ASC"
        ))
        .bind(conversation_id)
        .bind(effective_limit(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(map_sqlx)?;
        found.iter().map(rows::message).collect()
    }

    async fn close(&self) {
        if let Some(w) = &self.writer {
            if let Some(conn) = w.lock().await.take() {
                let _ = conn.close().await;
            }
        }
        self.pool.close().await;
    }
}

/// The one statement appending `msgs` to conversation `conv`: SQLite holds the write lock for
/// the whole statement, so max(seq) cannot race; a trigger bumps the conversation's turn count;
/// repeated idempotency keys insert nothing; a missing conversation inserts nothing.
fn append_query<'a>(conv: &'a str, msgs: &'a [NewMessage]) -> QueryBuilder<'a, Sqlite> {
    let mut qb = QueryBuilder::<Sqlite>::new(
        "WITH base AS (SELECT COALESCE(MAX(seq), 0) AS s FROM messages WHERE conversation_id = ",
    );
    qb.push_bind(conv);
    qb.push(
        ") INSERT INTO messages (conversation_id, seq, role, content, model, metadata, idempotency_key, \
         created_at) ",
    );
    for (i, m) in msgs.iter().enumerate() {
        if i > 0 {
            qb.push(" UNION ALL ");
        }
        qb.push("SELECT ").push_bind(conv);
        // The offset is a number this code generates, not input.
        qb.push(format!(", base.s + {}, ", i + 1));
        qb.push_bind(m.role.as_str()).push(", ").push_bind(&m.content).push(", ").push_bind(&m.model);
        qb.push(", ").push_bind(m.metadata.to_string()).push(", ").push_bind(&m.idempotency_key);
        qb.push(", ").push_bind(m.created_at_ms);
        qb.push(" FROM base WHERE EXISTS (SELECT 1 FROM conversations WHERE id = ").push_bind(conv).push(")");
    }
    qb.push(concat!(" ON CONFLICT (idempotency_key) DO NOTHING RETURNING ", message_columns!()));
    qb
}

/// `INSERT INTO conversations` of these rows (a clause may follow).
pub(super) fn insert_conversations<'a>(rows: &[&'a ConversationRecord]) -> QueryBuilder<'a, Sqlite> {
    let mut qb = QueryBuilder::<Sqlite>::new(
        "INSERT INTO conversations (id, continuation_id, session_id, tool, model, provider, \
         turn_count, created_at, updated_at, expires_at, metadata) ",
    );
    qb.push_values(rows, |mut b, c| {
        b.push_bind(&c.id)
            .push_bind(&c.continuation_id)
            .push_bind(&c.session_id)
            .push_bind(&c.tool)
            .push_bind(&c.model)
            .push_bind(&c.provider)
            .push_bind(c.turn_count)
            .push_bind(c.created_at_ms)
            .push_bind(c.updated_at_ms)
            .push_bind(c.expires_at_ms)
            .push_bind(c.metadata.to_string());
    });
    qb
}
