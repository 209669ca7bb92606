//! Resolved provider settings: what the provider actors, limits and the catalogue need, one
//! [`ProviderSettings`] per configured provider, built by [`Config::provider_configs`].
//!
//! The API key is already resolved (from `[providers.<vendor>].api_key` and the vendor's old
//! environment variables, or for custom providers from the variable `api_key_env` names) and
//! stays a [`Secret`]. Durations are typed; breaker and retry settings come as the core's
//! own [`BreakerConfig`] and [`RetryPolicy`].

use std::time::Duration;

use exai_actors::catalog::{builtin_models, merge_models, Capabilities, ModelEntry, ProviderInfo};
use exai_actors::provider::breaker::BreakerConfig;
use exai_actors::provider::retry::RetryPolicy;
use exai_actors::provider::types::RequestTimeouts;
use serde::Serialize;

use super::model::Config;
use super::model_providers::{CustomModelConfig, VendorConfig, VendorDefaults};
use super::secret::Secret;

/// Which API dialect a provider speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum ProviderKind {
    /// Moonshot Kimi.
    #[serde(rename = "kimi")]
    Kimi,
    /// Z.ai GLM.
    #[serde(rename = "glm")]
    Glm,
    /// Any other OpenAI-compatible API.
    #[serde(rename = "openai-compatible")]
    OpenAiCompatible,
}

impl ProviderKind {
    /// `kimi`, `glm` or `openai-compatible`.
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Kimi => "kimi",
            ProviderKind::Glm => "glm",
            ProviderKind::OpenAiCompatible => "openai-compatible",
        }
    }
}

/// Everything about one provider, resolved from the configuration.
#[derive(Debug, Clone)]
pub struct ProviderSettings {
    /// Provider id (`kimi`, `glm`, or a custom provider's name).
    pub name: String,
    /// API dialect.
    pub kind: ProviderKind,
    /// Whether it is enabled (disabled providers are listed so that their models can be
    /// reported as unavailable rather than unknown).
    pub enabled: bool,
    /// Base URL without a trailing slash.
    pub base_url: String,
    /// The API key, if configured. Never log it.
    pub api_key: Option<Secret>,
    /// Requests in flight at once.
    pub max_inflight: usize,
    /// Connect, request, first-token and stream timeouts.
    pub timeouts: RequestTimeouts,
    /// Circuit breaker thresholds.
    pub breaker: BreakerConfig,
    /// Retry policy (`[retry]`, shared by all providers).
    pub retry: RetryPolicy,
    /// Fallback models, in order.
    pub fallback: Vec<String>,
    /// Requests per minute (0 = no limit).
    pub rpm: u64,
    /// Tokens per minute (0 = no limit).
    pub tpm: u64,
    /// Models declared in the config for this provider (for the built-in vendors: additions to
    /// and overrides of the shipped catalogue, [`builtin_models`]).
    pub models: Vec<ModelEntry>,
}

impl ProviderSettings {
    /// Whether calls may go to it: the built-in vendors need a key; a custom provider
    /// without one (Ollama, vLLM: no `api_key_env`) is called without `Authorization`.
    pub fn usable(&self) -> bool {
        self.api_key.is_some() || self.kind == ProviderKind::OpenAiCompatible
    }

    /// The catalogue entry (no secrets).
    pub fn info(&self) -> ProviderInfo {
        ProviderInfo {
            name: self.name.clone(),
            kind: self.kind.as_str().into(),
            base_url: self.base_url.clone(),
            api_key_configured: self.usable(),
            files_api: matches!(self.kind, ProviderKind::Kimi | ProviderKind::Glm),
            web_search_endpoint: self.kind == ProviderKind::Glm,
        }
    }
}

/// The provider-wide limits from `[limits]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProviderLimits {
    /// Provider requests in flight across all providers.
    pub global_max_inflight: usize,
    /// How long a call may wait for permits before OVER_CAPACITY.
    pub queue_wait: Duration,
}

/// A borrowed view of one provider section, shared by validation and resolution.
pub(crate) struct ProviderView<'a> {
    /// Dotted key prefix for messages: `providers.kimi`, `providers.custom[0]`.
    pub key: String,
    pub name: &'a str,
    pub kind: ProviderKind,
    pub enabled: bool,
    pub base_url: &'a str,
    pub api_key: Option<&'a Secret>,
    pub api_key_env: Option<&'a str>,
    pub max_inflight: usize,
    pub connect_timeout_secs: u64,
    pub first_byte_timeout_secs: u64,
    pub idle_timeout_secs: u64,
    pub total_timeout_secs: u64,
    pub fallback: &'a [String],
    pub breaker_failure_ratio: f64,
    pub breaker_min_requests: u32,
    pub breaker_consecutive_failures: u32,
    pub breaker_window_secs: u64,
    pub breaker_open_secs: u64,
    pub breaker_half_open_probes: u32,
    pub rpm: u64,
    pub tpm: u64,
    pub models: &'a [CustomModelConfig],
}

fn vendor_view<V: VendorDefaults>(v: &VendorConfig<V>, kind: ProviderKind) -> ProviderView<'_> {
    ProviderView {
        key: format!("providers.{}", V::NAME),
        name: V::NAME,
        kind,
        enabled: v.enabled,
        base_url: &v.base_url,
        api_key: v.api_key.as_ref(),
        api_key_env: None,
        max_inflight: v.max_inflight,
        connect_timeout_secs: v.connect_timeout_secs,
        first_byte_timeout_secs: v.first_byte_timeout_secs,
        idle_timeout_secs: v.idle_timeout_secs,
        total_timeout_secs: v.total_timeout_secs,
        fallback: &v.fallback,
        breaker_failure_ratio: v.breaker_failure_ratio,
        breaker_min_requests: v.breaker_min_requests,
        breaker_consecutive_failures: v.breaker_consecutive_failures,
        breaker_window_secs: v.breaker_window_secs,
        breaker_open_secs: v.breaker_open_secs,
        breaker_half_open_probes: v.breaker_half_open_probes,
        rpm: v.rpm,
        tpm: v.tpm,
        models: &v.models,
    }
}

impl ProviderView<'_> {
    fn models(&self) -> Vec<ModelEntry> {
        self.models
            .iter()
            .map(|m| ModelEntry {
                name: m.name.clone(),
                aliases: m.aliases.clone(),
                provider: self.name.to_owned(),
                context_window: m.context_window,
                max_output_tokens: m.max_output_tokens,
                capabilities: Capabilities {
                    vision: m.vision,
                    tools: m.tools,
                    thinking: m.thinking,
                    web_search: m.web_search,
                },
                input_price: m.input_price,
                output_price: m.output_price,
            })
            .collect()
    }

    fn resolve(&self, retry: &RetryPolicy) -> ProviderSettings {
        ProviderSettings {
            name: self.name.to_owned(),
            kind: self.kind,
            enabled: self.enabled,
            base_url: self.base_url.trim_end_matches('/').to_owned(),
            api_key: self.api_key.cloned(),
            max_inflight: self.max_inflight,
            timeouts: RequestTimeouts {
                connect: Duration::from_secs(self.connect_timeout_secs),
                first_byte: Duration::from_secs(self.first_byte_timeout_secs),
                idle: Duration::from_secs(self.idle_timeout_secs),
                total: Duration::from_secs(self.total_timeout_secs),
            },
            breaker: BreakerConfig {
                failure_ratio: self.breaker_failure_ratio,
                min_requests: self.breaker_min_requests,
                consecutive_failures: self.breaker_consecutive_failures,
                window: Duration::from_secs(self.breaker_window_secs),
                open_for: Duration::from_secs(self.breaker_open_secs),
                half_open_probes: self.breaker_half_open_probes,
            },
            retry: retry.clone(),
            fallback: self.fallback.to_vec(),
            rpm: self.rpm,
            tpm: self.tpm,
            models: self.models(),
        }
    }
}

impl Config {
    /// Views of every provider section: Kimi, GLM, then the custom ones in file order.
    pub(crate) fn provider_views(&self) -> Vec<ProviderView<'_>> {
        let p = &self.providers;
        let mut out = vec![vendor_view(&p.kimi, ProviderKind::Kimi), vendor_view(&p.glm, ProviderKind::Glm)];
        for (i, c) in p.custom.iter().enumerate() {
            out.push(ProviderView {
                key: format!("providers.custom[{i}]"),
                name: &c.name,
                kind: ProviderKind::OpenAiCompatible,
                enabled: c.enabled,
                base_url: &c.base_url,
                api_key: c.api_key.as_ref(),
                api_key_env: c.api_key_env.as_deref(),
                max_inflight: c.max_inflight,
                connect_timeout_secs: c.connect_timeout_secs,
                first_byte_timeout_secs: c.first_byte_timeout_secs,
                idle_timeout_secs: c.idle_timeout_secs,
                total_timeout_secs: c.total_timeout_secs,
                fallback: &c.fallback,
                breaker_failure_ratio: c.breaker_failure_ratio,
                breaker_min_requests: c.breaker_min_requests,
                breaker_consecutive_failures: c.breaker_consecutive_failures,
                breaker_window_secs: c.breaker_window_secs,
                breaker_open_secs: c.breaker_open_secs,
                breaker_half_open_probes: c.breaker_half_open_probes,
                rpm: c.rpm,
                tpm: c.tpm,
                models: &c.models,
            });
        }
        out
    }

    /// Every configured provider, resolved: Kimi, GLM, then the custom providers in file
    /// order (disabled ones included, with `enabled: false`).
    pub fn provider_configs(&self) -> Vec<ProviderSettings> {
        let retry = RetryPolicy::from(&self.retry);
        self.provider_views().iter().map(|v| v.resolve(&retry)).collect()
    }

    /// The provider-wide limits.
    pub fn provider_limits(&self) -> ProviderLimits {
        ProviderLimits {
            global_max_inflight: self.limits.provider_global_max_inflight,
            queue_wait: Duration::from_millis(self.limits.provider_queue_wait_ms),
        }
    }

    /// The model catalogue's entries: the shipped catalogue, with `[[providers.<vendor>.models]]`
    /// added or overriding a model of the same name, then the custom providers' models.
    pub fn model_entries(&self) -> Vec<ModelEntry> {
        let configured: Vec<ModelEntry> = self.provider_views().iter().flat_map(ProviderView::models).collect();
        merge_models(builtin_models(), configured)
    }
}
