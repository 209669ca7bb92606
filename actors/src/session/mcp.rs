//! MCP over WebSocket inside [`WsSession`]: lifecycle, concurrent `tools/call` with progress
//! and cancellation, logging level, and server-initiated pings. Prompts, the task methods and
//! task-augmented `tools/call` go to the transport-neutral hook [`crate::mcp_extra`].

use super::{ReplyTo, SessionDeps, WsSession};
use crate::dispatch::{CallRequest, CallResult};
use crate::error::ToolError;
use crate::mcp_extra::{self, ExtraCtx, Handled};
use crate::protocol::jsonrpc::{self, codes, Incoming, RequestId};
use crate::protocol::mcp::{self, RpcError};
use crate::protocol::mcp_frame;
use crate::tools::{LogLevel, ProgressSink};
use actix::prelude::*;
use futures_util::future::LocalBoxFuture;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::rc::Rc;
use std::sync::Arc;
use tokio::sync::mpsc;

/// Per-connection MCP state.
#[derive(Debug)]
pub(super) struct McpState {
    initialized: bool,
    log_level: LogLevel,
    next_ping: u64,
    pending_pings: HashSet<String>,
}

impl Default for McpState {
    fn default() -> Self {
        McpState { initialized: false, log_level: LogLevel::Info, next_ping: 0, pending_pings: HashSet::new() }
    }
}

fn key(id: &RequestId) -> String {
    match id {
        RequestId::Num(n) => format!("n:{n}"),
        RequestId::Str(s) => format!("s:{s}"),
    }
}

/// Progress sink turning tool events into MCP notifications on this connection. Progress is
/// sheddable: a full outbox drops it rather than blocking the tool.
fn progress_sink(out: mpsc::Sender<super::Outbound>, token: Option<Value>, level: LogLevel) -> ProgressSink {
    mcp::ProgressRenderer::new(token, level).into_sink(move |frame| {
        let _ = out.try_send(super::Outbound::Text(frame));
    })
}

impl WsSession {
    pub(super) fn on_mcp_frame(&mut self, text: &str, ctx: &mut Context<Self>) {
        match jsonrpc::parse(text) {
            Err(e) => {
                let code = match e {
                    jsonrpc::ParseError::NotJson(_) => "-32700",
                    jsonrpc::ParseError::Invalid { .. } => "-32600",
                };
                self.env().metrics.protocol_errors.with_label_values(&["mcp-ws", code]).inc();
                self.send(e.to_frame(), true, ctx);
            }
            Ok(Incoming::Request { id, method, params }) => self.on_mcp_request(id, &method, params, ctx),
            Ok(Incoming::Notification { method, params }) => self.on_mcp_notification(&method, params),
            Ok(Incoming::Response { id, .. }) => {
                self.mcp.pending_pings.remove(&key(&id));
            }
        }
    }

    fn rpc_error(&mut self, id: &RequestId, e: RpcError, ctx: &mut Context<Self>) {
        let code = e.code.to_string();
        self.env().metrics.protocol_errors.with_label_values(&["mcp-ws", &code]).inc();
        self.send(e.to_frame(Some(id)), true, ctx);
    }

    fn on_mcp_request(&mut self, id: RequestId, method: &str, params: Option<Value>, ctx: &mut Context<Self>) {
        let settings = std::sync::Arc::clone(&self.env().settings);
        let res: Result<Value, RpcError> = match method {
            "initialize" => mcp::initialize(params.as_ref(), &settings).map(|(mut r, info)| {
                self.client_name = info.name;
                self.client_version = info.version;
                self.record_session(false);
                // Reconnect with `?session_id=<this>` to resume the session (its running calls
                // and the replies that finish while the connection is down) — when it is
                // resumable (the client named it). `resumed`: this connection found the session
                // still alive, so calls sent before the drop will be answered here; when false
                // (e.g. the server restarted or the grace expired) they never will be.
                r["_meta"] = json!({
                    "exai/session_id": self.session_id.as_ref(),
                    "exai/resumable": self.resumable,
                    "exai/resumed": self.resumed,
                });
                r
            }),
            "ping" => Ok(json!({})),
            "tools/list" => mcp::tools_list(params.as_ref(), self.deps.dispatcher.registry()),
            "logging/setLevel" => mcp::set_level(params.as_ref()).map(|l| {
                self.mcp.log_level = l;
                json!({})
            }),
            "tools/call" => return self.on_tools_call(id, params, ctx),
            // Prompts and tasks: the transport-neutral hook.
            other => match mcp_extra::handle(other, params.as_ref(), &self.extra_ctx()) {
                Some(Handled::Now(r)) => r,
                Some(Handled::Later(fut)) => return self.reply_later(id, fut, ctx),
                None => Err(RpcError::method_not_found(other)),
            },
        };
        match res {
            Ok(v) => self.send(jsonrpc::result_frame(&id, v), true, ctx),
            Err(e) => self.rpc_error(&id, e, ctx),
        }
    }

    /// What the prompts/tasks hook needs from this session.
    fn extra_ctx(&self) -> ExtraCtx {
        let out = self.out.clone();
        ExtraCtx {
            dispatcher: self.deps.dispatcher.clone(),
            principal: Arc::clone(&self.principal),
            session_id: Arc::clone(&self.session_id),
            protocol: "mcp-ws",
            notify: Some(Rc::new(move |frame| {
                let _ = out.try_send(super::Outbound::Text(frame));
            })),
        }
    }

    /// Send the response once `fut` resolves (it runs on this session's thread; a request
    /// still waiting when the connection closes is dropped with it).
    fn reply_later(
        &mut self,
        id: RequestId,
        fut: LocalBoxFuture<'static, Result<Value, RpcError>>,
        ctx: &mut Context<Self>,
    ) {
        ctx.spawn(fut.into_actor(self).map(move |res, act, ctx| match res {
            Ok(v) => act.send(jsonrpc::result_frame(&id, v), true, ctx),
            Err(e) => act.rpc_error(&id, e, ctx),
        }));
    }

    fn on_tools_call(&mut self, id: RequestId, params: Option<Value>, ctx: &mut Context<Self>) {
        let mut p = match mcp::call_params(params) {
            Ok(p) => p,
            Err(e) => return self.rpc_error(&id, e, ctx),
        };
        if self.deps.dispatcher.registry().get(&p.name).is_none() {
            return self.rpc_error(&id, RpcError::invalid_params(format!("Unknown tool: {}", p.name)), ctx);
        }
        // A task-augmented call runs detached from this connection (the hook stores it).
        if let Some(task) = p.task.take() {
            let fut = mcp_extra::call_as_task(p, task, &id, &self.extra_ctx());
            return self.reply_later(id, fut, ctx);
        }
        let k = key(&id);
        if self.core.contains(&k) {
            let e = RpcError {
                code: codes::INVALID_REQUEST,
                message: format!("request id {id} is already in flight on this connection"),
                data: None,
            };
            return self.rpc_error(&id, e, ctx);
        }
        if let Err(e) = self.admit() {
            return self.mcp_reply_tool_error(&id, e, ctx);
        }
        let progress = progress_sink(self.out.clone(), p.progress_token, self.mcp.log_level);
        let req = CallRequest {
            name: p.name,
            args: p.arguments,
            session_id: std::sync::Arc::clone(&self.session_id),
            request_id: id.to_string(),
            principal: std::sync::Arc::clone(&self.principal),
            protocol: "mcp-ws",
            progress,
        };
        self.spawn_call(k, ReplyTo::Mcp(id), req, render_mcp_call);
    }

    pub(super) fn mcp_reply_tool_error(&mut self, id: &RequestId, e: ToolError, ctx: &mut Context<Self>) {
        self.send(jsonrpc::result_frame(id, mcp::tool_error_result(&e, None)), true, ctx);
    }

    fn on_mcp_notification(&mut self, method: &str, params: Option<Value>) {
        match method {
            "notifications/initialized" => self.mcp.initialized = true,
            "notifications/cancelled" => {
                let Some(id) = params.as_ref().and_then(|p| p.get("requestId")).and_then(RequestId::from_value) else {
                    return;
                };
                if let Some(f) = self.cancel_call(&key(&id)) {
                    tracing::info!(session = %self.session_id, request = %id, tool = %f.tool,
                                   ran_ms = f.started.elapsed().as_millis() as u64, "call cancelled by client");
                }
            }
            // Unknown notifications are ignored, as the spec asks.
            _ => {}
        }
    }

    pub(super) fn mcp_heartbeat(&mut self, ctx: &mut Context<Self>) {
        if !self.mcp.initialized || self.mcp.pending_pings.len() > 4 {
            return;
        }
        self.mcp.next_ping += 1;
        let id = RequestId::Str(format!("exai-ping-{}", self.mcp.next_ping));
        self.mcp.pending_pings.insert(key(&id));
        self.send(jsonrpc::request_frame(&id, "ping", None), false, ctx);
    }
}

fn render_mcp_call(_: &SessionDeps, _: &Arc<str>, to: &ReplyTo, res: &CallResult) -> Vec<String> {
    match to {
        ReplyTo::Mcp(id) => vec![mcp_frame::call_result_frame(id, res)],
        ReplyTo::Legacy(_) => Vec::new(),
    }
}
