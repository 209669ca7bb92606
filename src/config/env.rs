//! The environment-variable layer: new-style `EXAI_<SECTION>__<KEY>` names (nested sections
//! joined with `__` too: `EXAI_PROVIDERS__KIMI__API_KEY`) plus the old daemon's names (see
//! `legacy.rs`).
//!
//! Variable names are matched case-insensitively. Values are typed here, so a bad value is
//! reported with the variable's name. Unknown `EXAI_*` variables and unsupported old names
//! become warnings, not errors. `EXAI_CONFIG` names the config file (see `load.rs`).

use std::collections::BTreeMap;

use config::Value;

use super::error::ConfigError;
use super::keys::{self, KeySpec};
use super::legacy::{self, LEGACY, UNSUPPORTED};

/// The variable that names the config file when `--config` is not given.
pub(crate) const CONFIG_FILE_VAR: &str = "EXAI_CONFIG";

/// What the environment contributes.
#[derive(Default)]
pub(crate) struct EnvLayer {
    /// Typed values by dotted key (each carries its origin).
    pub entries: BTreeMap<String, Value>,
    /// Warnings about ignored variables.
    pub warnings: Vec<String>,
    /// The value of `EXAI_CONFIG`, if set and not empty.
    pub config_file: Option<String>,
}

/// Builds the layer from `(name, value)` pairs.
pub(crate) fn env_layer(vars: &[(String, String)]) -> Result<EnvLayer, ConfigError> {
    // Upper-case name → (name as set, value); sorted, so the outcome is deterministic.
    let mut by_upper: BTreeMap<String, (&str, &str)> = BTreeMap::new();
    let mut sorted: Vec<&(String, String)> = vars.iter().collect();
    sorted.sort();
    for (name, value) in sorted {
        by_upper.insert(name.to_ascii_uppercase(), (name.as_str(), value.as_str()));
    }

    let mut layer = EnvLayer::default();
    // Which variable last set each key, for "ignored because" warnings.
    let mut set_by: BTreeMap<&'static str, String> = BTreeMap::new();

    for var in LEGACY {
        let Some(&(name, raw)) = by_upper.get(var.name) else {
            continue;
        };
        // The old daemon treated an empty value as unset.
        if raw.trim().is_empty() {
            continue;
        }
        let Some(spec) = keys::spec(var.key) else {
            continue;
        };
        let origin = format!("environment variable {name} (legacy name)");
        let converted = legacy::convert(var.conv, raw).map_err(|expected| ConfigError::InvalidValue {
            key: var.key.to_owned(),
            value: keys::show_raw(spec.kind, raw),
            expected: expected.to_owned(),
            origin: Some(origin.clone()),
        })?;
        let value = typed(spec, &converted, raw, &origin)?;
        if let Some(previous) = set_by.insert(spec.key, name.to_owned()) {
            layer.warnings.push(format!(
                "environment variable {previous} ignored: {name} also sets {} and takes precedence",
                spec.key
            ));
        }
        layer.entries.insert(spec.key.to_owned(), value);
    }

    for (upper, &(name, raw)) in &by_upper {
        if legacy::legacy_var(upper).is_some() {
            continue;
        }
        if upper == CONFIG_FILE_VAR {
            if !raw.trim().is_empty() {
                layer.config_file = Some(raw.to_owned());
            }
            continue;
        }
        if let Some((_, hint)) = UNSUPPORTED.iter().find(|(old, _)| old == upper) {
            layer.warnings.push(format!("environment variable {name} is not supported by exai and is ignored: {hint}"));
            continue;
        }
        let Some(rest) = upper.strip_prefix("EXAI_") else {
            continue;
        };
        let spec =
            rest.contains("__").then(|| rest.to_ascii_lowercase().replace("__", ".")).and_then(|k| keys::spec(&k));
        let Some(spec) = spec else {
            layer.warnings.push(format!(
                "environment variable {name} ignored: it is not a config key \
                 (expected EXAI_<SECTION>__<KEY>, see docs/CONFIG.md)"
            ));
            continue;
        };
        let origin = format!("environment variable {name}");
        let value = typed(spec, raw, raw, &origin)?;
        if let Some(previous) = set_by.insert(spec.key, name.to_owned()) {
            layer.warnings.push(format!(
                "environment variable {previous} ignored: {name} also sets {} and takes precedence",
                spec.key
            ));
        }
        layer.entries.insert(spec.key.to_owned(), value);
    }
    Ok(layer)
}

/// Types `text` for `spec`; errors show `raw` (the value as set), unless it is a secret.
pub(crate) fn typed(spec: &KeySpec, text: &str, raw: &str, origin: &str) -> Result<Value, ConfigError> {
    let origin = origin.to_owned();
    match keys::parse_str(spec.kind, text) {
        Ok(kind) => Ok(Value::new(Some(&origin), kind)),
        Err(()) => Err(ConfigError::InvalidValue {
            key: spec.key.to_owned(),
            value: keys::show_raw(spec.kind, raw),
            expected: spec.kind.expected().to_owned(),
            origin: Some(origin),
        }),
    }
}
