//! The old daemon's environment variable names.

use super::{Setup, TOKEN};
use crate::config::keys;
use crate::config::legacy::{convert, Conv, LEGACY};

#[test]
fn legacy_names_map_to_keys() {
    let cfg = Setup::new()
        .env("EXAI_WS_HOST", "0.0.0.0")
        .env("EXAI_WS_PORT", "9300")
        .env("EXAI_WS_TOKEN", TOKEN)
        .env("EXAI_WS_MAX_BYTES", "1048576")
        .env("EXAI_WS_GLOBAL_MAX_INFLIGHT", "24")
        .env("EXAI_WS_SESSION_MAX_INFLIGHT", "6")
        .env("EXAI_WS_RETRY_AFTER_SECS", "2")
        .env("EXAI_WS_HELLO_TIMEOUT", "12")
        .env("EXAI_WS_PING_INTERVAL", "30")
        .env("EXAI_WS_PROGRESS_INTERVAL_SECS", "8.0")
        .env("EXAI_WS_RESULT_TTL", "300")
        .env("SIMPLE_TOOL_TIMEOUT_SECS", "31")
        .env("WORKFLOW_TOOL_TIMEOUT_SECS", "181")
        .env("MAX_CONNECTIONS", "100")
        .env("MAX_CONNECTIONS_PER_IP", "10")
        .env("LOG_LEVEL", "WARNING")
        .env("DISABLED_TOOLS", "chat,planner")
        .env("DATABASE_URL", "postgres://u:pw@db/exai")
        .env("EXAI_DATA_DIR", "/var/lib/exai")
        .ok();
    assert_eq!(cfg.server.host, "0.0.0.0");
    assert_eq!(cfg.server.port, 9300);
    assert_eq!(cfg.server.auth_token.as_ref().unwrap().expose(), TOKEN);
    assert_eq!(cfg.server.max_message_bytes, 1_048_576);
    assert_eq!(cfg.limits.global_max_inflight, 24);
    assert_eq!(cfg.limits.session_max_inflight, 6);
    assert_eq!(cfg.limits.retry_after_secs, 2);
    assert_eq!(cfg.timeouts.hello_secs, 12);
    assert_eq!(cfg.timeouts.heartbeat_interval_secs, 30);
    assert_eq!(cfg.timeouts.progress_interval_secs, 8);
    assert_eq!(cfg.legacy.result_ttl_secs, 300);
    assert_eq!(cfg.timeouts.simple_tool_secs, 31);
    assert_eq!(cfg.timeouts.workflow_tool_secs, 181);
    assert_eq!(cfg.server.max_connections, 100);
    assert_eq!(cfg.server.max_connections_per_ip, 10);
    assert_eq!(cfg.logging.level, "warn");
    assert_eq!(cfg.tools.disabled, vec!["chat", "planner"]);
    assert_eq!(cfg.database_url(), "postgres://u:pw@db/exai");
    assert_eq!(cfg.storage.data_dir, "/var/lib/exai");
    assert_eq!(cfg.sources["server.port"], "environment variable EXAI_WS_PORT (legacy name)");
    assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
}

#[test]
fn new_style_name_beats_legacy_name() {
    let cfg = Setup::new().env("EXAI_WS_PORT", "9300").env("EXAI_SERVER__PORT", "9400").ok();
    assert_eq!(cfg.server.port, 9400);
    assert!(
        cfg.warnings.iter().any(|w| w.contains("EXAI_WS_PORT ignored") && w.contains("EXAI_SERVER__PORT")),
        "{:?}",
        cfg.warnings
    );
}

#[test]
fn tool_call_max_size_only_without_ws_max_bytes() {
    let cfg = Setup::new().env("TOOL_CALL_MAX_SIZE", "10485760").ok();
    assert_eq!(cfg.server.max_message_bytes, 10_485_760);
    let cfg = Setup::new().env("TOOL_CALL_MAX_SIZE", "10485760").env("EXAI_WS_MAX_BYTES", "2097152").ok();
    assert_eq!(cfg.server.max_message_bytes, 2_097_152);
}

#[test]
fn progress_interval_rounds_up_with_minimum_one() {
    assert_eq!(convert(Conv::Seconds, "8.0").unwrap(), "8");
    assert_eq!(convert(Conv::Seconds, "2.1").unwrap(), "3");
    assert_eq!(convert(Conv::Seconds, "0.2").unwrap(), "1");
    assert_eq!(convert(Conv::Seconds, "0").unwrap(), "1");
    assert!(convert(Conv::Seconds, "-1").is_err());
    assert!(convert(Conv::Seconds, "soon").is_err());
    let cfg = Setup::new().env("EXAI_WS_PROGRESS_INTERVAL_SECS", "2.5").ok();
    assert_eq!(cfg.timeouts.progress_interval_secs, 3);
}

#[test]
fn bad_legacy_value_names_key_and_variable() {
    let err = Setup::new().env("EXAI_WS_HELLO_TIMEOUT", "soon").err();
    assert!(err.contains("timeouts.hello_secs: \"soon\""), "{err}");
    assert!(err.contains("EXAI_WS_HELLO_TIMEOUT"), "{err}");
    let err = Setup::new().env("EXAI_WS_PORT", "x").err();
    assert!(err.contains("server.port: \"x\""), "{err}");
}

#[test]
fn empty_legacy_value_is_ignored() {
    let cfg = Setup::new().env("EXAI_WS_TOKEN", "").ok();
    assert!(cfg.server.auth_token.is_none());
}

#[test]
fn unsupported_old_names_warn_with_a_hint() {
    let cfg = Setup::new().env("EXAI_WS_PING_TIMEOUT", "30").ok();
    assert_eq!(cfg.warnings.len(), 1);
    assert!(cfg.warnings[0].contains("client_timeout_secs"), "{:?}", cfg.warnings);
}

#[test]
fn legacy_table_points_at_real_keys() {
    for var in LEGACY {
        assert!(keys::spec(var.key).is_some(), "{} → {}", var.name, var.key);
    }
}
