//! The redacted rendering and the `Debug` output never show secrets.

use super::{at, leaf_keys, Setup, TOKEN};
use crate::config::{keys, redact_url, Config};

const DB_PASSWORD: &str = "Db-Pa55word-xyz";
const ADMIN: &str = "admin-token-0123456789";

fn secret_config() -> Config {
    Setup::new()
        .env("EXAI_SERVER__AUTH_TOKEN", TOKEN)
        .env("EXAI_SERVER__ADMIN_TOKEN", ADMIN)
        .env("DATABASE_URL", &format!("postgres://exai:{DB_PASSWORD}@db:5432/exai?sslmode=require"))
        .ok()
}

#[test]
fn secrets_never_appear_in_render_or_debug() {
    let cfg = secret_config();
    let rendered = cfg.render_redacted();
    let debug = format!("{cfg:?}");
    let pretty = format!("{cfg:#?}");
    for text in [&rendered, &debug, &pretty] {
        assert!(!text.contains(TOKEN), "token leaked: {text}");
        assert!(!text.contains(ADMIN), "admin token leaked: {text}");
        assert!(!text.contains(DB_PASSWORD), "db password leaked: {text}");
    }
    // Secrets, and a URL whose password is hidden, are comment lines: feeding the text back
    // as a config file must not set a token to "<set>" or a password to "<hidden>".
    assert!(
        rendered.contains("\n# auth_token = \"<set>\"  # environment variable EXAI_SERVER__AUTH_TOKEN"),
        "{rendered}"
    );
    assert!(rendered.contains("\n# admin_token = \"<set>\""), "{rendered}");
    assert!(
        rendered.contains("\n# database_url = \"postgres://exai:<hidden>@db:5432/exai?sslmode=require\""),
        "{rendered}"
    );
    let table = rendered.parse::<toml::Table>().unwrap();
    assert!(table["server"].get("auth_token").is_none() && table["storage"].get("database_url").is_none());
    let core = format!("{:?}", cfg.server.auth_token);
    assert_eq!(core, "Some(<set>)");
}

#[test]
fn render_of_default_is_valid_toml_with_every_key() {
    let rendered = Config::default().render_redacted();
    let table: toml::Value = rendered.parse::<toml::Table>().map(toml::Value::Table).unwrap();
    for spec in keys::KEYS {
        let shown = at(&table, spec.key).is_some()
            || (matches!(spec.kind, keys::Kind::Secret | keys::Kind::DbUrl)
                && rendered.contains(&format!("\n# {} = \"", spec.field())));
        assert!(shown, "{} missing from:\n{rendered}", spec.key);
    }
    assert!(table["server"].get("auth_token").is_none(), "an unset secret is a comment line");
    assert!(rendered.contains("\n# api_key = \"<unset>\""), "{rendered}");
    assert_eq!(table["providers"]["glm"]["base_url"].as_str(), Some("https://api.z.ai/api/paas/v4"));
    assert_eq!(table["providers"]["custom"].as_array().map(Vec::len), Some(0));
    assert!(
        rendered.contains("\n# database_url = \"sqlite://./data/exai.db\"  # default: exai.db in storage.data_dir"),
        "{rendered}"
    );
}

#[test]
fn the_rendered_config_loads_back_to_the_same_configuration() {
    let setup = Setup::new()
        .file("[server]\nport = 9100\n[tools]\ndisabled = [\"planner\"]\n[logging]\nlevel = \"warn,exai=debug\"\n")
        .env("EXAI_SERVER__AUTH_TOKEN", TOKEN)
        .env("EXAI_SERVER__ADMIN_TOKEN", ADMIN)
        .env("EXAI_LIMITS__SESSION_MAX_INFLIGHT", "4")
        .set("monitoring.history_secs", "120");
    let first = setup.ok();
    let rendered = first.render_redacted();
    // The rendered text as the only file, with the same secrets in the environment.
    let again =
        Setup::new().file(&rendered).env("EXAI_SERVER__AUTH_TOKEN", TOKEN).env("EXAI_SERVER__ADMIN_TOKEN", ADMIN).ok();
    assert_eq!(toml::Value::try_from(&again).unwrap(), toml::Value::try_from(&first).unwrap());
    assert_eq!(again.server.auth_token.as_ref().map(|t| t.expose()), Some(TOKEN));
    assert_eq!(again.server.admin_token.as_ref().map(|t| t.expose()), Some(ADMIN));
    assert!(again.warnings.is_empty(), "{:?}", again.warnings);
    // Loading the defaults' rendering gives the defaults.
    let defaults = Setup::new().file(&Config::default().render_redacted()).ok();
    assert_eq!(toml::Value::try_from(&defaults).unwrap(), toml::Value::try_from(Config::default()).unwrap());
}

#[test]
fn render_marks_sources() {
    let cfg = Setup::new().env("EXAI_SERVER__PORT", "9999").ok();
    let rendered = cfg.render_redacted();
    assert!(rendered.contains("port = 9999  # environment variable EXAI_SERVER__PORT"), "{rendered}");
    rendered.parse::<toml::Table>().unwrap();
}

#[test]
fn key_table_matches_the_config_struct() {
    // Every field the struct serializes is in the key table, and vice versa.
    let tree = toml::Value::try_from(Config::default()).unwrap();
    let mut from_struct = leaf_keys(&tree);
    // Optional secrets are not serialized when unset.
    from_struct.extend(
        [
            "server.auth_token",
            "server.admin_token",
            "server.metrics_token",
            "storage.database_url",
            "providers.kimi.api_key",
            "providers.glm.api_key",
            "blob.s3_access_key_id",
            "blob.s3_secret_access_key",
            "cluster.redis_url",
        ]
        .map(String::from),
    );
    from_struct.sort();
    let mut from_table: Vec<String> = keys::KEYS.iter().map(|s| s.key.to_owned()).collect();
    from_table.sort();
    assert_eq!(from_struct, from_table);
}

#[test]
fn redact_url_hides_passwords_only() {
    assert_eq!(redact_url("postgres://u:p@h/db"), "postgres://u:<hidden>@h/db");
    assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
    assert_eq!(redact_url("postgres://u:p@ss@h/db"), "postgres://u:<hidden>@h/db");
    assert_eq!(
        redact_url("postgresql://h/db?user=u&password=p&ssl=1"),
        "postgresql://h/db?user=u&password=<hidden>&ssl=1"
    );
    assert_eq!(redact_url("sqlite://./data/exai.db"), "sqlite://./data/exai.db");
    assert_eq!(redact_url("sqlite::memory:"), "sqlite::memory:");
}

#[test]
fn database_url_default_follows_data_dir() {
    let mut cfg = Config::default();
    cfg.storage.data_dir = "/var/lib/exai/".into();
    assert_eq!(cfg.database_url(), "sqlite:///var/lib/exai/exai.db");
}
