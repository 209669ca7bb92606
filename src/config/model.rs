//! The typed configuration: one serde struct per section, with the built-in defaults.
//!
//! Every struct is `#[serde(default, deny_unknown_fields)]`: a missing key takes its default
//! and an unknown key is an error. The key list in `keys.rs` mirrors these fields (a unit
//! test keeps the two in step), and `docs/CONFIG.md` documents each key.

use std::collections::BTreeMap;

use exai_actors::provider::retry::RetryConfig;
use serde::{Deserialize, Serialize};

use super::model_providers::ProvidersConfig;
use super::secret::Secret;

/// The whole effective configuration of an exai process.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Listener, authentication and connection admission.
    pub server: ServerConfig,
    /// Concurrency limits for tool calls and outbound queues.
    pub limits: LimitsConfig,
    /// Tool timeouts, keepalive and shutdown timing.
    pub timeouts: TimeoutsConfig,
    /// The legacy "EXAI op" WebSocket protocol.
    pub legacy: LegacyConfig,
    /// Tool registry options and the limits of AI tools.
    pub tools: ToolsConfig,
    /// `continuation_id` threads: turn cap, expiry, scope.
    pub conversations: ConversationsConfig,
    /// Default models and the models `model: "auto"` picks from.
    pub routing: RoutingConfig,
    /// MCP Streamable HTTP (`/mcp`) sessions.
    pub http: HttpConfig,
    /// Database and local data directory.
    pub storage: StorageConfig,
    /// Actor supervision (restart policy).
    pub supervisor: SupervisorConfig,
    /// Log level and format.
    pub logging: LoggingConfig,
    /// Dashboard, error watcher and AI auditor.
    pub monitoring: MonitoringConfig,
    /// Test-only switches.
    pub debug: DebugConfig,
    /// Provider retries by error class (all providers).
    pub retry: RetryConfig,
    /// AI providers: `[providers.kimi]`, `[providers.glm]`, `[[providers.custom]]`.
    pub providers: ProvidersConfig,
    /// The upload policy table and file tools.
    pub files: super::model_files::FilesConfig,
    /// The blob store.
    pub blob: super::model_files::BlobConfig,
    /// The staged cleanup of provider files.
    pub cleanup: super::model_files::CleanupConfig,
    /// Cluster mode: several nodes sharing limits and breakers through Redis.
    pub cluster: super::model_cluster::ClusterConfig,
    /// Non-fatal problems found while loading (unknown `EXAI_*` variables, ignored legacy
    /// names). Print them once logging is up.
    #[serde(skip)]
    pub warnings: Vec<String>,
    /// Where each key that is not at its default came from (dotted key → description such
    /// as `environment variable EXAI_SERVER__PORT`). Empty for a config built in code.
    #[serde(skip)]
    pub sources: BTreeMap<String, String>,
}

/// `[server]`: listener, authentication and connection admission.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to bind: an IP address or `localhost`. Without `auth_token` only loopback
    /// addresses are accepted.
    pub host: String,
    /// TCP port to bind (0 = let the OS pick one).
    pub port: u16,
    /// Token clients must present (legacy `hello`, MCP upgrade, HTTP). At least 16 chars.
    pub auth_token: Option<Secret>,
    /// Token for admin endpoints, the dashboard and `/api/*`. At least 16 chars. When unset,
    /// the dashboard and `/api/*` need `auth_token` (if set) and `POST /admin/shutdown` and
    /// `/admin/cleanup` are off.
    pub admin_token: Option<Secret>,
    /// Token `GET /metrics` requires (`Authorization: Bearer <token>`). At least 16 chars;
    /// when unset `/metrics` is open.
    pub metrics_token: Option<Secret>,
    /// Allowed browser `Origin` values; empty = only loopback origins.
    pub allowed_origins: Vec<String>,
    /// Allowed `Host` header names; empty = loopback names plus the bind host.
    pub allowed_hosts: Vec<String>,
    /// Largest inbound message in bytes (64 KiB ..= 1 GiB).
    pub max_message_bytes: usize,
    /// Connections allowed at once, all protocols together.
    pub max_connections: usize,
    /// Connections allowed at once from one IP address.
    pub max_connections_per_ip: usize,
    /// HTTP worker threads (0 = number of CPU cores).
    pub workers: usize,
    /// Idle polling: a worker keeps polling its sockets this many microseconds after it
    /// handled traffic before it parks (0 = off).
    pub idle_poll_us: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            host: "127.0.0.1".into(),
            port: 8079,
            auth_token: None,
            admin_token: None,
            metrics_token: None,
            allowed_origins: Vec::new(),
            allowed_hosts: Vec::new(),
            max_message_bytes: 32 * 1024 * 1024,
            max_connections: 1000,
            max_connections_per_ip: 64,
            workers: 0,
            idle_poll_us: 200,
        }
    }
}

/// `[limits]`: concurrency limits.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Tool calls in flight at once across the whole server.
    pub global_max_inflight: usize,
    /// Tool calls in flight at once on one session (≤ `global_max_inflight`).
    pub session_max_inflight: usize,
    /// `retry_after` seconds suggested with OVER_CAPACITY errors.
    pub retry_after_secs: u64,
    /// Outbound messages queued per connection before it counts as a slow consumer.
    pub outbox_capacity: usize,
    /// Replies kept per session while its client is away or not reading (session resume).
    pub resume_buffer_replies: usize,
    /// Replies kept across all sessions for resume.
    pub resume_buffer_global: usize,
    /// Bytes of replies and stream events kept per session (resume, slow readers).
    pub resume_buffer_bytes: usize,
    /// Bytes of replies and stream events kept across all sessions.
    pub resume_buffer_global_bytes: usize,
    /// Calls that may wait for a free slot on one session beyond the
    /// `session_max_inflight` running (a burst is queued, not refused).
    pub session_queue: usize,
    /// How long a queued call waits for a slot before OVER_CAPACITY, milliseconds.
    pub session_queue_wait_ms: u64,
    /// Provider requests in flight at once across all providers (≥ every provider's
    /// `max_inflight`).
    pub provider_global_max_inflight: usize,
    /// How long a call may wait for provider permits before it fails with OVER_CAPACITY,
    /// milliseconds.
    pub provider_queue_wait_ms: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            global_max_inflight: 512,
            session_max_inflight: 8,
            retry_after_secs: 1,
            outbox_capacity: 1024,
            resume_buffer_replies: 256,
            resume_buffer_global: 10_000,
            resume_buffer_bytes: 16 << 20,
            resume_buffer_global_bytes: 256 << 20,
            session_queue: 256,
            session_queue_wait_ms: 30_000,
            provider_global_max_inflight: 24,
            provider_queue_wait_ms: 2000,
        }
    }
}

/// `[timeouts]`: tool timeouts, keepalive and shutdown timing (all in seconds).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TimeoutsConfig {
    /// Timeout for simple (non-workflow) tools.
    pub simple_tool_secs: u64,
    /// Timeout for workflow tools.
    pub workflow_tool_secs: u64,
    /// The first frame of a connection must arrive within this time.
    pub hello_secs: u64,
    /// Server WebSocket ping interval (< `client_timeout_secs`).
    pub heartbeat_interval_secs: u64,
    /// Close a connection that has sent nothing (not even a pong) for this long.
    pub client_timeout_secs: u64,
    /// Legacy `progress` heartbeat interval.
    pub progress_interval_secs: u64,
    /// Staged shutdown: how long in-flight calls may take to finish (0 = do not wait).
    pub shutdown_deadline_secs: u64,
    /// How long a session outlives its connection, waiting for the client to resume it
    /// (0 = no resume: calls are cancelled when the connection drops).
    pub resume_grace_secs: u64,
    /// Close (1013) a connection whose client has not read a reply for this long; its replies
    /// are kept for resume.
    pub stall_close_secs: u64,
}

impl Default for TimeoutsConfig {
    fn default() -> Self {
        TimeoutsConfig {
            simple_tool_secs: 30,
            workflow_tool_secs: 180,
            hello_secs: 15,
            heartbeat_interval_secs: 20,
            client_timeout_secs: 60,
            progress_interval_secs: 5,
            shutdown_deadline_secs: 30,
            resume_grace_secs: 60,
            stall_close_secs: 30,
        }
    }
}

/// `[legacy]`: the legacy "EXAI op" WebSocket protocol.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LegacyConfig {
    /// Finished-result cache: time to live, seconds.
    pub result_ttl_secs: u64,
    /// Finished-result cache: most entries kept.
    pub result_cache_entries: usize,
}

impl Default for LegacyConfig {
    fn default() -> Self {
        LegacyConfig { result_ttl_secs: 600, result_cache_entries: 4096 }
    }
}

/// `[tools]`: tool registry options and the limits of AI tools.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ToolsConfig {
    /// Tools per `tools/list` page.
    pub page_size: usize,
    /// Names of tools that are not registered at all.
    pub disabled: Vec<String>,
    /// Hard cap on the provider calls one tool invocation may make.
    pub max_provider_calls_per_invocation: u32,
    /// Directories tools may read `files` from; empty = the current working directory only.
    pub allowed_roots: Vec<String>,
    /// Largest file read into a prompt, bytes.
    pub max_file_bytes: u64,
    /// Most bytes of files read into one prompt, all files together.
    pub max_total_file_bytes: u64,
    /// Workflow tools run expert analysis (one extra provider call) unless the caller
    /// turns it off.
    pub expert_analysis: bool,
}

impl Default for ToolsConfig {
    fn default() -> Self {
        ToolsConfig {
            page_size: 50,
            disabled: Vec::new(),
            max_provider_calls_per_invocation: 3,
            allowed_roots: Vec::new(),
            max_file_bytes: 1024 * 1024,
            max_total_file_bytes: 4 * 1024 * 1024,
            expert_analysis: true,
        }
    }
}

/// `[conversations]`: `continuation_id` threads.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConversationsConfig {
    /// Most turns (messages) in one thread.
    pub max_turns: u32,
    /// A thread not continued for this many hours expires.
    pub ttl_hours: u64,
    /// Whether any admitted caller may continue any thread (false: only the principal — the
    /// token, or every local client without one — that started it).
    pub cross_session: bool,
    /// How turns are stored: `on` — journaled in `<data_dir>/journal` before the reply and
    /// applied to the store behind it; `off` — written to the store before the reply; `auto`
    /// (default) — `on` for a SQLite file, `off` for PostgreSQL (where several servers may
    /// share the database and a continuation may reach another one) and in-memory SQLite.
    pub write_behind: String,
}

impl Default for ConversationsConfig {
    fn default() -> Self {
        ConversationsConfig { max_turns: 20, ttl_hours: 3, cross_session: false, write_behind: "auto".into() }
    }
}

/// `[routing]`: default models and the models `model: "auto"` picks from — the core's own
/// routing table, used as is.
pub use exai_actors::provider::router::RoutingConfig;

/// `[http]`: MCP Streamable HTTP sessions.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// A session unused for this many seconds is dropped.
    pub session_idle_secs: u64,
    /// Sessions kept at once; new sessions are refused beyond this.
    pub max_sessions: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig { session_idle_secs: 3600, max_sessions: 1000 }
    }
}

/// `[storage]`: database and data directory.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// Database URL (`sqlite:`, `postgres://` or `postgresql://`). Unset =
    /// `sqlite://<data_dir>/exai.db`; see [`Config::database_url`]. Treated as a secret
    /// because it may hold a password.
    pub database_url: Option<Secret>,
    /// Directory for local data (the default SQLite database, blobs).
    pub data_dir: String,
    /// Database connection pool size.
    pub max_connections: u32,
    /// Tool-call log queue length; a full queue drops rows and counts them.
    pub toollog_queue: usize,
    /// Tool-call log flush interval, milliseconds.
    pub toollog_flush_ms: u64,
    /// Tool-call log: most rows per database write.
    pub toollog_batch: usize,
    /// SQLite with write-behind: `nice` of the writer connection's thread (0 = unchanged).
    pub writer_nice: u32,
    /// Longest wait for a pooled connection, milliseconds.
    pub acquire_timeout_ms: u64,
    /// PostgreSQL: how long a reachability probe (readiness ping, reconnect attempt) waits,
    /// milliseconds.
    pub probe_timeout_ms: u64,
    /// Tool-call log rows older than this many days are pruned (0 = no age limit).
    pub toollog_retention_days: u64,
    /// At most this many tool-call log rows are kept, the oldest pruned first (0 = no limit).
    pub toollog_max_rows: u64,
    /// SQLite: page cache of the writer connection, MiB.
    pub sqlite_cache_mib: u32,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            database_url: None,
            data_dir: "./data".into(),
            max_connections: 8,
            toollog_queue: 65536,
            toollog_flush_ms: 200,
            toollog_batch: 1000,
            writer_nice: 10,
            acquire_timeout_ms: 2_000,
            probe_timeout_ms: 500,
            toollog_retention_days: 14,
            toollog_max_rows: 1_000_000,
            sqlite_cache_mib: 8,
        }
    }
}

/// `[supervisor]`: restart policy of supervised actors.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SupervisorConfig {
    /// First restart delay, milliseconds (doubles per recent restart).
    pub restart_backoff_ms: u64,
    /// Longest restart delay, milliseconds (≥ `restart_backoff_ms`).
    pub restart_backoff_max_ms: u64,
    /// Restarts allowed within `restart_window_secs` before a child is given up.
    pub restart_max: u32,
    /// Restart-intensity window, seconds.
    pub restart_window_secs: u64,
}

impl Default for SupervisorConfig {
    fn default() -> Self {
        SupervisorConfig {
            restart_backoff_ms: 100,
            restart_backoff_max_ms: 10_000,
            restart_max: 5,
            restart_window_secs: 60,
        }
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Human,
    /// One JSON object per line.
    Json,
}

/// `[logging]`: log level and format.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoggingConfig {
    /// A `tracing` EnvFilter directive string, e.g. `info` or `info,exai=debug`.
    pub level: String,
    /// `human` or `json`.
    pub format: LogFormat,
}

impl Default for LoggingConfig {
    fn default() -> Self {
        LoggingConfig { level: "info".into(), format: LogFormat::Human }
    }
}

/// `[monitoring]`: dashboard, error watcher and AI auditor.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MonitoringConfig {
    /// Serve the dashboard (`/dashboard`) and its JSON API (`/api/...`).
    pub dashboard_enabled: bool,
    /// Seconds of per-second samples kept for the dashboard chart (10..=86400).
    pub history_secs: u64,
    /// Dashboard event streams open at once; more are refused with 503.
    pub dashboard_max_streams: usize,
    /// Collect ERROR log events into `error_investigations`.
    pub error_watcher_enabled: bool,
    /// ERROR events queued for the watcher; a full queue drops events and counts them.
    pub error_queue: usize,
    /// Ask a model for a root-cause analysis of each new error (costs provider calls).
    pub error_ai_enabled: bool,
    /// Model used for error analyses.
    pub error_ai_model: String,
    /// Hard budget of error analyses per hour (0 = none).
    pub error_ai_calls_per_hour: u32,
    /// Run the AI auditor over finished tool calls (costs provider calls).
    pub auditor_enabled: bool,
    /// Model used by the auditor (a cheap one).
    pub auditor_model: String,
    /// Share of finished tool calls the auditor looks at, 0.0..=1.0.
    pub auditor_sample_rate: f64,
    /// Hard budget of auditor model calls per hour (0 = none).
    pub auditor_calls_per_hour: u32,
    /// How often the auditor reads new tool calls, seconds.
    pub auditor_interval_secs: u64,
}

impl Default for MonitoringConfig {
    fn default() -> Self {
        MonitoringConfig {
            dashboard_enabled: true,
            history_secs: 600,
            dashboard_max_streams: 16,
            error_watcher_enabled: true,
            error_queue: 1024,
            error_ai_enabled: false,
            error_ai_model: "glm-4.5-flash".into(),
            error_ai_calls_per_hour: 10,
            auditor_enabled: false,
            auditor_model: "glm-4.5-flash".into(),
            auditor_sample_rate: 0.1,
            auditor_calls_per_hour: 60,
            auditor_interval_secs: 60,
        }
    }
}

/// `[debug]`: test-only switches. Never enable in production.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DebugConfig {
    /// Enables test-only hooks such as forcing an actor panic.
    pub fault_injection: bool,
}
