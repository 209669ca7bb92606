//! The legacy EXAI op protocol inside [`WsSession`]: `hello` handshake with token and session
//! id, `list_tools`, `call_tool` → `call_tool_ack` → `progress`/`stream_chunk` →
//! `stream_complete` → `call_tool_res`, `ping`, `cancel` (really cancels), `health`.
//! A repeated `request_id` in flight is not executed twice; a finished one is answered from
//! the bounded result cache.

use super::{Mode, ReplyTo, WsSession};
use crate::dispatch::{CallRequest, CallResult};
use crate::error::ToolError;
use crate::protocol::legacy::{self, close, Op};
use crate::result_cache::ResultCache;
use crate::tools::{ProgressEvent, ProgressSink};
use actix::prelude::*;
use serde_json::json;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use subtle::ConstantTimeEq;
use tokio::sync::mpsc;

fn token_ok(expected: Option<&str>, given: Option<&str>) -> bool {
    match expected {
        None => true,
        Some(e) => given.is_some_and(|g| g.len() == e.len() && bool::from(g.as_bytes().ct_eq(e.as_bytes()))),
    }
}

fn progress_sink(
    out: mpsc::Sender<super::Outbound>,
    gauge: Arc<super::core::OutboxGauge>,
    request_id: String,
    name: String,
) -> ProgressSink {
    ProgressSink::new(move |ev| {
        let frame = match &ev {
            ProgressEvent::Chunk(text) => legacy::stream_chunk(&request_id, text),
            ProgressEvent::Progress { message, .. } => legacy::progress(&request_id, &name, message.as_deref()),
            ProgressEvent::Log { .. } => return,
        };
        let _ = gauge.try_send(&out, frame);
    })
}

impl WsSession {
    pub(super) fn on_legacy_hello(&mut self, text: &str, ctx: &mut Context<Self>) {
        match legacy::parse(text) {
            Err(legacy::OpError::NotJson(_)) => {
                self.send(legacy::hello_err("invalid_hello"), true, ctx);
                self.close(close::INVALID_HELLO, "invalid hello", ctx);
            }
            Ok(Op::Hello { token, session_id }) => {
                let expected = self.env().settings.auth_token.clone();
                if !self.info.authenticated && !token_ok(expected.as_deref(), token.as_deref()) {
                    tracing::warn!(peer = %self.info.peer, "legacy hello with a wrong token");
                    self.send(legacy::hello_err("unauthorized"), true, ctx);
                    self.close(close::UNAUTHORIZED, "unauthorized", ctx);
                    return;
                }
                let named = session_id.filter(|s| legacy::valid_session_id(s));
                let id = named.clone().unwrap_or_else(|| self.session_id.to_string());
                self.set_mode(Mode::Legacy);
                let s = &self.env().settings;
                let ack = legacy::hello_ok(&id, &s.server_name, &s.server_version);
                // The ack goes first; a resumed session's buffered replies follow it.
                self.send_first(ack, ctx);
                match named {
                    Some(s) => self.switch_session(&s, ctx),
                    None => self.ensure_attached(ctx),
                }
                self.record_session(false);
            }
            Ok(_) | Err(_) => {
                self.send(legacy::hello_err("missing_hello"), true, ctx);
                self.close(close::MISSING_HELLO, "missing hello", ctx);
            }
        }
    }

    pub(super) fn hello_deadline(&mut self, ctx: &mut Context<Self>) {
        // Every WebSocket must say something within `timeouts.hello_secs`: a legacy client
        // its `hello`, an MCP client any message.
        if self.mode == Mode::Detecting || !self.seen_message {
            self.close(close::HELLO_TIMEOUT, "hello timeout or disconnect", ctx);
        }
    }

    pub(super) fn on_legacy_frame(&mut self, text: &str, ctx: &mut Context<Self>) {
        let op = match legacy::parse(text) {
            Ok(op) => op,
            Err(e) => {
                self.env().metrics.protocol_errors.with_label_values(&["legacy-ws", "invalid"]).inc();
                return self.send(legacy::op_error(&e), true, ctx);
            }
        };
        match op {
            Op::Hello { .. } => {
                let s = &self.env().settings;
                let ack = legacy::hello_ok(&self.session_id, &s.server_name, &s.server_version);
                self.send(ack, true, ctx);
            }
            Op::ListTools { request_id } => {
                let tools = self.deps.dispatcher.registry().legacy_list();
                let frame = json!({ "op": "list_tools_res", "request_id": request_id, "tools": tools,
                                    "timestamp": legacy::timestamp() });
                self.send(frame.to_string(), true, ctx);
            }
            Op::Ping { request_id } => {
                let frame = json!({ "op": "pong", "request_id": request_id, "timestamp": legacy::timestamp() });
                self.send(frame.to_string(), true, ctx);
            }
            Op::Health { request_id } => {
                let frame = self.health_frame(request_id.as_deref());
                self.send(frame, true, ctx);
            }
            Op::Cancel { request_id } => self.legacy_cancel(request_id, ctx),
            Op::CallTool { request_id, name, arguments } => self.legacy_call(request_id, name, arguments, ctx),
        }
    }

    fn health_frame(&self, request_id: Option<&str>) -> String {
        let env = self.env();
        let r = &env.runtime;
        let up = r.uptime_secs();
        json!({
            "op": "health_res", "request_id": request_id, "ok": true,
            "health": {
                "t": legacy::timestamp(),
                "uptime_human": format!("{}h{:02}m{:02}s", up / 3600, (up % 3600) / 60, up % 60),
                "sessions": r.sessions_legacy.load(Ordering::Relaxed) + r.sessions_mcp_ws.load(Ordering::Relaxed)
                    + r.sessions_http.load(Ordering::Relaxed),
                "global_capacity": r.inflight.max() - r.inflight.in_use(),
                "global_inflight": r.inflight.in_use(),
                "tool_count": self.deps.dispatcher.registry().len(),
                "shutting_down": r.is_shutting_down(),
            }
        })
        .to_string()
    }

    fn legacy_cancel(&mut self, request_id: Option<String>, ctx: &mut Context<Self>) {
        let Some(rid) = request_id else {
            return self.send(legacy::error(None, "INVALID_REQUEST", "cancel needs a request_id"), true, ctx);
        };
        let found = self.cancel_call(&rid);
        let was_running = found.is_some();
        if let Some(f) = found {
            let err = ToolError::Cancelled { reason: "cancelled by client".into() };
            let frame = legacy::call_error(Some(&rid), &err, None);
            self.deps.results.put(&self.session_id, &rid, frame.clone());
            self.send(frame, true, ctx);
            tracing::info!(session = %self.session_id, request = %rid, tool = %f.tool, "legacy call cancelled");
        }
        let frame = json!({ "op": "cancelled", "request_id": rid, "was_running": was_running,
                            "timestamp": legacy::timestamp() });
        self.send(frame.to_string(), true, ctx);
    }

    fn legacy_call(
        &mut self,
        request_id: Option<String>,
        name: String,
        arguments: Option<serde_json::Value>,
        ctx: &mut Context<Self>,
    ) {
        let rid = request_id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        if let Some(tool) = self.core.tool_of(&rid) {
            let note = format!("duplicate request; still processing ({tool})");
            return self.send(legacy::progress(&rid, &name, Some(&note)), true, ctx);
        }
        if let Some(frame) = self.deps.results.get(&self.session_id, &rid) {
            return self.send(frame, true, ctx);
        }
        let Some(entry) = self.deps.dispatcher.registry().get(&name) else {
            let frame = legacy::call_error(Some(&rid), &ToolError::NotFound { name }, None);
            return self.send(frame, true, ctx);
        };
        let canonical = entry.tool.spec().name.clone();
        let timeout = self.deps.dispatcher.timeout_for_name(&canonical).as_secs();
        let req = CallRequest {
            name: canonical.clone(),
            args: arguments,
            session_id: Arc::clone(&self.session_id),
            request_id: rid.clone(),
            principal: std::sync::Arc::clone(&self.principal),
            protocol: "legacy-ws",
            progress: progress_sink(self.out.clone(), Arc::clone(&self.gauge), rid.clone(), canonical.clone()),
        };
        let (results, session, r) = (Arc::clone(&self.deps.results), Arc::clone(&self.session_id), rid.clone());
        let render: crate::engine::Render = Box::new(move |res| render_legacy_call(&results, &session, &r, res));
        let caller = crate::engine::Caller {
            dispatcher: &self.deps.dispatcher,
            core: &self.core,
            protocol: "legacy-ws",
            route: super::Route::Attached,
            draining: self.draining.is_some(),
            principal: &self.principal,
        };
        // The ack goes out before the call can possibly finish (it runs as its own task).
        match crate::engine::start_call(&caller, rid.clone(), ReplyTo::Legacy(rid.clone()), req, render) {
            Ok(()) => self.send(legacy::ack(&rid, &canonical, timeout), true, ctx),
            Err(crate::engine::StartError::Duplicate) => {
                let note = format!("duplicate request; still processing ({canonical})");
                self.send(legacy::progress(&rid, &canonical, Some(&note)), true, ctx)
            }
            Err(crate::engine::StartError::Refused(e)) => {
                self.send(legacy::call_error(Some(&rid), &e, None), true, ctx)
            }
        }
    }

    /// Bare `progress` heartbeats for calls running longer than one interval.
    pub(super) fn legacy_heartbeats(&mut self, ctx: &mut Context<Self>) {
        if self.mode != Mode::Legacy {
            return;
        }
        let every = std::time::Duration::from_secs(self.env().settings.progress_interval_secs.max(1));
        let frames: Vec<String> = self
            .core
            .calls()
            .into_iter()
            .filter(|(_, _, started)| started.elapsed() >= every)
            .map(|(rid, tool, _)| legacy::progress(&rid, &tool, None))
            .collect();
        for f in frames {
            self.send(f, false, ctx);
        }
    }
}

fn render_legacy_call(results: &ResultCache, session: &str, rid: &str, res: &CallResult) -> Vec<String> {
    let frame = legacy::call_result(rid, res);
    results.put(session, rid, frame.clone());
    if res.outcome.is_ok() {
        vec![legacy::stream_complete(rid), frame]
    } else {
        vec![frame]
    }
}
