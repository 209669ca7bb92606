//! Where methods that other modules add plug into the engine's MCP method match, for every
//! transport at once: `tasks/*` and `prompts/*` ([`crate::mcp_extra`]), and a task-augmented
//! `tools/call` (one with `params.task`, run detached from the connection and stored).
//!
//! Each function is called by [`super::mcp`] before its own handling; `None` means "not
//! mine" (the engine carries on: -32601 for an unknown method, a normal `tools/call`).
//! A handler that answers later (a blocking `tasks/result`, a task being created) runs on
//! the caller's worker thread and delivers its response along the caller's route: the
//! attached connection (or the resume buffer) on WebSocket, the request's event stream on
//! Streamable HTTP; the engine answers `Answer::Started`.

use super::mcp::{rpc_error, Answer};
use super::Caller;
use crate::mcp_extra::{self, ExtraCtx, Handled};
use crate::protocol::jsonrpc::{self, RequestId};
use crate::protocol::mcp::{self, RpcError};
use crate::session::core::{ReplyTo, Route};
use futures_util::future::LocalBoxFuture;
use serde_json::Value;
use std::rc::Rc;
use std::sync::Arc;

/// What the tasks and prompts handlers need from the caller. Task status notifications go to
/// a WebSocket session (its connection, or its resume buffer); Streamable HTTP has no
/// stream to carry them outside a request, so it gets none.
fn extra_ctx(c: &Caller<'_>) -> ExtraCtx {
    let notify: Option<Rc<dyn Fn(String)>> = match c.route {
        Route::Attached => {
            let core = Arc::clone(c.core);
            Some(Rc::new(move |frame| core.deliver(vec![frame], None)))
        }
        Route::Stream(_) => None,
    };
    ExtraCtx {
        dispatcher: c.dispatcher.clone(),
        principal: Arc::clone(c.principal),
        session_id: Arc::clone(c.core.id()),
        protocol: c.protocol,
        notify,
    }
}

/// Run `fut` on this thread and deliver its response along the caller's route.
fn answer_later(c: &Caller<'_>, id: &RequestId, fut: LocalBoxFuture<'static, Result<Value, RpcError>>) -> Answer {
    let (core, route, id) = (Arc::clone(c.core), c.route, id.clone());
    let errors = c.dispatcher.env().metrics.protocol_errors.clone();
    let label = super::mcp::error_label(c.protocol);
    actix_rt::spawn(async move {
        let frame = match fut.await {
            Ok(v) => jsonrpc::result_frame(&id, v),
            Err(e) => {
                errors.with_label_values(&[label, &e.code.to_string()]).inc();
                e.to_frame(Some(&id))
            }
        };
        match route {
            Route::Stream(n) => {
                core.push_event(n, frame, true);
            }
            Route::Attached => core.deliver(vec![frame], Some(&ReplyTo::Mcp(id))),
        }
    });
    Answer::Started
}

/// A request whose method the engine does not know (`tasks/get`, `prompts/list`, …).
pub fn request(c: &Caller<'_>, id: &RequestId, method: &str, params: &Option<Value>) -> Option<Answer> {
    match mcp_extra::handle(method, params.as_ref(), &extra_ctx(c))? {
        Handled::Now(Ok(v)) => Some(Answer::Frame(jsonrpc::result_frame(id, v))),
        Handled::Now(Err(e)) => Some(rpc_error(c, Some(id), e)),
        Handled::Later(fut) => Some(answer_later(c, id, fut)),
    }
}

/// A `tools/call` before the engine runs it: one with `params.task` becomes a task.
pub fn tools_call(c: &Caller<'_>, id: &RequestId, params: &Option<Value>) -> Option<Answer> {
    params.as_ref()?.get("task")?;
    let mut p = match mcp::call_params(params.clone()) {
        Ok(p) => p,
        Err(e) => return Some(rpc_error(c, Some(id), e)),
    };
    if c.dispatcher.registry().get(&p.name).is_none() {
        return Some(rpc_error(c, Some(id), RpcError::invalid_params(format!("Unknown tool: {}", p.name))));
    }
    let task = p.task.take()?;
    let fut = mcp_extra::call_as_task(p, task, id, &extra_ctx(c));
    Some(answer_later(c, id, fut))
}

/// Add capabilities to the `initialize` result. `tasks` and `prompts` are declared by
/// [`crate::protocol::mcp::initialize`] itself, so nothing is added here today.
pub fn capabilities(_result: &mut Value) {}
