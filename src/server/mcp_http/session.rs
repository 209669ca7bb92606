//! Streamable HTTP sessions: the table shared by all workers, what only HTTP has per session
//! (the optional GET stream, idle expiry; calls, the event log and MCP state are in the
//! session's core, `exai_actors::session::SessionCore`), and the bookkeeping every session
//! carries (the `sessions_http` runtime counter, `connections_active{protocol="mcp-http"}`,
//! and the session row in the store).
//!
//! A session is idle when it has no call in flight, no open GET stream, and has seen no
//! request for `session_idle_secs`; idle sessions are removed by a sweep that runs at most
//! once a second on incoming requests (and by [`Sessions::sweep`]). Calls run on the worker
//! that received them; cancelling one from another worker goes through the core's call table.

use super::error::HttpError;
use exai_actors::env::{now_ms, ToolEnv};
use exai_actors::error::ToolError;
use exai_actors::ports::SessionRecord;
use exai_actors::protocol::jsonrpc::{self, codes};
use exai_actors::protocol::mcp;
use exai_actors::session::{ReplyTo, SessionCore, SessionRegistry};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// The `protocol` label and store value of this transport.
pub const PROTOCOL: &str = "mcp-http";

/// Why a session ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelKind {
    /// `DELETE` or idle expiry: calls are cancelled without a response.
    Client,
    /// Server shutdown: calls in flight are answered with a `CANCELLED` tool error.
    Shutdown,
}

struct State {
    last_seen: Instant,
    /// The open GET stream: its generation and the sender whose drop ends it.
    stream: Option<(u64, oneshot::Sender<()>)>,
    next_generation: u64,
    closed: bool,
}

/// One session: the core's session (calls, event log, MCP state) plus what only HTTP has.
pub struct Session {
    /// Session id (also the `Mcp-Session-Id` value).
    pub id: Arc<str>,
    /// The transport-neutral session.
    pub core: Arc<SessionCore>,
    peer: Option<String>,
    created_at_ms: i64,
    state: Mutex<State>,
}

/// Marks the GET stream closed when the stream is dropped.
pub struct StreamGuard {
    session: Arc<Session>,
    generation: u64,
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        let mut st = self.session.lock();
        if st.stream.as_ref().is_some_and(|(g, _)| *g == self.generation) {
            st.stream = None;
        }
        st.last_seen = Instant::now();
    }
}

impl Session {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Note activity.
    pub fn touch(&self) {
        self.lock().last_seen = Instant::now();
    }

    /// Calls in flight (running or queued).
    pub fn inflight(&self) -> usize {
        self.core.inflight()
    }

    /// Open the GET stream; `None` when one is already open or the session ended.
    pub fn open_stream(self: &Arc<Self>) -> Option<(oneshot::Receiver<()>, StreamGuard)> {
        let mut st = self.lock();
        if st.closed || st.stream.is_some() {
            return None;
        }
        st.next_generation += 1;
        let generation = st.next_generation;
        let (tx, rx) = oneshot::channel();
        st.stream = Some((generation, tx));
        Some((rx, StreamGuard { session: Arc::clone(self), generation }))
    }

    fn is_idle(&self, now: Instant, idle: Duration) -> bool {
        if self.core.inflight() > 0 {
            return false;
        }
        let st = self.lock();
        st.stream.is_none() && now.saturating_duration_since(st.last_seen) > idle
    }

    /// Mark the session ended and close its GET stream. False if it had already ended.
    fn shut(&self) -> bool {
        let mut st = self.lock();
        if st.closed {
            return false;
        }
        st.closed = true;
        st.stream = None;
        true
    }

    fn record(&self, env: &ToolEnv, closed: bool) {
        let now = now_ms();
        let meta = self.core.meta();
        let rec = SessionRecord {
            id: self.id.to_string(),
            protocol: PROTOCOL.to_string(),
            client_name: meta.client_name,
            client_version: meta.client_version,
            created_at_ms: self.created_at_ms,
            last_seen_at_ms: now,
            closed_at_ms: closed.then_some(now),
            metadata: serde_json::json!({ "peer_ip": self.peer, "protocol_version": meta.protocol_version }),
        };
        let store = Arc::clone(&env.store);
        // Fire and forget (as the WebSocket path does); outside a runtime there is nothing to
        // run it on, which only happens in odd shutdown paths.
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            tracing::debug!(session = %self.id, "no runtime; session row not recorded");
            return;
        };
        rt.spawn(async move {
            let r = if closed { store.close_session(&rec.id, now).await } else { store.upsert_session(&rec).await };
            if let Err(e) = r {
                tracing::warn!(error = %e, "could not record session");
            }
        });
    }
}

/// All sessions of the endpoint.
pub struct Sessions {
    map: Mutex<HashMap<Arc<str>, Arc<Session>>>,
    registry: SessionRegistry,
    env: Arc<ToolEnv>,
    idle: Duration,
    max: usize,
    last_sweep: Mutex<Instant>,
}

impl Sessions {
    /// An empty table.
    pub fn new(env: Arc<ToolEnv>, registry: SessionRegistry, idle: Duration, max: usize) -> Sessions {
        Sessions { map: Mutex::new(HashMap::new()), registry, env, idle, max, last_sweep: Mutex::new(Instant::now()) }
    }

    /// A session core for an `initialize` being answered (not yet a live session).
    pub fn new_core(&self) -> Result<Arc<SessionCore>, HttpError> {
        if self.env.runtime.is_shutting_down() {
            return Err(shutting_down());
        }
        Ok(self.registry.create())
    }

    /// Forget a core whose `initialize` failed.
    pub fn discard(&self, core: &Arc<SessionCore>) {
        self.registry.remove(core);
    }

    fn map(&self) -> MutexGuard<'_, HashMap<Arc<str>, Arc<Session>>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Live sessions.
    pub fn len(&self) -> usize {
        self.map().len()
    }

    /// Calls in flight over all sessions.
    pub fn inflight(&self) -> usize {
        let sessions: Vec<Arc<Session>> = self.map().values().cloned().collect();
        sessions.iter().map(|s| s.inflight()).sum()
    }

    /// Make `core` a live session after a successful `initialize`.
    pub fn create(&self, core: Arc<SessionCore>, peer: Option<String>) -> Result<Arc<Session>, HttpError> {
        if self.env.runtime.is_shutting_down() {
            self.discard(&core);
            return Err(shutting_down());
        }
        if self.len() >= self.max {
            self.sweep();
        }
        let session = Arc::new(Session {
            id: Arc::clone(core.id()),
            core,
            peer,
            created_at_ms: now_ms(),
            state: Mutex::new(State { last_seen: Instant::now(), stream: None, next_generation: 0, closed: false }),
        });
        {
            let mut map = self.map();
            if map.len() >= self.max {
                drop(map);
                self.discard(&session.core);
                self.env.metrics.connections_rejected.with_label_values(&["mcp_http_sessions"]).inc();
                return Err(HttpError::Unavailable {
                    code: codes::OVER_CAPACITY,
                    message: format!("too many Streamable HTTP sessions ({} open); retry later", self.max),
                    retry_after: Some(self.env.settings.retry_after_secs),
                });
            }
            map.insert(Arc::clone(&session.id), Arc::clone(&session));
        }
        self.env.runtime.session_counter(PROTOCOL).fetch_add(1, Ordering::Relaxed);
        self.env.metrics.connections_active.with_label_values(&[PROTOCOL]).inc();
        self.env.metrics.connections_total.with_label_values(&[PROTOCOL]).inc();
        session.record(&self.env, false);
        tracing::info!(session = %session.id, protocol = PROTOCOL, peer = ?session.peer,
                       client = ?session.core.meta().client_name, "session opened");
        Ok(session)
    }

    /// A live session by id (an idle-expired one is removed and not returned).
    pub fn get(&self, id: &str) -> Option<Arc<Session>> {
        let s = self.map().get(id).cloned()?;
        if s.is_idle(Instant::now(), self.idle) {
            self.remove(id, CancelKind::Client, "idle");
            return None;
        }
        Some(s)
    }

    /// End a session; false when there was none.
    pub fn remove(&self, id: &str, kind: CancelKind, why: &str) -> bool {
        let Some(s) = self.map().remove(id) else {
            return false;
        };
        self.finish(&s, kind, why);
        true
    }

    fn finish(&self, s: &Session, kind: CancelKind, why: &str) {
        if !s.shut() {
            return;
        }
        match kind {
            CancelKind::Client => self.registry.remove(&s.core),
            CancelKind::Shutdown => {
                // Calls in flight are answered (their streams end after the answer), then the
                // session closes; readers still take what is left in its log.
                for entry in s.core.cancel_all() {
                    let ReplyTo::Mcp(id) = &entry.reply_to else { continue };
                    let e = ToolError::Cancelled { reason: "server shutting down; the session was closed".into() };
                    let frame = jsonrpc::result_frame(id, mcp::tool_error_result(&e, None));
                    exai_actors::engine::answer_cancelled(&s.core, &entry, frame);
                }
                s.core.close();
                self.registry.forget(&s.core);
            }
        }
        self.env.runtime.session_counter(PROTOCOL).fetch_sub(1, Ordering::Relaxed);
        self.env.metrics.connections_active.with_label_values(&[PROTOCOL]).dec();
        s.record(&self.env, true);
        tracing::info!(session = %s.id, protocol = PROTOCOL, reason = why, "session closed");
    }

    /// Remove sessions idle as of `now`; returns how many.
    pub fn expire(&self, now: Instant) -> usize {
        let expired: Vec<Arc<Session>> = {
            let mut map = self.map();
            let ids: Vec<Arc<str>> =
                map.iter().filter(|(_, s)| s.is_idle(now, self.idle)).map(|(k, _)| Arc::clone(k)).collect();
            ids.iter().filter_map(|k| map.remove(k)).collect()
        };
        for s in &expired {
            self.finish(s, CancelKind::Client, "idle");
        }
        expired.len()
    }

    /// Remove idle sessions now.
    pub fn sweep(&self) -> usize {
        *self.last_sweep.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
        self.expire(Instant::now())
    }

    /// Sweep if the last sweep was more than a second ago.
    pub fn maybe_sweep(&self) {
        let due = {
            let mut last = self.last_sweep.lock().unwrap_or_else(|e| e.into_inner());
            let due = last.elapsed() >= Duration::from_secs(1);
            if due {
                *last = Instant::now();
            }
            due
        };
        if due {
            self.expire(Instant::now());
        }
    }

    /// End every session (shutdown): calls in flight get a `CANCELLED` tool error.
    pub fn close_all(&self) -> usize {
        let all: Vec<Arc<Session>> = self.map().drain().map(|(_, s)| s).collect();
        for s in &all {
            self.finish(s, CancelKind::Shutdown, "server shutting down");
        }
        all.len()
    }
}

/// The 503 for a server that is shutting down.
pub fn shutting_down() -> HttpError {
    HttpError::Unavailable {
        code: codes::SHUTTING_DOWN,
        message: "server is shutting down; retry on another node or after restart".into(),
        retry_after: None,
    }
}
