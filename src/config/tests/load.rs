//! Layering, file handling, unknown keys and typing of values.

use super::{Setup, TOKEN};
use crate::config::{Config, ConfigError, LoadOptions, LogFormat};

#[test]
fn defaults_without_any_source() {
    let cfg = Setup::new().ok();
    assert_eq!(cfg.server.host, "127.0.0.1");
    assert_eq!(cfg.server.port, 8079);
    assert_eq!(cfg.limits.global_max_inflight, 512);
    assert_eq!(cfg.timeouts.workflow_tool_secs, 180);
    assert!(cfg.sources.is_empty());
    assert!(cfg.warnings.is_empty());
    assert_eq!(cfg.database_url(), "sqlite://./data/exai.db");
}

#[test]
fn precedence_file_then_env_then_override() {
    let setup = Setup::new()
        .file("[server]\nport = 9001\nmax_connections = 500\n[limits]\nsession_max_inflight = 3\n")
        .env("EXAI_SERVER__PORT", "9002")
        .env("EXAI_LIMITS__SESSION_MAX_INFLIGHT", "4")
        .set("server.port", "9003");
    let cfg = setup.ok();
    assert_eq!(cfg.server.port, 9003, "override beats env and file");
    assert_eq!(cfg.limits.session_max_inflight, 4, "env beats file");
    assert_eq!(cfg.server.max_connections, 500, "file beats default");
    assert_eq!(cfg.server.max_connections_per_ip, 64, "default kept");
    assert_eq!(cfg.sources["server.port"], "command-line override");
    assert_eq!(cfg.sources["limits.session_max_inflight"], "environment variable EXAI_LIMITS__SESSION_MAX_INFLIGHT");
    assert!(cfg.sources["server.max_connections"].starts_with("config file "));
}

#[test]
fn env_names_are_case_insensitive() {
    let cfg = Setup::new().env("exai_server__port", "9100").ok();
    assert_eq!(cfg.server.port, 9100);
}

#[test]
fn exai_toml_in_cwd_is_used_when_no_file_is_named() {
    let cfg = Setup::new().cwd_file("[server]\nport = 9200\n").ok();
    assert_eq!(cfg.server.port, 9200);
}

#[test]
fn exai_config_env_names_the_file() {
    let setup = Setup::new();
    let path = setup.dir.path().join("other.toml");
    std::fs::write(&path, "[tools]\npage_size = 7\n").unwrap();
    let cfg = setup.env("EXAI_CONFIG", path.to_str().unwrap()).ok();
    assert_eq!(cfg.tools.page_size, 7);
    assert!(cfg.warnings.is_empty(), "EXAI_CONFIG is not an unknown variable");
}

#[test]
fn explicit_missing_file_is_an_error_naming_it() {
    let opts = LoadOptions {
        config_file: Some("/nonexistent/dir/my-exai.toml".into()),
        overrides: Vec::new(),
        env: Some(Default::default()),
    };
    let err = Config::load(&opts).unwrap_err();
    assert!(matches!(err, ConfigError::FileNotFound { .. }));
    assert!(err.to_string().contains("/nonexistent/dir/my-exai.toml"), "{err}");
}

#[test]
fn parse_error_names_file_and_position_without_echoing_contents() {
    let setup = Setup::new().file(&format!("[server]\nauth_token = {TOKEN}\n"));
    let err = setup.err();
    assert!(err.contains("exai.toml"), "{err}");
    assert!(err.contains("line 2"), "{err}");
    assert!(!err.contains(TOKEN), "parse error leaked file contents: {err}");
}

#[test]
fn unknown_key_in_file_is_an_error_naming_it() {
    let err = Setup::new().file("[server]\nprot = 1\n").err();
    assert!(err.contains("server.prot"), "{err}");
    assert!(err.contains("exai.toml"), "{err}");
    let err = Setup::new().file("[sever]\nport = 1\n").err();
    assert!(err.contains("unknown config key sever"), "{err}");
}

#[test]
fn unknown_override_key_is_an_error() {
    let err = Setup::new().set("server.nope", "1").err();
    assert!(err.contains("server.nope"), "{err}");
    assert!(err.contains("command-line override"), "{err}");
}

#[test]
fn bad_env_value_names_key_value_range_and_variable() {
    let err = Setup::new().env("EXAI_SERVER__PORT", "abc").err();
    assert_eq!(
        err,
        "invalid value for server.port: \"abc\" (expected an integer 0..=65535) \
         [from environment variable EXAI_SERVER__PORT]"
    );
    let err = Setup::new().env("EXAI_SERVER__PORT", "70000").err();
    assert!(err.contains("server.port: \"70000\""), "{err}");
}

#[test]
fn bad_file_value_names_key_value_and_file() {
    let err = Setup::new().file("[server]\nport = \"abc\"\n").err();
    assert!(err.starts_with("invalid value for server.port: \"abc\""), "{err}");
    assert!(err.contains("config file"), "{err}");
    let err = Setup::new().file("[limits]\nglobal_max_inflight = -3\n").err();
    assert!(err.contains("limits.global_max_inflight: -3"), "{err}");
    let err = Setup::new().file("[server]\nauth_token = 12345\n").err();
    assert!(err.contains("server.auth_token"), "{err}");
    assert!(!err.contains("12345"), "secret value shown: {err}");
    let err = Setup::new().file("server = 3\n").err();
    assert!(err.contains("invalid value for server"), "{err}");
}

#[test]
fn list_from_env_and_override_is_comma_separated() {
    let cfg = Setup::new()
        .env("EXAI_TOOLS__DISABLED", "chat, thinkdeep,,consensus ")
        .set("server.allowed_origins", "https://a.example,https://b.example")
        .ok();
    assert_eq!(cfg.tools.disabled, vec!["chat", "thinkdeep", "consensus"]);
    assert_eq!(cfg.server.allowed_origins, vec!["https://a.example", "https://b.example"]);
}

#[test]
fn list_from_file() {
    let cfg = Setup::new().file("[server]\nallowed_hosts = [\"exai.local\"]\n").ok();
    assert_eq!(cfg.server.allowed_hosts, vec!["exai.local"]);
}

#[test]
fn bool_and_enum_values() {
    let cfg = Setup::new().env("EXAI_DEBUG__FAULT_INJECTION", "true").env("EXAI_LOGGING__FORMAT", "JSON").ok();
    assert!(cfg.debug.fault_injection);
    assert_eq!(cfg.logging.format, LogFormat::Json);
    let err = Setup::new().env("EXAI_LOGGING__FORMAT", "xml").err();
    assert!(err.contains("logging.format: \"xml\""), "{err}");
    assert!(err.contains("\"human\" or \"json\""), "{err}");
    let err = Setup::new().file("[logging]\nformat = \"xml\"\n").err();
    assert!(err.contains("logging.format: \"xml\""), "{err}");
}

#[test]
fn unknown_exai_env_var_is_a_warning() {
    let cfg = Setup::new().env("EXAI_SERVER__PROT", "1").env("EXAI_SOMETHING", "x").env("PATH", "/usr/bin").ok();
    assert_eq!(cfg.warnings.len(), 2, "{:?}", cfg.warnings);
    assert!(cfg.warnings.iter().any(|w| w.contains("EXAI_SERVER__PROT")));
    assert!(cfg.warnings.iter().any(|w| w.contains("EXAI_SOMETHING")));
}

#[test]
fn empty_secret_env_unsets_file_token() {
    let cfg =
        Setup::new().file(&format!("[server]\nauth_token = \"{TOKEN}\"\n")).env("EXAI_SERVER__AUTH_TOKEN", "").ok();
    assert!(cfg.server.auth_token.is_none());
}

#[test]
fn core_settings_follow_the_config() {
    let cfg = Setup::new()
        .env("EXAI_SERVER__AUTH_TOKEN", TOKEN)
        .set("timeouts.hello_secs", "9")
        .set("supervisor.restart_max", "2")
        .set("storage.toollog_batch", "10")
        .ok();
    let core = cfg.core_settings();
    assert_eq!(core.hello_timeout_secs, 9);
    assert_eq!(core.restart_max, 2);
    assert_eq!(core.toollog_batch, 10);
    assert_eq!(core.max_message_bytes, 32 * 1024 * 1024);
    assert_eq!(core.auth_token.as_deref(), Some(TOKEN));
    assert_eq!(core.server_name, "exai");
}

#[test]
fn defaults_match_core_settings_defaults() {
    let core = Config::default().core_settings();
    let expected = exai_actors::settings::CoreSettings::default();
    assert_eq!(serde_json::to_value(&core).unwrap(), serde_json::to_value(&expected).unwrap());
}

/// Errors of the `config` crate itself (normally pre-empted by the key check) still name the
/// key and hide secret values.
#[test]
fn config_crate_errors_are_mapped_with_the_key() {
    use crate::config::load::map_crate_error;
    let raw = |toml: &str| {
        config::Config::builder()
            .add_source(config::File::from_str(toml, config::FileFormat::Toml))
            .build()
            .unwrap()
            .try_deserialize::<Config>()
            .unwrap_err()
    };
    let err = map_crate_error(raw("[server]\nport = \"abc\"\n"), None);
    assert_eq!(err.key(), Some("server.port"), "{err}");
    assert!(err.to_string().contains("abc"), "{err}");
    let err = map_crate_error(raw("[server]\nauth_token = [\"hunter2hunter2hunter2\"]\n"), None);
    assert_eq!(err.key(), Some("server.auth_token"), "{err}");
    assert!(!err.to_string().contains("hunter2"), "{err}");
}
