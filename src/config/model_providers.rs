//! The `[providers]` part of the typed configuration: the two built-in vendors
//! (`[providers.kimi]`, `[providers.glm]`) and any number of further OpenAI-compatible
//! providers (`[[providers.custom]]`, each with its `[[providers.custom.models]]`).
//!
//! The two vendor sections share one struct, [`VendorConfig`], whose defaults come from a
//! marker type ([`Kimi`], [`Glm`]): a section that sets only some keys keeps the vendor's own
//! defaults for the rest. Custom providers never hold their key in the file: `api_key_env`
//! names the environment variable that does, and the loader reads it into
//! [`CustomProviderConfig::api_key`].

use std::marker::PhantomData;

use serde::{Deserialize, Serialize};

use super::secret::Secret;

/// Defaults that differ between the built-in vendors.
pub trait VendorDefaults {
    /// Provider id (`kimi`, `glm`).
    const NAME: &'static str;
    /// Base URL of the vendor's OpenAI-compatible API.
    const BASE_URL: &'static str;
    /// Requests in flight at once.
    const MAX_INFLIGHT: usize;
}

/// Moonshot Kimi.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Kimi;

impl VendorDefaults for Kimi {
    const NAME: &'static str = "kimi";
    const BASE_URL: &'static str = "https://api.moonshot.ai/v1";
    const MAX_INFLIGHT: usize = 6;
}

/// Z.ai GLM.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Glm;

impl VendorDefaults for Glm {
    const NAME: &'static str = "glm";
    const BASE_URL: &'static str = "https://api.z.ai/api/paas/v4";
    const MAX_INFLIGHT: usize = 4;
}

/// Connect timeout default, seconds.
pub const DEFAULT_CONNECT_TIMEOUT_SECS: u64 = 10;
/// Time to the first byte (a non-streamed answer, or a stream's first delta) default, seconds:
/// thinking models are silent for tens of seconds, minutes on hard prompts.
pub const DEFAULT_FIRST_BYTE_TIMEOUT_SECS: u64 = 180;
/// Longest gap between two chunks of a flowing answer default, seconds.
pub const DEFAULT_IDLE_TIMEOUT_SECS: u64 = 120;
/// Whole provider call (retries included) default, seconds: the old daemon's 300 s.
pub const DEFAULT_TOTAL_TIMEOUT_SECS: u64 = 300;

/// `[providers]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProvidersConfig {
    /// Moonshot Kimi.
    pub kimi: VendorConfig<Kimi>,
    /// Z.ai GLM.
    pub glm: VendorConfig<Glm>,
    /// Further OpenAI-compatible providers (config file only).
    pub custom: Vec<CustomProviderConfig>,
}

/// `[providers.kimi]` / `[providers.glm]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, bound = "")]
pub struct VendorConfig<V: VendorDefaults> {
    /// Whether the provider is used at all.
    pub enabled: bool,
    /// Base URL of the API (`http://` or `https://`).
    pub base_url: String,
    /// The API key (also from the vendor's usual environment variables).
    pub api_key: Option<Secret>,
    /// Requests in flight at once (≤ `limits.provider_global_max_inflight`).
    pub max_inflight: usize,
    /// TCP/TLS connect timeout, seconds.
    pub connect_timeout_secs: u64,
    /// Until the response head, and for a stream its first delta, seconds (≤ total).
    pub first_byte_timeout_secs: u64,
    /// Longest gap between two pieces of a flowing answer, seconds (≤ total).
    pub idle_timeout_secs: u64,
    /// The whole provider call, retries and their waits included, seconds.
    pub total_timeout_secs: u64,
    /// Models tried, in order, when this provider is open-circuited or at capacity.
    pub fallback: Vec<String>,
    /// Circuit breaker: failure ratio that opens it (0 < ratio ≤ 1).
    pub breaker_failure_ratio: f64,
    /// Circuit breaker: requests within the window before the ratio applies.
    pub breaker_min_requests: u32,
    /// Circuit breaker: failures in a row that open it.
    pub breaker_consecutive_failures: u32,
    /// Circuit breaker: sliding window, seconds.
    pub breaker_window_secs: u64,
    /// Circuit breaker: how long it stays open before probing, seconds.
    pub breaker_open_secs: u64,
    /// Circuit breaker: probe calls in flight while half-open (cluster-wide in cluster mode).
    pub breaker_half_open_probes: u32,
    /// Requests per minute (token bucket; cluster-wide in cluster mode). 0 = no limit.
    pub rpm: u64,
    /// Tokens per minute (prompt + completion, debited when a reply arrives; requests wait
    /// while the bucket is in debt; cluster-wide in cluster mode). 0 = no limit.
    pub tpm: u64,
    /// Models added to the shipped catalogue for this vendor, or overriding one of its models
    /// by name (`[[providers.kimi.models]]`; config file only).
    pub models: Vec<CustomModelConfig>,
    #[serde(skip)]
    vendor: PhantomData<V>,
}

impl<V: VendorDefaults> Default for VendorConfig<V> {
    fn default() -> Self {
        VendorConfig {
            enabled: true,
            base_url: V::BASE_URL.into(),
            api_key: None,
            max_inflight: V::MAX_INFLIGHT,
            connect_timeout_secs: DEFAULT_CONNECT_TIMEOUT_SECS,
            first_byte_timeout_secs: DEFAULT_FIRST_BYTE_TIMEOUT_SECS,
            idle_timeout_secs: DEFAULT_IDLE_TIMEOUT_SECS,
            total_timeout_secs: DEFAULT_TOTAL_TIMEOUT_SECS,
            fallback: Vec::new(),
            breaker_failure_ratio: 0.5,
            breaker_min_requests: 10,
            breaker_consecutive_failures: 5,
            breaker_window_secs: 60,
            breaker_open_secs: 30,
            breaker_half_open_probes: 2,
            rpm: 0,
            tpm: 0,
            models: Vec::new(),
            vendor: PhantomData,
        }
    }
}

/// One `[[providers.custom]]` entry: an OpenAI-compatible provider (Ollama, vLLM,
/// OpenRouter, …).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CustomProviderConfig {
    /// Provider id: unique, `[a-z0-9_-]+`, not `kimi` or `glm`.
    pub name: String,
    /// Whether the provider is used at all.
    pub enabled: bool,
    /// Base URL of its OpenAI-compatible API (`http://` or `https://`).
    pub base_url: String,
    /// Name of the environment variable holding the API key (unset = no key, e.g. a local
    /// server).
    pub api_key_env: Option<String>,
    /// The key, read from `api_key_env` while loading; never read from or written to the file.
    #[serde(skip)]
    pub api_key: Option<Secret>,
    /// Requests in flight at once.
    pub max_inflight: usize,
    /// TCP/TLS connect timeout, seconds.
    pub connect_timeout_secs: u64,
    /// Until the response head, and for a stream its first delta, seconds (≤ total).
    pub first_byte_timeout_secs: u64,
    /// Longest gap between two pieces of a flowing answer, seconds (≤ total).
    pub idle_timeout_secs: u64,
    /// The whole provider call, retries and their waits included, seconds.
    pub total_timeout_secs: u64,
    /// Models tried, in order, when this provider is open-circuited or at capacity.
    pub fallback: Vec<String>,
    /// Circuit breaker: failure ratio that opens it.
    pub breaker_failure_ratio: f64,
    /// Circuit breaker: requests within the window before the ratio applies.
    pub breaker_min_requests: u32,
    /// Circuit breaker: failures in a row that open it.
    pub breaker_consecutive_failures: u32,
    /// Circuit breaker: sliding window, seconds.
    pub breaker_window_secs: u64,
    /// Circuit breaker: how long it stays open, seconds.
    pub breaker_open_secs: u64,
    /// Circuit breaker: probe calls in flight while half-open (cluster-wide in cluster mode).
    pub breaker_half_open_probes: u32,
    /// Requests per minute (token bucket; cluster-wide in cluster mode). 0 = no limit.
    pub rpm: u64,
    /// Tokens per minute (prompt + completion, debited when a reply arrives; requests wait
    /// while the bucket is in debt; cluster-wide in cluster mode). 0 = no limit.
    pub tpm: u64,
    /// The models it serves (at least one).
    pub models: Vec<CustomModelConfig>,
}

impl Default for CustomProviderConfig {
    fn default() -> Self {
        CustomProviderConfig {
            name: String::new(),
            enabled: true,
            base_url: String::new(),
            api_key_env: None,
            api_key: None,
            max_inflight: 4,
            connect_timeout_secs: DEFAULT_CONNECT_TIMEOUT_SECS,
            first_byte_timeout_secs: DEFAULT_FIRST_BYTE_TIMEOUT_SECS,
            idle_timeout_secs: DEFAULT_IDLE_TIMEOUT_SECS,
            total_timeout_secs: DEFAULT_TOTAL_TIMEOUT_SECS,
            fallback: Vec::new(),
            breaker_failure_ratio: 0.5,
            breaker_min_requests: 10,
            breaker_consecutive_failures: 5,
            breaker_window_secs: 60,
            breaker_open_secs: 30,
            breaker_half_open_probes: 2,
            rpm: 0,
            tpm: 0,
            models: Vec::new(),
        }
    }
}

/// One `[[providers.custom.models]]` (or `[[providers.kimi.models]]`, `[[providers.glm.models]]`)
/// entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CustomModelConfig {
    /// Model name sent to the provider (unique across all providers).
    pub name: String,
    /// Other names that resolve to it.
    pub aliases: Vec<String>,
    /// Context window, tokens.
    pub context_window: u32,
    /// Largest output, tokens.
    pub max_output_tokens: u32,
    /// Accepts image input.
    pub vision: bool,
    /// Supports tool calling.
    pub tools: bool,
    /// Returns reasoning/thinking output.
    pub thinking: bool,
    /// Vendor web search inside chat.
    pub web_search: bool,
    /// Input tokens, USD per million (unset: cost not reported).
    pub input_price: Option<f64>,
    /// Output tokens, USD per million (unset: cost not reported).
    pub output_price: Option<f64>,
}

impl Default for CustomModelConfig {
    fn default() -> Self {
        CustomModelConfig {
            name: String::new(),
            aliases: Vec::new(),
            context_window: 131_072,
            max_output_tokens: 8_192,
            vision: false,
            tools: false,
            thinking: false,
            web_search: false,
            input_price: None,
            output_price: None,
        }
    }
}
