//! `Config::validate`: ranges and cross-key rules that types alone cannot express.
//!
//! The first problem found is returned as a [`ConfigError::InvalidValue`] naming the key,
//! the value (never for secrets; database URLs with the password hidden), what is allowed,
//! and where the value came from when the config was loaded.

use std::net::IpAddr;

use super::error::ConfigError;
use super::model::Config;
use super::secret::{redact_url, Secret};

/// Smallest allowed `server.max_message_bytes` (64 KiB).
pub const MIN_MESSAGE_BYTES: u64 = 64 * 1024;
/// Largest allowed `server.max_message_bytes` (1 GiB).
pub const MAX_MESSAGE_BYTES: u64 = 1024 * 1024 * 1024;
/// Shortest allowed token (`server.auth_token`, `server.admin_token`, `server.metrics_token`).
pub const MIN_TOKEN_CHARS: usize = 16;
/// Most HTTP worker threads.
pub const MAX_WORKERS: u64 = 1024;
/// Longest idle-polling window, microseconds (10 ms: beyond that it is a busy loop).
pub const MAX_IDLE_POLL_US: u64 = 10_000;
/// Database URL prefixes accepted.
pub const DATABASE_SCHEMES: &[&str] = &["sqlite:", "postgres://", "postgresql://"];
/// Longest `limits.provider_queue_wait_ms` (10 minutes).
pub const MAX_QUEUE_WAIT_MS: u64 = 600_000;
/// Largest `tools.max_provider_calls_per_invocation`.
pub const MAX_PROVIDER_CALLS: u64 = 20;

/// Level names `logging.level` accepts (case-insensitive).
pub const LEVEL_NAMES: &[&str] = &["trace", "debug", "info", "warn", "error", "off"];

/// What `logging.level` must look like, for its error message.
const LEVELS_EXPECTED: &str = "comma-separated directives, each a level (trace, debug, info, warn, error, off) or \
                               target=level, e.g. \"info\" or \"info,exai=debug\"";

/// Why one `logging.level` directive is refused although `EnvFilter` would take it (it reads
/// a bare word as a target name, so `loud` or `warning` would silently log nothing): a bare
/// directive must be a level, and the level after `target=` must be one.
fn bad_directive(d: &str) -> Option<String> {
    let is_level = |w: &str| LEVEL_NAMES.iter().any(|l| l.eq_ignore_ascii_case(w.trim()));
    let hint = |w: &str| match w.trim().to_ascii_lowercase().as_str() {
        "warning" => format!("\"{}\" is not a level (did you mean \"warn\"?)", w.trim()),
        "critical" | "fatal" => format!("\"{}\" is not a level (did you mean \"error\"?)", w.trim()),
        _ => format!("\"{}\" is not a level", w.trim()),
    };
    // Span and field filters (`target[span{field=value}]=level`) are left to EnvFilter.
    if d.contains('[') || d.contains('{') {
        return None;
    }
    match d.rsplit_once('=') {
        None if !is_level(d) => Some(hint(d)),
        Some((_, lvl)) if !is_level(lvl) => Some(hint(lvl)),
        _ => None,
    }
}

/// Whether `host` (a valid `server.host`) is a loopback address or `localhost`.
pub fn is_loopback_host(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost") || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

impl Config {
    /// Checks ranges and cross-key rules. Called by [`Config::load`]; call it again after
    /// changing a config in code.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let v = Checker { cfg: self };
        v.server()?;
        v.limits()?;
        v.timeouts()?;
        v.rest()?;
        v.ai_tools()?;
        v.storage()?;
        v.logging()?;
        v.retry()?;
        v.providers()?;
        v.files()?;
        v.routing()?;
        v.monitoring()?;
        v.cluster()
    }
}

pub(super) struct Checker<'a> {
    pub(super) cfg: &'a Config,
}

impl Checker<'_> {
    pub(super) fn fail(&self, key: &str, value: Option<String>, expected: impl Into<String>) -> ConfigError {
        // Items of `[[providers.custom]]` carry the origin of the whole array.
        let origin = self
            .cfg
            .sources
            .get(key)
            .or_else(|| key.split_once('[').and_then(|(array, _)| self.cfg.sources.get(array)));
        ConfigError::InvalidValue { key: key.to_owned(), value, expected: expected.into(), origin: origin.cloned() }
    }

    pub(super) fn range(&self, key: &str, value: u64, min: u64, max: u64) -> Result<(), ConfigError> {
        if (min..=max).contains(&value) {
            return Ok(());
        }
        let expected =
            if max == u64::MAX { format!("an integer >= {min}") } else { format!("an integer {min}..={max}") };
        Err(self.fail(key, Some(value.to_string()), expected))
    }

    pub(super) fn at_least_one(&self, key: &str, value: u64) -> Result<(), ConfigError> {
        self.range(key, value, 1, u64::MAX)
    }

    pub(super) fn names(&self, key: &str, items: &[String], what: &str) -> Result<(), ConfigError> {
        match items.iter().find(|s| s.is_empty() || s.chars().any(char::is_whitespace)) {
            Some(bad) => Err(self.fail(key, Some(format!("{bad:?}")), what)),
            None => Ok(()),
        }
    }

    fn token(&self, key: &str, token: Option<&Secret>) -> Result<(), ConfigError> {
        match token {
            Some(t) if t.char_len() < MIN_TOKEN_CHARS => {
                Err(self.fail(key, None, format!("at least {MIN_TOKEN_CHARS} characters")))
            }
            _ => Ok(()),
        }
    }

    fn server(&self) -> Result<(), ConfigError> {
        let s = &self.cfg.server;
        let host_ok = s.host.eq_ignore_ascii_case("localhost") || s.host.parse::<IpAddr>().is_ok();
        if !host_ok {
            return Err(self.fail(
                "server.host",
                Some(format!("{:?}", s.host)),
                "an IP address (IPv6 without brackets) or \"localhost\"",
            ));
        }
        self.token("server.auth_token", s.auth_token.as_ref())?;
        self.token("server.admin_token", s.admin_token.as_ref())?;
        self.token("server.metrics_token", s.metrics_token.as_ref())?;
        if s.auth_token.is_none() && !is_loopback_host(&s.host) {
            return Err(self.fail(
                "server.host",
                Some(format!("{:?}", s.host)),
                "a loopback address (127.0.0.1, ::1 or localhost) while server.auth_token is \
                 unset; set server.auth_token to listen on other addresses",
            ));
        }
        self.names(
            "server.allowed_origins",
            &s.allowed_origins,
            "origins without spaces, such as \"https://example.com\"",
        )?;
        self.names("server.allowed_hosts", &s.allowed_hosts, "host names without spaces, such as \"example.com\"")?;
        self.range("server.max_message_bytes", s.max_message_bytes as u64, MIN_MESSAGE_BYTES, MAX_MESSAGE_BYTES)?;
        self.at_least_one("server.max_connections", s.max_connections as u64)?;
        if s.max_connections_per_ip == 0 || s.max_connections_per_ip > s.max_connections {
            return Err(self.fail(
                "server.max_connections_per_ip",
                Some(s.max_connections_per_ip.to_string()),
                format!("an integer 1..={} (at most server.max_connections)", s.max_connections),
            ));
        }
        self.range("server.idle_poll_us", s.idle_poll_us, 0, MAX_IDLE_POLL_US)?;
        self.range("server.workers", s.workers as u64, 0, MAX_WORKERS)
    }

    fn limits(&self) -> Result<(), ConfigError> {
        let l = &self.cfg.limits;
        self.at_least_one("limits.global_max_inflight", l.global_max_inflight as u64)?;
        if l.session_max_inflight == 0 || l.session_max_inflight > l.global_max_inflight {
            return Err(self.fail(
                "limits.session_max_inflight",
                Some(l.session_max_inflight.to_string()),
                format!("an integer 1..={} (at most limits.global_max_inflight)", l.global_max_inflight),
            ));
        }
        self.range("limits.retry_after_secs", l.retry_after_secs, 0, 3600)?;
        self.at_least_one("limits.outbox_capacity", l.outbox_capacity as u64)?;
        self.at_least_one("limits.resume_buffer_replies", l.resume_buffer_replies as u64)?;
        self.at_least_one("limits.resume_buffer_global", l.resume_buffer_global as u64)?;
        self.range("limits.resume_buffer_bytes", l.resume_buffer_bytes as u64, 4096, 1 << 40)?;
        if l.resume_buffer_global_bytes < l.resume_buffer_bytes {
            return Err(self.fail(
                "limits.resume_buffer_global_bytes",
                Some(l.resume_buffer_global_bytes.to_string()),
                format!("at least limits.resume_buffer_bytes ({})", l.resume_buffer_bytes),
            ));
        }
        self.range("limits.session_queue", l.session_queue as u64, 0, 100_000)?;
        self.range("limits.session_queue_wait_ms", l.session_queue_wait_ms, 0, MAX_QUEUE_WAIT_MS)?;
        self.at_least_one("limits.provider_global_max_inflight", l.provider_global_max_inflight as u64)?;
        self.range("limits.provider_queue_wait_ms", l.provider_queue_wait_ms, 0, MAX_QUEUE_WAIT_MS)
    }

    fn ai_tools(&self) -> Result<(), ConfigError> {
        let t = &self.cfg.tools;
        self.range(
            "tools.max_provider_calls_per_invocation",
            u64::from(t.max_provider_calls_per_invocation),
            1,
            MAX_PROVIDER_CALLS,
        )?;
        self.names("tools.allowed_roots", &t.allowed_roots, "directory paths, not empty, without spaces")?;
        for root in &t.allowed_roots {
            let problem = match std::fs::metadata(root) {
                Ok(m) if m.is_dir() => continue,
                Ok(_) => "it is not a directory".to_owned(),
                Err(e) => format!("it cannot be used: {e}"),
            };
            return Err(self.fail(
                "tools.allowed_roots",
                Some(format!("{root:?}")),
                format!("existing directories; {root:?}: {problem}"),
            ));
        }
        self.at_least_one("tools.max_file_bytes", t.max_file_bytes)?;
        if t.max_total_file_bytes < t.max_file_bytes {
            return Err(self.fail(
                "tools.max_total_file_bytes",
                Some(t.max_total_file_bytes.to_string()),
                format!("an integer >= {} (at least tools.max_file_bytes)", t.max_file_bytes),
            ));
        }
        let c = &self.cfg.conversations;
        self.at_least_one("conversations.max_turns", u64::from(c.max_turns))?;
        if !["auto", "on", "off"].contains(&c.write_behind.as_str()) {
            return Err(self.fail(
                "conversations.write_behind",
                Some(format!("{:?}", c.write_behind)),
                "\"auto\", \"on\" or \"off\"",
            ));
        }
        self.at_least_one("conversations.ttl_hours", c.ttl_hours)
    }

    fn timeouts(&self) -> Result<(), ConfigError> {
        let t = &self.cfg.timeouts;
        self.at_least_one("timeouts.simple_tool_secs", t.simple_tool_secs)?;
        self.at_least_one("timeouts.workflow_tool_secs", t.workflow_tool_secs)?;
        self.at_least_one("timeouts.hello_secs", t.hello_secs)?;
        self.at_least_one("timeouts.client_timeout_secs", t.client_timeout_secs)?;
        if t.heartbeat_interval_secs == 0 || t.heartbeat_interval_secs >= t.client_timeout_secs {
            return Err(self.fail(
                "timeouts.heartbeat_interval_secs",
                Some(t.heartbeat_interval_secs.to_string()),
                format!(
                    "an integer 1..={} (less than timeouts.client_timeout_secs)",
                    t.client_timeout_secs.saturating_sub(1).max(1)
                ),
            ));
        }
        self.at_least_one("timeouts.progress_interval_secs", t.progress_interval_secs)
    }

    fn rest(&self) -> Result<(), ConfigError> {
        let c = self.cfg;
        self.at_least_one("legacy.result_ttl_secs", c.legacy.result_ttl_secs)?;
        self.at_least_one("legacy.result_cache_entries", c.legacy.result_cache_entries as u64)?;
        self.at_least_one("tools.page_size", c.tools.page_size as u64)?;
        self.names("tools.disabled", &c.tools.disabled, "tool names without spaces")?;
        self.at_least_one("http.session_idle_secs", c.http.session_idle_secs)?;
        self.at_least_one("http.max_sessions", c.http.max_sessions as u64)?;
        let s = &c.supervisor;
        self.at_least_one("supervisor.restart_backoff_ms", s.restart_backoff_ms)?;
        if s.restart_backoff_max_ms < s.restart_backoff_ms {
            return Err(self.fail(
                "supervisor.restart_backoff_max_ms",
                Some(s.restart_backoff_max_ms.to_string()),
                format!("an integer >= {} (at least supervisor.restart_backoff_ms)", s.restart_backoff_ms),
            ));
        }
        self.at_least_one("supervisor.restart_window_secs", s.restart_window_secs)
    }

    fn storage(&self) -> Result<(), ConfigError> {
        let s = &self.cfg.storage;
        if let Some(url) = &s.database_url {
            let lower = url.expose().to_ascii_lowercase();
            if !DATABASE_SCHEMES.iter().any(|p| lower.starts_with(p)) {
                return Err(self.fail(
                    "storage.database_url",
                    Some(format!("{:?}", redact_url(url.expose()))),
                    "a URL starting with sqlite:, postgres:// or postgresql://",
                ));
            }
        }
        if s.data_dir.trim().is_empty() {
            return Err(self.fail("storage.data_dir", Some(format!("{:?}", s.data_dir)), "a directory path"));
        }
        self.at_least_one("storage.max_connections", u64::from(s.max_connections))?;
        self.at_least_one("storage.toollog_queue", s.toollog_queue as u64)?;
        self.at_least_one("storage.toollog_flush_ms", s.toollog_flush_ms)?;
        self.at_least_one("storage.toollog_batch", s.toollog_batch as u64)?;
        self.range("storage.writer_nice", u64::from(s.writer_nice), 0, 19)?;
        self.range("storage.acquire_timeout_ms", s.acquire_timeout_ms, 1, 600_000)?;
        self.range("storage.probe_timeout_ms", s.probe_timeout_ms, 1, 60_000)?;
        self.range("storage.toollog_retention_days", s.toollog_retention_days, 0, 36_500)?;
        self.range("storage.sqlite_cache_mib", u64::from(s.sqlite_cache_mib), 1, 65_536)
    }

    fn monitoring(&self) -> Result<(), ConfigError> {
        let m = &self.cfg.monitoring;
        self.range("monitoring.history_secs", m.history_secs, 10, 86_400)?;
        self.at_least_one("monitoring.dashboard_max_streams", m.dashboard_max_streams as u64)?;
        self.at_least_one("monitoring.error_queue", m.error_queue as u64)?;
        if m.error_ai_model.trim().is_empty() {
            return Err(self.fail(
                "monitoring.error_ai_model",
                Some(format!("{:?}", m.error_ai_model)),
                "a model name",
            ));
        }
        if m.auditor_model.trim().is_empty() {
            return Err(self.fail("monitoring.auditor_model", Some(format!("{:?}", m.auditor_model)), "a model name"));
        }
        if !(0.0..=1.0).contains(&m.auditor_sample_rate) {
            return Err(self.fail(
                "monitoring.auditor_sample_rate",
                Some(m.auditor_sample_rate.to_string()),
                "a number 0.0..=1.0",
            ));
        }
        self.range("monitoring.error_ai_calls_per_hour", u64::from(m.error_ai_calls_per_hour), 0, 3600)?;
        self.range("monitoring.auditor_calls_per_hour", u64::from(m.auditor_calls_per_hour), 0, 3600)?;
        self.range("monitoring.auditor_interval_secs", m.auditor_interval_secs, 1, 86_400)
    }

    fn cluster(&self) -> Result<(), ConfigError> {
        let c = &self.cfg.cluster;
        if let Some(url) = &c.redis_url {
            let u = url.expose();
            if !["redis://", "rediss://", "redis+unix://", "unix://"].iter().any(|p| u.starts_with(p)) {
                return Err(self.fail(
                    "cluster.redis_url",
                    Some(redact_url(u)),
                    "a Redis URL: redis://host:port[/db], rediss://… (TLS) or redis+unix:///path",
                ));
            }
        }
        if c.key_prefix.is_empty() || c.key_prefix.chars().any(|ch| ch.is_whitespace() || ch == '{' || ch == '}') {
            return Err(self.fail(
                "cluster.key_prefix",
                Some(format!("{:?}", c.key_prefix)),
                "a non-empty string without spaces or braces",
            ));
        }
        if c.node_id.chars().any(|ch| ch.is_whitespace() || ch == '|') {
            return Err(self.fail(
                "cluster.node_id",
                Some(format!("{:?}", c.node_id)),
                "a name without spaces or '|' (empty = <hostname>:<port>)",
            ));
        }
        self.range("cluster.lease_ms", c.lease_ms, 500, 600_000)?;
        self.range("cluster.heartbeat_ms", c.heartbeat_ms, 50, c.lease_ms / 2)?;
        self.range("cluster.command_timeout_ms", c.command_timeout_ms, 10, 10_000)?;
        self.range("cluster.poll_ms", c.poll_ms, 1, 1_000)
    }

    fn logging(&self) -> Result<(), ConfigError> {
        let level = &self.cfg.logging.level;
        let parsed = !level.trim().is_empty() && tracing_subscriber::EnvFilter::try_new(level).is_ok();
        let mistake = level.split(',').map(str::trim).filter(|d| !d.is_empty()).find_map(bad_directive);
        match (parsed, mistake) {
            (true, None) => Ok(()),
            (_, Some(hint)) => {
                Err(self.fail("logging.level", Some(format!("{level:?}")), format!("{LEVELS_EXPECTED}; {hint}")))
            }
            (false, None) => Err(self.fail("logging.level", Some(format!("{level:?}")), LEVELS_EXPECTED)),
        }
    }
}
