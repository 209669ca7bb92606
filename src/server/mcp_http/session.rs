//! Streamable HTTP sessions: the table shared by all workers, per-session state (log level,
//! in-flight calls, the optional GET stream), idle expiry, and the bookkeeping every session
//! carries (the `sessions_http` runtime counter, `connections_active{protocol="mcp-http"}`,
//! and the session row in the store).
//!
//! A session is idle when it has no call in flight, no open GET stream, and has seen no
//! request for `session_idle_secs`; idle sessions are removed by a sweep that runs at most
//! once a second on incoming requests (and by [`Sessions::sweep`]). Calls run on the worker
//! that received them; cancelling one from another worker goes through its `AbortHandle`.

use super::error::HttpError;
use exai_actors::env::{now_ms, ToolEnv};
use exai_actors::ports::SessionRecord;
use exai_actors::protocol::jsonrpc::codes;
use exai_actors::protocol::mcp::ClientInfo;
use exai_actors::tools::LogLevel;
use futures_util::future::{AbortHandle, AbortRegistration};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// The `protocol` label and store value of this transport.
pub const PROTOCOL: &str = "mcp-http";

/// Why a call was aborted (stored before the abort so the call's owner can tell).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelKind {
    /// `notifications/cancelled` or `DELETE`: send no response.
    Client = 1,
    /// Server shutdown: answer with a `CANCELLED` tool error.
    Shutdown = 2,
}

impl CancelKind {
    /// Read back a stored kind (0 = not cancelled).
    pub fn load(cell: &AtomicU8) -> Option<CancelKind> {
        match cell.load(Ordering::Acquire) {
            1 => Some(CancelKind::Client),
            2 => Some(CancelKind::Shutdown),
            _ => None,
        }
    }
}

struct InFlight {
    abort: AbortHandle,
    kind: Arc<AtomicU8>,
    tool: String,
    started: Instant,
    generation: u64,
}

impl InFlight {
    fn cancel(&self, kind: CancelKind) {
        self.kind.store(kind as u8, Ordering::Release);
        self.abort.abort();
    }
}

struct State {
    log_level: LogLevel,
    last_seen: Instant,
    inflight: HashMap<String, InFlight>,
    /// The open GET stream: its generation and the sender whose drop ends it.
    stream: Option<(u64, oneshot::Sender<()>)>,
    next_generation: u64,
    closed: bool,
}

/// One session.
pub struct Session {
    /// Session id (also the `Mcp-Session-Id` value).
    pub id: Arc<str>,
    client_name: Option<String>,
    client_version: Option<String>,
    protocol_version: String,
    peer: Option<String>,
    created_at_ms: i64,
    state: Mutex<State>,
}

/// Why a call could not be registered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The id is already in flight on this session.
    Duplicate,
    /// The per-session in-flight limit is reached.
    OverCapacity(usize),
    /// The session ended meanwhile.
    Closed,
}

/// A registered call: what the caller needs to run it abortably.
pub struct CallTicket {
    /// Pass to `Abortable::new`.
    pub registration: AbortRegistration,
    /// Why it was aborted, once it was.
    pub kind: Arc<AtomicU8>,
    /// Unregisters the call when dropped.
    pub guard: InFlightGuard,
}

/// Removes a call from its session when the call ends or is dropped.
pub struct InFlightGuard {
    session: Arc<Session>,
    key: String,
    generation: u64,
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        let mut st = self.session.lock();
        if st.inflight.get(&self.key).is_some_and(|f| f.generation == self.generation) {
            st.inflight.remove(&self.key);
        }
        st.last_seen = Instant::now();
    }
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

    /// Current minimum level for `notifications/message`.
    pub fn log_level(&self) -> LogLevel {
        self.lock().log_level
    }

    /// Set by `logging/setLevel`.
    pub fn set_log_level(&self, level: LogLevel) {
        self.lock().log_level = level;
    }

    /// Register a call under `key` (its request id) unless refused.
    pub fn register_call(self: &Arc<Self>, key: &str, tool: &str, max: usize) -> Result<CallTicket, Refusal> {
        let mut st = self.lock();
        if st.closed {
            return Err(Refusal::Closed);
        }
        if st.inflight.contains_key(key) {
            return Err(Refusal::Duplicate);
        }
        if st.inflight.len() >= max {
            return Err(Refusal::OverCapacity(max));
        }
        st.next_generation += 1;
        let generation = st.next_generation;
        let (abort, registration) = AbortHandle::new_pair();
        let kind = Arc::new(AtomicU8::new(0));
        let entry =
            InFlight { abort, kind: Arc::clone(&kind), tool: tool.to_string(), started: Instant::now(), generation };
        st.inflight.insert(key.to_string(), entry);
        let guard = InFlightGuard { session: Arc::clone(self), key: key.to_string(), generation };
        Ok(CallTicket { registration, kind, guard })
    }

    /// Cancel the call registered under `key`; returns its tool and run time if there was one.
    pub fn cancel(&self, key: &str, kind: CancelKind) -> Option<(String, Duration)> {
        let f = self.lock().inflight.remove(key)?;
        f.cancel(kind);
        Some((f.tool, f.started.elapsed()))
    }

    /// Calls in flight.
    pub fn inflight(&self) -> usize {
        self.lock().inflight.len()
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
        let st = self.lock();
        st.inflight.is_empty() && st.stream.is_none() && now.saturating_duration_since(st.last_seen) > idle
    }

    /// End the session: abort its calls and close its stream. False if it had already ended.
    fn shut(&self, kind: CancelKind) -> bool {
        let mut st = self.lock();
        if st.closed {
            return false;
        }
        st.closed = true;
        for (_, f) in st.inflight.drain() {
            f.cancel(kind);
        }
        st.stream = None;
        true
    }

    fn record(&self, env: &ToolEnv, closed: bool) {
        let now = now_ms();
        let rec = SessionRecord {
            id: self.id.to_string(),
            protocol: PROTOCOL.to_string(),
            client_name: self.client_name.clone(),
            client_version: self.client_version.clone(),
            created_at_ms: self.created_at_ms,
            last_seen_at_ms: now,
            closed_at_ms: closed.then_some(now),
            metadata: serde_json::json!({ "peer_ip": self.peer, "protocol_version": self.protocol_version }),
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
    env: Arc<ToolEnv>,
    idle: Duration,
    max: usize,
    last_sweep: Mutex<Instant>,
}

impl Sessions {
    /// An empty table.
    pub fn new(env: Arc<ToolEnv>, idle: Duration, max: usize) -> Sessions {
        Sessions { map: Mutex::new(HashMap::new()), env, idle, max, last_sweep: Mutex::new(Instant::now()) }
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

    /// Create a session after a successful `initialize`.
    pub fn create(&self, info: ClientInfo, peer: Option<String>) -> Result<Arc<Session>, HttpError> {
        if self.env.runtime.is_shutting_down() {
            return Err(shutting_down());
        }
        if self.len() >= self.max {
            self.sweep();
        }
        let session = Arc::new(Session {
            id: Arc::from(uuid::Uuid::new_v4().to_string()),
            client_name: info.name,
            client_version: info.version,
            protocol_version: info.protocol_version,
            peer,
            created_at_ms: now_ms(),
            state: Mutex::new(State {
                log_level: LogLevel::Info,
                last_seen: Instant::now(),
                inflight: HashMap::new(),
                stream: None,
                next_generation: 0,
                closed: false,
            }),
        });
        {
            let mut map = self.map();
            if map.len() >= self.max {
                drop(map);
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
                       client = ?session.client_name, "session opened");
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
        if !s.shut(kind) {
            return;
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
