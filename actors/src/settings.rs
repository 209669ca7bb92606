//! Core settings: the part of the typed configuration the actors need.
//!
//! The `exai` crate builds this from its layered config (`Config::core_settings`); the core
//! never reads files or environment variables itself. Durations are plain numbers with their
//! unit in the field name so that the mapping stays obvious.

use serde::{Deserialize, Serialize};

/// Limits, timeouts and sizes used by sessions, the dispatcher and the supervised actors.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CoreSettings {
    /// Server name reported in `initialize.serverInfo` and `version`.
    pub server_name: String,
    /// Server version reported in `initialize.serverInfo` and `version`.
    pub server_version: String,
    /// Largest inbound WebSocket message in bytes (frames and continuations).
    pub max_message_bytes: usize,
    /// Connections allowed at once (all protocols together).
    pub max_connections: usize,
    /// Connections allowed at once from one IP address.
    pub max_connections_per_ip: usize,
    /// Idle polling window after traffic on a worker thread, microseconds (0 = off); see
    /// [`crate::idle_poll`].
    pub idle_poll_us: u64,
    /// Tool calls in flight at once across the whole server.
    pub global_max_inflight: usize,
    /// Tool calls in flight at once on one session.
    pub session_max_inflight: usize,
    /// `retry_after` seconds suggested with OVER_CAPACITY errors.
    pub retry_after_secs: u64,
    /// Timeout for simple (non-workflow) tools, seconds.
    pub simple_tool_timeout_secs: u64,
    /// Timeout for workflow tools, seconds.
    pub workflow_tool_timeout_secs: u64,
    /// The least timeout of a tool that calls a model (simple and workflow kinds), seconds:
    /// one provider call's whole budget (the longest `total_timeout_secs` of the enabled
    /// providers, plus the permit wait and a margin), so the tool timeout never cuts a call
    /// the provider phases allow.
    #[serde(default)]
    pub provider_call_budget_secs: u64,
    /// The first frame must arrive within this many seconds (legacy: close 4002).
    pub hello_timeout_secs: u64,
    /// Server WebSocket ping interval, seconds.
    pub heartbeat_interval_secs: u64,
    /// Close a connection that has sent nothing (not even a pong) for this long, seconds.
    pub client_timeout_secs: u64,
    /// Legacy `progress` heartbeat interval, seconds (keep below the client's idle timeout).
    pub progress_interval_secs: u64,
    /// Legacy finished-result cache: time to live, seconds.
    pub result_ttl_secs: u64,
    /// Legacy finished-result cache: most entries kept.
    pub result_cache_entries: usize,
    /// Outbound messages queued per connection before it counts as a slow consumer.
    pub outbox_capacity: usize,
    /// Tools per `tools/list` page.
    pub tools_page_size: usize,
    /// Tool-call log queue length; a full queue drops rows and counts them.
    pub toollog_queue: usize,
    /// Tool-call log flush interval, milliseconds.
    pub toollog_flush_ms: u64,
    /// Tool-call log: most rows per database write.
    pub toollog_batch: usize,
    /// Tool-call log retention: rows older than this are pruned (`None`: no age limit).
    pub toollog_retention: Option<std::time::Duration>,
    /// Tool-call log retention: at most this many rows are kept (`None`: no limit).
    pub toollog_max_rows: Option<u64>,
    /// Staged shutdown: how long in-flight calls may take to finish, seconds.
    pub shutdown_deadline_secs: u64,
    /// Supervisor: first restart delay, milliseconds (doubles per recent restart).
    pub restart_backoff_ms: u64,
    /// Supervisor: longest restart delay, milliseconds.
    pub restart_backoff_max_ms: u64,
    /// Supervisor: restarts allowed within `restart_window_secs` before a child is given up.
    pub restart_max: u32,
    /// Supervisor: restart-intensity window, seconds.
    pub restart_window_secs: u64,
    /// Workflow tools call the expert model on their final step unless the caller passes
    /// `use_assistant_model` (this is the default when it is absent).
    pub expert_analysis: bool,
    /// Most provider calls one tool invocation may make (workflow expert analysis, consensus
    /// consultation plus synthesis, ...). Exceeding it is an error, never a silent extra call.
    pub max_provider_calls_per_invocation: u32,
    /// When set, the legacy `hello` and MCP upgrade must present this token.
    #[serde(skip_serializing)]
    pub auth_token: Option<String>,
    /// Host and Origin rules every transport applies (`server.allowed_hosts`,
    /// `server.allowed_origins`).
    #[serde(default)]
    pub access: crate::access::AccessPolicy,
}

impl CoreSettings {
    /// The idle-polling window.
    pub fn idle_poll(&self) -> std::time::Duration {
        std::time::Duration::from_micros(self.idle_poll_us)
    }
}

impl Default for CoreSettings {
    fn default() -> Self {
        CoreSettings {
            server_name: "exai".into(),
            server_version: env!("CARGO_PKG_VERSION").into(),
            max_message_bytes: 32 * 1024 * 1024,
            max_connections: 1000,
            max_connections_per_ip: 64,
            idle_poll_us: 200,
            global_max_inflight: 512,
            session_max_inflight: 8,
            retry_after_secs: 1,
            simple_tool_timeout_secs: 30,
            workflow_tool_timeout_secs: 180,
            // 300 s provider total + 2 s permit wait + 5 s (`Config::provider_call_budget_secs`).
            provider_call_budget_secs: 307,
            hello_timeout_secs: 15,
            heartbeat_interval_secs: 20,
            client_timeout_secs: 60,
            progress_interval_secs: 5,
            result_ttl_secs: 600,
            result_cache_entries: 4096,
            outbox_capacity: 1024,
            tools_page_size: 50,
            toollog_queue: 65536,
            toollog_flush_ms: 200,
            toollog_batch: 1000,
            toollog_retention: Some(std::time::Duration::from_secs(14 * 86_400)),
            toollog_max_rows: Some(1_000_000),
            shutdown_deadline_secs: 30,
            restart_backoff_ms: 100,
            restart_backoff_max_ms: 10_000,
            restart_max: 5,
            restart_window_secs: 60,
            expert_analysis: true,
            max_provider_calls_per_invocation: 3,
            auth_token: None,
            access: crate::access::AccessPolicy::default(),
        }
    }
}
