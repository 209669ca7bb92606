//! MCP over WebSocket inside [`WsSession`]: framing only. Each text frame is one JSON-RPC
//! message (or, on a session that negotiated 2025-03-26, a batch); the engine's method match
//! ([`crate::engine::mcp`]) answers it, and this module adds what is specific to a WebSocket:
//! the `initialize` result's `_meta` (session id, resumable, resumed) and server-initiated
//! pings.

use super::WsSession;
use crate::engine::mcp::{self, Answer};
use crate::engine::Caller;
use crate::protocol::jsonrpc::{self, Incoming, RequestId};
use crate::session::core::Route;
use actix::prelude::*;
use serde_json::{json, Value};
use std::collections::HashSet;

/// Per-connection MCP state (the session's MCP state lives in its core).
#[derive(Debug, Default)]
pub(super) struct McpState {
    next_ping: u64,
    pending_pings: HashSet<String>,
}

impl WsSession {
    fn caller(&self) -> Caller<'_> {
        Caller {
            dispatcher: &self.deps.dispatcher,
            core: &self.core,
            protocol: "mcp-ws",
            route: Route::Attached,
            draining: self.draining.is_some(),
            principal: &self.principal,
        }
    }

    pub(super) fn on_mcp_frame(&mut self, text: &str, ctx: &mut Context<Self>) {
        if text.trim_start().starts_with('[') && mcp::batches_allowed(&self.core) {
            return self.on_mcp_batch(text, ctx);
        }
        match jsonrpc::parse(text) {
            Err(e) => {
                let code = match e {
                    jsonrpc::ParseError::NotJson(_) => "-32700",
                    jsonrpc::ParseError::Invalid { .. } => "-32600",
                };
                self.env()
                    .metrics
                    .protocol_errors
                    .with_label_values(&[crate::engine::mcp::error_label("mcp-ws"), code])
                    .inc();
                self.send(e.to_frame(), true, ctx);
            }
            Ok(m) => self.on_mcp_message(m, ctx),
        }
    }

    /// A JSON-RPC batch (2025-03-26): every member is handled as if it came alone; each
    /// answer is its own frame.
    fn on_mcp_batch(&mut self, text: &str, ctx: &mut Context<Self>) {
        let items = match serde_json::from_str::<Vec<Value>>(text) {
            Ok(items) if !items.is_empty() => items,
            Ok(_) => {
                let e = jsonrpc::ParseError::Invalid { id: None, message: "empty batch".into() };
                return self.send(e.to_frame(), true, ctx);
            }
            Err(e) => return self.send(jsonrpc::ParseError::NotJson(e.to_string()).to_frame(), true, ctx),
        };
        for item in items {
            match jsonrpc::parse_value(item) {
                Ok(m) => self.on_mcp_message(m, ctx),
                Err(e) => self.send(e.to_frame(), true, ctx),
            }
        }
    }

    fn on_mcp_message(&mut self, m: Incoming, ctx: &mut Context<Self>) {
        if !matches!(&m, Incoming::Request { method, .. } if method == "initialize") {
            self.ensure_attached(ctx);
        }
        match m {
            Incoming::Request { id, method, params } => {
                let answer = mcp::request(&self.caller(), id.clone(), &method, params);
                self.on_answer(&id, answer, ctx);
            }
            Incoming::Notification { method, params } => mcp::notification(&self.caller(), &method, params.as_ref()),
            Incoming::Response { id, .. } => {
                self.mcp.pending_pings.remove(&mcp::key(&id));
            }
        }
    }

    fn on_answer(&mut self, id: &RequestId, answer: Answer, ctx: &mut Context<Self>) {
        match answer {
            Answer::Frame(f) => self.send(f, true, ctx),
            Answer::Started => {}
            Answer::Initialized(mut r) => {
                let meta = self.core.meta();
                self.client_name = meta.client_name;
                self.client_version = meta.client_version;
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
                let frame = jsonrpc::result_frame(id, r);
                // On resume the `initialize` response comes before the buffered replies: the
                // connection attaches to its session right after it.
                self.send_first(frame, ctx);
                self.ensure_attached(ctx);
            }
        }
    }

    pub(super) fn mcp_heartbeat(&mut self, ctx: &mut Context<Self>) {
        if !self.core.meta().initialized || self.mcp.pending_pings.len() > 4 {
            return;
        }
        self.mcp.next_ping += 1;
        let id = RequestId::Str(format!("exai-ping-{}", self.mcp.next_ping));
        self.mcp.pending_pings.insert(mcp::key(&id));
        self.send(jsonrpc::request_frame(&id, "ping", None), false, ctx);
    }
}
