//! Ports: the traits through which the core reaches the outside world.
//!
//! The core (this crate) holds no SQL and no HTTP client. Storage is reached through
//! [`Store`], implemented in the `exai` crate by a SQLite adapter (the embedded default)
//! and a PostgreSQL adapter; its [`DiagnosticsStore`] part holds the error watcher's and
//! the auditor's tables. Analyses are written by an [`AnalysisModel`]. Recent log activity
//! is reached through [`ActivitySource`], implemented by the telemetry layer. All
//! timestamps are Unix epoch milliseconds (UTC).

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Errors a [`Store`] adapter can report.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be reached or a query failed at the driver level.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A uniqueness or foreign-key constraint rejected the write.
    #[error("constraint violated: {0}")]
    Constraint(String),
    /// A referenced row does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// A migration failed or the schema is not at the expected version.
    #[error("migration error: {0}")]
    Migration(String),
    /// Stored data could not be decoded (corrupt JSON metadata and the like).
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    /// The disk holding the database is full (SQLite `SQLITE_FULL`, PostgreSQL `53100`, or
    /// `ENOSPC`): the write may succeed once space is freed.
    #[error("the disk is full: {0}")]
    DiskFull(String),
}

/// State of the schema migrations.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct MigrationStatus {
    /// Versions applied in the database, ascending.
    pub applied: Vec<i64>,
    /// Versions known to the binary, ascending.
    pub known: Vec<i64>,
}

impl MigrationStatus {
    /// True when every migration the binary knows is applied.
    pub fn is_current(&self) -> bool {
        self.known.iter().all(|v| self.applied.contains(v))
    }
}

/// Outcome of a finished tool call, as recorded in the tool-call log.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CallOutcome {
    /// The tool returned a normal result.
    Ok,
    /// The tool returned an error result (validation, provider, execution).
    Error,
    /// The call was rejected by a capacity limit before it ran.
    OverCapacity,
    /// The call exceeded its timeout.
    Timeout,
    /// The client cancelled the call or went away.
    Cancelled,
}

impl CallOutcome {
    /// Stable lower-case name used in storage and metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            CallOutcome::Ok => "ok",
            CallOutcome::Error => "error",
            CallOutcome::OverCapacity => "over_capacity",
            CallOutcome::Timeout => "timeout",
            CallOutcome::Cancelled => "cancelled",
        }
    }

    /// Parse the stored name back.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "ok" => CallOutcome::Ok,
            "error" => CallOutcome::Error,
            "over_capacity" => CallOutcome::OverCapacity,
            "timeout" => CallOutcome::Timeout,
            "cancelled" => CallOutcome::Cancelled,
            _ => return None,
        })
    }
}

/// One row of the tool-call log. Arguments are never stored, only their size.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct ToolCallRecord {
    /// Row id assigned by the store (0 before insert).
    #[serde(default)]
    pub id: i64,
    /// When the call started.
    pub started_at_ms: i64,
    /// Logical session id.
    pub session_id: String,
    /// The client's request id (MCP id or legacy request_id), as text.
    pub request_id: String,
    /// Tool name after normalisation.
    pub tool: String,
    /// `mcp-ws`, `mcp-http`, `legacy-ws` or `stdio`.
    pub protocol: String,
    /// How the call ended.
    pub outcome: CallOutcome,
    /// Error code for non-ok outcomes (e.g. `VALIDATION_ERROR`).
    pub error_code: Option<String>,
    /// Whole call, milliseconds.
    pub total_ms: f64,
    /// Time waiting for the global in-flight slot.
    pub global_wait_ms: f64,
    /// Time waiting for the provider's concurrency permit.
    pub provider_wait_ms: f64,
    /// Time spent executing the tool itself.
    pub processing_ms: f64,
    /// Provider that served the call, if any.
    pub provider: Option<String>,
    /// Model that served the call, if any.
    pub model: Option<String>,
    /// Size of the serialized arguments in bytes (the arguments themselves are never stored).
    pub args_bytes: i64,
}

/// Filter for [`Store::recent_tool_calls`].
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ToolCallQuery {
    /// At most this many rows, newest first.
    pub limit: u32,
    /// Only this tool.
    pub tool: Option<String>,
    /// Only this session.
    pub session_id: Option<String>,
    /// Only this outcome.
    pub outcome: Option<CallOutcome>,
    /// Only calls started at or after this time.
    pub since_ms: Option<i64>,
}

/// A client session as recorded in the `sessions` table.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SessionRecord {
    /// Logical session id.
    pub id: String,
    /// `mcp-ws`, `mcp-http`, `legacy-ws` or `stdio`.
    pub protocol: String,
    /// Client name from `initialize.clientInfo` when known.
    pub client_name: Option<String>,
    /// Client version from `initialize.clientInfo` when known.
    pub client_version: Option<String>,
    /// When the session was first seen.
    pub created_at_ms: i64,
    /// When the session last did something.
    pub last_seen_at_ms: i64,
    /// When the session ended (None while open).
    pub closed_at_ms: Option<i64>,
    /// Free-form JSON metadata (never secrets or file contents).
    pub metadata: Value,
}

/// A conversation thread (`continuation_id`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ConversationRecord {
    /// Primary key (uuid text).
    pub id: String,
    /// The continuation id clients use; unique.
    pub continuation_id: String,
    /// Session that created it.
    pub session_id: Option<String>,
    /// Tool that started it.
    pub tool: String,
    /// Model locked to the thread, if any.
    pub model: Option<String>,
    /// Provider locked to the thread, if any.
    pub provider: Option<String>,
    /// Number of turns (messages) stored so far.
    pub turn_count: i64,
    /// Creation time.
    pub created_at_ms: i64,
    /// Last update.
    pub updated_at_ms: i64,
    /// Expiry; after this the thread can no longer be continued.
    pub expires_at_ms: i64,
    /// Free-form JSON metadata.
    pub metadata: Value,
}

/// Role of a stored message.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum MessageRole {
    /// The caller's prompt.
    User,
    /// The model's answer.
    Assistant,
    /// A system instruction.
    System,
    /// A tool result fed back to the model.
    Tool,
}

impl MessageRole {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageRole::User => "user",
            MessageRole::Assistant => "assistant",
            MessageRole::System => "system",
            MessageRole::Tool => "tool",
        }
    }

    /// Parse the stored name back.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "user" => MessageRole::User,
            "assistant" => MessageRole::Assistant,
            "system" => MessageRole::System,
            "tool" => MessageRole::Tool,
            _ => return None,
        })
    }
}

/// A message in a conversation.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MessageRecord {
    /// Row id assigned by the store.
    pub id: i64,
    /// Owning conversation.
    pub conversation_id: String,
    /// Position in the thread, starting at 1.
    pub seq: i64,
    /// Who said it.
    pub role: MessageRole,
    /// The text.
    pub content: String,
    /// Model that produced it (assistant messages).
    pub model: Option<String>,
    /// Token usage, latency metrics and similar.
    pub metadata: Value,
    /// Unique key making the append idempotent.
    pub idempotency_key: String,
    /// Creation time.
    pub created_at_ms: i64,
}

impl NewMessage {
    /// The stored form of this message with the row id and position a store gave it.
    pub fn stored(&self, id: i64, seq: i64) -> MessageRecord {
        MessageRecord {
            id,
            conversation_id: self.conversation_id.clone(),
            seq,
            role: self.role,
            content: self.content.clone(),
            model: self.model.clone(),
            metadata: self.metadata.clone(),
            idempotency_key: self.idempotency_key.clone(),
            created_at_ms: self.created_at_ms,
        }
    }
}

/// One conversation turn to store: the thread's record on its first turn, then the messages
/// (one conversation, idempotency keys set). The unit of conversation write-behind.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TurnRecord {
    /// The `continuation_id` the turn belongs to (what a continuation looks up).
    pub continuation_id: String,
    /// The thread's record when this turn creates it.
    pub conversation: Option<ConversationRecord>,
    /// The messages to append.
    pub messages: Vec<NewMessage>,
}

/// A message to append; `seq` is assigned by the store.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NewMessage {
    /// Owning conversation.
    pub conversation_id: String,
    /// Who said it.
    pub role: MessageRole,
    /// The text.
    pub content: String,
    /// Model that produced it.
    pub model: Option<String>,
    /// Metadata JSON.
    pub metadata: Value,
    /// Unique key; appending the same key twice returns the stored row and inserts nothing.
    pub idempotency_key: String,
    /// Creation time.
    pub created_at_ms: i64,
}

/// The storage port. Every method is safe to call concurrently. The diagnostics tables are
/// reached through the [`DiagnosticsStore`] supertrait.
#[async_trait]
pub trait Store: DiagnosticsStore + Send + Sync + 'static {
    /// `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;
    /// Cheap round trip proving the database answers.
    async fn ping(&self) -> Result<(), StoreError>;
    /// Which migrations are applied and which the binary knows.
    async fn migration_status(&self) -> Result<MigrationStatus, StoreError>;
    /// Insert a batch of tool-call rows in one transaction; returns rows written.
    async fn record_tool_calls(&self, rows: &[ToolCallRecord]) -> Result<u64, StoreError>;
    /// Newest-first tool calls matching the query.
    async fn recent_tool_calls(&self, q: &ToolCallQuery) -> Result<Vec<ToolCallRecord>, StoreError>;
    /// Retention of the tool-call log: delete at most `batch` of the oldest rows that either
    /// started before `before_ms` or lie beyond the newest `keep_rows`; returns rows deleted
    /// (fewer than `batch` means nothing more is due). `None` disables that limit. Stores
    /// without a tool-call log delete nothing.
    async fn prune_tool_calls(
        &self,
        before_ms: Option<i64>,
        keep_rows: Option<u64>,
        batch: u32,
    ) -> Result<u64, StoreError> {
        let _ = (before_ms, keep_rows, batch);
        Ok(0)
    }
    /// Insert or update a session row (by id).
    async fn upsert_session(&self, s: &SessionRecord) -> Result<(), StoreError>;
    /// Mark a session closed.
    async fn close_session(&self, id: &str, at_ms: i64) -> Result<(), StoreError>;
    /// Fetch a session row.
    async fn get_session(&self, id: &str) -> Result<Option<SessionRecord>, StoreError>;
    /// Create a conversation; fails with `Constraint` if the continuation id exists.
    async fn create_conversation(&self, c: &ConversationRecord) -> Result<(), StoreError>;
    /// Look a conversation up by continuation id.
    async fn get_conversation(&self, continuation_id: &str) -> Result<Option<ConversationRecord>, StoreError>;
    /// Append a message idempotently: a repeated idempotency key returns the stored row.
    /// Bumps the conversation's `turn_count` and `updated_at_ms` only when a row is inserted.
    async fn append_message(&self, m: &NewMessage) -> Result<MessageRecord, StoreError>;
    /// Append several messages of one conversation atomically, in order, idempotently (rows
    /// whose key exists are returned as stored). Adapters override this with one round trip;
    /// the default appends one by one.
    async fn append_messages(&self, msgs: &[NewMessage]) -> Result<Vec<MessageRecord>, StoreError> {
        let mut out = Vec::with_capacity(msgs.len());
        for m in msgs {
            out.push(self.append_message(m).await?);
        }
        Ok(out)
    }
    /// Store several turns in order (a thread's record on its first turn, then its messages),
    /// idempotently, in one transaction where the backend has them: all or none. Write-behind
    /// applies its queue with this. The default stores them one statement at a time.
    async fn apply_turns(&self, turns: &[&TurnRecord]) -> Result<(), StoreError> {
        for t in turns {
            if let Some(c) = &t.conversation {
                self.ensure_conversation(c).await?;
            }
            self.append_messages(&t.messages).await?;
        }
        Ok(())
    }
    /// Create the conversation unless it exists (same id): never an error for a repeat.
    async fn ensure_conversation(&self, c: &ConversationRecord) -> Result<(), StoreError> {
        match self.create_conversation(c).await {
            Ok(()) | Err(StoreError::Constraint(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }
    /// Periodic upkeep (SQLite: a passive WAL checkpoint off the request path).
    async fn maintain(&self) -> Result<(), StoreError> {
        Ok(())
    }
    /// Messages of a conversation in order (oldest first), at most `limit`.
    async fn list_messages(&self, conversation_id: &str, limit: u32) -> Result<Vec<MessageRecord>, StoreError>;
    /// Flush and close the pool (called once at shutdown).
    async fn close(&self);
    /// The uploads registry and cleanup audit over the same database (`None` for stores
    /// without the files tables, such as test fakes).
    fn file_registry(&self) -> Option<std::sync::Arc<dyn crate::files::ports::FileRegistry>> {
        None
    }
    /// The MCP tasks table over the same database (`None` for stores without it, such as
    /// test fakes: task-augmented calls are then refused).
    fn task_store(&self) -> Option<std::sync::Arc<dyn crate::tasks::TaskStore>> {
        None
    }
}

/// One captured log event (INFO and above) for the `activity` tool and the dashboard.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct ActivityEvent {
    /// When it happened.
    pub at_ms: i64,
    /// `ERROR`, `WARN`, `INFO`, `DEBUG`, `TRACE`.
    pub level: String,
    /// tracing target (module path).
    pub target: String,
    /// The formatted message and fields (never file contents or secrets: the code never logs them).
    pub message: String,
}

/// Filter for [`ActivitySource::recent`].
#[derive(Debug, Clone, Default)]
pub struct ActivityQuery {
    /// At most this many events, newest last.
    pub limit: usize,
    /// Minimum level (`error` < `warn` < `info` < `debug` < `trace` in verbosity).
    pub min_level: Option<String>,
    /// Case-insensitive substring that message or target must contain.
    pub contains: Option<String>,
    /// Only events at or after this time.
    pub since_ms: Option<i64>,
    /// Only events at or before this time.
    pub until_ms: Option<i64>,
}

/// Read access to recent log activity (an in-memory ring filled by the tracing layer).
pub trait ActivitySource: Send + Sync + 'static {
    /// Matching events, oldest first.
    fn recent(&self, q: &ActivityQuery) -> Vec<ActivityEvent>;
}

// --- diagnostics: error investigations and auditor observations (observability) ---------

/// One or more occurrences of a normalised error, as the error watcher records them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ErrorOccurrence {
    /// sha256 (hex) of the normalised message and the target; the deduplication key.
    pub error_hash: String,
    /// The normalised message (numbers, ids, paths replaced by placeholders).
    pub message: String,
    /// The kind of error: the tracing target (module path) that logged it.
    pub error_type: String,
    /// JSON context: target, the latest raw sample, and similar (never secrets).
    pub context: Value,
    /// How many occurrences this record stands for (the watcher coalesces bursts).
    pub count: i64,
    /// When the (last of these) occurrences happened.
    pub at_ms: i64,
}

/// What [`Store::record_error`] did.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct ErrorUpsert {
    /// Row id of the investigation.
    pub id: i64,
    /// Occurrences counted so far, including these.
    pub occurrence_count: i64,
    /// True when this call created the row (a never-seen error).
    pub created: bool,
}

/// A model's analysis of an error, stored with its record.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ErrorAnalysis {
    /// Root-cause analysis (JSON).
    pub investigation: Value,
    /// Suggested fix (JSON), if the model gave one.
    pub fix: Option<Value>,
    /// Model that produced it.
    pub model: String,
    /// How long the model call took, ms.
    pub duration_ms: i64,
}

/// A row of `error_investigations`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ErrorInvestigation {
    /// Row id.
    pub id: i64,
    /// Deduplication key.
    pub error_hash: String,
    /// Normalised message.
    pub error_message: String,
    /// Kind (tracing target).
    pub error_type: String,
    /// JSON context.
    pub error_context: Value,
    /// Root-cause analysis, when a model was asked.
    pub investigation_result: Option<Value>,
    /// Suggested fix, when a model gave one.
    pub fix_recommendation: Option<Value>,
    /// Model asked.
    pub model_used: Option<String>,
    /// Model call duration, ms.
    pub investigation_duration_ms: Option<i64>,
    /// Occurrences counted.
    pub occurrence_count: i64,
    /// First occurrence.
    pub first_seen_at_ms: i64,
    /// Latest occurrence.
    pub last_occurrence_at_ms: i64,
    /// Row creation.
    pub created_at_ms: i64,
    /// Marked resolved by an operator (a later occurrence reopens it).
    pub resolved: bool,
    /// The operator's notes.
    pub resolution_notes: Option<String>,
    /// When it was resolved.
    pub resolved_at_ms: Option<i64>,
}

/// Filter for [`Store::list_errors`].
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ErrorQuery {
    /// Only resolved (`Some(true)`) or unresolved (`Some(false)`) ones.
    pub resolved: Option<bool>,
    /// At most this many rows, most recently seen first (0 = the store's cap).
    pub limit: u32,
}

/// An observation to store.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NewObservation {
    /// The tool-call row(s) it is about (ids as text), if any.
    pub tool_call_ref: Option<String>,
    /// What was observed.
    pub observation: String,
    /// `info`, `low`, `medium`, `high` or `critical`.
    pub severity: String,
    /// Free category chosen by the model (`latency`, `errors`, `usage`, ...).
    pub category: String,
    /// 0..=1, if the model gave one.
    pub confidence: Option<f64>,
    /// Suggested action.
    pub recommendation: Option<String>,
    /// Model that produced it.
    pub model_used: Option<String>,
    /// When.
    pub created_at_ms: i64,
    /// JSON metadata.
    pub metadata: Value,
}

/// A row of `auditor_observations`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AuditorObservation {
    /// Row id.
    pub id: i64,
    /// The observation itself.
    #[serde(flatten)]
    pub fields: NewObservation,
    /// Acknowledged by an operator.
    pub acknowledged: bool,
    /// When.
    pub acknowledged_at_ms: Option<i64>,
    /// Who (free text from the operator).
    pub acknowledged_by: Option<String>,
}

/// Filter for [`Store::list_observations`].
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ObservationQuery {
    /// Only acknowledged (`Some(true)`) or unacknowledged (`Some(false)`) ones.
    pub acknowledged: Option<bool>,
    /// At most this many rows, newest first (0 = the store's cap).
    pub limit: u32,
}

/// Storage of the diagnostics tables (`error_investigations`, `auditor_observations`).
/// Every method is safe to call concurrently.
#[async_trait]
pub trait DiagnosticsStore: Send + Sync + 'static {
    /// Atomic upsert by `error_hash`: a new hash inserts a row with `count` occurrences; a
    /// known one adds `count`, moves `last_occurrence_at`, refreshes the context, and reopens
    /// the record if it was resolved.
    async fn record_error(&self, e: &ErrorOccurrence) -> Result<ErrorUpsert, StoreError>;
    /// Store a model's analysis with the record.
    async fn set_error_analysis(&self, id: i64, a: &ErrorAnalysis) -> Result<(), StoreError>;
    /// Records, most recently seen first.
    async fn list_errors(&self, q: &ErrorQuery) -> Result<Vec<ErrorInvestigation>, StoreError>;
    /// Mark a record resolved with notes; `NotFound` for an unknown id.
    async fn resolve_error(&self, id: i64, notes: Option<&str>, at_ms: i64) -> Result<ErrorInvestigation, StoreError>;
    /// Insert an observation; returns its id.
    async fn add_observation(&self, o: &NewObservation) -> Result<i64, StoreError>;
    /// Observations, newest first.
    async fn list_observations(&self, q: &ObservationQuery) -> Result<Vec<AuditorObservation>, StoreError>;
    /// Acknowledge an observation; `NotFound` for an unknown id. Acknowledging twice keeps
    /// the first time and author.
    async fn acknowledge_observation(
        &self,
        id: i64,
        by: Option<&str>,
        at_ms: i64,
    ) -> Result<AuditorObservation, StoreError>;
}

/// A model that writes analyses for the error watcher and the auditor (implemented over the
/// provider layer). Returns the model's text, or a short reason it failed. The future runs
/// on the calling actor's thread (provider calls are not `Send`).
#[async_trait(?Send)]
pub trait AnalysisModel: Send + Sync {
    /// One completion of `prompt` under the `system` instruction.
    async fn analyze(&self, model: &str, system: &str, prompt: &str) -> Result<String, String>;
}
