//! Typed errors of the core and their stable wire codes.
//!
//! [`ToolError`] is what a tool call can fail with. Each variant has a stable upper-case code
//! (the legacy protocol's `error.code`, the MCP tool-error text prefix, the tool-call log's
//! `error_code` and a metrics label) so every protocol reports the same failure the same way.

use serde_json::{json, Value};

/// Why a tool call failed.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum ToolError {
    /// No tool with this name (after suffix normalisation).
    #[error("unknown tool '{name}'")]
    NotFound {
        /// The requested name.
        name: String,
    },
    /// An argument failed schema validation.
    #[error("invalid argument '{field}': {message}")]
    InvalidArguments {
        /// JSON pointer-ish path of the offending field (`prompt`, `files/0`), or `arguments`.
        field: String,
        /// What is wrong and what is allowed.
        message: String,
    },
    /// A capacity limit was reached; retry later.
    #[error("{message}; retry after {retry_after_secs}s")]
    OverCapacity {
        /// Which limit.
        message: String,
        /// Suggested wait.
        retry_after_secs: u64,
    },
    /// The call ran past its timeout and was stopped.
    #[error("tool '{tool}' exceeded its {secs}s timeout")]
    Timeout {
        /// Tool name.
        tool: String,
        /// The timeout that applied.
        secs: u64,
    },
    /// The client cancelled the call (or went away).
    #[error("call cancelled: {reason}")]
    Cancelled {
        /// Why.
        reason: String,
    },
    /// The server is shutting down and accepts no new calls.
    #[error("server is shutting down; retry on another node or after restart")]
    ShuttingDown,
    /// A provider failed (after retries where they apply).
    #[error("provider error ({provider}): {message}")]
    Provider {
        /// Provider name.
        provider: String,
        /// What went wrong (never includes keys or file contents).
        message: String,
    },
    /// A provider refused for now and said when to come back (a `Retry-After` longer than
    /// exai waits, or than the call's budget allows): reported at once, with `retry_after`.
    #[error("provider error ({provider}): {message}; retry after {retry_after_secs}s")]
    ProviderRetryLater {
        /// Provider id.
        provider: String,
        /// The vendor's message (secrets masked).
        message: String,
        /// The vendor's `Retry-After`, rounded up.
        retry_after_secs: u64,
    },
    /// A provider request ran out of time in one of its phases (connect, first_byte, idle,
    /// total), named in the message with every phase's limit.
    #[error("provider {provider} {message}")]
    ProviderTimeout {
        /// Provider id.
        provider: String,
        /// Which phase and the limits.
        message: String,
    },
    /// A dependency (store, provider breaker) is unavailable.
    #[error("service unavailable: {0}")]
    Unavailable(String),
    /// The tool failed while executing.
    #[error("tool execution failed: {0}")]
    Execution(String),
    /// A bug or an unexpected internal condition.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ToolError {
    /// Stable code for the wire, the log and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            ToolError::NotFound { .. } => "TOOL_NOT_FOUND",
            ToolError::InvalidArguments { .. } => "VALIDATION_ERROR",
            ToolError::OverCapacity { .. } => "OVER_CAPACITY",
            ToolError::Timeout { .. } => "TIMEOUT",
            ToolError::Cancelled { .. } => "CANCELLED",
            ToolError::ShuttingDown => "SERVICE_UNAVAILABLE",
            ToolError::Provider { .. } | ToolError::ProviderRetryLater { .. } => "PROVIDER_ERROR",
            ToolError::ProviderTimeout { .. } => "TIMEOUT",
            ToolError::Unavailable(_) => "SERVICE_UNAVAILABLE",
            ToolError::Execution(_) => "TOOL_EXECUTION_ERROR",
            ToolError::Internal(_) => "INTERNAL_ERROR",
        }
    }

    /// Suggested retry delay, if the failure is transient.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            ToolError::OverCapacity { retry_after_secs, .. }
            | ToolError::ProviderRetryLater { retry_after_secs, .. } => Some(*retry_after_secs),
            _ => None,
        }
    }

    /// The provider a provider failure came from (stored with the tool call, so error counts
    /// per provider see it).
    pub fn provider(&self) -> Option<&str> {
        match self {
            ToolError::Provider { provider, .. }
            | ToolError::ProviderRetryLater { provider, .. }
            | ToolError::ProviderTimeout { provider, .. } => Some(provider),
            _ => None,
        }
    }

    /// Structured details for the wire (`error.details` / `structuredContent.error`).
    pub fn to_json(&self) -> Value {
        let mut v = json!({ "code": self.code(), "message": self.to_string() });
        if let Some(r) = self.retry_after_secs() {
            v["retry_after"] = json!(r);
        }
        if let ToolError::InvalidArguments { field, .. } = self {
            v["field"] = json!(field);
        }
        if let Some(p) = self.provider() {
            v["provider"] = json!(p);
        }
        v
    }
}
