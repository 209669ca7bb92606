//! The MCP methods beyond the core ones (`initialize`, `ping`, `tools/list`,
//! `logging/setLevel`, plain `tools/call`): prompts and tasks, behind one transport-neutral
//! hook each transport calls.
//!
//! - [`handle`]: called by a transport's method match for a method it does not know. `None`
//!   means "not mine either" (the transport answers -32601); otherwise the answer is ready at
//!   once ([`Handled::Now`]) or comes from a future ([`Handled::Later`]) the transport runs on
//!   its own thread and whose result it sends as the response.
//! - [`call_as_task`]: called by a transport's `tools/call` once the tool is known, when the
//!   params carry `task` ([`crate::protocol::mcp::CallParams::task`]): instead of running the
//!   call on the connection it answers with the `CreateTaskResult` and runs the call detached.
//!
//! Neither needs anything from the transport beyond an [`ExtraCtx`].

use crate::dispatch::Dispatcher;
use crate::protocol::jsonrpc::RequestId;
use crate::protocol::mcp::{CallParams, RpcError};
use futures_util::future::LocalBoxFuture;
use serde_json::Value;
use std::rc::Rc;
use std::sync::Arc;

/// What a hook needs from the transport that received the request.
#[derive(Clone)]
pub struct ExtraCtx {
    /// The dispatcher (registry, shared services).
    pub dispatcher: Dispatcher,
    /// The caller's identity: tasks are bound to it.
    pub principal: Arc<str>,
    /// The logical session the request arrived on.
    pub session_id: Arc<str>,
    /// `mcp-ws` or `mcp-http`.
    pub protocol: &'static str,
    /// Delivers a notification frame to this session, when the transport can push one
    /// (best effort: a frame that does not fit is dropped).
    pub notify: Option<Rc<dyn Fn(String)>>,
}

/// A hook's answer.
pub enum Handled {
    /// The result (or error) is ready.
    Now(Result<Value, RpcError>),
    /// The result comes later (a store round trip, or `tasks/result` waiting for the task).
    Later(LocalBoxFuture<'static, Result<Value, RpcError>>),
}

/// Answer `method` if it is a prompts or tasks method; `None` otherwise.
pub fn handle(method: &str, params: Option<&Value>, ctx: &ExtraCtx) -> Option<Handled> {
    let env = ctx.dispatcher.env();
    Some(match method {
        "prompts/list" => {
            Handled::Now(crate::prompts::list(params, ctx.dispatcher.registry(), env.settings.tools_page_size))
        }
        "prompts/get" => Handled::Now(crate::prompts::get(params, ctx.dispatcher.registry(), &env.catalog)),
        "tasks/get" => Handled::Later(Box::pin(crate::tasks::rpc::get(ctx.clone(), params.cloned()))),
        "tasks/result" => Handled::Later(Box::pin(crate::tasks::rpc::result(ctx.clone(), params.cloned()))),
        "tasks/list" => Handled::Later(Box::pin(crate::tasks::rpc::list(ctx.clone(), params.cloned()))),
        "tasks/cancel" => Handled::Later(Box::pin(crate::tasks::rpc::cancel(ctx.clone(), params.cloned()))),
        _ => return None,
    })
}

/// A task-augmented `tools/call` of a registered tool: the future stores the task, starts
/// the call detached from the connection and resolves to the `CreateTaskResult` (or to a
/// JSON-RPC error: the tool does not support tasks, bad `task` params, shutting down, store
/// unavailable).
pub fn call_as_task(
    params: CallParams,
    task: Value,
    request_id: &RequestId,
    ctx: &ExtraCtx,
) -> LocalBoxFuture<'static, Result<Value, RpcError>> {
    Box::pin(crate::tasks::rpc::start(ctx.clone(), params, task, request_id.to_string()))
}
