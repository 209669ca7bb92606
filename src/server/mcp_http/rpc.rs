//! MCP requests and notifications arriving over Streamable HTTP.
//!
//! The semantics come from `exai_actors::protocol::mcp` and mirror the WebSocket session
//! (prompts, task methods and task-augmented `tools/call` through `exai_actors::mcp_extra`):
//! unknown tool or bad params → -32602, unknown method → -32601, a duplicate in-flight id →
//! -32600, over capacity / shutting down / tool failure → a result with `isError: true`.
//! What is specific to HTTP is the response shape: `application/json` with the single
//! response, or (for `tools/call` when the client accepts `text/event-stream`, or for any
//! request when it accepts nothing else) an SSE body.

use super::guard::{self, Accept};
use super::session::{CancelKind, Refusal, Session, PROTOCOL};
use super::sse::{self, CallStream};
use super::McpHttp;
use actix_web::{HttpRequest, HttpResponse};
use exai_actors::dispatch::CallRequest;
use exai_actors::dispatch::CallResult;
use exai_actors::error::ToolError;
use exai_actors::mcp_extra::{self, ExtraCtx, Handled};
use exai_actors::protocol::jsonrpc::{self, codes, RequestId};
use exai_actors::protocol::mcp::{self, RpcError};
use exai_actors::tools::ProgressSink;
use futures_util::future::{Abortable, LocalBoxFuture};
use serde_json::{json, Value};
use std::sync::Arc;
use tokio::sync::mpsc;
use tracing::Instrument;

/// Key of a request id in the in-flight table.
pub fn key(id: &RequestId) -> String {
    match id {
        RequestId::Num(n) => format!("n:{n}"),
        RequestId::Str(s) => format!("s:{s}"),
    }
}

/// Reply with one frame: JSON when acceptable, else a one-event SSE body.
fn reply(frame: &str, accept: Accept, session: Option<&str>) -> HttpResponse {
    if !accept.json {
        return sse::single(frame, session);
    }
    let mut b = HttpResponse::Ok();
    b.content_type("application/json");
    if let Some(s) = session {
        b.insert_header((guard::SESSION_HEADER, s));
    }
    b.body(frame.to_string())
}

fn rpc_error(http: &McpHttp, id: &RequestId, e: RpcError, accept: Accept) -> HttpResponse {
    http.count_error(e.code);
    reply(&e.to_frame(Some(id)), accept, None)
}

fn tool_error(id: &RequestId, e: &ToolError, accept: Accept) -> HttpResponse {
    reply(&jsonrpc::result_frame(id, mcp::tool_error_result(e, None)), accept, None)
}

/// `initialize`: negotiate, create the session, answer with its `Mcp-Session-Id`.
pub fn initialize(
    http: &McpHttp,
    req: &HttpRequest,
    id: RequestId,
    params: Option<Value>,
    accept: Accept,
) -> HttpResponse {
    let env = http.dispatcher.env();
    if env.runtime.is_shutting_down() {
        return http.fail(super::session::shutting_down());
    }
    let (result, info) = match mcp::initialize(params.as_ref(), &env.settings) {
        Ok(x) => x,
        Err(e) => return rpc_error(http, &id, e, accept),
    };
    let peer = req.peer_addr().map(|a| a.ip().to_string());
    match http.sessions.create(info, peer) {
        Ok(session) => reply(&jsonrpc::result_frame(&id, result), accept, Some(&session.id)),
        Err(e) => http.fail(e),
    }
}

/// A request on an established session.
pub async fn request(
    http: &McpHttp,
    session: Arc<Session>,
    id: RequestId,
    method: &str,
    params: Option<Value>,
    accept: Accept,
) -> HttpResponse {
    let res = match method {
        "ping" => Ok(json!({})),
        "tools/list" => mcp::tools_list(params.as_ref(), http.dispatcher.registry()),
        "logging/setLevel" => mcp::set_level(params.as_ref()).map(|l| {
            session.set_log_level(l);
            json!({})
        }),
        "tools/call" => return call(http, session, id, params, accept).await,
        // Prompts and tasks: the transport-neutral hook.
        other => match mcp_extra::handle(other, params.as_ref(), &extra_ctx(http, &session)) {
            Some(Handled::Now(r)) => r,
            Some(Handled::Later(fut)) => fut.await,
            None => Err(RpcError::method_not_found(other)),
        },
    };
    match res {
        Ok(v) => reply(&jsonrpc::result_frame(&id, v), accept, None),
        Err(e) => rpc_error(http, &id, e, accept),
    }
}

/// What the prompts/tasks hook needs from this session. The HTTP GET stream carries no
/// notifications, so task status changes are not pushed (clients poll `tasks/get`).
fn extra_ctx(http: &McpHttp, session: &Session) -> ExtraCtx {
    ExtraCtx {
        dispatcher: http.dispatcher.clone(),
        principal: exai_actors::access::principal(http.dispatcher.env().settings.auth_token.as_deref()),
        session_id: Arc::clone(&session.id),
        protocol: PROTOCOL,
        notify: None,
    }
}

async fn call(
    http: &McpHttp,
    session: Arc<Session>,
    id: RequestId,
    params: Option<Value>,
    accept: Accept,
) -> HttpResponse {
    let mut p = match mcp::call_params(params) {
        Ok(p) => p,
        Err(e) => return rpc_error(http, &id, e, accept),
    };
    if http.dispatcher.registry().get(&p.name).is_none() {
        return rpc_error(http, &id, RpcError::invalid_params(format!("Unknown tool: {}", p.name)), accept);
    }
    // A task-augmented call runs detached from this request (the hook stores it).
    if let Some(task) = p.task.take() {
        return match mcp_extra::call_as_task(p, task, &id, &extra_ctx(http, &session)).await {
            Ok(v) => reply(&jsonrpc::result_frame(&id, v), accept, None),
            Err(e) => rpc_error(http, &id, e, accept),
        };
    }
    let env = Arc::clone(http.dispatcher.env());
    exai_actors::idle_poll::touch(env.settings.idle_poll());
    if env.runtime.is_shutting_down() {
        return tool_error(&id, &ToolError::ShuttingDown, accept);
    }
    let ticket = match session.register_call(&key(&id), &p.name, env.settings.session_max_inflight) {
        Ok(t) => t,
        Err(Refusal::Duplicate) => {
            let e = RpcError {
                code: codes::INVALID_REQUEST,
                message: format!("request id {id} is already in flight on this session"),
                data: None,
            };
            return rpc_error(http, &id, e, accept);
        }
        Err(Refusal::OverCapacity(max)) => {
            let e = ToolError::OverCapacity {
                message: format!("session concurrency limit reached ({max} calls in flight on this session)"),
                retry_after_secs: env.settings.retry_after_secs,
            };
            return tool_error(&id, &e, accept);
        }
        Err(Refusal::Closed) => return http.fail(super::error::HttpError::SessionNotFound),
    };
    let streaming = accept.sse;
    let (progress, rx) = if streaming {
        let (tx, rx) = mpsc::channel(env.settings.outbox_capacity.max(1));
        let shed = env.metrics.outbox_shed.with_label_values(&["progress"]);
        (sse::progress_sink(tx, p.progress_token, session.log_level(), shed), Some(rx))
    } else {
        (ProgressSink::none(), None)
    };
    let req = CallRequest {
        name: p.name,
        args: p.arguments,
        session_id: Arc::clone(&session.id),
        request_id: id.to_string(),
        principal: exai_actors::access::principal(env.settings.auth_token.as_deref()),
        protocol: PROTOCOL,
        progress,
    };
    // Every line logged while the call runs names its session and request.
    let span = tracing::info_span!("call", session = %req.session_id, request = %req.request_id,
                                   tool = %req.name, protocol = req.protocol);
    let call: LocalBoxFuture<'static, CallResult> = Box::pin(http.dispatcher.call(req).instrument(span));
    let fut = Abortable::new(call, ticket.registration);
    if let Some(rx) = rx {
        return sse::response(CallStream::new(fut, rx, id, ticket.kind, ticket.guard), None);
    }
    let outcome = fut.await;
    exai_actors::idle_poll::touch(env.settings.idle_poll());
    drop(ticket.guard);
    match sse::final_frame(&id, outcome, &ticket.kind) {
        Some(frame) => reply(&frame, accept, None),
        // Cancelled by the client: no JSON-RPC response; the HTTP request still needs an answer.
        None => HttpResponse::Accepted().finish(),
    }
}

/// A notification on an established session (always answered 202 by the caller).
pub fn notification(session: &Session, method: &str, params: Option<&Value>) {
    if method != "notifications/cancelled" {
        // `notifications/initialized` needs no action; unknown ones are ignored per the spec.
        return;
    }
    let Some(id) = params.and_then(|p| p.get("requestId")).and_then(RequestId::from_value) else {
        return;
    };
    if let Some((tool, ran)) = session.cancel(&key(&id), CancelKind::Client) {
        tracing::info!(session = %session.id, request = %id, tool = %tool,
                       ran_ms = ran.as_millis() as u64, "call cancelled by client");
    }
}
