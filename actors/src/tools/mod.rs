//! Tools: the trait every tool implements, its inputs and outputs, and the registry.
//!
//! A tool is a `Send + Sync` object with a [`ToolSpec`] (name, description, JSON Schema of its
//! input) and a `call` that returns a local (non-`Send`) future: calls run on the worker thread
//! of the session that received them, next to the connection, with no thread hop. Dropping the
//! future cancels the call (and with it any provider HTTP request it was awaiting).

pub mod ai;
pub mod builtin;
pub mod files;
pub mod registry;

use crate::env::ToolEnv;
use crate::error::ToolError;
use futures_util::future::LocalBoxFuture;
use serde::Serialize;
use serde_json::{json, Map, Value};
use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;

/// How a tool is scheduled and which timeout applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolKind {
    /// Needs no model; answers from local state.
    Builtin,
    /// One provider round (chat-like); simple-tool timeout.
    Simple,
    /// Multi-step workflow; workflow timeout.
    Workflow,
}

/// Static description of a tool.
#[derive(Debug, Clone)]
pub struct ToolSpec {
    /// Unique name (`[A-Za-z0-9_.-]{1,128}`).
    pub name: String,
    /// Optional human title.
    pub title: Option<String>,
    /// What it does (shown to models).
    pub description: String,
    /// JSON Schema (2020-12) of the arguments object.
    pub input_schema: Value,
    /// Scheduling class.
    pub kind: ToolKind,
    /// True when the tool has no side effects.
    pub read_only: bool,
}

impl ToolSpec {
    /// The MCP `Tool` object for `tools/list`.
    pub fn to_mcp(&self) -> Value {
        let mut v = json!({
            "name": self.name,
            "description": self.description,
            "inputSchema": self.input_schema,
            "annotations": { "readOnlyHint": self.read_only, "openWorldHint": self.kind != ToolKind::Builtin },
        });
        if let Some(t) = &self.title {
            v["title"] = json!(t);
        }
        v
    }

    /// The legacy `list_tools_res` entry.
    pub fn to_legacy(&self) -> Value {
        json!({ "name": self.name, "description": self.description, "inputSchema": self.input_schema })
    }
}

/// One block of tool output.
#[derive(Debug, Clone, PartialEq)]
pub enum Content {
    /// Plain or JSON text.
    Text(String),
    /// Base64 image.
    Image {
        /// Base64 data.
        data: String,
        /// MIME type.
        mime_type: String,
    },
}

impl Content {
    /// As an MCP content block (also used for legacy `outputs`); the shape is the
    /// [`Serialize`] impl below.
    pub fn to_json(&self) -> Value {
        json!(self)
    }

    /// The text, if this is a text block.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Content::Text(t) => Some(t),
            Content::Image { .. } => None,
        }
    }
}

/// The MCP content block: `{"type":"text","text":…}` or
/// `{"type":"image","data":…,"mimeType":…}`.
impl Serialize for Content {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match self {
            Content::Text(t) => {
                let mut m = s.serialize_map(Some(2))?;
                m.serialize_entry("type", "text")?;
                m.serialize_entry("text", t)?;
                m.end()
            }
            Content::Image { data, mime_type } => {
                let mut m = s.serialize_map(Some(3))?;
                m.serialize_entry("type", "image")?;
                m.serialize_entry("data", data)?;
                m.serialize_entry("mimeType", mime_type)?;
                m.end()
            }
        }
    }
}

/// A successful tool result.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ToolOutput {
    /// Content blocks (at least one is sent; an empty list becomes one empty text block).
    pub content: Vec<Content>,
    /// Structured result, also rendered as the first text block by convention.
    pub structured: Option<Value>,
    /// Provider that served the call, if any (for latency metrics and the log).
    pub provider: Option<String>,
    /// Model that served the call, if any.
    pub model: Option<String>,
}

impl ToolOutput {
    /// A result whose single text block is the pretty JSON of `value`, also given as
    /// `structuredContent`.
    pub fn json(value: Value) -> ToolOutput {
        let text = serde_json::to_string_pretty(&value).unwrap_or_else(|_| value.to_string());
        ToolOutput { content: vec![Content::Text(text)], structured: Some(value), provider: None, model: None }
    }

    /// A plain text result.
    pub fn text(text: impl Into<String>) -> ToolOutput {
        ToolOutput { content: vec![Content::Text(text.into())], ..ToolOutput::default() }
    }

    /// All text blocks joined with newlines (the legacy `text` compatibility field).
    pub fn joined_text(&self) -> String {
        self.content.iter().filter_map(Content::as_text).collect::<Vec<_>>().join("\n")
    }
}

/// RFC 5424 log levels used by `logging/setLevel` and `notifications/message`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// Most verbose.
    Debug,
    /// Informational.
    Info,
    /// Normal but significant.
    Notice,
    /// Warning.
    Warning,
    /// Error.
    Error,
    /// Critical.
    Critical,
    /// Action must be taken.
    Alert,
    /// System unusable.
    Emergency,
}

impl LogLevel {
    /// Parse the spec's level names.
    pub fn parse(s: &str) -> Option<LogLevel> {
        Some(match s {
            "debug" => LogLevel::Debug,
            "info" => LogLevel::Info,
            "notice" => LogLevel::Notice,
            "warning" => LogLevel::Warning,
            "error" => LogLevel::Error,
            "critical" => LogLevel::Critical,
            "alert" => LogLevel::Alert,
            "emergency" => LogLevel::Emergency,
            _ => return None,
        })
    }

    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Notice => "notice",
            LogLevel::Warning => "warning",
            LogLevel::Error => "error",
            LogLevel::Critical => "critical",
            LogLevel::Alert => "alert",
            LogLevel::Emergency => "emergency",
        }
    }
}

/// Something a running tool reports before its result.
#[derive(Debug, Clone, PartialEq)]
pub enum ProgressEvent {
    /// Progress (MCP `notifications/progress`; legacy `progress` with a message).
    Progress {
        /// Monotonic progress value.
        progress: f64,
        /// Total, if known.
        total: Option<f64>,
        /// Human message.
        message: Option<String>,
    },
    /// A piece of streamed output (MCP progress with the text as message; legacy `stream_chunk`).
    Chunk(String),
    /// A log message for the client (MCP `notifications/message`, filtered by the session level).
    Log {
        /// Level.
        level: LogLevel,
        /// Data (a string or JSON).
        data: Value,
    },
}

/// Where a tool's progress goes; a no-op when the caller asked for none.
#[derive(Clone, Default)]
pub struct ProgressSink {
    f: Option<Rc<dyn Fn(ProgressEvent)>>,
    streaming: bool,
}

impl ProgressSink {
    /// A sink that forwards everything to `f` (the caller wants progress and chunks).
    pub fn new(f: impl Fn(ProgressEvent) + 'static) -> ProgressSink {
        ProgressSink { f: Some(Rc::new(f)), streaming: true }
    }

    /// A sink for log messages only: the caller asked for no progress, so providers need
    /// not stream.
    pub fn logs_only(f: impl Fn(ProgressEvent) + 'static) -> ProgressSink {
        ProgressSink { f: Some(Rc::new(f)), streaming: false }
    }

    /// A sink that drops everything.
    pub fn none() -> ProgressSink {
        ProgressSink { f: None, streaming: false }
    }

    /// Report an event.
    pub fn emit(&self, ev: ProgressEvent) {
        if let Some(f) = &self.f {
            f(ev)
        }
    }

    /// True when progress and streamed chunks reach the caller.
    pub fn is_active(&self) -> bool {
        self.f.is_some() && self.streaming
    }
}

/// Timings a tool (or the provider layer below it) reports back for the latency metrics.
#[derive(Debug, Default)]
pub struct CallTiming {
    /// Milliseconds spent waiting for provider concurrency permits.
    pub provider_wait_ms: Cell<f64>,
}

/// Everything a running tool may use.
#[derive(Clone)]
pub struct ToolContext {
    /// Logical session id.
    pub session_id: Arc<str>,
    /// The caller's request id as text. Clients reuse ids (every new connection, every
    /// `exai call` and every SDK after a reconnect starts again at 0 or 1), so it names the
    /// request on its connection and nothing more: never key stored data by it.
    pub request_id: String,
    /// The server's id for this call (UUIDv7, unique across calls, sessions and restarts):
    /// what stored turns and vendor idempotency keys are derived from.
    pub call_id: Arc<str>,
    /// Who calls ([`crate::access::principal`]): threads belong to it, not to a connection.
    pub principal: Arc<str>,
    /// Which protocol carried the call (`mcp-ws`, `mcp-http`, `legacy-ws`).
    pub protocol: &'static str,
    /// Progress and streaming output.
    pub progress: ProgressSink,
    /// Shared services.
    pub env: Arc<ToolEnv>,
    /// Timing feedback.
    pub timing: Rc<CallTiming>,
}

/// The tool interface.
pub trait Tool: Send + Sync + 'static {
    /// Static description.
    fn spec(&self) -> &ToolSpec;
    /// Run with validated arguments.
    fn call(
        &self,
        ctx: ToolContext,
        args: Map<String, Value>,
    ) -> LocalBoxFuture<'static, Result<ToolOutput, ToolError>>;
}
