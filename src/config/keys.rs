//! The table of every config key with its value kind.
//!
//! One place that knows which dotted keys exist, which are lists (comma-separated in the
//! environment and in overrides) and which are secrets. The loader uses it to recognise
//! `EXAI_<SECTION>__<KEY>` variables and override keys, to type string values, and to check
//! every merged value before serde sees it, so type errors name the key and the source of
//! the value. A unit test keeps this table equal to the fields of `Config`.
//!
//! Sections may be nested (`providers.kimi`): the section is everything before the last dot,
//! and the environment variable joins the parts with `__` (`EXAI_PROVIDERS__KIMI__API_KEY`).
//! An array of tables (`[[providers.custom]]`) is one key of kind [`Kind::Tables`] whose
//! items are checked against their own field table; it can only come from the config file.

use config::{Value, ValueKind};

use super::secret::redact_url;

/// The type of a config value, as far as loading is concerned.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Kind {
    /// A string.
    Str,
    /// An optional secret string; its value is never shown.
    Secret,
    /// An optional database URL; shown with the password hidden.
    DbUrl,
    /// `true` / `false`.
    Bool,
    /// An integer 0..=65535.
    U16,
    /// An integer 0..=4294967295.
    U32,
    /// A non-negative integer (u64 / usize).
    U64,
    /// A number (integer or with a fraction).
    Float,
    /// A list of strings.
    List,
    /// `human` or `json`.
    LogFormat,
    /// An array of tables whose items have these fields (config file only).
    Tables(&'static [KeySpec]),
}

impl Kind {
    /// What a value of this kind looks like, for error messages.
    pub(crate) fn expected(self) -> &'static str {
        match self {
            Kind::Str => "a string",
            Kind::Secret => "a string",
            Kind::DbUrl => "a database URL string",
            Kind::Bool => "true or false",
            Kind::U16 => "an integer 0..=65535",
            Kind::U32 => "an integer 0..=4294967295",
            Kind::U64 => "a non-negative integer",
            Kind::Float => "a number",
            Kind::List => "a list of strings (comma-separated in environment variables and overrides)",
            Kind::LogFormat => "\"human\" or \"json\"",
            Kind::Tables(_) => {
                "an array of tables ([[...]]) in the config file (not settable from environment \
                 variables or overrides)"
            }
        }
    }

    fn max(self) -> u64 {
        match self {
            Kind::U16 => u64::from(u16::MAX),
            Kind::U32 => u64::from(u32::MAX),
            _ => u64::try_from(usize::MAX).unwrap_or(u64::MAX),
        }
    }
}

/// One config key.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct KeySpec {
    /// Dotted key, `section.key` (for the fields of an array item: the field name).
    pub key: &'static str,
    /// Its kind.
    pub kind: Kind,
}

impl KeySpec {
    /// The section part of the key (everything before the last dot).
    pub(crate) fn section(&self) -> &'static str {
        self.key.rsplit_once('.').map_or(self.key, |(s, _)| s)
    }

    /// The key part without the section.
    pub(crate) fn field(&self) -> &'static str {
        self.key.rsplit_once('.').map_or(self.key, |(_, k)| k)
    }

    /// The new-style environment variable for this key.
    #[cfg(test)]
    pub(crate) fn env_var(&self) -> String {
        format!("EXAI_{}", self.key.replace('.', "__").to_ascii_uppercase())
    }
}

const fn k(key: &'static str, kind: Kind) -> KeySpec {
    KeySpec { key, kind }
}

/// Every key, in section order (also the order of the rendered config).
pub(crate) const KEYS: &[KeySpec] = &[
    k("server.host", Kind::Str),
    k("server.port", Kind::U16),
    k("server.auth_token", Kind::Secret),
    k("server.admin_token", Kind::Secret),
    k("server.metrics_token", Kind::Secret),
    k("server.allowed_origins", Kind::List),
    k("server.allowed_hosts", Kind::List),
    k("server.max_message_bytes", Kind::U64),
    k("server.max_connections", Kind::U64),
    k("server.max_connections_per_ip", Kind::U64),
    k("server.workers", Kind::U64),
    k("server.idle_poll_us", Kind::U64),
    k("limits.global_max_inflight", Kind::U64),
    k("limits.session_max_inflight", Kind::U64),
    k("limits.retry_after_secs", Kind::U64),
    k("limits.outbox_capacity", Kind::U64),
    k("limits.resume_buffer_replies", Kind::U64),
    k("limits.resume_buffer_global", Kind::U64),
    k("limits.resume_buffer_bytes", Kind::U64),
    k("limits.resume_buffer_global_bytes", Kind::U64),
    k("limits.session_queue", Kind::U64),
    k("limits.session_queue_wait_ms", Kind::U64),
    k("limits.provider_global_max_inflight", Kind::U64),
    k("limits.provider_queue_wait_ms", Kind::U64),
    k("timeouts.simple_tool_secs", Kind::U64),
    k("timeouts.workflow_tool_secs", Kind::U64),
    k("timeouts.hello_secs", Kind::U64),
    k("timeouts.heartbeat_interval_secs", Kind::U64),
    k("timeouts.client_timeout_secs", Kind::U64),
    k("timeouts.progress_interval_secs", Kind::U64),
    k("timeouts.shutdown_deadline_secs", Kind::U64),
    k("timeouts.resume_grace_secs", Kind::U64),
    k("timeouts.stall_close_secs", Kind::U64),
    k("legacy.result_ttl_secs", Kind::U64),
    k("legacy.result_cache_entries", Kind::U64),
    k("tools.page_size", Kind::U64),
    k("tools.disabled", Kind::List),
    k("tools.max_provider_calls_per_invocation", Kind::U32),
    k("tools.allowed_roots", Kind::List),
    k("tools.max_file_bytes", Kind::U64),
    k("tools.max_total_file_bytes", Kind::U64),
    k("tools.expert_analysis", Kind::Bool),
    k("conversations.max_turns", Kind::U32),
    k("conversations.ttl_hours", Kind::U64),
    k("conversations.cross_session", Kind::Bool),
    k("conversations.write_behind", Kind::Str),
    k("routing.default_model", Kind::Str),
    k("routing.kimi_default_model", Kind::Str),
    k("routing.kimi_speed_model", Kind::Str),
    k("routing.kimi_quality_model", Kind::Str),
    k("routing.glm_speed_model", Kind::Str),
    k("routing.glm_quality_model", Kind::Str),
    k("http.session_idle_secs", Kind::U64),
    k("http.max_sessions", Kind::U64),
    k("storage.database_url", Kind::DbUrl),
    k("storage.data_dir", Kind::Str),
    k("storage.max_connections", Kind::U32),
    k("storage.toollog_queue", Kind::U64),
    k("storage.toollog_flush_ms", Kind::U64),
    k("storage.toollog_batch", Kind::U64),
    k("storage.writer_nice", Kind::U32),
    k("storage.acquire_timeout_ms", Kind::U64),
    k("storage.probe_timeout_ms", Kind::U64),
    k("storage.toollog_retention_days", Kind::U64),
    k("storage.toollog_max_rows", Kind::U64),
    k("storage.sqlite_cache_mib", Kind::U32),
    k("supervisor.restart_backoff_ms", Kind::U64),
    k("supervisor.restart_backoff_max_ms", Kind::U64),
    k("supervisor.restart_max", Kind::U32),
    k("supervisor.restart_window_secs", Kind::U64),
    k("logging.level", Kind::Str),
    k("logging.format", Kind::LogFormat),
    k("monitoring.dashboard_enabled", Kind::Bool),
    k("monitoring.history_secs", Kind::U64),
    k("monitoring.dashboard_max_streams", Kind::U64),
    k("monitoring.error_watcher_enabled", Kind::Bool),
    k("monitoring.error_queue", Kind::U64),
    k("monitoring.error_ai_enabled", Kind::Bool),
    k("monitoring.error_ai_model", Kind::Str),
    k("monitoring.error_ai_calls_per_hour", Kind::U32),
    k("monitoring.auditor_enabled", Kind::Bool),
    k("monitoring.auditor_model", Kind::Str),
    k("monitoring.auditor_sample_rate", Kind::Float),
    k("monitoring.auditor_calls_per_hour", Kind::U32),
    k("monitoring.auditor_interval_secs", Kind::U64),
    k("debug.fault_injection", Kind::Bool),
    k("retry.rate_limit_attempts", Kind::U32),
    k("retry.rate_limit_base_ms", Kind::U64),
    k("retry.rate_limit_max_ms", Kind::U64),
    k("retry.retry_after_max_ms", Kind::U64),
    k("retry.timeout_attempts", Kind::U32),
    k("retry.timeout_base_ms", Kind::U64),
    k("retry.timeout_max_ms", Kind::U64),
    k("retry.server_attempts", Kind::U32),
    k("retry.server_base_ms", Kind::U64),
    k("retry.server_max_ms", Kind::U64),
    k("retry.network_attempts", Kind::U32),
    k("retry.network_base_ms", Kind::U64),
    k("retry.network_max_ms", Kind::U64),
    k("providers.kimi.enabled", Kind::Bool),
    k("providers.kimi.base_url", Kind::Str),
    k("providers.kimi.api_key", Kind::Secret),
    k("providers.kimi.max_inflight", Kind::U64),
    k("providers.kimi.connect_timeout_secs", Kind::U64),
    k("providers.kimi.first_byte_timeout_secs", Kind::U64),
    k("providers.kimi.idle_timeout_secs", Kind::U64),
    k("providers.kimi.total_timeout_secs", Kind::U64),
    k("providers.kimi.fallback", Kind::List),
    k("providers.kimi.breaker_failure_ratio", Kind::Float),
    k("providers.kimi.breaker_min_requests", Kind::U32),
    k("providers.kimi.breaker_consecutive_failures", Kind::U32),
    k("providers.kimi.breaker_window_secs", Kind::U64),
    k("providers.kimi.breaker_open_secs", Kind::U64),
    k("providers.kimi.breaker_half_open_probes", Kind::U32),
    k("providers.kimi.rpm", Kind::U64),
    k("providers.kimi.tpm", Kind::U64),
    k("providers.kimi.models", Kind::Tables(CUSTOM_MODEL_FIELDS)),
    k("providers.glm.enabled", Kind::Bool),
    k("providers.glm.base_url", Kind::Str),
    k("providers.glm.api_key", Kind::Secret),
    k("providers.glm.max_inflight", Kind::U64),
    k("providers.glm.connect_timeout_secs", Kind::U64),
    k("providers.glm.first_byte_timeout_secs", Kind::U64),
    k("providers.glm.idle_timeout_secs", Kind::U64),
    k("providers.glm.total_timeout_secs", Kind::U64),
    k("providers.glm.fallback", Kind::List),
    k("providers.glm.breaker_failure_ratio", Kind::Float),
    k("providers.glm.breaker_min_requests", Kind::U32),
    k("providers.glm.breaker_consecutive_failures", Kind::U32),
    k("providers.glm.breaker_window_secs", Kind::U64),
    k("providers.glm.breaker_open_secs", Kind::U64),
    k("providers.glm.breaker_half_open_probes", Kind::U32),
    k("providers.glm.rpm", Kind::U64),
    k("providers.glm.tpm", Kind::U64),
    k("providers.glm.models", Kind::Tables(CUSTOM_MODEL_FIELDS)),
    k("providers.custom", Kind::Tables(CUSTOM_PROVIDER_FIELDS)),
    k("files.embed_max_bytes", Kind::U64),
    k("files.gateway_min_bytes", Kind::U64),
    k("files.kimi_max_bytes", Kind::U64),
    k("files.glm_max_bytes", Kind::U64),
    k("files.other_max_bytes", Kind::U64),
    k("files.max_blob_bytes", Kind::U64),
    k("files.max_files_per_call", Kind::U64),
    k("files.kimi_purpose", Kind::Str),
    k("files.glm_purpose", Kind::Str),
    k("files.other_purpose", Kind::Str),
    k("files.reference_ttl_secs", Kind::U64),
    k("blob.backend", Kind::Str),
    k("blob.local_dir", Kind::Str),
    k("blob.s3_bucket", Kind::Str),
    k("blob.s3_endpoint", Kind::Str),
    k("blob.s3_region", Kind::Str),
    k("blob.s3_access_key_id", Kind::Secret),
    k("blob.s3_secret_access_key", Kind::Secret),
    k("blob.s3_prefix", Kind::Str),
    k("blob.s3_allow_http", Kind::Bool),
    k("cleanup.interval_secs", Kind::U64),
    k("cleanup.grace_period_secs", Kind::U64),
    k("cleanup.max_per_run", Kind::U64),
    k("cleanup.max_delete_share", Kind::Float),
    k("cleanup.page_size", Kind::U32),
    k("cleanup.delete_rate_per_sec", Kind::Float),
    k("cleanup.validate_parallelism", Kind::U64),
    k("cluster.redis_url", Kind::DbUrl),
    k("cluster.node_id", Kind::Str),
    k("cluster.advertise_address", Kind::Str),
    k("cluster.key_prefix", Kind::Str),
    k("cluster.lease_ms", Kind::U64),
    k("cluster.heartbeat_ms", Kind::U64),
    k("cluster.command_timeout_ms", Kind::U64),
    k("cluster.poll_ms", Kind::U64),
    k("cluster.on_redis_down", Kind::Str),
];

/// The fields of one `[[providers.custom]]` item.
pub(crate) const CUSTOM_PROVIDER_FIELDS: &[KeySpec] = &[
    k("name", Kind::Str),
    k("enabled", Kind::Bool),
    k("base_url", Kind::Str),
    k("api_key_env", Kind::Str),
    k("max_inflight", Kind::U64),
    k("connect_timeout_secs", Kind::U64),
    k("first_byte_timeout_secs", Kind::U64),
    k("idle_timeout_secs", Kind::U64),
    k("total_timeout_secs", Kind::U64),
    k("fallback", Kind::List),
    k("breaker_failure_ratio", Kind::Float),
    k("breaker_min_requests", Kind::U32),
    k("breaker_consecutive_failures", Kind::U32),
    k("breaker_window_secs", Kind::U64),
    k("breaker_open_secs", Kind::U64),
    k("breaker_half_open_probes", Kind::U32),
    k("rpm", Kind::U64),
    k("tpm", Kind::U64),
    k("models", Kind::Tables(CUSTOM_MODEL_FIELDS)),
];

/// The fields of one `[[providers.custom.models]]` item.
pub(crate) const CUSTOM_MODEL_FIELDS: &[KeySpec] = &[
    k("name", Kind::Str),
    k("aliases", Kind::List),
    k("context_window", Kind::U32),
    k("max_output_tokens", Kind::U32),
    k("vision", Kind::Bool),
    k("tools", Kind::Bool),
    k("thinking", Kind::Bool),
    k("web_search", Kind::Bool),
    k("input_price", Kind::Float),
    k("output_price", Kind::Float),
];

/// The spec of a dotted key.
pub(crate) fn spec(key: &str) -> Option<&'static KeySpec> {
    KEYS.iter().find(|s| s.key == key)
}

/// Whether `path` names a table that holds keys (a section such as `server`, or a parent of
/// sections such as `providers`).
pub(crate) fn is_table(path: &str) -> bool {
    KEYS.iter().any(|s| s.key.strip_prefix(path).is_some_and(|rest| rest.starts_with('.')))
}

/// Sections in order.
pub(crate) fn sections() -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for s in KEYS {
        if !out.contains(&s.section()) {
            out.push(s.section());
        }
    }
    out
}

/// Types a string from an environment variable or override. `Err` means the string is not a
/// value of this kind (the caller reports `kind.expected()`).
pub(crate) fn parse_str(kind: Kind, raw: &str) -> Result<ValueKind, ()> {
    match kind {
        Kind::Str => Ok(ValueKind::String(raw.to_owned())),
        Kind::Secret | Kind::DbUrl => {
            if raw.is_empty() {
                Ok(ValueKind::Nil)
            } else {
                Ok(ValueKind::String(raw.to_owned()))
            }
        }
        Kind::Bool => match raw.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(ValueKind::Boolean(true)),
            "false" | "0" | "no" | "off" => Ok(ValueKind::Boolean(false)),
            _ => Err(()),
        },
        Kind::U16 | Kind::U32 | Kind::U64 => match raw.trim().parse::<u64>() {
            Ok(n) if n <= kind.max() => Ok(ValueKind::U64(n)),
            _ => Err(()),
        },
        Kind::Float => match raw.trim().parse::<f64>() {
            Ok(f) if f.is_finite() => Ok(ValueKind::Float(f)),
            _ => Err(()),
        },
        Kind::List => Ok(ValueKind::Array(
            raw.split(',').map(str::trim).filter(|s| !s.is_empty()).map(|s| Value::new(None, s.to_owned())).collect(),
        )),
        Kind::LogFormat => {
            let lower = raw.trim().to_ascii_lowercase();
            if lower == "human" || lower == "json" {
                Ok(ValueKind::String(lower))
            } else {
                Err(())
            }
        }
        Kind::Tables(_) => Err(()),
    }
}

/// Checks a merged value against its kind before deserialization.
pub(crate) fn check(kind: Kind, value: &ValueKind) -> bool {
    match kind {
        Kind::Str => matches!(value, ValueKind::String(_)),
        Kind::Secret | Kind::DbUrl => matches!(value, ValueKind::String(_) | ValueKind::Nil),
        Kind::Bool => matches!(value, ValueKind::Boolean(_)),
        Kind::U16 | Kind::U32 | Kind::U64 => {
            let max = u128::from(kind.max());
            match value {
                ValueKind::I64(n) => *n >= 0 && (*n as u128) <= max,
                ValueKind::U64(n) => u128::from(*n) <= max,
                ValueKind::I128(n) => *n >= 0 && (*n as u128) <= max,
                ValueKind::U128(n) => *n <= max,
                _ => false,
            }
        }
        Kind::Float => match value {
            ValueKind::Float(f) => f.is_finite(),
            ValueKind::I64(_) | ValueKind::U64(_) | ValueKind::I128(_) | ValueKind::U128(_) => true,
            _ => false,
        },
        Kind::List => match value {
            ValueKind::Array(items) => items.iter().all(|v| matches!(v.kind, ValueKind::String(_))),
            _ => false,
        },
        Kind::LogFormat => {
            matches!(value, ValueKind::String(s) if s == "human" || s == "json")
        }
        // The items are checked field by field by the loader.
        Kind::Tables(_) => match value {
            ValueKind::Array(items) => items.iter().all(|v| matches!(v.kind, ValueKind::Table(_))),
            _ => false,
        },
    }
}

/// How to show a value in an error message: `None` for secrets, the URL with its password
/// hidden for database URLs, quoted strings otherwise.
pub(crate) fn show(kind: Kind, value: &ValueKind) -> Option<String> {
    match (kind, value) {
        (Kind::Secret, _) => None,
        (Kind::DbUrl, ValueKind::String(s)) => Some(format!("{:?}", redact_url(s))),
        (Kind::DbUrl, _) => None,
        _ => Some(show_plain(value)),
    }
}

/// How to show a raw string (from the environment or an override) in an error message.
pub(crate) fn show_raw(kind: Kind, raw: &str) -> Option<String> {
    match kind {
        Kind::Secret => None,
        Kind::DbUrl => Some(format!("{:?}", redact_url(raw))),
        _ => Some(format!("{raw:?}")),
    }
}

fn show_plain(value: &ValueKind) -> String {
    match value {
        ValueKind::Nil => "nothing".into(),
        ValueKind::Boolean(b) => b.to_string(),
        ValueKind::I64(n) => n.to_string(),
        ValueKind::I128(n) => n.to_string(),
        ValueKind::U64(n) => n.to_string(),
        ValueKind::U128(n) => n.to_string(),
        ValueKind::Float(f) => f.to_string(),
        ValueKind::String(s) => format!("{s:?}"),
        ValueKind::Array(items) => {
            let inner: Vec<String> = items.iter().map(|v| show_plain(&v.kind)).collect();
            format!("[{}]", inner.join(", "))
        }
        ValueKind::Table(_) => "a table".into(),
    }
}
