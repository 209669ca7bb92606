//! Every validation rule fails with an error naming its key.

use super::{Setup, TOKEN};
use crate::config::{Config, ConfigError, CustomModelConfig, CustomProviderConfig, Secret};

type Mutation = fn(&mut Config);

/// (key, value shown in the message or `None` for secrets, mutation).
const CASES: &[(&str, Option<&str>, Mutation)] = &[
    ("server.host", Some("\"example.com\""), |c| c.server.host = "example.com".into()),
    ("server.host", Some("\"0.0.0.0\""), |c| c.server.host = "0.0.0.0".into()),
    ("server.auth_token", None, |c| c.server.auth_token = Some(Secret::new("short-token"))),
    ("server.admin_token", None, |c| c.server.admin_token = Some(Secret::new("short"))),
    ("server.allowed_origins", Some("\"\""), |c| c.server.allowed_origins = vec![String::new()]),
    ("server.allowed_hosts", Some("\"a b\""), |c| c.server.allowed_hosts = vec!["a b".into()]),
    ("server.max_message_bytes", Some("1024"), |c| c.server.max_message_bytes = 1024),
    ("server.max_message_bytes", Some("2147483648"), |c| c.server.max_message_bytes = 2 * 1024 * 1024 * 1024),
    ("server.max_connections", Some("0"), |c| c.server.max_connections = 0),
    ("server.max_connections_per_ip", Some("2000"), |c| c.server.max_connections_per_ip = 2000),
    ("server.max_connections_per_ip", Some("0"), |c| c.server.max_connections_per_ip = 0),
    ("server.workers", Some("5000"), |c| c.server.workers = 5000),
    ("server.idle_poll_us", Some("20000"), |c| c.server.idle_poll_us = 20_000),
    ("storage.writer_nice", Some("20"), |c| c.storage.writer_nice = 20),
    ("cluster.redis_url", Some("http://h:6379"), |c| c.cluster.redis_url = Some(Secret::new("http://h:6379"))),
    ("cluster.key_prefix", Some("\"a{b}\""), |c| c.cluster.key_prefix = "a{b}".into()),
    ("cluster.key_prefix", Some("\"\""), |c| c.cluster.key_prefix = String::new()),
    ("cluster.node_id", Some("\"a b\""), |c| c.cluster.node_id = "a b".into()),
    ("cluster.lease_ms", Some("100"), |c| c.cluster.lease_ms = 100),
    ("cluster.heartbeat_ms", Some("9000"), |c| c.cluster.heartbeat_ms = 9000),
    ("cluster.command_timeout_ms", Some("0"), |c| c.cluster.command_timeout_ms = 0),
    ("cluster.poll_ms", Some("0"), |c| c.cluster.poll_ms = 0),
    ("storage.acquire_timeout_ms", Some("0"), |c| c.storage.acquire_timeout_ms = 0),
    ("storage.probe_timeout_ms", Some("0"), |c| c.storage.probe_timeout_ms = 0),
    ("storage.toollog_retention_days", Some("40000"), |c| c.storage.toollog_retention_days = 40_000),
    ("storage.sqlite_cache_mib", Some("0"), |c| c.storage.sqlite_cache_mib = 0),
    ("limits.global_max_inflight", Some("0"), |c| c.limits.global_max_inflight = 0),
    ("limits.session_max_inflight", Some("600"), |c| c.limits.session_max_inflight = 600),
    ("limits.session_max_inflight", Some("0"), |c| c.limits.session_max_inflight = 0),
    ("limits.retry_after_secs", Some("7200"), |c| c.limits.retry_after_secs = 7200),
    ("limits.outbox_capacity", Some("0"), |c| c.limits.outbox_capacity = 0),
    ("timeouts.simple_tool_secs", Some("0"), |c| c.timeouts.simple_tool_secs = 0),
    ("timeouts.workflow_tool_secs", Some("0"), |c| c.timeouts.workflow_tool_secs = 0),
    ("timeouts.hello_secs", Some("0"), |c| c.timeouts.hello_secs = 0),
    ("timeouts.client_timeout_secs", Some("0"), |c| c.timeouts.client_timeout_secs = 0),
    ("timeouts.heartbeat_interval_secs", Some("60"), |c| c.timeouts.heartbeat_interval_secs = 60),
    ("timeouts.heartbeat_interval_secs", Some("0"), |c| c.timeouts.heartbeat_interval_secs = 0),
    ("timeouts.progress_interval_secs", Some("0"), |c| c.timeouts.progress_interval_secs = 0),
    ("legacy.result_ttl_secs", Some("0"), |c| c.legacy.result_ttl_secs = 0),
    ("legacy.result_cache_entries", Some("0"), |c| c.legacy.result_cache_entries = 0),
    ("tools.page_size", Some("0"), |c| c.tools.page_size = 0),
    ("tools.disabled", Some("\"\""), |c| c.tools.disabled = vec![String::new()]),
    ("http.session_idle_secs", Some("0"), |c| c.http.session_idle_secs = 0),
    ("http.max_sessions", Some("0"), |c| c.http.max_sessions = 0),
    ("storage.database_url", Some("\"mysql://u:<hidden>@h/db\""), |c| {
        c.storage.database_url = Some(Secret::new("mysql://u:pw@h/db"))
    }),
    ("storage.data_dir", Some("\"\""), |c| c.storage.data_dir = String::new()),
    ("storage.max_connections", Some("0"), |c| c.storage.max_connections = 0),
    ("storage.toollog_queue", Some("0"), |c| c.storage.toollog_queue = 0),
    ("storage.toollog_flush_ms", Some("0"), |c| c.storage.toollog_flush_ms = 0),
    ("storage.toollog_batch", Some("0"), |c| c.storage.toollog_batch = 0),
    ("supervisor.restart_backoff_ms", Some("0"), |c| c.supervisor.restart_backoff_ms = 0),
    ("supervisor.restart_backoff_max_ms", Some("50"), |c| c.supervisor.restart_backoff_max_ms = 50),
    ("supervisor.restart_window_secs", Some("0"), |c| c.supervisor.restart_window_secs = 0),
    ("logging.level", Some("\"info,=\""), |c| c.logging.level = "info,=".into()),
    ("logging.level", Some("\"\""), |c| c.logging.level = String::new()),
    ("logging.level", Some("\"loud\""), |c| c.logging.level = "loud".into()),
    ("logging.level", Some("\"warning\""), |c| c.logging.level = "warning".into()),
    ("logging.level", Some("\"info,exai=verbose\""), |c| c.logging.level = "info,exai=verbose".into()),
    ("server.metrics_token", None, |c| c.server.metrics_token = Some(Secret::new("short"))),
    ("limits.provider_global_max_inflight", Some("0"), |c| c.limits.provider_global_max_inflight = 0),
    ("limits.provider_queue_wait_ms", Some("700000"), |c| c.limits.provider_queue_wait_ms = 700_000),
    ("tools.max_provider_calls_per_invocation", Some("0"), |c| c.tools.max_provider_calls_per_invocation = 0),
    ("tools.max_provider_calls_per_invocation", Some("50"), |c| c.tools.max_provider_calls_per_invocation = 50),
    ("tools.allowed_roots", Some("\"\""), |c| c.tools.allowed_roots = vec![String::new()]),
    ("tools.allowed_roots", Some("\"/nonexistent/exai-root\""), |c| {
        c.tools.allowed_roots = vec!["/".into(), "/nonexistent/exai-root".into()]
    }),
    ("tools.allowed_roots", Some("\"/etc/passwd\""), |c| c.tools.allowed_roots = vec!["/etc/passwd".into()]),
    ("tools.max_file_bytes", Some("0"), |c| c.tools.max_file_bytes = 0),
    ("tools.max_total_file_bytes", Some("1000"), |c| c.tools.max_total_file_bytes = 1000),
    ("conversations.max_turns", Some("0"), |c| c.conversations.max_turns = 0),
    ("conversations.ttl_hours", Some("0"), |c| c.conversations.ttl_hours = 0),
    ("conversations.write_behind", Some("\"sometimes\""), |c| c.conversations.write_behind = "sometimes".into()),
    ("retry.rate_limit_attempts", Some("0"), |c| c.retry.rate_limit_attempts = 0),
    ("retry.server_attempts", Some("11"), |c| c.retry.server_attempts = 11),
    ("retry.network_max_ms", Some("100"), |c| c.retry.network_max_ms = 100),
    ("retry.timeout_base_ms", Some("700000"), |c| c.retry.timeout_base_ms = 700_000),
    ("retry.retry_after_max_ms", Some("700000"), |c| c.retry.retry_after_max_ms = 700_000),
    ("providers.kimi.base_url", Some("\"ftp://example.com\""), |c| {
        c.providers.kimi.base_url = "ftp://example.com".into()
    }),
    ("providers.glm.base_url", Some("\"https://\""), |c| c.providers.glm.base_url = "https://".into()),
    ("providers.glm.base_url", Some("\"http://u:<hidden>@h/v1 x\""), |c| {
        c.providers.glm.base_url = "http://u:pw@h/v1 x".into()
    }),
    ("providers.kimi.api_key", None, |c| c.providers.kimi.api_key = Some(Secret::new("sk-abc def"))),
    ("providers.glm.api_key", None, |c| c.providers.glm.api_key = Some(Secret::new(""))),
    ("providers.kimi.max_inflight", Some("0"), |c| c.providers.kimi.max_inflight = 0),
    ("providers.glm.max_inflight", Some("25"), |c| c.providers.glm.max_inflight = 25),
    ("providers.kimi.connect_timeout_secs", Some("0"), |c| c.providers.kimi.connect_timeout_secs = 0),
    ("providers.kimi.first_byte_timeout_secs", Some("0"), |c| c.providers.kimi.first_byte_timeout_secs = 0),
    ("providers.glm.total_timeout_secs", Some("0"), |c| c.providers.glm.total_timeout_secs = 0),
    ("providers.glm.idle_timeout_secs", Some("400"), |c| c.providers.glm.idle_timeout_secs = 400),
    ("providers.kimi.first_byte_timeout_secs", Some("301"), |c| c.providers.kimi.first_byte_timeout_secs = 301),
    ("providers.kimi.idle_timeout_secs", Some("0"), |c| c.providers.kimi.idle_timeout_secs = 0),
    ("providers.kimi.fallback", Some("\"\""), |c| c.providers.kimi.fallback = vec![String::new()]),
    ("providers.kimi.fallback", Some("\"gpt-9\""), |c| c.providers.kimi.fallback = vec!["gpt-9".into()]),
    ("providers.kimi.breaker_failure_ratio", Some("0"), |c| c.providers.kimi.breaker_failure_ratio = 0.0),
    ("providers.glm.breaker_failure_ratio", Some("1.5"), |c| c.providers.glm.breaker_failure_ratio = 1.5),
    ("providers.glm.breaker_failure_ratio", Some("NaN"), |c| c.providers.glm.breaker_failure_ratio = f64::NAN),
    ("providers.kimi.breaker_min_requests", Some("0"), |c| c.providers.kimi.breaker_min_requests = 0),
    ("providers.kimi.breaker_consecutive_failures", Some("0"), |c| c.providers.kimi.breaker_consecutive_failures = 0),
    ("providers.kimi.breaker_window_secs", Some("0"), |c| c.providers.kimi.breaker_window_secs = 0),
    ("providers.kimi.breaker_open_secs", Some("0"), |c| c.providers.kimi.breaker_open_secs = 0),
    ("providers.glm.breaker_half_open_probes", Some("0"), |c| c.providers.glm.breaker_half_open_probes = 0),
    ("routing.default_model", Some("\"gpt-9\""), |c| c.routing.default_model = "gpt-9".into()),
    ("routing.kimi_speed_model", Some("\"glm-4.6\""), |c| c.routing.kimi_speed_model = "glm-4.6".into()),
    ("routing.glm_quality_model", Some("\"kimi-k2\""), |c| c.routing.glm_quality_model = "kimi-k2".into()),
    ("routing.kimi_quality_model", Some("\"auto\""), |c| c.routing.kimi_quality_model = "auto".into()),
    ("providers.custom[0].name", Some("\"Ollama\""), |c| c.providers.custom = vec![custom("Ollama", "m1")]),
    ("providers.custom[0].name", Some("\"\""), |c| c.providers.custom = vec![custom("", "m1")]),
    ("providers.custom[0].name", Some("\"kimi\""), |c| c.providers.custom = vec![custom("kimi", "m1")]),
    ("providers.custom[1].name", Some("\"a\""), |c| c.providers.custom = vec![custom("a", "m1"), custom("a", "m2")]),
    ("providers.custom[0].base_url", Some("\"\""), |c| {
        c.providers.custom = vec![CustomProviderConfig { base_url: String::new(), ..custom("a", "m1") }]
    }),
    ("providers.custom[0].api_key_env", Some("\"MY-KEY\""), |c| {
        c.providers.custom = vec![CustomProviderConfig { api_key_env: Some("MY-KEY".into()), ..custom("a", "m1") }]
    }),
    ("providers.custom[0].models", Some("[]"), |c| {
        c.providers.custom = vec![CustomProviderConfig { models: vec![], ..custom("a", "m1") }]
    }),
    ("providers.custom[1].models[0].name", Some("\"m1\""), |c| {
        c.providers.custom = vec![custom("a", "m1"), custom("b", "m1")]
    }),
    ("providers.custom[0].models[0].name", Some("\"glm-4.6\""), |c| c.providers.custom = vec![custom("a", "glm-4.6")]),
    ("providers.custom[0].models[0].name", Some("\"my model\""), |c| {
        c.providers.custom = vec![custom("a", "my model")]
    }),
    ("providers.custom[0].models[0].aliases", Some("\"kimi-k2\""), |c| {
        let mut p = custom("a", "m1");
        p.models[0].aliases = vec!["kimi-k2".into()];
        c.providers.custom = vec![p];
    }),
    ("providers.custom[0].models[0].context_window", Some("0"), |c| {
        let mut p = custom("a", "m1");
        p.models[0].context_window = 0;
        c.providers.custom = vec![p];
    }),
    ("providers.custom[0].max_inflight", Some("0"), |c| {
        c.providers.custom = vec![CustomProviderConfig { max_inflight: 0, ..custom("a", "m1") }]
    }),
    ("providers.custom[0].fallback", Some("\"nope\""), |c| {
        c.providers.custom = vec![CustomProviderConfig { fallback: vec!["nope".into()], ..custom("a", "m1") }]
    }),
    ("monitoring.history_secs", Some("5"), |c| c.monitoring.history_secs = 5),
    ("monitoring.dashboard_max_streams", Some("0"), |c| c.monitoring.dashboard_max_streams = 0),
    ("monitoring.error_queue", Some("0"), |c| c.monitoring.error_queue = 0),
    ("monitoring.error_ai_model", Some("\" \""), |c| c.monitoring.error_ai_model = " ".into()),
    ("monitoring.auditor_model", Some("\"\""), |c| c.monitoring.auditor_model = String::new()),
    ("monitoring.auditor_sample_rate", Some("1.5"), |c| c.monitoring.auditor_sample_rate = 1.5),
    ("monitoring.auditor_sample_rate", Some("-0.1"), |c| c.monitoring.auditor_sample_rate = -0.1),
    ("monitoring.error_ai_calls_per_hour", Some("5000"), |c| c.monitoring.error_ai_calls_per_hour = 5000),
    ("monitoring.auditor_calls_per_hour", Some("3601"), |c| c.monitoring.auditor_calls_per_hour = 3601),
    ("monitoring.auditor_interval_secs", Some("0"), |c| c.monitoring.auditor_interval_secs = 0),
];

/// A valid custom provider serving one model.
fn custom(name: &str, model: &str) -> CustomProviderConfig {
    CustomProviderConfig {
        name: name.into(),
        base_url: "http://127.0.0.1:11434/v1".into(),
        models: vec![CustomModelConfig { name: model.into(), ..CustomModelConfig::default() }],
        ..CustomProviderConfig::default()
    }
}

#[test]
fn default_config_is_valid() {
    Config::default().validate().unwrap();
}

#[test]
fn each_validation_error_names_its_key_and_value() {
    for (key, value, mutate) in CASES {
        let mut cfg = Config::default();
        mutate(&mut cfg);
        let err = match cfg.validate() {
            Ok(()) => panic!("{key}: expected a validation error"),
            Err(e) => e,
        };
        assert_eq!(err.key(), Some(*key), "{err}");
        let msg = err.to_string();
        assert!(msg.contains(&format!("invalid value for {key}")), "{msg}");
        assert!(msg.contains("(expected "), "{msg}");
        match value {
            Some(v) => assert!(msg.contains(&format!("{key}: {v} ")), "{key}: {msg}"),
            None => assert!(!msg.contains(':'), "secret value shown? {msg}"),
        }
        assert!(!msg.contains("pw@"), "password shown: {msg}");
        assert!(!msg.contains("sk-abc"), "API key shown: {msg}");
    }
}

#[test]
fn non_loopback_host_needs_auth_token() {
    let mut cfg = Config::default();
    cfg.server.host = "0.0.0.0".into();
    let msg = cfg.validate().unwrap_err().to_string();
    assert!(msg.contains("server.host") && msg.contains("server.auth_token"), "{msg}");
    cfg.server.auth_token = Some(Secret::new(TOKEN));
    cfg.validate().unwrap();
    for host in ["localhost", "::1", "127.0.0.2"] {
        let mut cfg = Config::default();
        cfg.server.host = host.into();
        cfg.validate().unwrap();
    }
}

#[test]
fn accepted_database_urls() {
    for url in ["sqlite::memory:", "sqlite://./x.db", "postgres://u:p@h/db", "postgresql://h/db"] {
        let mut cfg = Config::default();
        cfg.storage.database_url = Some(Secret::new(url));
        cfg.validate().unwrap();
    }
}

#[test]
fn validation_error_after_load_names_the_source() {
    let err = Setup::new().env("EXAI_WS_HOST", "0.0.0.0").load().unwrap_err();
    assert!(matches!(err, ConfigError::InvalidValue { .. }));
    let msg = err.to_string();
    assert!(msg.contains("server.auth_token"), "{msg}");
    assert!(msg.contains("[from environment variable EXAI_WS_HOST (legacy name)]"), "{msg}");
    let msg = Setup::new().env("EXAI_WS_TOKEN", "short").err();
    assert_eq!(
        msg,
        "invalid value for server.auth_token (expected at least 16 characters) \
         [from environment variable EXAI_WS_TOKEN (legacy name)]"
    );
}

#[test]
fn sample_rate_takes_fractions_and_integers_from_every_layer() {
    let cfg = Setup::new().env("EXAI_MONITORING__AUDITOR_SAMPLE_RATE", "0.25").ok();
    assert_eq!(cfg.monitoring.auditor_sample_rate, 0.25);
    let cfg = Setup::new().file("[monitoring]\nauditor_sample_rate = 1\n").ok();
    assert_eq!(cfg.monitoring.auditor_sample_rate, 1.0);
    let cfg = Setup::new().set("monitoring.auditor_sample_rate", "0.5").ok();
    assert_eq!(cfg.monitoring.auditor_sample_rate, 0.5);
    let msg = Setup::new().set("monitoring.auditor_sample_rate", "often").err();
    assert!(msg.contains("monitoring.auditor_sample_rate") && msg.contains("a number"), "{msg}");
    let cfg = Setup::new().env("AUDITOR_ENABLED", "true").env("AUDITOR_MODEL", "kimi-k2-turbo-preview").ok();
    assert!(cfg.monitoring.auditor_enabled);
    assert_eq!(cfg.monitoring.auditor_model, "kimi-k2-turbo-preview");
}

#[test]
fn logging_levels_name_the_accepted_values() {
    for ok in ["info", "WARN", "off", "info,exai=debug", "warn,exai::server=trace,sqlx=off", "exai[call]=debug"] {
        let mut cfg = Config::default();
        cfg.logging.level = ok.into();
        cfg.validate().unwrap_or_else(|e| panic!("{ok}: {e}"));
    }
    let mut cfg = Config::default();
    cfg.logging.level = "warning".into();
    let msg = cfg.validate().unwrap_err().to_string();
    assert!(msg.contains("trace, debug, info, warn, error, off") && msg.contains("did you mean \"warn\"?"), "{msg}");
    cfg.logging.level = "info,exai=loud".into();
    let msg = cfg.validate().unwrap_err().to_string();
    assert!(msg.contains("\"loud\" is not a level"), "{msg}");
}
