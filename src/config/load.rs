//! Loading: built-in defaults < config file < environment < command-line overrides.
//!
//! The layers are merged with the `config` crate. Before serde sees the merged tree, every
//! key is checked against the key table (`keys.rs`): unknown keys and badly typed values
//! fail with a message naming the key, the value (not for secrets) and its source. Custom
//! providers' keys are then read from the variables their `api_key_env` names, and the
//! result is validated (`validate.rs`).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

use config::{FileFormat, Source, Value, ValueKind};

use super::env::{env_layer, typed};
use super::error::ConfigError;
use super::keys;
use super::model::Config;
use super::secret::Secret;

/// The config file looked for in the current directory when none is named.
pub const DEFAULT_CONFIG_FILE: &str = "exai.toml";

/// Where the command-line overrides come from, as shown in messages.
const OVERRIDE_ORIGIN: &str = "command-line override";

/// How to load the configuration.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// A config file that must exist (`--config FILE`). When `None`, `EXAI_CONFIG` is used if
    /// set, else `exai.toml` in the current directory if present.
    pub config_file: Option<PathBuf>,
    /// Overrides as (dotted key, value), e.g. `("server.port", "0")`; list values are
    /// comma-separated. They win over everything else.
    pub overrides: Vec<(String, String)>,
    /// The environment; `None` reads the process environment (tests pass `Some`).
    pub env: Option<HashMap<String, String>>,
}

impl Config {
    /// Loads, merges, checks and validates the configuration.
    pub fn load(opts: &LoadOptions) -> Result<Config, ConfigError> {
        let cwd = std::env::current_dir().ok();
        load_in(opts, cwd.as_deref())
    }
}

/// [`Config::load`] with an explicit current directory (for the `exai.toml` lookup and
/// relative paths).
pub(crate) fn load_in(opts: &LoadOptions, cwd: Option<&Path>) -> Result<Config, ConfigError> {
    let mut warnings = Vec::new();
    let vars: Vec<(String, String)> = match &opts.env {
        Some(map) => map.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        None => process_env(&mut warnings),
    };
    let env = env_layer(&vars)?;
    warnings.extend(env.warnings);

    let explicit = opts.config_file.clone().or_else(|| env.config_file.as_ref().map(PathBuf::from));
    let file = read_config_file(explicit, cwd)?;
    let overrides = override_layer(&opts.overrides)?;

    let mut builder = config::Config::builder();
    if let Some((path, text)) = &file {
        check_toml_syntax(path, text)?;
        builder = builder.add_source(config::File::from_str(text, FileFormat::Toml));
    }
    let merged = builder
        .add_source(Layer(env.entries))
        .add_source(Layer(overrides))
        .build()
        .map_err(|e| map_crate_error(e, file.as_ref().map(|(p, _)| p.as_path())))?;

    let file_origin = file.as_ref().map_or_else(String::new, |(p, _)| format!("config file {}", p.display()));
    let sources = check_tree(&merged.cache, &file_origin)?;

    let mut cfg: Config =
        merged.try_deserialize().map_err(|e| map_crate_error(e, file.as_ref().map(|(p, _)| p.as_path())))?;
    resolve_custom_keys(&mut cfg, &vars, &mut warnings);
    cfg.warnings = warnings;
    cfg.sources = sources;
    cfg.validate()?;
    Ok(cfg)
}

/// The process environment; variables that are not valid UTF-8 are skipped (with a warning
/// when they look like ours).
fn process_env(warnings: &mut Vec<String>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (name, value) in std::env::vars_os() {
        match (name.into_string(), value.into_string()) {
            (Ok(name), Ok(value)) => out.push((name, value)),
            (Ok(name), Err(_)) if name.to_ascii_uppercase().starts_with("EXAI_") => {
                warnings.push(format!("environment variable {name} ignored: its value is not valid UTF-8"));
            }
            _ => {}
        }
    }
    out
}

/// Reads the config file: `explicit` must exist; otherwise `exai.toml` in `cwd` if present.
fn read_config_file(explicit: Option<PathBuf>, cwd: Option<&Path>) -> Result<Option<(PathBuf, String)>, ConfigError> {
    let (shown, actual) = match explicit {
        Some(path) => {
            let actual = match cwd {
                Some(dir) if path.is_relative() => dir.join(&path),
                _ => path.clone(),
            };
            (path, actual)
        }
        None => {
            let Some(dir) = cwd else {
                return Ok(None);
            };
            let candidate = dir.join(DEFAULT_CONFIG_FILE);
            if !candidate.is_file() {
                return Ok(None);
            }
            (candidate.clone(), candidate)
        }
    };
    match std::fs::read_to_string(&actual) {
        Ok(text) => {
            let text = text.strip_prefix('\u{feff}').map(str::to_owned).unwrap_or(text);
            Ok(Some((shown, text)))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(ConfigError::FileNotFound { path: shown }),
        Err(source) => Err(ConfigError::FileRead { path: shown, source }),
    }
}

/// Rejects invalid TOML with a position and message only: the parser's own report quotes
/// the offending line, which could hold a secret.
fn check_toml_syntax(path: &Path, text: &str) -> Result<(), ConfigError> {
    match text.parse::<toml::Table>() {
        Ok(_) => Ok(()),
        Err(e) => {
            let position = e.span().map_or_else(String::new, |span| {
                let before = text.get(..span.start).unwrap_or("");
                let line = before.matches('\n').count() + 1;
                let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
                format!("line {line}, column {column}: ")
            });
            Err(ConfigError::FileParse {
                path: path.to_path_buf(),
                message: format!("{position}{}", e.message().trim().replace('\n', "; ")),
            })
        }
    }
}

/// Types the command-line overrides.
fn override_layer(overrides: &[(String, String)]) -> Result<BTreeMap<String, Value>, ConfigError> {
    let mut out = BTreeMap::new();
    for (key, raw) in overrides {
        let key = key.trim().to_ascii_lowercase();
        let Some(spec) = keys::spec(&key) else {
            return Err(ConfigError::UnknownKey { key, origin: OVERRIDE_ORIGIN.to_owned() });
        };
        out.insert(key, typed(spec, raw, raw, OVERRIDE_ORIGIN)?);
    }
    Ok(out)
}

/// Checks every merged key against the key table; returns key → origin.
fn check_tree(cache: &Value, file_origin: &str) -> Result<BTreeMap<String, String>, ConfigError> {
    let ValueKind::Table(root) = &cache.kind else {
        return Err(ConfigError::Other { key: "(root)".into(), message: "the configuration is not a table".into() });
    };
    let mut sources = BTreeMap::new();
    check_table("", root, file_origin, &mut sources)?;
    Ok(sources)
}

fn origin_of(v: &Value, file_origin: &str) -> String {
    v.origin().map_or_else(|| file_origin.to_owned(), str::to_owned)
}

fn sorted(table: &config::Map<String, Value>) -> Vec<(&String, &Value)> {
    let mut entries: Vec<(&String, &Value)> = table.iter().collect();
    entries.sort_by(|a, b| a.0.cmp(b.0));
    entries
}

/// Checks the keys of one table (the root, a section, or a parent of sections).
fn check_table(
    prefix: &str,
    table: &config::Map<String, Value>,
    file_origin: &str,
    sources: &mut BTreeMap<String, String>,
) -> Result<(), ConfigError> {
    for (name, value) in sorted(table) {
        let key = if prefix.is_empty() { name.clone() } else { format!("{prefix}.{name}") };
        let origin = origin_of(value, file_origin);
        if let Some(spec) = keys::spec(&key) {
            check_value(&key, spec.kind, value, &origin)?;
            sources.insert(key, origin);
        } else if keys::is_table(&key) {
            let ValueKind::Table(inner) = &value.kind else {
                return Err(ConfigError::InvalidValue {
                    value: None,
                    expected: format!("a [{key}] table"),
                    key,
                    origin: Some(origin),
                });
            };
            check_table(&key, inner, file_origin, sources)?;
        } else {
            return Err(ConfigError::UnknownKey { key, origin });
        }
    }
    Ok(())
}

/// Checks one value against its kind; the items of an array of tables field by field.
fn check_value(key: &str, kind: keys::Kind, value: &Value, origin: &str) -> Result<(), ConfigError> {
    if !keys::check(kind, &value.kind) {
        return Err(ConfigError::InvalidValue {
            key: key.to_owned(),
            value: keys::show(kind, &value.kind),
            expected: kind.expected().to_owned(),
            origin: Some(origin.to_owned()),
        });
    }
    let (keys::Kind::Tables(fields), ValueKind::Array(items)) = (kind, &value.kind) else {
        return Ok(());
    };
    for (i, item) in items.iter().enumerate() {
        let ValueKind::Table(table) = &item.kind else {
            continue; // `keys::check` accepted only tables
        };
        for (field, leaf) in sorted(table) {
            let item_key = format!("{key}[{i}].{field}");
            match fields.iter().find(|f| f.key == field.as_str()) {
                Some(f) => check_value(&item_key, f.kind, leaf, origin)?,
                None if key == "providers.custom" && field == "api_key" => {
                    return Err(ConfigError::Other {
                        key: item_key,
                        message: "a custom provider's key is never written in the config file; set \
                                  api_key_env to the name of the environment variable that holds it"
                            .into(),
                    });
                }
                None => return Err(ConfigError::UnknownKey { key: item_key, origin: origin.to_owned() }),
            }
        }
    }
    Ok(())
}

/// Reads each custom provider's key from the variable its `api_key_env` names. A variable
/// that is unset or empty leaves the provider without a key, with a warning.
fn resolve_custom_keys(cfg: &mut Config, vars: &[(String, String)], warnings: &mut Vec<String>) {
    for (i, p) in cfg.providers.custom.iter_mut().enumerate() {
        let Some(var) = p.api_key_env.as_deref() else {
            continue;
        };
        match vars.iter().find(|(name, _)| name == var).map(|(_, v)| v.trim()).filter(|v| !v.is_empty()) {
            Some(key) => p.api_key = Some(Secret::new(key)),
            None => warnings.push(format!(
                "providers.custom[{i}] ({}): environment variable {var} (api_key_env) is not set; \
                 the provider is used without an API key",
                p.name
            )),
        }
        // A key variable named EXAI_* is not an unknown config variable.
        let ignored = format!("environment variable {var} ignored: it is not a config key");
        warnings.retain(|w| !w.starts_with(&ignored));
    }
}

/// Maps an error of the `config` crate (not expected after `check_tree`) so that it names
/// the key and hides secret values.
pub(super) fn map_crate_error(error: config::ConfigError, file: Option<&Path>) -> ConfigError {
    match error {
        config::ConfigError::Type { origin, unexpected, expected, key } => {
            let key = key.unwrap_or_else(|| "(root)".into());
            let hide = keys::spec(&key).is_some_and(|s| matches!(s.kind, keys::Kind::Secret | keys::Kind::DbUrl));
            ConfigError::InvalidValue {
                value: (!hide).then(|| unexpected.to_string()),
                key,
                expected: expected.to_owned(),
                origin,
            }
        }
        config::ConfigError::FileParse { .. } => ConfigError::FileParse {
            path: file.map(Path::to_path_buf).unwrap_or_default(),
            message: "invalid TOML".into(),
        },
        config::ConfigError::At { key, .. } => {
            let key = key.unwrap_or_else(|| "(root)".into());
            ConfigError::Other { message: format!("invalid value (expected {})", expected_for(&key)), key }
        }
        config::ConfigError::NotFound(key) => ConfigError::Other { key, message: "missing value".into() },
        other => ConfigError::Other { key: "(root)".into(), message: other.to_string() },
    }
}

fn expected_for(key: &str) -> &'static str {
    keys::spec(key).map_or("a known key", |s| s.kind.expected())
}

/// An environment or override layer for the `config` crate. Its `Debug` lists only the
/// keys, never the values (some are secrets).
#[derive(Clone)]
struct Layer(BTreeMap<String, Value>);

impl fmt::Debug for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Layer").field("keys", &self.0.keys().collect::<Vec<_>>()).finish()
    }
}

impl Source for Layer {
    fn clone_into_box(&self) -> Box<dyn Source + Send + Sync> {
        Box::new(self.clone())
    }

    fn collect(&self) -> Result<config::Map<String, Value>, config::ConfigError> {
        Ok(self.0.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
    }
}
