//! [`Connection`]: the actor owning one logical connection to an exai server.
//!
//! States ([`ConnState`]): `Connecting` (first attempt) → `Ready` → on a drop or a dead
//! connection `Backoff` (capped exponential delay with full jitter) → `Reconnecting` → `Ready`
//! … → `Closed` once the client is dropped. Calls are multiplexed by request id: a bounded map of
//! pending calls, each with a oneshot sender for its reply and an optional bounded channel for
//! its progress frames. Calls submitted while not `Ready` are queued and sent on the next
//! `Ready` (failing with `NotConnected` after `ready_wait`). On a drop, legacy calls stay pending
//! and are resent with the same `request_id` after reconnecting with the same `hello.session_id`
//! (the server answers a finished one from its result cache). MCP calls in flight fail with
//! `Disconnected`, unless the session is resumable (the client named it with
//! [`ClientConfig::session_id`], or the server says so in the `initialize` result's
//! `_meta."exai/resumable"`) and resume is on: then the client reconnects with
//! `Mcp-Session-Id`/`?session_id=` and, when the server confirms that it found the same session
//! still alive (same `_meta."exai/session_id"`, and `"exai/resumed"` not false), keeps waiting
//! for the replies (not resent); otherwise — the server restarted, or the grace expired —
//! they fail with `Disconnected` at once.
//!
//! The socket is driven by two tasks per connection: a reader forwarding frames as [`Wire`]
//! messages (tagged with the connection generation, so stale ones are ignored) and a writer
//! draining a bounded queue. Liveness: a WebSocket ping every `heartbeat_interval`; no frame from
//! the server for `dead_after` drops the connection.

use super::transport::{self, Opened};
use super::{ClientConfig, ClientError, ConnState, Protocol, Status};
use actix::prelude::*;
use awc::ws::{Frame, Message};
use bytes::Bytes;
use exai_actors::protocol::jsonrpc::{self, Incoming, RequestId};
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot, watch};

/// The reply to one call.
pub(crate) type Reply = oneshot::Sender<Result<Value, ClientError>>;

/// Submit a request (MCP method, or a legacy op mapped from `tools/call`, `tools/list`, `ping`,
/// `health`). Answers the upstream id given to it.
#[derive(Message)]
#[rtype(result = "Result<RequestId, ClientError>")]
pub(crate) struct Submit {
    pub method: String,
    pub params: Option<Value>,
    pub reply: Reply,
    pub progress: Option<mpsc::Sender<Value>>,
}

/// Send an MCP notification (fails when not connected).
#[derive(Message)]
#[rtype(result = "Result<(), ClientError>")]
pub(crate) struct Notify {
    pub method: String,
    pub params: Option<Value>,
}

/// Cancel (or abandon) a pending call: it fails with `Cancelled` and the server is told.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Cancel {
    pub id: RequestId,
    pub reason: String,
}

/// Drop the current TCP connection abruptly (no close frame), as a network failure would.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct DropConnection;

/// Stop: every pending call fails with `Closed`.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Shutdown;

/// A socket event from the reader or writer task of connection `gen`.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Wire {
    gen: u64,
    ev: WireEvent,
}

enum WireEvent {
    Text(String),
    Ping(Bytes),
    Other,
    Closed(String),
}

/// MCP progress token: (our token key, the caller's own token).
type Token = (String, Option<Value>);

struct Pending {
    seq: u64,
    frame: String,
    tool_call: bool,
    reply: Reply,
    progress: Option<mpsc::Sender<Value>>,
    token: Option<Token>,
    sent_gen: Option<u64>,
    /// MCP: sent on a connection that dropped; waiting for the resumed session to deliver it.
    awaiting_resume: bool,
    waiting_since: Instant,
}

struct Link {
    gen: u64,
    out: mpsc::Sender<Message>,
    tasks: [tokio::task::JoinHandle<()>; 2],
}

impl Drop for Link {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// The connection actor.
pub(crate) struct Connection {
    cfg: Arc<ClientConfig>,
    state: ConnState,
    gen: u64,
    link: Option<Link>,
    attempt: u32,
    /// Which URL the next attempt dials: 0 = `cfg.url`, i = `cfg.fallback_urls[i - 1]`.
    url_index: usize,
    /// Attempts that failed in a row on different URLs (the backoff waits after a whole round).
    failed_in_round: usize,
    session_id: Option<String>,
    /// MCP: the session outlives a dropped connection, so calls in flight wait for the resume.
    resumable: bool,
    pending: HashMap<RequestId, Pending>,
    tokens: HashMap<String, RequestId>,
    next: u64,
    last_rx: Instant,
    in_flight_calls: usize,
    status: watch::Sender<Status>,
    notifications: mpsc::Sender<Value>,
}

impl Connection {
    pub(crate) fn new(
        cfg: Arc<ClientConfig>,
        status: watch::Sender<Status>,
        notifications: mpsc::Sender<Value>,
    ) -> Self {
        let session_id = cfg.session_id.clone();
        Connection {
            cfg,
            state: ConnState::Connecting,
            gen: 0,
            link: None,
            attempt: 0,
            url_index: 0,
            failed_in_round: 0,
            resumable: session_id.is_some(),
            session_id,
            pending: HashMap::new(),
            tokens: HashMap::new(),
            next: 0,
            last_rx: Instant::now(),
            in_flight_calls: 0,
            status,
            notifications,
        }
    }

    fn set_state(&mut self, state: ConnState, error: Option<String>) {
        self.state = state;
        let sid = self.session_id.clone();
        self.status.send_modify(|s| {
            s.state = state;
            if error.is_some() {
                s.last_error = error;
            }
            s.session_id = sid;
        });
    }

    fn connect(&mut self, ctx: &mut Context<Self>) {
        if self.state == ConnState::Closed {
            return;
        }
        let next = if self.status.borrow().connects == 0 { ConnState::Connecting } else { ConnState::Reconnecting };
        self.set_state(next, None);
        let cfg = match self.url_index {
            0 => Arc::clone(&self.cfg),
            i => {
                let mut c = (*self.cfg).clone();
                c.url = self.cfg.fallback_urls.get(i - 1).cloned().unwrap_or_else(|| self.cfg.url.clone());
                Arc::new(c)
            }
        };
        let resume = match cfg.protocol {
            Protocol::Legacy => self.session_id.clone(),
            Protocol::Mcp if cfg.mcp_resume && self.resumable => self.session_id.clone(),
            Protocol::Mcp => None,
        };
        let fut = async move { transport::open(&cfg, resume.as_deref()).await };
        ctx.spawn(fut.into_actor(self).map(|res, act, ctx| match res {
            Ok(opened) => act.on_open(opened, ctx),
            Err(e) => {
                tracing::debug!(error = %e, attempt = act.attempt, url_index = act.url_index, "connect failed");
                // Another server to try: at once, without waiting; after a whole round, back off.
                let urls = 1 + act.cfg.fallback_urls.len();
                act.url_index = (act.url_index + 1) % urls;
                act.failed_in_round += 1;
                if act.failed_in_round < urls && !matches!(e, ClientError::BadUrl(_)) {
                    act.set_state(ConnState::Reconnecting, Some(e.to_string()));
                    act.connect(ctx);
                } else {
                    act.failed_in_round = 0;
                    act.backoff(e.to_string(), ctx);
                }
            }
        }));
    }

    fn backoff(&mut self, error: String, ctx: &mut Context<Self>) {
        if self.state == ConnState::Closed {
            return;
        }
        self.set_state(ConnState::Backoff, Some(error));
        let delay = self.cfg.backoff.delay(self.attempt, &mut rand::rng());
        self.attempt = self.attempt.saturating_add(1);
        ctx.run_later(delay, |act, ctx| act.connect(ctx));
    }

    fn on_open(&mut self, opened: Opened, ctx: &mut Context<Self>) {
        if self.state == ConnState::Closed {
            return;
        }
        self.gen += 1;
        let gen = self.gen;
        let (mut sink, mut stream) = opened.framed.split();
        let (tx, mut rx) = mpsc::channel::<Message>(self.cfg.max_pending + 64);
        let addr = ctx.address();
        let a2 = addr.clone();
        let writer = actix_rt::spawn(async move {
            while let Some(m) = rx.recv().await {
                if let Err(e) = sink.send(m).await {
                    a2.do_send(Wire { gen, ev: WireEvent::Closed(format!("write failed: {e}")) });
                    return;
                }
            }
        });
        let reader = actix_rt::spawn(async move {
            let mut partial: Option<Vec<u8>> = None;
            let reason = loop {
                let ev = match stream.next().await {
                    None => break "connection closed".to_string(),
                    Some(Err(e)) => break format!("read failed: {e}"),
                    Some(Ok(Frame::Text(b) | Frame::Binary(b))) => WireEvent::Text(String::from_utf8_lossy(&b).into()),
                    Some(Ok(Frame::Continuation(item))) => match continuation(&mut partial, item) {
                        Some(text) => WireEvent::Text(text),
                        None => WireEvent::Other,
                    },
                    Some(Ok(Frame::Ping(p))) => WireEvent::Ping(p),
                    Some(Ok(Frame::Pong(_))) => WireEvent::Other,
                    Some(Ok(Frame::Close(r))) => break format!("server closed the connection ({r:?})"),
                };
                if addr.send(Wire { gen, ev }).await.is_err() {
                    return;
                }
            };
            addr.do_send(Wire { gen, ev: WireEvent::Closed(reason) });
        });
        self.link = Some(Link { gen, out: tx, tasks: [writer, reader] });
        self.attempt = 0;
        self.failed_in_round = 0;
        self.last_rx = Instant::now();
        self.in_flight_calls = 0;
        let resumed = self.session_id.is_some()
            && opened.session_id == self.session_id
            && opened.resumed != Some(false)
            && (self.cfg.protocol == Protocol::Legacy || self.resumable);
        if opened.session_id.is_some() {
            self.session_id = opened.session_id;
        }
        if let Some(resumable) = opened.resumable {
            self.resumable = resumable;
        }
        self.settle_resumed(resumed, gen);
        let sid = self.session_id.clone();
        self.status.send_modify(|s| {
            s.connects += 1;
            s.hello = Some(opened.hello);
            s.session_id = sid;
        });
        self.set_state(ConnState::Ready, None);
        tracing::debug!(gen, "connected");
        self.flush(ctx);
    }

    /// MCP: calls that were in flight on a dropped connection are now in flight on the resumed
    /// session (the server delivers their replies), or lost when the session was not resumed.
    fn settle_resumed(&mut self, resumed: bool, gen: u64) {
        let waiting: Vec<RequestId> =
            self.pending.iter().filter(|(_, p)| p.awaiting_resume).map(|(id, _)| id.clone()).collect();
        for id in waiting {
            if !resumed {
                self.finish(&id, Err(ClientError::Disconnected));
            } else if let Some(p) = self.pending.get_mut(&id) {
                p.awaiting_resume = false;
                p.sent_gen = Some(gen);
                self.in_flight_calls += usize::from(p.tool_call);
            }
        }
    }

    /// The connection is gone: keep what can be resent/resumed, fail the rest, back off.
    fn teardown(&mut self, reason: String, ctx: &mut Context<Self>) {
        let Some(link) = self.link.take() else { return };
        let gen = link.gen;
        drop(link);
        tracing::debug!(gen, reason = %reason, "connection lost");
        let keep = match self.cfg.protocol {
            Protocol::Legacy => true,
            Protocol::Mcp => self.cfg.mcp_resume && self.resumable && self.session_id.is_some(),
        };
        let now = Instant::now();
        let lost: Vec<RequestId> =
            self.pending.iter().filter(|(_, p)| p.sent_gen == Some(gen) && !keep).map(|(id, _)| id.clone()).collect();
        for id in lost {
            self.finish(&id, Err(ClientError::Disconnected));
        }
        let mcp = self.cfg.protocol == Protocol::Mcp;
        for p in self.pending.values_mut() {
            // Legacy calls are resent with the same request id; MCP calls wait for the resume.
            p.awaiting_resume |= mcp && p.sent_gen == Some(gen);
            p.sent_gen = None;
            p.waiting_since = now;
        }
        self.in_flight_calls = 0;
        self.backoff(reason, ctx);
    }

    fn write(&mut self, m: Message, ctx: &mut Context<Self>) -> bool {
        let Some(link) = &self.link else { return false };
        if link.out.try_send(m).is_err() {
            self.teardown("write queue full (server not reading)".into(), ctx);
            return false;
        }
        true
    }

    /// Send every queued call (in submission order) the window allows.
    fn flush(&mut self, ctx: &mut Context<Self>) {
        if self.state != ConnState::Ready {
            return;
        }
        let Some(gen) = self.link.as_ref().map(|l| l.gen) else { return };
        let mut queued: Vec<(u64, RequestId)> = self
            .pending
            .iter()
            .filter(|(_, p)| p.sent_gen.is_none() && !p.awaiting_resume)
            .map(|(id, p)| (p.seq, id.clone()))
            .collect();
        queued.sort_by_key(|(seq, _)| *seq);
        for (_, id) in queued {
            let Some(p) = self.pending.get(&id) else { continue };
            if p.tool_call && self.in_flight_calls >= self.cfg.max_in_flight {
                continue;
            }
            let (frame, tool_call) = (p.frame.clone(), p.tool_call);
            if !self.write(Message::Text(frame.into()), ctx) {
                return;
            }
            if let Some(p) = self.pending.get_mut(&id) {
                p.sent_gen = Some(gen);
            }
            if tool_call {
                self.in_flight_calls += 1;
            }
        }
    }

    fn finish(&mut self, id: &RequestId, res: Result<Value, ClientError>) -> bool {
        let Some(p) = self.pending.remove(id) else { return false };
        if let Some((key, _)) = &p.token {
            self.tokens.remove(key);
        }
        let current = self.link.as_ref().map(|l| l.gen);
        if p.tool_call && p.sent_gen.is_some() && p.sent_gen == current {
            self.in_flight_calls = self.in_flight_calls.saturating_sub(1);
        }
        let _ = p.reply.send(res);
        true
    }

    fn new_id(&mut self) -> RequestId {
        self.next += 1;
        match self.cfg.protocol {
            Protocol::Mcp => RequestId::Num(self.next as i64),
            Protocol::Legacy => {
                let prefix: String = self.session_id.as_deref().unwrap_or("c").chars().take(8).collect();
                RequestId::Str(format!("{prefix}-{}-{}", std::process::id(), self.next))
            }
        }
    }

    fn build(
        &self,
        id: &RequestId,
        method: &str,
        params: Option<Value>,
        want_progress: bool,
    ) -> Result<(String, bool, Option<Token>), ClientError> {
        match self.cfg.protocol {
            Protocol::Mcp => {
                let mut params = params;
                let mut token = None;
                let caller = params.as_ref().and_then(|p| p.get("_meta")).and_then(|m| m.get("progressToken")).cloned();
                if want_progress || caller.is_some() {
                    let key = format!("exai-p-{id}");
                    let p = params.get_or_insert_with(|| json!({}));
                    if let Some(obj) = p.as_object_mut() {
                        let meta = obj.entry("_meta").or_insert_with(|| json!({}));
                        if let Some(m) = meta.as_object_mut() {
                            m.insert("progressToken".into(), json!(key));
                            token = Some((key, caller));
                        }
                    }
                }
                Ok((jsonrpc::request_frame(id, method, params), method == "tools/call", token))
            }
            Protocol::Legacy => {
                let rid = id.to_string();
                let mut p = match params {
                    Some(Value::Object(m)) => m,
                    _ => Map::new(),
                };
                let frame = match method {
                    "tools/call" => json!({ "op": "call_tool", "request_id": rid,
                        "name": p.remove("name").unwrap_or(Value::Null),
                        "arguments": p.remove("arguments").unwrap_or_else(|| json!({})) }),
                    "tools/list" => json!({ "op": "list_tools", "request_id": rid }),
                    "ping" => json!({ "op": "ping", "request_id": rid }),
                    "health" => json!({ "op": "health", "request_id": rid }),
                    other => {
                        return Err(ClientError::Unsupported { protocol: "legacy", what: format!("method {other}") })
                    }
                };
                Ok((frame.to_string(), method == "tools/call", None))
            }
        }
    }

    fn on_text(&mut self, text: &str, ctx: &mut Context<Self>) {
        match self.cfg.protocol {
            Protocol::Mcp => self.on_mcp(text, ctx),
            Protocol::Legacy => self.on_legacy(text, ctx),
        }
    }

    fn on_mcp(&mut self, text: &str, ctx: &mut Context<Self>) {
        let msg = match jsonrpc::parse(text) {
            Ok(m) => m,
            Err(e) => return tracing::warn!(error = %e, "unparseable frame from server"),
        };
        match msg {
            Incoming::Response { id, outcome } => {
                let res = outcome.map_err(|e| ClientError::from_rpc(&e));
                if self.finish(&id, res) {
                    self.flush(ctx);
                }
            }
            Incoming::Request { id, method, .. } => {
                let frame = if method == "ping" {
                    jsonrpc::result_frame(&id, json!({}))
                } else {
                    jsonrpc::error_frame(
                        Some(&id),
                        jsonrpc::codes::METHOD_NOT_FOUND,
                        "client: method not supported",
                        None,
                    )
                };
                self.write(Message::Text(frame.into()), ctx);
            }
            Incoming::Notification { method, params } => {
                let token_key = params.as_ref().and_then(|p| p.get("progressToken")).and_then(Value::as_str);
                if method == "notifications/progress" {
                    if let Some(id) = token_key.and_then(|k| self.tokens.get(k)) {
                        if let Some(p) = self.pending.get(id) {
                            let mut params = params.clone().unwrap_or_else(|| json!({}));
                            if let (Some(orig), Some(obj)) =
                                (p.token.as_ref().and_then(|t| t.1.clone()), params.as_object_mut())
                            {
                                obj.insert("progressToken".into(), orig);
                            }
                            if let Some(tx) = &p.progress {
                                let _ = tx.try_send(params);
                            }
                        }
                        return;
                    }
                }
                let mut note = json!({ "jsonrpc": "2.0", "method": method });
                if let Some(p) = params {
                    note["params"] = p;
                }
                let _ = self.notifications.try_send(note);
            }
        }
    }

    fn on_legacy(&mut self, text: &str, ctx: &mut Context<Self>) {
        let Ok(v) = serde_json::from_str::<Value>(text) else {
            return tracing::warn!("unparseable frame from server");
        };
        let op = v.get("op").and_then(Value::as_str).unwrap_or_default().to_string();
        let rid = match v.get("request_id") {
            Some(Value::String(s)) => Some(RequestId::Str(s.clone())),
            Some(Value::Number(n)) => Some(RequestId::Str(n.to_string())),
            _ => None,
        };
        match (op.as_str(), rid) {
            ("call_tool_res" | "list_tools_res" | "pong" | "health_res", Some(id)) => {
                if self.pending.contains_key(&id) {
                    self.finish(&id, Ok(v));
                    self.flush(ctx);
                } else {
                    // A reply to nothing pending (a duplicate or a cancelled call): surfaced, not lost.
                    let _ = self.notifications.try_send(v);
                }
            }
            ("error", Some(id)) => {
                let err = v.get("error");
                let res = Err(ClientError::Legacy {
                    code: err.and_then(|e| e.get("code")).and_then(Value::as_str).unwrap_or("ERROR").into(),
                    message: err.and_then(|e| e.get("message")).and_then(Value::as_str).unwrap_or_default().into(),
                });
                if self.finish(&id, res) {
                    self.flush(ctx);
                }
            }
            ("progress" | "stream_chunk" | "call_tool_ack" | "stream_complete", Some(id)) => {
                if let Some(tx) = self.pending.get(&id).and_then(|p| p.progress.as_ref()) {
                    let _ = tx.try_send(v);
                }
            }
            _ => {
                let _ = self.notifications.try_send(v);
            }
        }
    }

    fn tick(&mut self, ctx: &mut Context<Self>) {
        if self.state == ConnState::Ready && self.last_rx.elapsed() > self.cfg.dead_after {
            let reason = format!("no frame from the server for {:?}", self.cfg.dead_after);
            return self.teardown(reason, ctx);
        }
        if self.state != ConnState::Ready {
            let wait = self.cfg.ready_wait;
            let expired: Vec<(RequestId, bool)> = self
                .pending
                .iter()
                .filter(|(_, p)| p.sent_gen.is_none() && p.waiting_since.elapsed() > wait)
                .map(|(id, p)| (id.clone(), p.awaiting_resume))
                .collect();
            let last = self.status.borrow().last_error.clone();
            for (id, was_sent) in expired {
                let err = if was_sent {
                    ClientError::Disconnected
                } else {
                    ClientError::NotConnected { waited: wait, last: last.clone() }
                };
                self.finish(&id, Err(err));
            }
        }
    }
}

fn continuation(partial: &mut Option<Vec<u8>>, item: actix_ws::Item) -> Option<String> {
    use actix_ws::Item;
    match item {
        Item::FirstText(b) | Item::FirstBinary(b) => {
            *partial = Some(b.to_vec());
            None
        }
        Item::Continue(b) => {
            if let Some(p) = partial.as_mut() {
                p.extend_from_slice(&b);
            }
            None
        }
        Item::Last(b) => {
            let mut p = partial.take()?;
            p.extend_from_slice(&b);
            Some(String::from_utf8_lossy(&p).into())
        }
    }
}

impl Actor for Connection {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(self.cfg.max_pending.max(16));
        ctx.run_interval(self.cfg.heartbeat_interval.max(Duration::from_millis(50)), |act, ctx| {
            if act.state == ConnState::Ready {
                act.write(Message::Ping(Bytes::from_static(b"exai-client")), ctx);
            }
        });
        ctx.run_interval(Duration::from_millis(100), |act, ctx| act.tick(ctx));
        self.connect(ctx);
    }

    fn stopped(&mut self, _ctx: &mut Context<Self>) {
        self.link = None;
        let ids: Vec<RequestId> = self.pending.keys().cloned().collect();
        for id in ids {
            self.finish(&id, Err(ClientError::Closed));
        }
        self.state = ConnState::Closed;
        self.status.send_modify(|s| s.state = ConnState::Closed);
    }
}

impl Handler<Submit> for Connection {
    type Result = Result<RequestId, ClientError>;

    fn handle(&mut self, msg: Submit, ctx: &mut Context<Self>) -> Self::Result {
        if self.state == ConnState::Closed {
            return Err(ClientError::Closed);
        }
        if self.pending.len() >= self.cfg.max_pending {
            return Err(ClientError::TooManyPending(self.cfg.max_pending));
        }
        let id = self.new_id();
        let (frame, tool_call, token) = self.build(&id, &msg.method, msg.params, msg.progress.is_some())?;
        if let Some((key, _)) = &token {
            self.tokens.insert(key.clone(), id.clone());
        }
        let seq = self.next;
        let p = Pending {
            seq,
            frame,
            tool_call,
            reply: msg.reply,
            progress: msg.progress,
            token,
            sent_gen: None,
            awaiting_resume: false,
            waiting_since: Instant::now(),
        };
        self.pending.insert(id.clone(), p);
        self.flush(ctx);
        Ok(id)
    }
}

impl Handler<Notify> for Connection {
    type Result = Result<(), ClientError>;

    fn handle(&mut self, msg: Notify, ctx: &mut Context<Self>) -> Self::Result {
        if self.cfg.protocol == Protocol::Legacy {
            return Err(ClientError::Unsupported { protocol: "legacy", what: "notifications".into() });
        }
        if self.state != ConnState::Ready {
            let last = self.status.borrow().last_error.clone();
            return Err(ClientError::NotConnected { waited: Duration::ZERO, last });
        }
        let frame = jsonrpc::notification_frame(&msg.method, msg.params.unwrap_or_else(|| json!({})));
        self.write(Message::Text(frame.into()), ctx);
        Ok(())
    }
}

impl Handler<Cancel> for Connection {
    type Result = ();

    fn handle(&mut self, msg: Cancel, ctx: &mut Context<Self>) {
        let current = self.link.as_ref().map(|l| l.gen);
        let Some(sent) = self.pending.get(&msg.id).map(|p| p.sent_gen.is_some() && p.sent_gen == current) else {
            return;
        };
        self.finish(&msg.id, Err(ClientError::Cancelled));
        if sent {
            let frame = match self.cfg.protocol {
                Protocol::Mcp => jsonrpc::notification_frame(
                    "notifications/cancelled",
                    json!({ "requestId": msg.id.to_value(), "reason": msg.reason }),
                ),
                Protocol::Legacy => json!({ "op": "cancel", "request_id": msg.id.to_string() }).to_string(),
            };
            self.write(Message::Text(frame.into()), ctx);
        }
        self.flush(ctx);
    }
}

impl Handler<DropConnection> for Connection {
    type Result = ();

    fn handle(&mut self, _: DropConnection, ctx: &mut Context<Self>) {
        self.teardown("connection dropped on request".into(), ctx);
    }
}

impl Handler<Shutdown> for Connection {
    type Result = ();

    fn handle(&mut self, _: Shutdown, ctx: &mut Context<Self>) {
        if let Some(link) = &self.link {
            let _ = link.out.try_send(Message::Close(None));
        }
        self.state = ConnState::Closed;
        ctx.stop();
    }
}

impl Handler<Wire> for Connection {
    type Result = ();

    fn handle(&mut self, msg: Wire, ctx: &mut Context<Self>) {
        if self.link.as_ref().map(|l| l.gen) != Some(msg.gen) {
            return;
        }
        self.last_rx = Instant::now();
        match msg.ev {
            WireEvent::Text(t) => self.on_text(&t, ctx),
            WireEvent::Ping(p) => {
                self.write(Message::Pong(p), ctx);
            }
            WireEvent::Other => {}
            WireEvent::Closed(reason) => self.teardown(reason, ctx),
        }
    }
}
