//! `WsSession`: one actor per WebSocket connection, speaking MCP or the legacy EXAI protocol.
//! It frames: bytes → typed messages → the session engine ([`crate::engine`]) → bytes. The
//! logical session (calls, buffers, MCP state) is its [`SessionCore`], which outlives it.
//!
//! Protocol states ([`Mode`]): `Detecting` (no frame yet; the `mcp` subprotocol skips this) →
//! `Mcp` (JSON-RPC) or `Legacy` (op protocol, after a good `hello`).
//!
//! Connection states (reconnection and backpressure):
//! - *unattached*: a connection that resumes a live session waits for its handshake
//!   (`initialize`, `hello`) so that reply precedes the session's buffered replies;
//! - *attached*: replies of the session's calls flow into this connection's bounded outbox;
//!   when it is full they wait in the core's buffer (bounded in count and bytes) and a pump
//!   moves them as the client reads; progress is shed;
//! - *stalled → lingering*: a client that has not read a reply for `stall_close_secs` is
//!   closed 1013 ahead of queued frames (they return to the core for resume), and input is
//!   read and discarded for the linger so the close frame is not lost to a reset;
//! - *replaced*: another connection of the same principal attached to the session: closed
//!   4004 (another principal is refused with 4005);
//! - *detached* (the actor stopped): the core keeps the calls and replies for
//!   `resume_grace_secs` when the client named the session, else cancels them;
//! - *draining* (shutdown): new calls refused, in-flight calls finish until the deadline
//!   (then `CANCELLED`), close 1001 once every reply is in the outbox.
//!
//! Messages taken: inbound frames as a stream of [`Inbound`], [`CallFinished`] and
//! [`core::SessionReplaced`] from its core, [`DrainSession`] from the coordinator. Sent:
//! [`RegisterSession`]/[`UnregisterSession`] to the coordinator, and every outgoing frame as
//! [`Outbound`] into a bounded outbox drained by one writer task (frame order is preserved).
//!
//! Calls run as tasks owned by the session core (spawned by the engine on this worker
//! thread), so a ping or a cancel is answered while tools run, and a dropped connection does
//! not stop them. Cancelling drops the future, which releases its permits and aborts any
//! provider request it awaits. The actor ends on client close, transport error, heartbeat
//! timeout (no frame for `client_timeout_secs`), no message within `hello_secs`, a protocol
//! violation that closes the connection, a takeover, or the end of a drain.

pub mod core;
mod legacy;
mod mcp;

pub use self::core::{BufferLimits, CallFinished, ReplyTo, ReturnSlot, Route, SessionCore, SessionRegistry};

use self::core::CallEntry;
use crate::clock::now_ms;
use crate::dispatch::Dispatcher;
use crate::limits::ConnGuard;
use crate::ports::SessionRecord;
use crate::result_cache::ResultCache;
use crate::supervision::{DrainSession, RegisterSession, UnregisterSession};
use actix::prelude::*;
use bytes::Bytes;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// An inbound WebSocket event, transport-neutral.
#[derive(Debug)]
pub enum Inbound {
    /// A text message.
    Text(String),
    /// A binary message.
    Binary(Bytes),
    /// A ping frame (answer with a pong).
    Ping(Bytes),
    /// A pong frame.
    Pong(Bytes),
    /// The client closed.
    Close(Option<(u16, String)>),
    /// The transport reported an error (oversized frame, bad frame).
    Error {
        /// Close code to answer with (1009 too big, 1002 protocol error).
        code: u16,
        /// Reason.
        reason: String,
    },
}

/// An outbound WebSocket frame.
#[derive(Debug)]
pub enum Outbound {
    /// Text message.
    Text(String),
    /// Ping.
    Ping(Bytes),
    /// Pong.
    Pong(Bytes),
    /// Close and end.
    Close(u16, String),
}

/// Detected protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// No frame yet.
    Detecting,
    /// MCP JSON-RPC.
    Mcp,
    /// Legacy op protocol (after `hello`).
    Legacy,
}

impl Mode {
    fn protocol(self) -> &'static str {
        match self {
            Mode::Legacy => "legacy-ws",
            _ => "mcp-ws",
        }
    }
}

/// What every session needs.
#[derive(Clone)]
pub struct SessionDeps {
    /// The call pipeline.
    pub dispatcher: Dispatcher,
    /// Where to register.
    pub register: Recipient<RegisterSession>,
    /// Where to unregister.
    pub unregister: Recipient<UnregisterSession>,
    /// Legacy finished-result cache.
    pub results: Arc<ResultCache>,
    /// Resumable sessions.
    pub sessions: SessionRegistry,
    /// Close a connection whose client has not read a terminal reply for this long.
    pub stall_close: Duration,
    /// After a stall close: how long the connection still lets the client read what was
    /// queued (and the close frame) while its input is read and discarded, before it ends.
    pub close_linger: Duration,
}

/// The session's side of its connection's writer task.
pub struct WriterLink {
    /// Closes the socket ahead of queued frames (a client that stopped reading).
    pub urgent_close: tokio::sync::oneshot::Sender<(u16, String)>,
    /// Bytes in the outbox (the writer takes them back as it takes frames).
    pub gauge: Arc<self::core::OutboxGauge>,
    /// Where the writer gives back the frames it could not write.
    pub return_slot: ReturnSlot,
}

/// Facts about the connection established at upgrade time.
pub struct ConnInfo {
    /// Peer address.
    pub peer: IpAddr,
    /// The client asked for (and got) the `mcp` subprotocol.
    pub mcp_subprotocol: bool,
    /// A valid token was presented at upgrade (header or query).
    pub authenticated: bool,
    /// The admission slot (released when the session ends).
    pub guard: ConnGuard,
    /// MCP: resume this session (`?session_id=` at upgrade).
    pub resume: Option<String>,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

impl WsSession {
    /// Attach now unless already attached (a resumed connection waits for its handshake).
    fn ensure_attached(&mut self, ctx: &mut Context<Self>) {
        if !self.attached {
            self.attach(ctx);
        }
    }

    /// Attach this connection to its session core: buffered replies flow first; replies that
    /// could not be kept while detached are answered with an explicit error now.
    fn attach(&mut self, ctx: &mut Context<Self>) {
        // A named session belongs to the principal that first attached to it: another
        // principal may not take it over (nor read its replies).
        if !self.core.bind_principal(&self.principal) {
            tracing::warn!(session = %self.session_id, peer = %self.info.peer,
                           "attach to a session of another principal refused");
            let code = crate::protocol::legacy::close::SESSION_OWNED;
            return self.close(code, "this session belongs to another principal", ctx);
        }
        self.attached = true;
        self.return_slot.set(&self.core);
        let me = ctx.address();
        let (lost, overflow) = self.core.attach(
            self.conn_id,
            self.out.clone(),
            Arc::clone(&self.gauge),
            me.clone().recipient(),
            me.recipient(),
        );
        for to in lost {
            let err = crate::error::ToolError::Unavailable(
                "the reply did not fit the session's resume buffer and was dropped; resend the request".into(),
            );
            self.reply_error(&to, err);
        }
        if overflow > 0 {
            tracing::warn!(session = %self.session_id, lost = overflow, "replies lost beyond the resume buffer");
        }
    }

    /// Leave the session: it waits `resume grace` for its client, then its calls are cancelled.
    fn detach(&mut self) {
        if !self.attached {
            return;
        }
        let sessions = self.deps.sessions.clone();
        match self.core.detach(self.conn_id) {
            Some(at) if self.resumable && self.mode != Mode::Detecting && !sessions.grace.is_zero() => {
                let (core, grace) = (Arc::clone(&self.core), sessions.grace);
                actix_rt::spawn(async move {
                    tokio::time::sleep(grace).await;
                    if core.detached_since(at) {
                        sessions.remove(&core);
                    }
                });
            }
            Some(_) => sessions.remove(&self.core),
            None => {}
        }
    }

    /// Switch to another logical session (legacy `hello.session_id`), resuming it if it exists.
    fn switch_session(&mut self, id: &str, ctx: &mut Context<Self>) {
        self.resumable = true;
        if id == self.session_id.as_ref() {
            self.ensure_attached(ctx);
            return;
        }
        if self.core.detach(self.conn_id).is_some() && self.core.inflight() == 0 {
            self.deps.sessions.remove(&self.core);
        }
        let (core, _) = self.deps.sessions.get_or_create(id);
        self.session_id = Arc::clone(core.id());
        self.core = core;
        self.attach(ctx);
    }
}

/// The session actor.
pub struct WsSession {
    conn_id: u64,
    /// Who is connected ([`crate::access::principal`]).
    principal: Arc<str>,
    session_id: Arc<str>,
    deps: SessionDeps,
    mode: Mode,
    out: mpsc::Sender<Outbound>,
    /// Bytes queued in `out`.
    gauge: Arc<self::core::OutboxGauge>,
    /// Closes the socket ahead of queued frames (a client that stopped reading).
    urgent_close: Option<tokio::sync::oneshot::Sender<(u16, String)>>,
    /// Kept pointing at `core` so the writer can give back frames it did not write.
    return_slot: ReturnSlot,
    /// Closed for stalling: input is read and discarded until the client closes or the
    /// linger ends, so the client can still read the close frame.
    lingering: bool,
    core: Arc<SessionCore>,
    /// The client chose the session id (legacy `hello.session_id`, MCP `?session_id=`), so it
    /// can come back for it: the session outlives the connection for the resume grace.
    resumable: bool,
    /// MCP: this connection attached to a session that already existed (`?session_id=` of a
    /// session still within its resume grace), so its calls and buffered replies carry on.
    resumed: bool,
    /// Attached to its core (a resumed connection attaches after its handshake reply, so
    /// that reply comes before the buffered ones).
    attached: bool,
    /// A message (text or binary frame) has arrived on this connection.
    seen_message: bool,
    last_seen: Instant,
    draining: Option<Instant>,
    closing: bool,
    info: ConnInfo,
    mcp: mcp::McpState,
    client_name: Option<String>,
    client_version: Option<String>,
    registered_counter: bool,
}

impl WsSession {
    /// Create the actor for a new connection. `out` is the bounded outbox its writer drains.
    pub fn new(deps: SessionDeps, info: ConnInfo, out: mpsc::Sender<Outbound>, link: WriterLink) -> WsSession {
        let conn_id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let mode = if info.mcp_subprotocol { Mode::Mcp } else { Mode::Detecting };
        let id = info.resume.clone().unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let (core, existed) = deps.sessions.get_or_create(&id);
        // Admission already checked the credential: a caller admitted with the configured
        // token (or on a server without one) is that token's principal.
        let principal = crate::access::principal(deps.dispatcher.env().settings.auth_token.as_deref());
        WsSession {
            conn_id,
            principal,
            resumed: existed && info.resume.is_some(),
            attached: false,
            seen_message: false,
            session_id: Arc::clone(core.id()),
            deps,
            mode,
            out,
            urgent_close: Some(link.urgent_close),
            gauge: link.gauge,
            return_slot: link.return_slot,
            lingering: false,
            resumable: info.resume.is_some(),
            core,
            last_seen: Instant::now(),
            draining: None,
            closing: false,
            info,
            mcp: mcp::McpState::default(),
            client_name: None,
            client_version: None,
            registered_counter: false,
        }
    }

    fn env(&self) -> &crate::env::ToolEnv {
        self.deps.dispatcher.env()
    }

    /// Queue a frame. Non-critical frames (progress, heartbeats) are shed when the outbox is
    /// full; critical ones go through the session core, which keeps them (in order) until the
    /// client reads again or resumes — a client that stops reading is closed after
    /// `stall_close` with 1013, its replies kept for resume.
    fn send(&mut self, text: String, critical: bool, ctx: &mut Context<Self>) {
        if self.closing {
            return;
        }
        if critical {
            self.core.deliver(vec![text], None);
            return;
        }
        if self.out.is_closed() {
            self.closing = true;
            return ctx.stop();
        }
        if self.gauge.try_send(&self.out, text).is_err() {
            self.env().metrics.outbox_shed.with_label_values(&["progress"]).inc();
        }
    }

    /// A reply that must precede anything buffered for the session (handshake replies of a
    /// connection that is not attached yet) goes straight into the outbox.
    fn send_first(&mut self, text: String, ctx: &mut Context<Self>) {
        if self.attached {
            return self.send(text, true, ctx);
        }
        if self.gauge.try_send(&self.out, text).is_err() {
            self.closing = true;
            ctx.stop();
        }
    }

    /// Close after the frames already queued; when the outbox is full, close at once.
    fn close(&mut self, code: u16, reason: &str, ctx: &mut Context<Self>) {
        if self.closing {
            return;
        }
        if self.out.try_send(Outbound::Close(code, reason.to_string())).is_err() {
            self.close_now(code, reason);
        }
        self.closing = true;
        ctx.stop();
    }

    /// Close ahead of queued frames (they stay in the session core for resume).
    fn close_now(&mut self, code: u16, reason: &str) {
        if let Some(tx) = self.urgent_close.take() {
            let _ = tx.send((code, reason.to_string()));
        }
    }

    fn set_mode(&mut self, mode: Mode) {
        self.mode = mode;
        if mode != Mode::Detecting && !self.registered_counter {
            self.registered_counter = true;
            self.env().runtime.session_counter(mode.protocol()).fetch_add(1, Ordering::Relaxed);
            let m = &self.env().metrics;
            m.connections_active.with_label_values(&[mode.protocol()]).inc();
            m.connections_total.with_label_values(&[mode.protocol()]).inc();
            tracing::info!(session = %self.session_id, protocol = mode.protocol(), peer = %self.info.peer, "session opened");
        }
    }

    /// Persist the session row (fire and forget; a failure is logged, never fatal).
    fn record_session(&self, closed: bool) {
        if self.mode == Mode::Detecting {
            return;
        }
        let store = Arc::clone(&self.env().store);
        let now = now_ms();
        let rec = SessionRecord {
            id: self.session_id.to_string(),
            protocol: self.mode.protocol().to_string(),
            client_name: self.client_name.clone(),
            client_version: self.client_version.clone(),
            created_at_ms: now,
            last_seen_at_ms: now,
            closed_at_ms: closed.then_some(now),
            metadata: serde_json::json!({ "peer_ip": self.info.peer.to_string() }),
        };
        // A task of the worker's tokio runtime, not of its `LocalSet`: a write still running
        // when the worker thread ends is then dropped inside the runtime's context (a pooled
        // connection needs one to return itself), not while the `LocalSet` is torn down.
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            tracing::debug!(session = %self.session_id, "no runtime; session row not recorded");
            return;
        };
        rt.spawn(async move {
            let r = if closed { store.close_session(&rec.id, now).await } else { store.upsert_session(&rec).await };
            if let Err(e) = r {
                tracing::warn!(error = %e, "could not record session");
            }
        });
    }

    /// Cancel a call: drop its future (permits come back, provider requests abort).
    fn cancel_call(&mut self, key: &str) -> Option<CallEntry> {
        self.core.cancel(key)
    }

    fn after_call(&mut self, ctx: &mut Context<Self>) {
        if self.draining.is_some() && self.core.inflight() == 0 {
            self.close_when_flushed(ctx);
        }
    }

    /// Draining and no call left: close with 1001 once every reply is in the outbox ahead of
    /// the close frame. Closing earlier would put the close before replies still buffered in
    /// the core (they would never be written), and a full outbox would turn it into an urgent
    /// close that discards the queued ones. A client that stops reading meanwhile is closed
    /// by the stall timer instead.
    fn close_when_flushed(&mut self, ctx: &mut Context<Self>) {
        if self.closing {
            return;
        }
        if self.core.buffered() == 0 && self.out.capacity() > 0 {
            self.close(1001, "server shutting down", ctx);
        } else {
            ctx.run_later(Duration::from_millis(10), |act, ctx| act.close_when_flushed(ctx));
        }
    }

    fn on_heartbeat(&mut self, ctx: &mut Context<Self>) {
        if self.lingering {
            return;
        }
        self.core.flush();
        if self.core.stalled_for().is_some_and(|d| d > self.deps.stall_close) {
            tracing::warn!(session = %self.session_id, "client stopped reading; closing 1013, replies kept for resume");
            self.env().metrics.outbox_shed.with_label_values(&["stalled_close"]).inc();
            self.close_now(1013, "client is not reading; replies are kept for session resume");
            self.closing = true;
            // Keep reading (and discarding) input for a while: a server that stops reading
            // and drops the socket with unread input resets the connection, and the reset
            // discards the close frame the client has not read yet.
            self.lingering = true;
            ctx.run_later(self.deps.close_linger, |_, ctx| ctx.stop());
            return;
        }
        let timeout = Duration::from_secs(self.env().settings.client_timeout_secs);
        if self.last_seen.elapsed() > timeout {
            tracing::info!(session = %self.session_id, "client silent past timeout; closing");
            self.close(1001, "heartbeat timeout", ctx);
            return;
        }
        let _ = self.out.try_send(Outbound::Ping(Bytes::from_static(b"exai")));
        if self.mode == Mode::Mcp {
            self.mcp_heartbeat(ctx);
        }
    }

    fn on_text(&mut self, text: String, ctx: &mut Context<Self>) {
        self.seen_message = true;
        self.env().metrics.frames.with_label_values(&["in"]).inc();
        match self.mode {
            Mode::Mcp => self.on_mcp_frame(&text, ctx),
            Mode::Legacy => self.on_legacy_frame(&text, ctx),
            Mode::Detecting => {
                if looks_like_jsonrpc(&text) {
                    if !self.info.authenticated {
                        let frame = crate::protocol::jsonrpc::error_frame(
                            None,
                            crate::protocol::jsonrpc::codes::INVALID_REQUEST,
                            "unauthorized: present the token at upgrade (Authorization: Bearer or ?token=)",
                            None,
                        );
                        self.send(frame, true, ctx);
                        return self.close(crate::protocol::legacy::close::UNAUTHORIZED, "unauthorized", ctx);
                    }
                    self.set_mode(Mode::Mcp);
                    self.record_session(false);
                    self.on_mcp_frame(&text, ctx);
                } else {
                    self.on_legacy_hello(&text, ctx);
                }
            }
        }
    }

    fn start_drain(&mut self, deadline: Instant, ctx: &mut Context<Self>) {
        if self.draining.is_some() {
            return;
        }
        self.draining = Some(deadline);
        if self.lingering {
            // Already closed for stalling; shutdown does not wait out the linger.
            ctx.stop();
            return;
        }
        if self.core.inflight() == 0 {
            self.close_when_flushed(ctx);
            return;
        }
        let wait = deadline.saturating_duration_since(Instant::now());
        ctx.run_later(wait, |act, ctx| {
            for f in act.core.cancel_all() {
                let err = crate::error::ToolError::Cancelled {
                    reason: "server shutting down; the call did not finish before the drain deadline".into(),
                };
                act.reply_error(&f.reply_to, err);
            }
            act.close_when_flushed(ctx);
        });
    }

    /// An explicit error as the terminal reply of `to`.
    fn reply_error(&mut self, to: &ReplyTo, err: crate::error::ToolError) {
        let frame = error_frame(&self.deps, &self.session_id, to, &err);
        self.core.deliver(vec![frame], Some(to));
    }
}

/// The terminal error frame for `to` (legacy replies are also cached for resends).
fn error_frame(deps: &SessionDeps, session: &str, to: &ReplyTo, err: &crate::error::ToolError) -> String {
    match to {
        ReplyTo::Mcp(id) => {
            crate::protocol::jsonrpc::result_frame(id, crate::protocol::mcp::tool_error_result(err, None))
        }
        ReplyTo::Legacy(rid) => {
            let frame = crate::protocol::legacy::call_error(Some(rid), err, None);
            deps.results.put(session, rid, frame.clone());
            frame
        }
    }
}

fn looks_like_jsonrpc(text: &str) -> bool {
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(v) => v.get("jsonrpc").is_some() || (v.get("method").is_some() && v.get("op").is_none()),
        Err(_) => false,
    }
}

impl Actor for WsSession {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(256);
        let reg = RegisterSession { id: self.conn_id, drain: ctx.address().recipient() };
        if let Err(SendError::Full(_)) = self.deps.register.try_send(reg) {
            self.env().metrics.mailbox_rejections.with_label_values(&["coordinator"]).inc();
        }
        if self.mode == Mode::Mcp {
            self.set_mode(Mode::Mcp);
            self.record_session(false);
        }
        if !self.resumed {
            self.attach(ctx);
        }
        let s = &self.env().settings;
        let hb = Duration::from_secs(s.heartbeat_interval_secs.max(1));
        let progress = Duration::from_secs(s.progress_interval_secs.max(1));
        let hello = Duration::from_secs(s.hello_timeout_secs.max(1));
        ctx.run_interval(hb, |act, ctx| act.on_heartbeat(ctx));
        ctx.run_interval(progress, |act, ctx| act.legacy_heartbeats(ctx));
        ctx.run_later(hello, |act, ctx| act.hello_deadline(ctx));
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        self.detach();
        if let Err(SendError::Full(_)) = self.deps.unregister.try_send(UnregisterSession { id: self.conn_id }) {
            self.env().metrics.mailbox_rejections.with_label_values(&["coordinator"]).inc();
        }
        if self.registered_counter {
            let p = self.mode.protocol();
            self.env().runtime.session_counter(p).fetch_sub(1, Ordering::Relaxed);
            self.env().metrics.connections_active.with_label_values(&[p]).dec();
            tracing::info!(session = %self.session_id, protocol = p, "session closed");
        }
        self.record_session(true);
    }
}

impl StreamHandler<Inbound> for WsSession {
    fn handle(&mut self, item: Inbound, ctx: &mut Context<Self>) {
        self.last_seen = Instant::now();
        crate::idle_poll::touch(self.env().settings.idle_poll());
        if self.lingering {
            if matches!(item, Inbound::Close(_) | Inbound::Error { .. }) {
                ctx.stop();
            }
            return;
        }
        match item {
            Inbound::Text(t) => self.on_text(t, ctx),
            Inbound::Binary(b) => match String::from_utf8(b.to_vec()) {
                Ok(t) => self.on_text(t, ctx),
                Err(_) => self.close(1007, "binary frames must carry UTF-8 JSON", ctx),
            },
            Inbound::Ping(b) => {
                let _ = self.out.try_send(Outbound::Pong(b));
            }
            Inbound::Pong(_) => {}
            Inbound::Close(_) => {
                self.close(1000, "bye", ctx);
            }
            Inbound::Error { code, reason } => {
                tracing::info!(session = %self.session_id, code, reason = %reason, "transport error; closing");
                self.close(code, &reason, ctx);
            }
        }
    }

    fn finished(&mut self, ctx: &mut Context<Self>) {
        self.closing = true;
        ctx.stop();
    }
}

impl Handler<CallFinished> for WsSession {
    type Result = ();

    fn handle(&mut self, _: CallFinished, ctx: &mut Context<Self>) {
        self.after_call(ctx);
    }
}

impl Handler<self::core::SessionReplaced> for WsSession {
    type Result = ();

    fn handle(&mut self, _: self::core::SessionReplaced, ctx: &mut Context<Self>) {
        tracing::info!(session = %self.session_id, "another connection of this principal took the session over");
        // The session is no longer ours: leave it alone when this connection ends.
        self.attached = false;
        let code = crate::protocol::legacy::close::REPLACED;
        self.close(code, "session taken over by a newer connection", ctx);
    }
}

impl Handler<DrainSession> for WsSession {
    type Result = ();

    fn handle(&mut self, msg: DrainSession, ctx: &mut Context<Self>) {
        self.start_drain(msg.deadline, ctx);
    }
}
