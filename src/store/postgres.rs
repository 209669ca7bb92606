//! PostgreSQL adapter for the [`Store`] port (production; Supabase is PostgreSQL).
//!
//! JSON columns are JSONB: values are bound as text and cast with `::jsonb`, and read back
//! with `::text`, so no sqlx JSON feature is needed. Tool-call batches go in as one
//! `INSERT ... SELECT FROM UNNEST(...)` with array binds; message appends lock the
//! conversation row (`SELECT ... FOR UPDATE`) so sequence numbers never race.

use std::str::FromStr;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use exai_actors::ports::{
    ConversationRecord, MessageRecord, MigrationStatus, NewMessage, SessionRecord, Store, StoreError, ToolCallQuery,
    ToolCallRecord,
};
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::{Connection, Postgres, QueryBuilder};

use super::error::{connect_failed, map_migrate, map_sqlx};
use super::rows::{self, effective_limit, known_versions};
use super::{redact_url, StoreOptions};

/// The PostgreSQL migrations, embedded at compile time.
pub static MIGRATOR: Migrator = sqlx::migrate!("migrations/postgres");

const TOOL_CALL_COLUMNS: &str = "SELECT id, started_at, session_id, request_id, tool, protocol, \
     outcome, error_code, total_ms, global_wait_ms, provider_wait_ms, processing_ms, provider, \
     model, args_bytes FROM tool_calls WHERE TRUE";

/// Column list of `messages` as the decoder expects it (a macro so SQL stays `concat!`-ed
/// string literals).
macro_rules! message_columns {
    () => {
        "id, conversation_id, seq, role, content, model, metadata::text AS metadata, \
         idempotency_key, created_at"
    };
}

/// [`Store`] over a PostgreSQL connection pool.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
    connect_opts: PgConnectOptions,
}

impl PgStore {
    /// Connect to the `postgres://` / `postgresql://` URL and run the migrations when
    /// `opts.migrate` is set. `opts.acquire_timeout_ms` bounds the wait for a pooled
    /// connection.
    ///
    /// The first connection is made directly, not through the pool, so that a database that
    /// cannot be reached is reported with the driver's own error ("Connection refused", a
    /// failed login, an unknown host) instead of the pool's "pool timed out". A refused
    /// connection is retried (a database still starting) until the acquire timeout.
    pub async fn connect(url: &str, opts: &StoreOptions) -> Result<Self, StoreError> {
        let connect_opts = PgConnectOptions::from_str(url.trim())
            .map_err(|e| StoreError::Unavailable(format!("invalid PostgreSQL URL {}: {e}", redact_url(url))))?
            .application_name("exai");
        let within = Duration::from_millis(opts.acquire_timeout_ms.max(1));
        let first = first_connection(&connect_opts, within).await.map_err(|e| connect_failed(&redact_url(url), e))?;
        let _ = first.close().await;
        let pool = PgPoolOptions::new()
            .max_connections(opts.max_connections.max(1))
            .acquire_timeout(within)
            .connect_lazy_with(connect_opts.clone());
        let store = Self { pool, connect_opts };
        if opts.migrate {
            store.run_migrations().await?;
        }
        Ok(store)
    }

    /// Apply every pending migration (a no-op when the schema is current). sqlx holds a
    /// PostgreSQL advisory lock meanwhile, so several nodes may call this at once.
    pub async fn run_migrations(&self) -> Result<(), StoreError> {
        MIGRATOR.run(&self.pool).await.map_err(map_migrate)
    }

    /// The underlying pool, for adapters of later features that share this database.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// A reachability probe for the [`Gate`](super::guard::Gate): one direct connection,
    /// closed at once.
    pub fn probe(&self) -> super::guard::Probe {
        let opts = self.connect_opts.clone();
        std::sync::Arc::new(move || {
            let opts = opts.clone();
            Box::pin(async move {
                let conn = PgConnection::connect_with(&opts).await.map_err(|e| e.to_string())?;
                let _ = conn.close().await;
                Ok(())
            })
        })
    }
}

/// One direct connection, retrying a refused one with backoff until `within` has passed.
async fn first_connection(opts: &PgConnectOptions, within: Duration) -> Result<PgConnection, sqlx::Error> {
    let deadline = Instant::now() + within;
    let mut backoff = Duration::from_millis(50);
    loop {
        let left = deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(1));
        match tokio::time::timeout(left, PgConnection::connect_with(opts)).await {
            Ok(Ok(conn)) => return Ok(conn),
            Ok(Err(sqlx::Error::Io(e)))
                if e.kind() == std::io::ErrorKind::ConnectionRefused && Instant::now() + backoff < deadline =>
            {
                tracing::debug!(error = %e, "database refused the connection; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_millis(500));
            }
            Ok(Err(e)) => return Err(e),
            Err(_) => {
                let msg = format!("no connection within {} ms", within.as_millis());
                return Err(sqlx::Error::Io(std::io::Error::new(std::io::ErrorKind::TimedOut, msg)));
            }
        }
    }
}

/// Column arrays for one UNNEST batch insert of tool calls.
#[derive(Default)]
struct ToolCallColumns {
    started_at: Vec<i64>,
    session_id: Vec<String>,
    request_id: Vec<String>,
    tool: Vec<String>,
    protocol: Vec<String>,
    outcome: Vec<String>,
    error_code: Vec<Option<String>>,
    total_ms: Vec<f64>,
    global_wait_ms: Vec<f64>,
    provider_wait_ms: Vec<f64>,
    processing_ms: Vec<f64>,
    provider: Vec<Option<String>>,
    model: Vec<Option<String>>,
    args_bytes: Vec<i64>,
}

impl ToolCallColumns {
    fn from_rows(rows: &[ToolCallRecord]) -> Self {
        let mut c = Self::default();
        for r in rows {
            c.started_at.push(r.started_at_ms);
            c.session_id.push(r.session_id.clone());
            c.request_id.push(r.request_id.clone());
            c.tool.push(r.tool.clone());
            c.protocol.push(r.protocol.clone());
            c.outcome.push(r.outcome.as_str().to_string());
            c.error_code.push(r.error_code.clone());
            c.total_ms.push(r.total_ms);
            c.global_wait_ms.push(r.global_wait_ms);
            c.provider_wait_ms.push(r.provider_wait_ms);
            c.processing_ms.push(r.processing_ms);
            c.provider.push(r.provider.clone());
            c.model.push(r.model.clone());
            c.args_bytes.push(r.args_bytes);
        }
        c
    }
}

#[async_trait]
impl Store for PgStore {
    fn file_registry(&self) -> Option<std::sync::Arc<dyn exai_actors::files::ports::FileRegistry>> {
        Some(std::sync::Arc::new(self.clone()))
    }

    fn task_store(&self) -> Option<std::sync::Arc<dyn exai_actors::tasks::TaskStore>> {
        Some(std::sync::Arc::new(self.clone()))
    }

    fn backend(&self) -> &'static str {
        "postgres"
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map(|_| ()).map_err(map_sqlx)
    }

    async fn migration_status(&self) -> Result<MigrationStatus, StoreError> {
        let exists: bool = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
            .fetch_one(&self.pool)
            .await
            .map_err(map_sqlx)?;
        let applied = if exists {
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
        let c = ToolCallColumns::from_rows(rows);
        // A single statement is a single transaction: the whole batch lands or none of it.
        let done = sqlx::query(
            "INSERT INTO tool_calls (started_at, session_id, request_id, tool, protocol, outcome, \
             error_code, total_ms, global_wait_ms, provider_wait_ms, processing_ms, provider, \
             model, args_bytes) \
             SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], \
             $6::text[], $7::text[], $8::float8[], $9::float8[], $10::float8[], $11::float8[], \
             $12::text[], $13::text[], $14::bigint[])",
        )
        .bind(c.started_at)
        .bind(c.session_id)
        .bind(c.request_id)
        .bind(c.tool)
        .bind(c.protocol)
        .bind(c.outcome)
        .bind(c.error_code)
        .bind(c.total_ms)
        .bind(c.global_wait_ms)
        .bind(c.provider_wait_ms)
        .bind(c.processing_ms)
        .bind(c.provider)
        .bind(c.model)
        .bind(c.args_bytes)
        .execute(&self.pool)
        .await
        .map_err(map_sqlx)?;
        Ok(done.rows_affected())
    }

    async fn recent_tool_calls(&self, q: &ToolCallQuery) -> Result<Vec<ToolCallRecord>, StoreError> {
        let mut qb = QueryBuilder::<Postgres>::new(TOOL_CALL_COLUMNS);
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
        let mut deleted = 0;
        if let Some(before) = before_ms {
            let q = sqlx::query(rows::PRUNE_TOOL_CALLS_BY_AGE).bind(before).bind(i64::from(batch));
            deleted += q.execute(&self.pool).await.map_err(map_sqlx)?.rows_affected();
        }
        if let (Some(keep), true) = (keep_rows, deleted < u64::from(batch)) {
            let left = i64::from(batch) - deleted as i64;
            let q =
                sqlx::query(rows::PRUNE_TOOL_CALLS_BY_COUNT).bind(i64::try_from(keep).unwrap_or(i64::MAX)).bind(left);
            deleted += q.execute(&self.pool).await.map_err(map_sqlx)?.rows_affected();
        }
        Ok(deleted)
    }

    async fn upsert_session(&self, s: &SessionRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO sessions (id, protocol, client_name, client_version, created_at, \
             last_seen_at, closed_at, metadata) VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb) \
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
        .execute(&self.pool)
        .await
        .map(|_| ())
        .map_err(map_sqlx)
    }

    async fn close_session(&self, id: &str, at_ms: i64) -> Result<(), StoreError> {
        let done = sqlx::query(
            "UPDATE sessions SET closed_at = $2, last_seen_at = GREATEST(last_seen_at, $2) \
             WHERE id = $1",
        )
        .bind(id)
        .bind(at_ms)
        .execute(&self.pool)
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
             closed_at, metadata::text AS metadata FROM sessions WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_sqlx)?;
        row.as_ref().map(rows::session).transpose()
    }

    async fn create_conversation(&self, c: &ConversationRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO conversations (id, continuation_id, session_id, tool, model, provider, \
             turn_count, created_at, updated_at, expires_at, metadata) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11::jsonb)",
        )
        .bind(&c.id)
        .bind(&c.continuation_id)
        .bind(&c.session_id)
        .bind(&c.tool)
        .bind(&c.model)
        .bind(&c.provider)
        .bind(c.turn_count)
        .bind(c.created_at_ms)
        .bind(c.updated_at_ms)
        .bind(c.expires_at_ms)
        .bind(c.metadata.to_string())
        .execute(&self.pool)
        .await
        .map(|_| ())
        .map_err(map_sqlx)
    }

    async fn get_conversation(&self, continuation_id: &str) -> Result<Option<ConversationRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT id, continuation_id, session_id, tool, model, provider, turn_count, \
             created_at, updated_at, expires_at, metadata::text AS metadata FROM conversations \
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
        let mut tx = self.pool.begin().await.map_err(map_sqlx)?;
        // Locking the conversation row serializes appends to this conversation, so the
        // max(seq) below cannot race and a repeated key is seen once the lock is ours.
        // A trigger bumps the conversation's turn count for every inserted row.
        let conversation: Option<i32> = sqlx::query_scalar("SELECT 1 FROM conversations WHERE id = $1 FOR UPDATE")
            .bind(conv)
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_sqlx)?;
        if conversation.is_none() {
            return Err(StoreError::NotFound(format!("conversation {conv}")));
        }
        let mut out = Vec::with_capacity(msgs.len());
        for m in msgs {
            let inserted = sqlx::query(concat!(
                "INSERT INTO messages (conversation_id, seq, role, content, model, metadata, \
                 idempotency_key, created_at) \
                 VALUES ($1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM messages \
                 WHERE conversation_id = $1), $2, $3, $4, $5::jsonb, $6, $7) \
                 ON CONFLICT (idempotency_key) DO NOTHING RETURNING ",
                message_columns!()
            ))
            .bind(conv)
            .bind(m.role.as_str())
            .bind(&m.content)
            .bind(&m.model)
            .bind(m.metadata.to_string())
            .bind(&m.idempotency_key)
            .bind(m.created_at_ms)
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_sqlx)?;
            let record = match inserted {
                Some(row) => rows::message(&row)?,
                None => {
                    let row = sqlx::query(concat!(
                        "SELECT ",
                        message_columns!(),
                        " FROM messages WHERE idempotency_key = $1"
                    ))
                    .bind(&m.idempotency_key)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(map_sqlx)?;
                    rows::same_conversation(rows::message(&row)?, conv)?
                }
            };
            out.push(record);
        }
        tx.commit().await.map_err(map_sqlx)?;
        Ok(out)
    }

    async fn list_messages(&self, conversation_id: &str, limit: u32) -> Result<Vec<MessageRecord>, StoreError> {
        // The newest `limit` messages, returned oldest first.
        let found = sqlx::query(concat!(
            "SELECT * FROM (SELECT ",
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
        self.pool.close().await;
    }
}
