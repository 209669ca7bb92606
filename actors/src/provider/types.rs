//! Provider-neutral request, response and streaming types (the OpenAI-compatible chat shape
//! every supported vendor speaks), and the provider error taxonomy with its retry classes.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::time::Duration;

/// One chat message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// `system`, `user`, `assistant` or `tool`.
    pub role: String,
    /// Text, or an array of content parts (`{"type":"text"}`, `{"type":"image_url"}`).
    pub content: Value,
    /// Reasoning of an assistant message (Kimi/GLM `reasoning_content`), kept when an
    /// assistant turn is echoed back in a tool loop (Kimi's thinking models need it there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<String>,
    /// Tool calls made by an assistant message (OpenAI shape), echoed back in loops.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Value>,
    /// For `tool` messages: the call being answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// For `tool` messages: the function name (Kimi's `$web_search` echo needs it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl ChatMessage {
    /// A plain text message.
    pub fn text(role: &str, content: impl Into<String>) -> ChatMessage {
        ChatMessage {
            role: role.into(),
            content: Value::String(content.into()),
            reasoning_content: None,
            tool_calls: None,
            tool_call_id: None,
            name: None,
        }
    }
}

/// A chat completion request, already routed to one provider and one model.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ChatRequest {
    /// Canonical model name sent to the provider.
    pub model: String,
    /// The conversation.
    pub messages: Vec<ChatMessage>,
    /// Sampling temperature.
    pub temperature: Option<f64>,
    /// Output cap.
    pub max_tokens: Option<u32>,
    /// Stream the answer (SSE) and deliver chunks as they arrive.
    pub stream: bool,
    /// OpenAI `tools` array.
    pub tools: Option<Vec<Value>>,
    /// OpenAI `tool_choice`.
    pub tool_choice: Option<Value>,
    /// Extended thinking where the model supports it: `Some(true)` on, `Some(false)` off (GLM
    /// `thinking: {type: "disabled"}`), `None` the model's default.
    pub thinking: Option<bool>,
    /// Enable the vendor's web search (Kimi `$web_search` builtin, GLM `web_search` tool).
    pub web_search: bool,
    /// Extra vendor-specific top-level body fields.
    pub extra: Map<String, Value>,
    /// Idempotency key (sent as `Idempotency-Key` where the vendor honours it).
    pub idempotency_key: Option<String>,
}

/// Token usage as reported by the provider.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Prompt tokens.
    pub prompt_tokens: u64,
    /// Completion tokens.
    pub completion_tokens: u64,
    /// Total.
    pub total_tokens: u64,
}

/// A finished chat completion.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatResponse {
    /// The answer text.
    pub content: String,
    /// Reasoning/thinking text, if the model returned any.
    pub reasoning: Option<String>,
    /// Tool calls requested by the model (OpenAI shape).
    pub tool_calls: Vec<Value>,
    /// Why generation stopped.
    pub finish_reason: Option<String>,
    /// Usage.
    pub usage: Option<Usage>,
    /// Model the provider reports.
    pub model: String,
}

/// Something arriving while a streamed answer is produced.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamEvent {
    /// A piece of the answer.
    Content(String),
    /// A piece of reasoning.
    Reasoning(String),
}

/// Coarse classes that decide the retry policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// HTTP 429.
    RateLimit,
    /// Connect, first-token, stream or total timeout.
    Timeout,
    /// 401/403.
    Auth,
    /// 5xx.
    Server,
    /// Connection refused/reset, DNS, TLS, broken stream.
    Network,
    /// 4xx other than the above, malformed requests: never retried.
    Client,
    /// The provider answered something we cannot parse.
    Protocol,
    /// The vendor refuses this account (balance exhausted, account locked or suspended,
    /// quota used up): never retried; a fallback may serve instead.
    Account,
    /// Not a provider failure (cancelled, circuit open, over capacity): never retried.
    Local,
}

impl ErrorClass {
    /// Every class (the metrics pre-register one series per class and provider).
    pub const ALL: [ErrorClass; 9] = [
        ErrorClass::RateLimit,
        ErrorClass::Timeout,
        ErrorClass::Auth,
        ErrorClass::Account,
        ErrorClass::Server,
        ErrorClass::Network,
        ErrorClass::Client,
        ErrorClass::Protocol,
        ErrorClass::Local,
    ];

    /// Metrics label.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::RateLimit => "rate_limit",
            ErrorClass::Timeout => "timeout",
            ErrorClass::Auth => "auth",
            ErrorClass::Server => "server",
            ErrorClass::Network => "network",
            ErrorClass::Client => "client",
            ErrorClass::Protocol => "protocol",
            ErrorClass::Account => "account",
            ErrorClass::Local => "local",
        }
    }
}

/// Why a provider request failed. Messages never contain keys or file contents.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProviderError {
    /// 429; `retry_after` from the `Retry-After` header when given.
    #[error("rate limited (HTTP 429): {message}{}", retry_hint(.retry_after))]
    RateLimited {
        /// Server-suggested wait.
        retry_after: Option<Duration>,
        /// Provider message.
        message: String,
    },
    /// A phase ran out of time.
    #[error("timed out in phase {phase} (limit {})", secs(*.limit))]
    Timeout {
        /// `connect`, `first_byte`, `idle` or `total`.
        phase: &'static str,
        /// The limit that ran out.
        limit: Duration,
    },
    /// 401/403.
    #[error("authentication failed (HTTP {status}): {message}")]
    Auth {
        /// Status.
        status: u16,
        /// Provider message.
        message: String,
    },
    /// 5xx.
    #[error("provider server error (HTTP {status}): {message}")]
    Server {
        /// Status.
        status: u16,
        /// Provider message.
        message: String,
    },
    /// Other 4xx.
    #[error("request rejected (HTTP {status}): {message}")]
    BadRequest {
        /// Status.
        status: u16,
        /// Provider message.
        message: String,
    },
    /// The vendor refuses the account (balance exhausted, locked, suspended, quota used up),
    /// whatever HTTP status it used (Z.ai answers 429 for some): never retried.
    #[error("account problem at the provider (HTTP {status}{}): {message}", code_hint(.code))]
    Account {
        /// Status.
        status: u16,
        /// The vendor's business code or error type (`1113`, `exceeded_current_quota_error`).
        code: String,
        /// Provider message.
        message: String,
    },
    /// Transport failure.
    #[error("network error: {0}")]
    Network(String),
    /// Unparseable response or stream.
    #[error("malformed provider response: {0}")]
    Protocol(String),
    /// The caller cancelled or went away.
    #[error("cancelled")]
    Cancelled,
    /// The provider's circuit breaker is open.
    #[error("circuit open for provider {provider}; retry after {retry_after_secs}s")]
    CircuitOpen {
        /// Provider.
        provider: String,
        /// When the breaker will try again.
        retry_after_secs: u64,
    },
    /// Concurrency permits could not be had within the queue wait.
    #[error("provider {provider} is at capacity ({limit}); retry after {retry_after_secs}s")]
    OverCapacity {
        /// Provider (or `global`).
        provider: String,
        /// Which limit.
        limit: String,
        /// Suggested wait.
        retry_after_secs: u64,
    },
    /// The provider is not configured (no key) or the operation is not supported.
    #[error("{0}")]
    Unsupported(String),
}

fn code_hint(code: &str) -> String {
    if code.is_empty() {
        String::new()
    } else {
        format!(", code {code}")
    }
}

fn retry_hint(d: &Option<Duration>) -> String {
    d.map(|d| format!("; retry after {:.1}s", d.as_secs_f64())).unwrap_or_default()
}

impl ProviderError {
    /// The retry class.
    pub fn class(&self) -> ErrorClass {
        match self {
            ProviderError::RateLimited { .. } => ErrorClass::RateLimit,
            ProviderError::Timeout { .. } => ErrorClass::Timeout,
            ProviderError::Auth { .. } => ErrorClass::Auth,
            ProviderError::Server { .. } => ErrorClass::Server,
            ProviderError::BadRequest { .. } => ErrorClass::Client,
            ProviderError::Network(_) => ErrorClass::Network,
            ProviderError::Protocol(_) => ErrorClass::Protocol,
            ProviderError::Account { .. } => ErrorClass::Account,
            ProviderError::Cancelled
            | ProviderError::CircuitOpen { .. }
            | ProviderError::OverCapacity { .. }
            | ProviderError::Unsupported(_) => ErrorClass::Local,
        }
    }

    /// Does this failure count against the provider's health (circuit breaker)?
    pub fn counts_as_failure(&self) -> bool {
        matches!(
            self.class(),
            ErrorClass::RateLimit
                | ErrorClass::Timeout
                | ErrorClass::Server
                | ErrorClass::Network
                | ErrorClass::Protocol
        )
    }
}

/// The phases of a provider request, each with its own limit.
///
/// - `connect`: TCP connect plus TLS handshake;
/// - `first_byte`: from the start of a request until the response head and, for a stream, its
///   first content or reasoning delta (a thinking model's silence falls here; a non-streamed
///   answer arrives whole at its head);
/// - `idle`: the longest gap between two pieces of a body once it flows (streamed chunks, or
///   the reads of a plain body); a stream that keeps flowing is never cut by it;
/// - `total`: the whole provider call, retries and their waits included (the runner hands
///   each attempt what is left of it, so one attempt's `total` is the remaining budget).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestTimeouts {
    /// TCP/TLS connect.
    pub connect: Duration,
    /// Until the response head, and for a stream until its first delta.
    pub first_byte: Duration,
    /// Longest gap between two pieces of a flowing body.
    pub idle: Duration,
    /// The whole call.
    pub total: Duration,
}

impl RequestTimeouts {
    /// The same limits with `total` cut to `left` (what remains of a call's budget).
    pub fn with_total(self, left: Duration) -> RequestTimeouts {
        RequestTimeouts { total: self.total.min(left), ..self }
    }

    /// The limit of a phase by name (`connect`, `first_byte`, `idle`, `total`).
    pub fn limit(&self, phase: &str) -> Option<Duration> {
        match phase {
            "connect" => Some(self.connect),
            "first_byte" => Some(self.first_byte),
            "idle" => Some(self.idle),
            "total" => Some(self.total),
            _ => None,
        }
    }

    /// `connect 10s, first_byte 180s, idle 120s, total 300s` (for error messages).
    pub fn describe(&self) -> String {
        format!(
            "connect {}, first_byte {}, idle {}, total {}",
            secs(self.connect),
            secs(self.first_byte),
            secs(self.idle),
            secs(self.total)
        )
    }
}

/// `12s` or `1.5s`.
pub fn secs(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

/// A file stored at a provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderFile {
    /// Provider's file id.
    pub id: String,
    /// File name.
    pub filename: String,
    /// Size in bytes.
    pub bytes: u64,
    /// Purpose.
    pub purpose: String,
    /// Creation time (Unix seconds) when known.
    pub created_at: Option<i64>,
    /// sha256 of the bytes this process sent, when it uploaded the file itself (hashed while
    /// streaming, so the identity is that of exactly what the provider received).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}
