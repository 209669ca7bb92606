//! The MCP method match, once for every transport.
//!
//! [`request`] answers `initialize`, `ping`, `tools/list`, `logging/setLevel` and
//! `tools/call` (unknown tool or bad params → -32602, a duplicate in-flight id → -32600,
//! refusals and tool failures → a result with `isError: true`), hands every other method to
//! [`super::hooks`] (tasks, prompts), and answers -32601 for the rest. [`notification`]
//! handles `notifications/initialized` and `notifications/cancelled`. Batches (revision
//! 2025-03-26 only) are [`batch`].

use super::{hooks, start_call, Caller, StartError};
use crate::dispatch::{CallRequest, CallResult};
use crate::error::ToolError;
use crate::protocol::jsonrpc::{self, codes, RequestId};
use crate::protocol::mcp::{self, RpcError};
use crate::protocol::mcp_frame;
use crate::session::core::{ReplyTo, Route, SessionCore};
use crate::tools::{LogLevel, ProgressSink};
use serde_json::{json, Value};
use std::sync::Arc;

/// What the transport sends back for a request.
#[derive(Debug)]
pub enum Answer {
    /// One frame, now.
    Frame(String),
    /// A call started: its frames arrive along the caller's route.
    Started,
    /// `initialize` succeeded: the result, for the transport to add its `_meta` and frame.
    Initialized(Value),
}

/// Key of a request id in the session's call table.
pub fn key(id: &RequestId) -> String {
    match id {
        RequestId::Num(n) => format!("n:{n}"),
        RequestId::Str(s) => format!("s:{s}"),
    }
}

/// The `protocol` label of `exai_protocol_errors_total` for an MCP transport: `mcp-http`
/// for Streamable HTTP, `mcp-ws` for WebSocket (and the stdio bridge, which reaches the
/// server over WebSocket), as documented and pre-registered.
pub fn error_label(protocol: &str) -> &'static str {
    if protocol == "mcp-http" {
        "mcp-http"
    } else {
        "mcp-ws"
    }
}

/// Count and render a JSON-RPC error.
pub fn rpc_error(c: &Caller<'_>, id: Option<&RequestId>, e: RpcError) -> Answer {
    let code = e.code.to_string();
    c.dispatcher.env().metrics.protocol_errors.with_label_values(&[error_label(c.protocol), &code]).inc();
    Answer::Frame(e.to_frame(id))
}

/// A tool-error result for `id`.
pub fn tool_error(id: &RequestId, e: &ToolError) -> Answer {
    Answer::Frame(jsonrpc::result_frame(id, mcp::tool_error_result(e, None)))
}

/// A request on an established session.
pub fn request(c: &Caller<'_>, id: RequestId, method: &str, params: Option<Value>) -> Answer {
    let res: Result<Value, RpcError> = match method {
        "initialize" => {
            return match mcp::initialize(params.as_ref(), &c.dispatcher.env().settings) {
                Ok((mut result, info)) => {
                    c.core.update_meta(|m| {
                        m.client_name = info.name;
                        m.client_version = info.version;
                        m.protocol_version = Some(info.protocol_version);
                    });
                    hooks::capabilities(&mut result);
                    Answer::Initialized(result)
                }
                Err(e) => rpc_error(c, Some(&id), e),
            }
        }
        "ping" => Ok(json!({})),
        "tools/list" => mcp::tools_list(params.as_ref(), c.dispatcher.registry()),
        "logging/setLevel" => mcp::set_level(params.as_ref()).map(|l| {
            c.core.update_meta(|m| m.log_level = l);
            json!({})
        }),
        "tools/call" => return tools_call(c, id, params),
        // Methods other modules add (tasks, prompts) plug in here.
        other => match hooks::request(c, &id, other, &params) {
            Some(answer) => return answer,
            None => Err(RpcError::method_not_found(other)),
        },
    };
    match res {
        Ok(v) => Answer::Frame(jsonrpc::result_frame(&id, v)),
        Err(e) => rpc_error(c, Some(&id), e),
    }
}

fn tools_call(c: &Caller<'_>, id: RequestId, params: Option<Value>) -> Answer {
    if let Some(answer) = hooks::tools_call(c, &id, &params) {
        return answer;
    }
    let p = match mcp::call_params(params) {
        Ok(p) => p,
        Err(e) => return rpc_error(c, Some(&id), e),
    };
    if c.dispatcher.registry().get(&p.name).is_none() {
        return rpc_error(c, Some(&id), RpcError::invalid_params(format!("Unknown tool: {}", p.name)));
    }
    let level = c.core.log_level();
    let req = CallRequest {
        name: p.name,
        args: p.arguments,
        session_id: Arc::clone(c.core.id()),
        request_id: id.to_string(),
        principal: Arc::clone(c.principal),
        protocol: c.protocol,
        progress: progress_sink(
            c.core,
            c.route,
            p.progress_token,
            level,
            c.dispatcher.env().metrics.outbox_shed.with_label_values(&["progress"]),
        ),
    };
    let rid = id.clone();
    let render: super::Render = Box::new(move |res: &CallResult| render_call(&rid, res, level));
    match start_call(c, key(&id), ReplyTo::Mcp(id.clone()), req, render) {
        Ok(()) => Answer::Started,
        Err(StartError::Duplicate) => rpc_error(
            c,
            Some(&id),
            RpcError {
                code: codes::INVALID_REQUEST,
                message: format!("request id {id} is already in flight on this session"),
                data: None,
            },
        ),
        Err(StartError::Refused(e)) => tool_error(&id, &e),
    }
}

/// The terminal frames of a finished MCP call: a `notifications/message` for a failure (at
/// level `error`, when the session's level lets it through), then the response.
fn render_call(id: &RequestId, res: &CallResult, level: LogLevel) -> Vec<String> {
    let mut frames = Vec::with_capacity(1);
    if let Err(e) = &res.outcome {
        if LogLevel::Error >= level {
            frames.push(jsonrpc::notification_frame(
                "notifications/message",
                json!({ "level": "error", "logger": "exai",
                        "data": { "event": "tool_failed", "tool": res.tool, "request": id.to_value(),
                                  "error": e.to_json() } }),
            ));
        }
    }
    frames.push(mcp_frame::call_result_frame(id, res));
    frames
}

/// Progress for a call: rendered once, delivered along its route; progress never waits (it
/// is shed when the connection's outbox or the session's byte budget is full).
pub fn progress_sink(
    core: &Arc<SessionCore>,
    route: Route,
    token: Option<Value>,
    level: LogLevel,
    shed: prometheus::IntCounter,
) -> ProgressSink {
    let core = Arc::clone(core);
    mcp::ProgressRenderer::new(token, level).into_sink(move |frame| {
        let sent = match route {
            Route::Attached => core.send_attached(frame),
            Route::Stream(n) => core.push_event(n, frame, false),
        };
        if !sent {
            shed.inc();
        }
    })
}

/// A notification.
pub fn notification(c: &Caller<'_>, method: &str, params: Option<&Value>) {
    match method {
        "notifications/initialized" => c.core.update_meta(|m| m.initialized = true),
        "notifications/cancelled" => {
            let Some(id) = params.and_then(|p| p.get("requestId")).and_then(RequestId::from_value) else {
                return;
            };
            if let Some(f) = c.core.cancel(&key(&id)) {
                tracing::info!(session = %c.core.id(), request = %id, tool = %f.tool,
                               ran_ms = f.started.elapsed().as_millis() as u64, "call cancelled by client");
            }
        }
        // Unknown notifications are ignored, as the spec asks.
        _ => {}
    }
}

/// True when the session negotiated a revision that has JSON-RPC batches (2025-03-26).
pub fn batches_allowed(core: &SessionCore) -> bool {
    core.meta().protocol_version.as_deref() == Some("2025-03-26")
}
