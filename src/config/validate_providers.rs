//! Validation of `[retry]`, `[providers.*]` and `[routing]`: URLs, limits, timeouts,
//! breaker thresholds, custom provider and model names, and that every model named in
//! `fallback` or `[routing]` exists (and routing models belong to the right vendor).
//!
//! Errors follow `validate.rs`: they name the key (`providers.custom[0].base_url` for items
//! of the array), the value (never an API key; URLs with any password hidden) and what is
//! allowed.

use std::collections::HashMap;

use super::error::ConfigError;
use super::providers::{ProviderKind, ProviderView};
use super::secret::redact_url;
use super::validate::Checker;

/// Longest delay accepted in `[retry]` (10 minutes).
pub const MAX_RETRY_DELAY_MS: u64 = 600_000;
/// Most attempts accepted per retry class.
pub const MAX_RETRY_ATTEMPTS: u64 = 10;
/// Names the built-in vendors use; custom providers may not take them.
const RESERVED_NAMES: &[&str] = &["kimi", "glm"];

fn is_provider_name(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

fn is_env_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

fn is_http_url(s: &str) -> bool {
    let lower = s.to_ascii_lowercase();
    let rest = lower.strip_prefix("http://").or_else(|| lower.strip_prefix("https://"));
    rest.is_some_and(|r| !r.is_empty() && !r.starts_with('/')) && !s.chars().any(char::is_whitespace)
}

fn quoted(s: &str) -> Option<String> {
    Some(format!("{s:?}"))
}

impl Checker<'_> {
    pub(super) fn retry(&self) -> Result<(), ConfigError> {
        let r = &self.cfg.retry;
        let classes = [
            ("rate_limit", r.rate_limit_attempts, r.rate_limit_base_ms, r.rate_limit_max_ms),
            ("timeout", r.timeout_attempts, r.timeout_base_ms, r.timeout_max_ms),
            ("server", r.server_attempts, r.server_base_ms, r.server_max_ms),
            ("network", r.network_attempts, r.network_base_ms, r.network_max_ms),
        ];
        for (class, attempts, base, max) in classes {
            self.range(&format!("retry.{class}_attempts"), u64::from(attempts), 1, MAX_RETRY_ATTEMPTS)?;
            self.range(&format!("retry.{class}_base_ms"), base, 0, MAX_RETRY_DELAY_MS)?;
            if max < base || max > MAX_RETRY_DELAY_MS {
                return Err(self.fail(
                    &format!("retry.{class}_max_ms"),
                    Some(max.to_string()),
                    format!("an integer {base}..={MAX_RETRY_DELAY_MS} (at least retry.{class}_base_ms)"),
                ));
            }
        }
        self.range("retry.retry_after_max_ms", r.retry_after_max_ms, 0, MAX_RETRY_DELAY_MS)
    }

    pub(super) fn providers(&self) -> Result<(), ConfigError> {
        let views = self.cfg.provider_views();
        self.custom_names(&views)?;
        let models = self.model_owners(&views)?;
        for v in &views {
            self.provider(v, &models)?;
        }
        Ok(())
    }

    fn custom_names(&self, views: &[ProviderView<'_>]) -> Result<(), ConfigError> {
        let mut seen: Vec<&str> = Vec::new();
        for v in views.iter().filter(|v| v.kind == ProviderKind::OpenAiCompatible) {
            let key = format!("{}.name", v.key);
            if !is_provider_name(v.name) {
                return Err(self.fail(&key, quoted(v.name), "a name of lower-case letters, digits, '_' and '-'"));
            }
            if RESERVED_NAMES.contains(&v.name) {
                return Err(self.fail(&key, quoted(v.name), "a name other than kimi and glm"));
            }
            if seen.contains(&v.name) {
                return Err(self.fail(&key, quoted(v.name), "a name no other [[providers.custom]] entry uses"));
            }
            seen.push(v.name);
        }
        Ok(())
    }

    /// Model name or alias → provider, built-ins first; custom models must not reuse a name.
    fn model_owners(&self, views: &[ProviderView<'_>]) -> Result<HashMap<String, String>, ConfigError> {
        let mut owners: HashMap<String, String> = HashMap::new();
        for m in exai_actors::catalog::builtin_models() {
            for n in std::iter::once(&m.name).chain(&m.aliases) {
                owners.insert(n.clone(), m.provider.clone());
            }
        }
        for v in views {
            if v.kind == ProviderKind::OpenAiCompatible && v.models.is_empty() {
                return Err(self.fail(
                    &format!("{}.models", v.key),
                    Some("[]".into()),
                    "at least one [[providers.custom.models]] entry",
                ));
            }
            for (j, m) in v.models.iter().enumerate() {
                let key = format!("{}.models[{j}]", v.key);
                self.at_least_one(&format!("{key}.context_window"), u64::from(m.context_window))?;
                self.at_least_one(&format!("{key}.max_output_tokens"), u64::from(m.max_output_tokens))?;
                for (field, price) in [("input_price", m.input_price), ("output_price", m.output_price)] {
                    if let Some(p) = price.filter(|p| !(p.is_finite() && *p >= 0.0)) {
                        return Err(self.fail(
                            &format!("{key}.{field}"),
                            Some(p.to_string()),
                            "a price ≥ 0 (USD per million tokens)",
                        ));
                    }
                }
                let names = std::iter::once((format!("{key}.name"), &m.name))
                    .chain(m.aliases.iter().map(|a| (format!("{key}.aliases"), a)));
                for (field, name) in names {
                    if name.is_empty() || name.chars().any(char::is_whitespace) {
                        return Err(self.fail(&field, quoted(name), "a model name, not empty, without spaces"));
                    }
                    if let Some(owner) = owners.insert(name.clone(), v.name.to_owned()) {
                        // A built-in vendor may override its own catalogue models by name.
                        if v.kind != ProviderKind::OpenAiCompatible && owner == v.name {
                            continue;
                        }
                        return Err(self.fail(
                            &field,
                            quoted(name),
                            format!("a model name not already used (provider {owner} has it)"),
                        ));
                    }
                }
            }
        }
        Ok(owners)
    }

    fn provider(&self, v: &ProviderView<'_>, models: &HashMap<String, String>) -> Result<(), ConfigError> {
        let key = |field: &str| format!("{}.{field}", v.key);
        if !is_http_url(v.base_url) {
            return Err(self.fail(
                &key("base_url"),
                quoted(&redact_url(v.base_url)),
                "a URL starting with http:// or https://",
            ));
        }
        if let Some(env) = v.api_key_env.filter(|e| !is_env_name(e)) {
            return Err(self.fail(
                &key("api_key_env"),
                quoted(env),
                "an environment variable name ([A-Za-z_][A-Za-z0-9_]*)",
            ));
        }
        if v.api_key.is_some_and(|k| k.is_empty() || k.expose().chars().any(char::is_whitespace)) {
            return Err(self.fail(&key("api_key"), None, "a key that is not empty and has no spaces"));
        }
        let global = self.cfg.limits.provider_global_max_inflight;
        if v.max_inflight == 0 || v.max_inflight > global {
            return Err(self.fail(
                &key("max_inflight"),
                Some(v.max_inflight.to_string()),
                format!("an integer 1..={global} (at most limits.provider_global_max_inflight)"),
            ));
        }
        self.at_least_one(&key("connect_timeout_secs"), v.connect_timeout_secs)?;
        self.at_least_one(&key("total_timeout_secs"), v.total_timeout_secs)?;
        for (name, value) in
            [("first_byte_timeout_secs", v.first_byte_timeout_secs), ("idle_timeout_secs", v.idle_timeout_secs)]
        {
            if value == 0 || value > v.total_timeout_secs {
                return Err(self.fail(
                    &key(name),
                    Some(value.to_string()),
                    format!("an integer 1..={} (at most total_timeout_secs)", v.total_timeout_secs),
                ));
            }
        }
        self.names(&key("fallback"), v.fallback, "model names, not empty, without spaces")?;
        if let Some(unknown) = v.fallback.iter().find(|m| !models.contains_key(m.as_str())) {
            return Err(self.fail(&key("fallback"), quoted(unknown), "names of known models (built-in or custom)"));
        }
        let ratio = v.breaker_failure_ratio;
        if !(ratio > 0.0 && ratio <= 1.0) {
            return Err(self.fail(&key("breaker_failure_ratio"), Some(ratio.to_string()), "a number > 0 and <= 1"));
        }
        self.at_least_one(&key("breaker_min_requests"), u64::from(v.breaker_min_requests))?;
        self.at_least_one(&key("breaker_consecutive_failures"), u64::from(v.breaker_consecutive_failures))?;
        self.at_least_one(&key("breaker_window_secs"), v.breaker_window_secs)?;
        self.at_least_one(&key("breaker_open_secs"), v.breaker_open_secs)?;
        self.at_least_one(&key("breaker_half_open_probes"), u64::from(v.breaker_half_open_probes))
    }

    pub(super) fn routing(&self) -> Result<(), ConfigError> {
        let owners = self.model_owners(&self.cfg.provider_views())?;
        let r = &self.cfg.routing;
        let rules = [
            ("routing.default_model", &r.default_model, None),
            ("routing.kimi_default_model", &r.kimi_default_model, Some("kimi")),
            ("routing.kimi_speed_model", &r.kimi_speed_model, Some("kimi")),
            ("routing.kimi_quality_model", &r.kimi_quality_model, Some("kimi")),
            ("routing.glm_speed_model", &r.glm_speed_model, Some("glm")),
            ("routing.glm_quality_model", &r.glm_quality_model, Some("glm")),
        ];
        for (key, model, vendor) in rules {
            let owner = owners.get(model.as_str()).map(String::as_str);
            let ok = match vendor {
                None => model == "auto" || owner.is_some(),
                Some(v) => owner == Some(v),
            };
            if !ok {
                let expected = match vendor {
                    None => "\"auto\" or the name of a known model (built-in or custom)".to_owned(),
                    Some(v) => format!("the name of a model served by {v}"),
                };
                return Err(self.fail(key, quoted(model), expected));
            }
        }
        Ok(())
    }
}
