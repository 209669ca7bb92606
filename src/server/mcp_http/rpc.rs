//! MCP requests and notifications arriving over Streamable HTTP: framing only.
//!
//! The engine's method match (`exai_actors::engine::mcp`) answers every message, exactly as
//! on a WebSocket. What is specific to HTTP is the response shape: `application/json` with
//! the single response, or (for `tools/call` when the client accepts `text/event-stream`, or
//! for any request when it accepts nothing else) an SSE body whose events carry ids from the
//! session's event log, so that a client whose stream dropped resumes with `GET` +
//! `Last-Event-ID`. A call's stream that drops is not a cancel.

use super::guard::{self, Accept};
use super::session::{Session, PROTOCOL};
use super::sse;
use super::McpHttp;
use actix_web::{HttpRequest, HttpResponse};
use exai_actors::engine::mcp::{self, Answer};
use exai_actors::engine::Caller;
use exai_actors::protocol::jsonrpc::{self, RequestId};
use exai_actors::session::Route;
use serde_json::Value;
use std::sync::Arc;

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

fn caller<'a>(http: &'a McpHttp, core: &'a Arc<exai_actors::session::SessionCore>, route: Route) -> Caller<'a> {
    Caller {
        dispatcher: &http.dispatcher,
        core,
        protocol: PROTOCOL,
        route,
        draining: false,
        principal: &http.principal,
    }
}

/// `initialize`: negotiate, create the session, answer with its `Mcp-Session-Id`.
pub fn initialize(
    http: &McpHttp,
    req: &HttpRequest,
    id: RequestId,
    params: Option<Value>,
    accept: Accept,
) -> HttpResponse {
    let core = match http.sessions.new_core() {
        Ok(c) => c,
        Err(e) => return http.fail(e),
    };
    match mcp::request(&caller(http, &core, Route::Attached), id.clone(), "initialize", params) {
        Answer::Initialized(result) => {
            let peer = req.peer_addr().map(|a| a.ip().to_string());
            match http.sessions.create(core, peer) {
                Ok(session) => reply(&jsonrpc::result_frame(&id, result), accept, Some(&session.id)),
                Err(e) => http.fail(e),
            }
        }
        Answer::Frame(f) => {
            http.sessions.discard(&core);
            reply(&f, accept, None)
        }
        Answer::Started => {
            http.sessions.discard(&core);
            HttpResponse::Accepted().finish()
        }
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
    exai_actors::idle_poll::touch(http.dispatcher.env().settings.idle_poll());
    let core = &session.core;
    let stream = core.new_stream();
    // A client that accepts no SSE gets no progress (it could not be delivered).
    let route = Route::Stream(stream);
    let c = caller(http, core, route);
    let answer = if accept.sse {
        mcp::request(&c, id.clone(), method, params)
    } else {
        json_only(&c, id.clone(), method, params)
    };
    match answer {
        Answer::Frame(f) => reply(&f, accept, None),
        Answer::Initialized(r) => reply(&jsonrpc::result_frame(&id, r), accept, None),
        Answer::Started if accept.sse => sse::response(sse::events(Arc::clone(core), stream, 0), None),
        Answer::Started => match sse::terminal(Arc::clone(core), stream).await {
            Some(frame) => reply(&frame, accept, None),
            // Cancelled by the client: no JSON-RPC response; the HTTP request still needs an answer.
            None => HttpResponse::Accepted().finish(),
        },
    }
}

/// A JSON-only client: the same request, with no progress token (progress could not reach it).
fn json_only(c: &Caller<'_>, id: RequestId, method: &str, mut params: Option<Value>) -> Answer {
    if let Some(meta) = params.as_mut().and_then(|p| p.get_mut("_meta")).and_then(Value::as_object_mut) {
        meta.remove("progressToken");
    }
    mcp::request(c, id, method, params)
}

/// A notification on an established session (always answered 202 by the caller).
pub fn notification(http: &McpHttp, session: &Session, method: &str, params: Option<&Value>) {
    mcp::notification(&caller(http, &session.core, Route::Attached), method, params);
}

/// A JSON-RPC batch on a session that negotiated 2025-03-26: every member is handled as if it
/// came alone; the responses to its requests come back as one JSON array (202 when it held
/// only notifications and responses).
pub async fn batch(http: &McpHttp, session: Arc<Session>, text: &str) -> HttpResponse {
    let items = match serde_json::from_str::<Vec<Value>>(text) {
        Ok(items) if !items.is_empty() => items,
        Ok(_) => return http.fail(super::HttpError::BadRequest("empty batch".into())),
        Err(e) => return http.fail(super::HttpError::Malformed(jsonrpc::ParseError::NotJson(e.to_string()))),
    };
    let core = &session.core;
    let mut out: Vec<String> = Vec::new();
    for item in items {
        match jsonrpc::parse_value(item) {
            Ok(jsonrpc::Incoming::Request { id, method, params }) => {
                let stream = core.new_stream();
                let c = caller(http, core, Route::Stream(stream));
                match json_only(&c, id.clone(), &method, params) {
                    Answer::Frame(f) => out.push(f),
                    Answer::Initialized(r) => out.push(jsonrpc::result_frame(&id, r)),
                    Answer::Started => out.extend(sse::terminal(Arc::clone(core), stream).await),
                }
            }
            Ok(jsonrpc::Incoming::Notification { method, params }) => {
                notification(http, &session, &method, params.as_ref())
            }
            Ok(jsonrpc::Incoming::Response { .. }) => {}
            Err(e) => out.push(e.to_frame()),
        }
    }
    if out.is_empty() {
        return HttpResponse::Accepted().finish();
    }
    HttpResponse::Ok().content_type("application/json").body(format!("[{}]", out.join(",")))
}
