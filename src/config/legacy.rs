//! The old EXAI-WS daemon's environment variable names, mapped onto config keys.
//!
//! Deployments can keep their old `.env` files while moving over. Legacy names are applied
//! before the new-style `EXAI_<SECTION>__<KEY>` names, so a new-style name wins when both
//! are set; within this table a later entry wins over an earlier one for the same key
//! (that is how `EXAI_WS_MAX_BYTES` beats `TOOL_CALL_MAX_SIZE`). Old names that have no
//! sensible equivalent are listed in [`UNSUPPORTED`] and produce a warning with a hint.

/// How an old value is turned into a new one before it is typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Conv {
    /// Used as is.
    Plain,
    /// Seconds that may have a fraction (`8.0`, `0.5`): rounded up, at least 1.
    Seconds,
    /// Hours that may have a fraction: rounded up, at least 1.
    Hours,
    /// A Python log level name: lower-cased, `WARNING` → `warn`, `CRITICAL`/`FATAL` → `error`.
    LogLevel,
}

/// One old variable name and the key it sets.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LegacyVar {
    /// The old variable name.
    pub name: &'static str,
    /// The dotted config key it sets.
    pub key: &'static str,
    /// How its value is converted.
    pub conv: Conv,
}

const fn l(name: &'static str, key: &'static str, conv: Conv) -> LegacyVar {
    LegacyVar { name, key, conv }
}

/// The mapping, in application order (later entries win for the same key).
pub(crate) const LEGACY: &[LegacyVar] = &[
    l("EXAI_WS_HOST", "server.host", Conv::Plain),
    l("EXAI_WS_PORT", "server.port", Conv::Plain),
    l("EXAI_WS_TOKEN", "server.auth_token", Conv::Plain),
    l("TOOL_CALL_MAX_SIZE", "server.max_message_bytes", Conv::Plain),
    l("EXAI_WS_MAX_BYTES", "server.max_message_bytes", Conv::Plain),
    l("MAX_CONNECTIONS", "server.max_connections", Conv::Plain),
    l("MAX_CONNECTIONS_PER_IP", "server.max_connections_per_ip", Conv::Plain),
    l("EXAI_WS_GLOBAL_MAX_INFLIGHT", "limits.global_max_inflight", Conv::Plain),
    l("EXAI_WS_SESSION_MAX_INFLIGHT", "limits.session_max_inflight", Conv::Plain),
    l("EXAI_WS_RETRY_AFTER_SECS", "limits.retry_after_secs", Conv::Seconds),
    l("SIMPLE_TOOL_TIMEOUT_SECS", "timeouts.simple_tool_secs", Conv::Seconds),
    l("WORKFLOW_TOOL_TIMEOUT_SECS", "timeouts.workflow_tool_secs", Conv::Seconds),
    l("EXAI_WS_HELLO_TIMEOUT", "timeouts.hello_secs", Conv::Seconds),
    l("EXAI_WS_PING_INTERVAL", "timeouts.heartbeat_interval_secs", Conv::Seconds),
    l("EXAI_WS_PROGRESS_INTERVAL_SECS", "timeouts.progress_interval_secs", Conv::Seconds),
    l("EXAI_WS_RESULT_TTL", "legacy.result_ttl_secs", Conv::Seconds),
    l("DISABLED_TOOLS", "tools.disabled", Conv::Plain),
    l("DATABASE_URL", "storage.database_url", Conv::Plain),
    l("EXAI_DATA_DIR", "storage.data_dir", Conv::Plain),
    l("LOG_LEVEL", "logging.level", Conv::LogLevel),
    l("DEFAULT_USE_ASSISTANT_MODEL", "tools.expert_analysis", Conv::Plain),
    l("MAX_CONVERSATION_TURNS", "conversations.max_turns", Conv::Plain),
    l("CONVERSATION_TIMEOUT_HOURS", "conversations.ttl_hours", Conv::Hours),
    l("DEFAULT_MODEL", "routing.default_model", Conv::Plain),
    l("KIMI_DEFAULT_MODEL", "routing.kimi_default_model", Conv::Plain),
    l("KIMI_SPEED_MODEL", "routing.kimi_speed_model", Conv::Plain),
    l("KIMI_THINKING_MODEL", "routing.kimi_quality_model", Conv::Plain),
    l("KIMI_QUALITY_MODEL", "routing.kimi_quality_model", Conv::Plain),
    l("GLM_SPEED_MODEL", "routing.glm_speed_model", Conv::Plain),
    l("GLM_QUALITY_MODEL", "routing.glm_quality_model", Conv::Plain),
    l("MOONSHOT_API_KEY", "providers.kimi.api_key", Conv::Plain),
    l("KIMI_API_KEY", "providers.kimi.api_key", Conv::Plain),
    l("MOONSHOT_API_URL", "providers.kimi.base_url", Conv::Plain),
    l("KIMI_API_URL", "providers.kimi.base_url", Conv::Plain),
    l("EXAI_WS_KIMI_MAX_INFLIGHT", "providers.kimi.max_inflight", Conv::Plain),
    l("KIMI_TIMEOUT_SECS", "providers.kimi.first_byte_timeout_secs", Conv::Seconds),
    l("KIMI_STREAM_TIMEOUT", "providers.kimi.total_timeout_secs", Conv::Seconds),
    l("ZHIPUAI_API_KEY", "providers.glm.api_key", Conv::Plain),
    l("GLM_API_KEY", "providers.glm.api_key", Conv::Plain),
    l("ZHIPUAI_API_URL", "providers.glm.base_url", Conv::Plain),
    l("GLM_API_URL", "providers.glm.base_url", Conv::Plain),
    l("EXAI_WS_GLM_MAX_INFLIGHT", "providers.glm.max_inflight", Conv::Plain),
    l("GLM_TIMEOUT_SECS", "providers.glm.first_byte_timeout_secs", Conv::Seconds),
    l("GLM_STREAM_TIMEOUT", "providers.glm.total_timeout_secs", Conv::Seconds),
    l("MONITORING_ENABLED", "monitoring.dashboard_enabled", Conv::Plain),
    l("AUDITOR_ENABLED", "monitoring.auditor_enabled", Conv::Plain),
    l("AUDITOR_MODEL", "monitoring.auditor_model", Conv::Plain),
];

/// Old names that are deliberately not mapped, with the hint given in the warning.
pub(crate) const UNSUPPORTED: &[(&str, &str)] = &[
    (
        "EXAI_WS_PING_TIMEOUT",
        "exai closes a connection that sends nothing (not even a pong) for \
         timeouts.client_timeout_secs (EXAI_TIMEOUTS__CLIENT_TIMEOUT_SECS); set that to about \
         the old ping interval plus ping timeout",
    ),
    ("EXAI_WS_CLOSE_TIMEOUT", "exai has no separate close-handshake timeout"),
    (
        "EXAI_WS_INFLIGHT_TTL_SECS",
        "an in-flight call ends with its tool timeout (timeouts.simple_tool_secs / \
         timeouts.workflow_tool_secs)",
    ),
    ("EXAI_WS_DISABLE_COALESCE_FOR_TOOLS", "exai has no equivalent"),
    ("EXAI_WS_COMPAT_TEXT", "exai has no equivalent"),
    ("EXAI_WS_STARTUP_WAIT_PROVIDERS", "exai has no equivalent"),
    ("EXAI_WS_STARTUP_WAIT_PROVIDERS_TIMEOUT", "exai has no equivalent"),
    ("EXAI_HEALTH_WRITER_INTERVAL", "exai writes no health file; use /health"),
    ("EXAI_HEALTH_WRITER_SESSION_LOCK_TIMEOUT", "exai writes no health file; use /health"),
    ("EXAI_SEMAPHORE_HEALTH_CHECK_INTERVAL", "exai has no equivalent"),
    ("USE_PER_SESSION_SEMAPHORES", "per-session limits always apply (limits.session_max_inflight)"),
    (
        "SESSION_TIMEOUT_SECS",
        "WebSocket sessions end with their connection; Streamable HTTP sessions use \
         http.session_idle_secs",
    ),
    (
        "SESSION_MAX_CONCURRENT",
        "Streamable HTTP sessions are capped by http.max_sessions, connections by \
         server.max_connections",
    ),
    ("EXAI_SESSION_ID", "a setting of the old client shim"),
    ("EXAI_WS_AUTOSTART", "a setting of the old client shim"),
    ("EXAI_WS_CONNECT_TIMEOUT", "a setting of the old client shim"),
    ("EXAI_WS_HANDSHAKE_TIMEOUT", "a setting of the old client shim"),
    ("EXAI_SHIM_ACK_GRACE_SECS", "a setting of the old client shim"),
    ("EXAI_WS_PING_VALIDATION_TIMEOUT", "a setting of the old client shim"),
    ("EXAI_WS_SKIP_HEALTH_CHECK", "a setting of the old client shim"),
    ("EXAI_SHIM_ID", "a setting of the old client shim"),
    ("EXAI_LOG_PREFIX", "a setting of the old client shim"),
    ("MONITORING_PORT", "the dashboard is served on the main port at /dashboard"),
    ("MONITORING_HOST", "the dashboard is served on the main port at /dashboard"),
    ("HEALTH_CHECK_PORT", "health endpoints are served on the main port at /health/*"),
    ("HEALTH_CHECK_ENABLED", "health endpoints are always served on the main port"),
    ("METRICS_PORT", "Prometheus metrics are served on the main port at /metrics"),
    ("METRICS_ENABLED", "Prometheus metrics are always served on the main port at /metrics"),
    (
        "AUDITOR_ANALYSIS_INTERVAL",
        "the auditor reads new calls every monitoring.auditor_interval_secs, within \
         monitoring.auditor_calls_per_hour",
    ),
    ("AUDITOR_BATCH_SIZE", "the auditor sends at most 20 sampled calls per model request"),
    ("AUDITOR_WS_URL", "the auditor reads the tool-call log directly"),
];

/// The legacy entry for an (upper-case) variable name.
pub(crate) fn legacy_var(upper_name: &str) -> Option<&'static LegacyVar> {
    LEGACY.iter().find(|v| v.name == upper_name)
}

/// Converts an old value. `Err` carries what was expected.
pub(crate) fn convert(conv: Conv, raw: &str) -> Result<String, &'static str> {
    match conv {
        Conv::Plain => Ok(raw.to_owned()),
        Conv::Seconds => round_up(raw, "a number of seconds (a fraction is rounded up)"),
        Conv::Hours => round_up(raw, "a number of hours (a fraction is rounded up)"),
        Conv::LogLevel => {
            let lower = raw.trim().to_ascii_lowercase();
            Ok(match lower.as_str() {
                "warning" => "warn".to_owned(),
                "critical" | "fatal" => "error".to_owned(),
                _ => lower,
            })
        }
    }
}

/// A non-negative number rounded up to a whole number, at least 1.
fn round_up(raw: &str, expected: &'static str) -> Result<String, &'static str> {
    let n: f64 = raw.trim().parse().map_err(|_| expected)?;
    if !n.is_finite() || !(0.0..=1e15).contains(&n) {
        return Err(expected);
    }
    // In range and finite (checked above), so the cast cannot truncate.
    let whole = n.ceil().max(1.0) as u64;
    Ok(whole.to_string())
}
