//! The legacy EXAI op protocol (the old daemon's WebSocket protocol), with its defects fixed.
//!
//! Client → server: `hello`, `list_tools`, `call_tool` (also the `tool_call` variant),
//! `ping`, `cancel`, `health`. Server → client: `hello_ack`, `list_tools_res`,
//! `call_tool_ack` (with the effective timeout), `progress`, `stream_chunk`,
//! `stream_complete`, `call_tool_res`, `pong`, `cancelled`, `health_res`, `error`.
//! Every error frame carries `op` and `request_id`. Close codes: 1008 (policy/limits),
//! 4000 invalid hello, 4001 missing hello, 4002 hello timeout, 4003 unauthorized.

use crate::dispatch::{CallResult, LatencyMetrics};
use crate::error::ToolError;
use serde_json::{json, Map, Value};
use std::time::{SystemTime, UNIX_EPOCH};

/// Close codes.
pub mod close {
    /// Limits or policy.
    pub const POLICY: u16 = 1008;
    /// First frame was not valid JSON.
    pub const INVALID_HELLO: u16 = 4000;
    /// First frame was not `hello`.
    pub const MISSING_HELLO: u16 = 4001;
    /// No first frame in time.
    pub const HELLO_TIMEOUT: u16 = 4002;
    /// Bad token.
    pub const UNAUTHORIZED: u16 = 4003;
    /// Another connection of the same principal attached to this session (it took over).
    pub const REPLACED: u16 = 4004;
    /// The named session belongs to another principal.
    pub const SESSION_OWNED: u16 = 4005;
}

/// A parsed client op.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// Handshake.
    Hello {
        /// Token.
        token: Option<String>,
        /// Requested session id.
        session_id: Option<String>,
    },
    /// List tools.
    ListTools {
        /// Correlation id.
        request_id: Option<String>,
    },
    /// Call a tool.
    CallTool {
        /// Correlation id.
        request_id: Option<String>,
        /// Tool name.
        name: String,
        /// Arguments.
        arguments: Option<Value>,
    },
    /// Liveness.
    Ping {
        /// Correlation id.
        request_id: Option<String>,
    },
    /// Cancel a running call.
    Cancel {
        /// The call to cancel.
        request_id: Option<String>,
    },
    /// Server health.
    Health {
        /// Correlation id.
        request_id: Option<String>,
    },
}

/// Why a frame is not a usable op.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OpError {
    /// Not JSON or not an object.
    #[error("invalid JSON: {0}")]
    NotJson(String),
    /// Structurally wrong (with the request id when readable).
    #[error("{message}")]
    Invalid {
        /// The op, if readable.
        op: Option<String>,
        /// The request id, if readable.
        request_id: Option<String>,
        /// What is wrong.
        message: String,
    },
    /// Unknown op.
    #[error("Unknown op: {op}")]
    Unknown {
        /// The op.
        op: String,
        /// The request id.
        request_id: Option<String>,
    },
}

fn rid(m: &Map<String, Value>) -> Option<String> {
    match m.get("request_id") {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    }
}

/// Parse a frame.
pub fn parse(text: &str) -> Result<Op, OpError> {
    let v: Value = serde_json::from_str(text).map_err(|e| OpError::NotJson(e.to_string()))?;
    let Value::Object(mut m) = v else {
        return Err(OpError::NotJson("frame must be a JSON object".into()));
    };
    let request_id = rid(&m);
    if m.get("request_id").is_some_and(|v| !(v.is_string() || v.is_number() || v.is_null())) {
        let op = m.get("op").and_then(Value::as_str).map(str::to_string);
        return Err(OpError::Invalid {
            op,
            request_id: None,
            message: "request_id must be a string or a number".into(),
        });
    }
    let op = match m.get("op") {
        Some(Value::String(s)) => s.clone(),
        _ => return Err(OpError::Invalid { op: None, request_id, message: "missing op".into() }),
    };
    let invalid = |message: &str| OpError::Invalid {
        op: Some(op.clone()),
        request_id: request_id.clone(),
        message: message.into(),
    };
    let s = |m: &Map<String, Value>, k: &str| m.get(k).and_then(Value::as_str).map(str::to_string);
    Ok(match op.as_str() {
        "hello" => Op::Hello { token: s(&m, "token"), session_id: s(&m, "session_id") },
        "list_tools" => Op::ListTools { request_id },
        "call_tool" | "tool_call" => {
            let name = if op == "tool_call" {
                m.get("tool").and_then(|t| t.get("name")).and_then(Value::as_str).map(str::to_string)
            } else {
                s(&m, "name")
            };
            let name = name.ok_or_else(|| invalid("call_tool needs a string 'name'"))?;
            let arguments = match m.remove("arguments") {
                None | Some(Value::Null) => None,
                Some(a @ Value::Object(_)) => Some(a),
                Some(_) => return Err(invalid("'arguments' must be an object")),
            };
            Op::CallTool { request_id, name, arguments }
        }
        "ping" => Op::Ping { request_id },
        "cancel" => Op::Cancel { request_id },
        "health" => Op::Health { request_id },
        _ => return Err(OpError::Unknown { op, request_id }),
    })
}

/// Unix time in float seconds (the old protocol's `t`/`timestamp`).
pub fn timestamp() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

/// True for session ids the old daemon accepted: 3–64 of `[A-Za-z0-9_-]`.
pub fn valid_session_id(s: &str) -> bool {
    (3..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// `hello_ack` success.
pub fn hello_ok(session_id: &str, server: &str, version: &str) -> String {
    json!({ "op": "hello_ack", "ok": true, "session_id": session_id, "server": { "name": server, "version": version } })
        .to_string()
}

/// `hello_ack` failure (`invalid_hello`, `missing_hello`, `unauthorized`).
pub fn hello_err(error: &str) -> String {
    json!({ "op": "hello_ack", "ok": false, "error": error }).to_string()
}

/// A generic `error` frame.
pub fn error(request_id: Option<&str>, code: &str, message: &str) -> String {
    json!({ "op": "error", "request_id": request_id, "error": { "code": code, "message": message } }).to_string()
}

/// The frame for an [`OpError`].
pub fn op_error(e: &OpError) -> String {
    match e {
        OpError::NotJson(_) => error(None, "VALIDATION_ERROR", &e.to_string()),
        OpError::Invalid { op: Some(op), request_id, message } if op == "call_tool" || op == "tool_call" => call_error(
            request_id.as_deref(),
            &ToolError::InvalidArguments { field: "frame".into(), message: message.clone() },
            None,
        ),
        OpError::Invalid { request_id, .. } => error(request_id.as_deref(), "INVALID_REQUEST", &e.to_string()),
        OpError::Unknown { request_id, .. } => error(request_id.as_deref(), "INVALID_REQUEST", &e.to_string()),
    }
}

/// `call_tool_ack` with the effective timeout (seconds).
pub fn ack(request_id: &str, name: &str, timeout_secs: u64) -> String {
    json!({ "op": "call_tool_ack", "request_id": request_id, "accepted": true, "timeout": timeout_secs, "name": name })
        .to_string()
}

/// A heartbeat or progress frame.
pub fn progress(request_id: &str, name: &str, message: Option<&str>) -> String {
    let mut v = json!({ "op": "progress", "request_id": request_id, "name": name, "t": timestamp() });
    if let Some(m) = message {
        v["message"] = json!(m);
    }
    v.to_string()
}

/// A streamed chunk.
pub fn stream_chunk(request_id: &str, chunk: &str) -> String {
    json!({ "op": "stream_chunk", "request_id": request_id, "chunk": chunk, "timestamp": timestamp() }).to_string()
}

/// End of stream (sent before a successful `call_tool_res`).
pub fn stream_complete(request_id: &str) -> String {
    json!({ "op": "stream_complete", "request_id": request_id, "timestamp": timestamp() }).to_string()
}

fn legacy_latency(l: &LatencyMetrics) -> Value {
    json!({
        "latency_ms": l.total_ms,
        "global_sem_wait_ms": l.global_wait_ms,
        "provider_sem_wait_ms": l.provider_wait_ms,
        "processing_ms": l.processing_ms,
        "provider_name": l.provider,
    })
}

/// A failed `call_tool_res`.
pub fn call_error(request_id: Option<&str>, e: &ToolError, latency: Option<&LatencyMetrics>) -> String {
    let mut err = json!({ "code": e.code(), "message": e.to_string() });
    if let Some(r) = e.retry_after_secs() {
        err["retry_after"] = json!(r);
    }
    if let ToolError::InvalidArguments { field, .. } = e {
        err["details"] = json!({ "field": field });
    }
    let mut v = json!({ "op": "call_tool_res", "request_id": request_id, "ok": false, "error": err });
    if let Some(l) = latency {
        v["metadata"] = json!({ "latency_metrics": legacy_latency(l) });
    }
    v.to_string()
}

const ERROR_STATUSES: [&str; 4] = ["code_too_large", "error", "execution_error", "resend_prompt"];

/// The terminal `call_tool_res` for a finished call.
pub fn call_result(request_id: &str, res: &CallResult) -> String {
    match &res.outcome {
        Err(e) => call_error(Some(request_id), e, Some(&res.latency)),
        Ok(out) => {
            let mut outputs: Vec<Value> = out.content.iter().map(|c| c.to_json()).collect();
            if outputs.is_empty() {
                outputs.push(json!({ "type": "text", "text": "" }));
            }
            outputs[0]["metadata"] = json!({ "latency_metrics": legacy_latency(&res.latency) });
            let mut v = json!({
                "op": "call_tool_res", "request_id": request_id, "ok": true,
                "outputs": outputs, "text": out.joined_text(),
            });
            if let Some(status) = out.structured.as_ref().and_then(|s| s.get("status")).and_then(Value::as_str) {
                if ERROR_STATUSES.contains(&status) {
                    v["error"] =
                        json!({ "code": status.to_uppercase(), "message": format!("tool reported status {status}") });
                }
            }
            v.to_string()
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parses_ops() {
        assert_eq!(
            parse(r#"{"op":"call_tool","request_id":"r1","name":"status","arguments":{}}"#).unwrap(),
            Op::CallTool { request_id: Some("r1".into()), name: "status".into(), arguments: Some(json!({})) }
        );
        assert!(matches!(
            parse(r#"{"op":"tool_call","tool":{"name":"x"},"request_id":"r"}"#).unwrap(),
            Op::CallTool { .. }
        ));
        assert!(matches!(parse(r#"{"op":"dance","request_id":"r9"}"#), Err(OpError::Unknown { .. })));
        let f: Value =
            serde_json::from_str(&op_error(&parse(r#"{"op":"dance","request_id":"r9"}"#).unwrap_err())).unwrap();
        assert_eq!(f["op"], "error");
        assert_eq!(f["request_id"], "r9");
        assert!(matches!(parse("{{"), Err(OpError::NotJson(_))));
    }

    #[test]
    fn session_ids() {
        assert!(valid_session_id("abc-DEF_1"));
        assert!(!valid_session_id("ab"));
        assert!(!valid_session_id("a b c"));
    }
}
