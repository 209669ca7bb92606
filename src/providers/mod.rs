//! Vendor HTTP layer: implementations of the `ProviderTransport` port
//! (`exai_actors::provider::transport`) over `awc`, for Moonshot Kimi, Z.ai GLM and any
//! OpenAI-compatible server (Ollama, vLLM, OpenRouter, ...).
//!
//! All three share one OpenAI-compatible core ([`openai`]: chat plain and streamed, the
//! Files API). Chat request bodies come from `exai_actors::provider::payload::chat_body`, the
//! one place the vendor body rules live (so `glm_payload_preview` shows exactly what is sent);
//! the transports add only what is not body: Kimi's `$web_search` echo loop and
//! `Idempotency-Key` ([`kimi`]), GLM's standalone web search and file purpose ([`glm`]).
//! A transport is built by the factory on its provider actor's thread (awc clients are not
//! `Send`); it keeps a pooled client and applies the timeouts of each call
//! ([`RequestTimeouts`](exai_actors::provider::types::RequestTimeouts)):
//!
//! - `connect`: TCP connect plus TLS handshake (the awc connector's timeout);
//! - `first_byte`: from the start of the request until the response head, and for a stream
//!   until its first content or reasoning delta;
//! - `idle`: the longest gap between two pieces of a flowing body (stream chunks, body reads);
//! - `total`: the whole request (the runner passes what is left of the call's budget).
//!
//! The API key is sent per request as `Authorization: Bearer <key>`; it never appears in logs,
//! errors or `Debug` output.

mod errors;
mod files;
mod glm;
mod http;
mod kimi;
mod openai;
mod response;
mod sse;

use exai_actors::provider::transport::{ProviderTransport, TransportFactory};
use std::fmt;
use std::sync::Arc;

/// Which vendor dialect a transport speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VendorKind {
    /// Moonshot Kimi: `Idempotency-Key`, `$web_search` builtin with its echo loop,
    /// `reasoning_content`, Files API with extracted content.
    Kimi,
    /// Z.ai GLM: `thinking`, the `web_search` tool, `tool_stream`, `POST /web_search`,
    /// Files API without content retrieval.
    Glm,
    /// Any OpenAI-compatible server: plain chat and the OpenAI Files API.
    OpenAiCompatible,
}

impl VendorKind {
    /// Short lower-case name (for logs and messages).
    pub fn as_str(self) -> &'static str {
        match self {
            VendorKind::Kimi => "kimi",
            VendorKind::Glm => "glm",
            VendorKind::OpenAiCompatible => "openai_compatible",
        }
    }
}

/// Default number of `$web_search` echo rounds Kimi may take for one answer.
pub const DEFAULT_KIMI_WEB_SEARCH_MAX_ROUNDS: u32 = 3;

/// How to reach one provider.
#[derive(Clone)]
pub struct TransportConfig {
    /// Provider name (for logs and messages).
    pub name: String,
    /// Vendor dialect.
    pub kind: VendorKind,
    /// Base URL up to the API version, e.g. `https://api.moonshot.ai/v1`.
    pub base_url: String,
    /// API key, sent as `Authorization: Bearer <key>` (never logged or printed).
    pub api_key: Option<String>,
    /// Extra headers sent with every request (values are never logged).
    pub extra_headers: Vec<(String, String)>,
    /// Kimi: at most this many `$web_search` echo rounds (follow-up calls) per answer.
    pub kimi_web_search_max_rounds: u32,
}

impl TransportConfig {
    /// A config with no key, no extra headers and the default Kimi round limit.
    pub fn new(name: impl Into<String>, kind: VendorKind, base_url: impl Into<String>) -> TransportConfig {
        TransportConfig {
            name: name.into(),
            kind,
            base_url: base_url.into(),
            api_key: None,
            extra_headers: Vec::new(),
            kimi_web_search_max_rounds: DEFAULT_KIMI_WEB_SEARCH_MAX_ROUNDS,
        }
    }

    /// Sets the API key.
    pub fn with_api_key(mut self, key: impl Into<String>) -> TransportConfig {
        self.api_key = Some(key.into());
        self
    }
}

impl fmt::Debug for TransportConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let header_names: Vec<&str> = self.extra_headers.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("TransportConfig")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("extra_headers", &header_names)
            .field("kimi_web_search_max_rounds", &self.kimi_web_search_max_rounds)
            .finish()
    }
}

/// A factory the provider actor calls on its own thread to build its transport.
pub fn transport_factory(cfg: TransportConfig) -> TransportFactory {
    let cfg = Arc::new(cfg);
    Arc::new(move || build_transport(&cfg))
}

/// Builds a transport for `cfg` on the current thread.
pub fn build_transport(cfg: &TransportConfig) -> Box<dyn ProviderTransport> {
    let core = http::HttpCore::new(cfg);
    match cfg.kind {
        VendorKind::Kimi => Box::new(kimi::KimiTransport::new(core, cfg.kimi_web_search_max_rounds)),
        VendorKind::Glm => Box::new(glm::GlmTransport::new(core)),
        VendorKind::OpenAiCompatible => Box::new(openai::OpenAiTransport::new(core)),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn debug_output_never_shows_the_key_or_header_values() {
        let mut cfg =
            TransportConfig::new("kimi", VendorKind::Kimi, "https://api.moonshot.ai/v1").with_api_key("sk-secret-1");
        cfg.extra_headers.push(("X-Extra-Token".into(), "tok-secret-2".into()));
        let cfg_dbg = format!("{cfg:?}");
        let core_dbg = format!("{:?}", http::HttpCore::new(&cfg));
        for dbg in [cfg_dbg, core_dbg] {
            assert!(!dbg.contains("sk-secret-1") && !dbg.contains("tok-secret-2"), "{dbg}");
            assert!(dbg.contains("<redacted>"), "{dbg}");
            assert!(dbg.to_ascii_lowercase().contains("x-extra-token"), "header names stay visible: {dbg}");
        }
        assert_eq!(cfg.kimi_web_search_max_rounds, DEFAULT_KIMI_WEB_SEARCH_MAX_ROUNDS);
    }

    #[actix_rt::test]
    async fn factory_builds_a_transport_per_call() {
        let factory =
            transport_factory(TransportConfig::new("o", VendorKind::OpenAiCompatible, "http://127.0.0.1:9/v1"));
        let t = factory();
        let limits = exai_actors::provider::types::RequestTimeouts {
            connect: std::time::Duration::from_secs(1),
            first_byte: std::time::Duration::from_secs(1),
            idle: std::time::Duration::from_secs(1),
            total: std::time::Duration::from_secs(1),
        };
        let err = t.web_search(&serde_json::json!({}), &limits).await.unwrap_err();
        assert!(matches!(err, exai_actors::provider::types::ProviderError::Unsupported(_)));
    }
}
