//! MCP (spec revision 2025-11-25) semantics shared by the WebSocket and Streamable HTTP
//! transports: version negotiation, `initialize` (capabilities: tools, prompts, logging,
//! tasks), `ping`, `tools/list` pagination, `logging/setLevel`, `tools/call` parameter
//! parsing (including a task-augmented call's `task`) and result rendering. Prompts and the
//! task methods are answered by `crate::mcp_extra`.
//!
//! Transport-specific parts (concurrency, progress delivery, cancellation) live in the
//! session actor and the HTTP handler; everything here is pure.

use super::jsonrpc::{codes, RequestId};
use crate::dispatch::CallResult;
use crate::error::ToolError;
use crate::settings::CoreSettings;
use crate::tools::registry::Registry;
use crate::tools::LogLevel;
use serde_json::{json, Map, Value};

/// The revision we implement.
pub const LATEST_VERSION: &str = "2025-11-25";

/// Revisions we accept (echoed when requested).
pub const SUPPORTED_VERSIONS: [&str; 4] = ["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];

/// A JSON-RPC error to send.
#[derive(Debug, Clone, PartialEq)]
pub struct RpcError {
    /// Code.
    pub code: i64,
    /// Message.
    pub message: String,
    /// Optional data.
    pub data: Option<Value>,
}

impl RpcError {
    /// -32602 with a message.
    pub fn invalid_params(msg: impl Into<String>) -> RpcError {
        RpcError { code: codes::INVALID_PARAMS, message: msg.into(), data: None }
    }

    /// -32601 for `method`.
    pub fn method_not_found(method: &str) -> RpcError {
        RpcError { code: codes::METHOD_NOT_FOUND, message: format!("Method not found: {method}"), data: None }
    }

    /// Render as an error frame.
    pub fn to_frame(&self, id: Option<&RequestId>) -> String {
        super::jsonrpc::error_frame(id, self.code, &self.message, self.data.clone())
    }
}

/// Choose the protocol version for an `initialize` request.
pub fn negotiate(requested: Option<&str>) -> &'static str {
    requested.and_then(|r| SUPPORTED_VERSIONS.iter().find(|v| **v == r).copied()).unwrap_or(LATEST_VERSION)
}

/// What the client told us in `initialize`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClientInfo {
    /// Client name.
    pub name: Option<String>,
    /// Client version.
    pub version: Option<String>,
    /// Negotiated protocol version.
    pub protocol_version: String,
}

/// Handle `initialize`: returns the result and what we learnt about the client.
pub fn initialize(params: Option<&Value>, settings: &CoreSettings) -> Result<(Value, ClientInfo), RpcError> {
    let p = params.and_then(Value::as_object).ok_or_else(|| RpcError::invalid_params("initialize needs params"))?;
    let requested = p
        .get("protocolVersion")
        .and_then(Value::as_str)
        .ok_or_else(|| RpcError::invalid_params("initialize: protocolVersion (string) is required"))?;
    let version = negotiate(Some(requested));
    let ci = p.get("clientInfo");
    let info = ClientInfo {
        name: ci.and_then(|c| c.get("name")).and_then(Value::as_str).map(str::to_string),
        version: ci.and_then(|c| c.get("version")).and_then(Value::as_str).map(str::to_string),
        protocol_version: version.to_string(),
    };
    let result = json!({
        "protocolVersion": version,
        "capabilities": {
            "tools": { "listChanged": false },
            "prompts": { "listChanged": false },
            "logging": {},
            "tasks": { "list": {}, "cancel": {}, "requests": { "tools": { "call": {} } } },
        },
        "serverInfo": { "name": settings.server_name, "version": settings.server_version, "title": "exai MCP gateway" },
        "instructions": "exai routes tool calls to AI providers (Kimi, GLM, OpenAI-compatible). Call `listmodels` to see models and `status` for server state."
    });
    Ok((result, info))
}

/// Handle `tools/list` (with optional `cursor`).
pub fn tools_list(params: Option<&Value>, registry: &Registry) -> Result<Value, RpcError> {
    let cursor = match params.and_then(|p| p.get("cursor")) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.as_str()),
        Some(_) => return Err(RpcError::invalid_params("cursor must be a string")),
    };
    let (page, next) = registry.page(cursor).map_err(|e| RpcError::invalid_params(e.to_string()))?;
    let mut v = json!({ "tools": page });
    if let Some(n) = next {
        v["nextCursor"] = json!(n);
    }
    Ok(v)
}

/// Handle `logging/setLevel`.
pub fn set_level(params: Option<&Value>) -> Result<LogLevel, RpcError> {
    let lvl = params
        .and_then(|p| p.get("level"))
        .and_then(Value::as_str)
        .ok_or_else(|| RpcError::invalid_params("logging/setLevel: level (string) is required"))?;
    LogLevel::parse(lvl).ok_or_else(|| {
        RpcError::invalid_params(format!(
            "unknown log level '{lvl}'; allowed: debug, info, notice, warning, error, critical, alert, emergency"
        ))
    })
}

/// Parsed `tools/call` params.
#[derive(Debug, Clone, PartialEq)]
pub struct CallParams {
    /// Tool name.
    pub name: String,
    /// Arguments object (absent = none).
    pub arguments: Option<Value>,
    /// Progress token if the caller wants progress.
    pub progress_token: Option<Value>,
    /// `task` (task-augmented call: run as an MCP task), as sent.
    pub task: Option<Value>,
}

/// Parse `tools/call` params.
pub fn call_params(params: Option<Value>) -> Result<CallParams, RpcError> {
    let Some(Value::Object(mut p)) = params else {
        return Err(RpcError::invalid_params("tools/call needs params with a name"));
    };
    let name = match p.remove("name") {
        Some(Value::String(s)) => s,
        _ => return Err(RpcError::invalid_params("tools/call: name (string) is required")),
    };
    let arguments = match p.remove("arguments") {
        None | Some(Value::Null) => None,
        Some(v @ Value::Object(_)) => Some(v),
        Some(_) => return Err(RpcError::invalid_params("tools/call: arguments must be an object")),
    };
    let progress_token = p
        .get("_meta")
        .and_then(|m| m.get("progressToken"))
        .filter(|t| t.is_string() || t.is_i64() || t.is_u64())
        .cloned();
    let task = p.remove("task").filter(|t| !t.is_null());
    Ok(CallParams { name, arguments, progress_token, task })
}

/// Render a finished call as a `CallToolResult` (tool failures become `isError: true`).
pub fn call_result(res: &CallResult) -> Value {
    let latency = json!(res.latency);
    match &res.outcome {
        Ok(out) => {
            let mut content: Vec<Value> = out.content.iter().map(|c| c.to_json()).collect();
            if content.is_empty() {
                content.push(json!({ "type": "text", "text": "" }));
            }
            let mut v = json!({ "content": content, "isError": false, "_meta": { "latency_metrics": latency } });
            if let Some(s) = &out.structured {
                if s.is_object() {
                    v["structuredContent"] = s.clone();
                }
            }
            if out.model.is_some() {
                v["_meta"]["model"] = json!(out.model);
            }
            v
        }
        Err(e) => tool_error_result(e, Some(latency)),
    }
}

/// A `CallToolResult` with `isError: true` for `e`.
pub fn tool_error_result(e: &ToolError, latency: Option<Value>) -> Value {
    let mut v = json!({
        "content": [{ "type": "text", "text": format!("{}: {}", e.code(), e) }],
        "structuredContent": { "error": e.to_json() },
        "isError": true,
    });
    if let Some(l) = latency {
        v["_meta"] = json!({ "latency_metrics": l });
    }
    v
}

/// A `notifications/progress` params object.
pub fn progress_params(token: &Value, progress: f64, total: Option<f64>, message: Option<&str>) -> Value {
    let mut m = Map::new();
    m.insert("progressToken".into(), token.clone());
    m.insert("progress".into(), json!(progress));
    if let Some(t) = total {
        m.insert("total".into(), json!(t));
    }
    if let Some(msg) = message {
        m.insert("message".into(), json!(msg));
    }
    Value::Object(m)
}

/// Renders a call's progress events as MCP notifications: `notifications/progress` (only with
/// the caller's progress token; values kept strictly increasing) and `notifications/message`
/// (filtered by the session's log level). Shared by every MCP transport.
pub struct ProgressRenderer {
    token: Option<Value>,
    level: crate::tools::LogLevel,
    last: std::cell::Cell<f64>,
    /// The `total` announced so far: progress never passes it.
    total: std::cell::Cell<Option<f64>>,
}

impl ProgressRenderer {
    /// A renderer for one call.
    pub fn new(token: Option<Value>, level: crate::tools::LogLevel) -> ProgressRenderer {
        ProgressRenderer { token, level, last: std::cell::Cell::new(0.0), total: std::cell::Cell::new(None) }
    }

    /// True when the caller asked for progress (so providers should stream).
    pub fn wants_progress(&self) -> bool {
        self.token.is_some()
    }

    /// The frame for an event, or `None` when it is not for this caller.
    pub fn render(&self, ev: &crate::tools::ProgressEvent) -> Option<String> {
        use crate::tools::ProgressEvent;
        match (ev, &self.token) {
            (ProgressEvent::Progress { progress, total, message }, Some(t)) => {
                if let Some(total) = total.filter(|t| t.is_finite() && *t > 0.0) {
                    self.total.set(Some(total.max(self.total.get().unwrap_or(0.0))));
                }
                let v = self.next_value(Some(*progress))?;
                Some(super::jsonrpc::notification_frame(
                    "notifications/progress",
                    progress_params(t, v, self.total.get(), message.as_deref()),
                ))
            }
            (ProgressEvent::Chunk(text), Some(t)) => {
                let v = self.next_value(None)?;
                Some(super::jsonrpc::notification_frame(
                    "notifications/progress",
                    progress_params(t, v, self.total.get(), Some(text)),
                ))
            }
            (ProgressEvent::Log { level, data }, _) if *level >= self.level => {
                Some(super::jsonrpc::notification_frame(
                    "notifications/message",
                    json!({ "level": level.as_str(), "logger": "exai", "data": data }),
                ))
            }
            _ => None,
        }
    }

    /// The next progress value: strictly above the last one and never past the announced
    /// total (a streamed chunk after the total closes half the remaining gap); `None` when no
    /// value fits (the event is then not sent as progress).
    fn next_value(&self, reported: Option<f64>) -> Option<f64> {
        let last = self.last.get();
        let mut v = match reported {
            Some(p) if p > last => p,
            _ => last + 1.0,
        };
        if let Some(total) = self.total.get() {
            if v > total {
                v = last + (total - last) / 2.0;
            }
            if v <= last || v > total {
                return None;
            }
        }
        self.last.set(v);
        Some(v)
    }

    /// A progress sink that renders events and hands the frames to `deliver`.
    pub fn into_sink(self, deliver: impl Fn(String) + 'static) -> crate::tools::ProgressSink {
        let streaming = self.wants_progress();
        let f = move |ev: crate::tools::ProgressEvent| {
            if let Some(frame) = self.render(&ev) {
                deliver(frame);
            }
        };
        if streaming {
            crate::tools::ProgressSink::new(f)
        } else {
            crate::tools::ProgressSink::logs_only(f)
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn negotiation_echoes_supported_and_falls_back() {
        assert_eq!(negotiate(Some("2025-06-18")), "2025-06-18");
        assert_eq!(negotiate(Some("1999-01-01")), LATEST_VERSION);
        let (r, info) = initialize(
            Some(&json!({"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}})),
            &CoreSettings::default(),
        )
        .unwrap();
        assert_eq!(r["protocolVersion"], "2025-11-25");
        assert_eq!(info.name.as_deref(), Some("t"));
        assert!(initialize(Some(&json!({})), &CoreSettings::default()).is_err());
    }

    #[test]
    fn progress_increases_and_never_passes_its_announced_total() {
        use crate::tools::ProgressEvent;
        let r = ProgressRenderer::new(Some(json!("t")), LogLevel::Info);
        let value = |f: Option<String>| -> Option<(f64, Option<f64>)> {
            let v: Value = serde_json::from_str(&f?).unwrap();
            Some((v["params"]["progress"].as_f64().unwrap(), v["params"]["total"].as_f64()))
        };
        let p = |progress, total| ProgressEvent::Progress { progress, total, message: None };
        assert_eq!(value(r.render(&p(1.0, Some(4.0)))), Some((1.0, Some(4.0))));
        let mut last = 1.0;
        for _ in 0..200 {
            if let Some((v, total)) = value(r.render(&ProgressEvent::Chunk("x".into()))) {
                assert!(v > last && v <= 4.0, "{v} after {last}");
                assert_eq!(total, Some(4.0));
                last = v;
            }
        }
        assert!(value(r.render(&p(9.0, None))).is_none_or(|(v, _)| v <= 4.0));
        assert!(last > 3.9, "chunks still advance towards the total");
    }

    #[test]
    fn call_params_and_levels() {
        let p = call_params(Some(json!({"name":"x","arguments":{"a":1},"_meta":{"progressToken":4}}))).unwrap();
        assert_eq!(p.progress_token, Some(json!(4)));
        assert!(call_params(Some(json!({"arguments":{}}))).is_err());
        assert!(call_params(Some(json!({"name":"x","arguments":[1]}))).is_err());
        assert_eq!(set_level(Some(&json!({"level":"warning"}))).unwrap(), LogLevel::Warning);
        assert_eq!(set_level(Some(&json!({"level":"loud"}))).unwrap_err().code, -32602);
    }
}
