//! JSON-RPC 2.0 framing for MCP: one message per WebSocket text frame or HTTP body.
//!
//! [`parse`] turns a frame into an [`Incoming`] message or a [`ParseError`] that maps to the
//! right JSON-RPC error (-32700 with `id: null` for non-JSON, -32600 for a bad shape).
//! The `*_frame` functions build outgoing messages as text. Request ids are strings or
//! integers and `0` is a valid id (the Python and TypeScript clients start there).

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{json, Value};
use std::fmt;

/// JSON-RPC error codes used by exai.
pub mod codes {
    /// Not JSON.
    pub const PARSE_ERROR: i64 = -32700;
    /// JSON, but not a valid JSON-RPC message.
    pub const INVALID_REQUEST: i64 = -32600;
    /// Unknown method.
    pub const METHOD_NOT_FOUND: i64 = -32601;
    /// Bad params (unknown tool, bad cursor, bad log level).
    pub const INVALID_PARAMS: i64 = -32602;
    /// Internal error.
    pub const INTERNAL_ERROR: i64 = -32603;
    /// Implementation-defined: over capacity (retry later); `data.retry_after` says when.
    pub const OVER_CAPACITY: i64 = -32001;
    /// Implementation-defined: server shutting down.
    pub const SHUTTING_DOWN: i64 = -32002;
    /// Implementation-defined: session not initialized.
    pub const NOT_INITIALIZED: i64 = -32003;
}

/// A JSON-RPC request id: a string or an integer (never null).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RequestId {
    /// Integer id.
    Num(i64),
    /// String id.
    Str(String),
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestId::Num(n) => write!(f, "{n}"),
            RequestId::Str(s) => f.write_str(s),
        }
    }
}

impl RequestId {
    /// Convert from a JSON value; `None` for null, floats, objects and the like.
    pub fn from_value(v: &Value) -> Option<RequestId> {
        match v {
            Value::String(s) => Some(RequestId::Str(s.clone())),
            Value::Number(n) => n.as_i64().map(RequestId::Num),
            _ => None,
        }
    }

    /// As a JSON value.
    pub fn to_value(&self) -> Value {
        match self {
            RequestId::Num(n) => json!(n),
            RequestId::Str(s) => json!(s),
        }
    }
}

/// A parsed inbound JSON-RPC message.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    /// A request expecting exactly one response.
    Request {
        /// Its id.
        id: RequestId,
        /// Method name.
        method: String,
        /// Params (absent is allowed).
        params: Option<Value>,
    },
    /// A notification (no id, never answered).
    Notification {
        /// Method name.
        method: String,
        /// Params.
        params: Option<Value>,
    },
    /// A response to a request the server sent (e.g. a ping).
    Response {
        /// The id of our request.
        id: RequestId,
        /// `Ok(result)` or `Err(error object)`.
        outcome: Result<Value, Value>,
    },
}

/// Why a frame is not a usable JSON-RPC message.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParseError {
    /// Not JSON at all: answer -32700 with `id: null`.
    #[error("parse error: {0}")]
    NotJson(String),
    /// JSON, but not a valid message: answer -32600 (with the id when one could be read).
    #[error("invalid request: {message}")]
    Invalid {
        /// The id, when readable.
        id: Option<RequestId>,
        /// What is wrong.
        message: String,
    },
}

impl ParseError {
    /// The error frame to send back.
    pub fn to_frame(&self) -> String {
        match self {
            ParseError::NotJson(m) => error_frame(None, codes::PARSE_ERROR, &format!("Parse error: {m}"), None),
            ParseError::Invalid { id, message } => {
                error_frame(id.as_ref(), codes::INVALID_REQUEST, &format!("Invalid Request: {message}"), None)
            }
        }
    }
}

fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

#[derive(Deserialize)]
struct Raw {
    #[serde(default)]
    jsonrpc: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    id: Option<Value>,
    #[serde(default)]
    method: Option<Value>,
    #[serde(default)]
    params: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    result: Option<Value>,
    #[serde(default)]
    error: Option<Value>,
}

/// Parse one frame. Batches (JSON arrays) are rejected: they were removed in 2025-06-18.
pub fn parse(text: &str) -> Result<Incoming, ParseError> {
    let value: Value = serde_json::from_str(text).map_err(|e| ParseError::NotJson(e.to_string()))?;
    parse_value(value)
}

/// Parse an already-decoded JSON value.
pub fn parse_value(value: Value) -> Result<Incoming, ParseError> {
    if value.is_array() {
        return Err(ParseError::Invalid { id: None, message: "batches are not supported".into() });
    }
    if !value.is_object() {
        return Err(ParseError::Invalid { id: None, message: "message must be a JSON object".into() });
    }
    let raw: Raw =
        serde_json::from_value(value).map_err(|e| ParseError::Invalid { id: None, message: e.to_string() })?;
    let id = match &raw.id {
        None => None,
        Some(v) => match RequestId::from_value(v) {
            Some(id) => Some(id),
            None => return Err(ParseError::Invalid { id: None, message: "id must be a string or an integer".into() }),
        },
    };
    if raw.jsonrpc.as_ref().and_then(Value::as_str) != Some("2.0") {
        return Err(ParseError::Invalid { id, message: "jsonrpc must be \"2.0\"".into() });
    }
    if let Some(params) = &raw.params {
        if !(params.is_object() || params.is_array()) {
            return Err(ParseError::Invalid { id, message: "params must be an object".into() });
        }
    }
    match (raw.method, id) {
        (Some(Value::String(method)), Some(id)) => Ok(Incoming::Request { id, method, params: raw.params }),
        (Some(Value::String(method)), None) => Ok(Incoming::Notification { method, params: raw.params }),
        (Some(_), id) => Err(ParseError::Invalid { id, message: "method must be a string".into() }),
        (None, Some(id)) => match (raw.result, raw.error) {
            (Some(result), None) => Ok(Incoming::Response { id, outcome: Ok(result) }),
            (None, Some(error)) => Ok(Incoming::Response { id, outcome: Err(error) }),
            _ => Err(ParseError::Invalid {
                id: Some(id),
                message: "a response needs exactly one of result or error".into(),
            }),
        },
        (None, None) => Err(ParseError::Invalid { id: None, message: "missing method".into() }),
    }
}

/// A success response.
pub fn result_frame(id: &RequestId, result: Value) -> String {
    json!({ "jsonrpc": "2.0", "id": id.to_value(), "result": result }).to_string()
}

/// An error response; `id: None` renders `"id": null`.
pub fn error_frame(id: Option<&RequestId>, code: i64, message: &str, data: Option<Value>) -> String {
    let mut err = json!({ "code": code, "message": message });
    if let Some(d) = data {
        err["data"] = d;
    }
    json!({ "jsonrpc": "2.0", "id": id.map(RequestId::to_value).unwrap_or(Value::Null), "error": err }).to_string()
}

/// A notification.
pub fn notification_frame(method: &str, params: Value) -> String {
    json!({ "jsonrpc": "2.0", "method": method, "params": params }).to_string()
}

/// A request sent by the server (used for server-initiated `ping`).
pub fn request_frame(id: &RequestId, method: &str, params: Option<Value>) -> String {
    let mut v = json!({ "jsonrpc": "2.0", "id": id.to_value(), "method": method });
    if let Some(p) = params {
        v["params"] = p;
    }
    v.to_string()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parses_request_with_zero_id_and_no_params() {
        let m = parse(r#"{"method":"tools/list","jsonrpc":"2.0","id":0}"#).unwrap();
        assert_eq!(m, Incoming::Request { id: RequestId::Num(0), method: "tools/list".into(), params: None });
    }

    #[test]
    fn notification_and_response() {
        assert!(matches!(
            parse(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#).unwrap(),
            Incoming::Notification { .. }
        ));
        assert!(matches!(
            parse(r#"{"jsonrpc":"2.0","id":"s1","result":{}}"#).unwrap(),
            Incoming::Response { outcome: Ok(_), .. }
        ));
    }

    #[test]
    fn errors_map_to_codes() {
        let e = parse("{nope").unwrap_err();
        let f: Value = serde_json::from_str(&e.to_frame()).unwrap();
        assert_eq!(f["error"]["code"], -32700);
        assert_eq!(f["id"], Value::Null);
        let e = parse(r#"{"jsonrpc":"2.0","id":null,"method":"x"}"#).unwrap_err();
        assert!(matches!(e, ParseError::Invalid { .. }));
        let e = parse(r#"{"jsonrpc":"1.0","id":3,"method":"x"}"#).unwrap_err();
        let f: Value = serde_json::from_str(&e.to_frame()).unwrap();
        assert_eq!(f["error"]["code"], -32600);
        assert_eq!(f["id"], 3);
        assert!(parse("[]").is_err());
        assert!(parse(r#"{"jsonrpc":"2.0","id":1.5,"method":"x"}"#).is_err());
    }
}
