//! `SessionCore`: the part of a session that outlives its connection.
//!
//! A logical session (legacy `hello.session_id`, MCP `session_id` query parameter) owns its
//! running calls and the replies they produce. Calls run as independent tasks on the worker
//! thread that accepted them (not inside the connection actor), so a dropped connection does
//! not stop them. Each finished call hands its terminal frames to the core, which sends them
//! to the attached connection's outbox — or, while detached (or while the client is not
//! reading), keeps them in a bounded buffer. A connection that resumes the session receives
//! every buffered reply in order, exactly once (the buffer is drained as it is sent), and
//! keeps receiving replies of calls still running. Replies that do not fit the per-session
//! or the global bound are not dropped silently: their request ids are remembered (bounded)
//! and reported as explicit errors on resume. A session detached for longer than the grace
//! period is expired: its calls are cancelled and its buffer released.
//!
//! Two ways a call's frames leave the core ([`Route`]):
//! - `Attached` (WebSocket): to the connection attached to the session, or into the reply
//!   buffer above while it is detached or not reading.
//! - `Stream(n)` (Streamable HTTP): into the session's event log under stream `n`, each event
//!   with a sequence number (its SSE `id:` is `n-seq`). Readers (the POST's SSE body, or a
//!   `GET` that resumes after `Last-Event-ID`) take a stream's events in order; a reader that
//!   goes away is not a cancel: the call finishes and its events wait in the log until a
//!   reader takes the stream's last event, the session expires or it is deleted.
//!
//! Both are bounded by count and by bytes, per session and over all sessions; a terminal reply
//! that does not fit is replaced by an explicit error for its request.
//!
//! Admission also lives here: a session runs at most `session_max_inflight` calls; further
//! calls wait in a bounded queue (a burst is not an overload) and only a full queue or a wait
//! past the bound is answered `OVER_CAPACITY`.
//!
//! The core is shared between threads (`Arc` + one short mutex; no await while locked).

use crate::protocol::jsonrpc::RequestId;
use crate::tools::LogLevel;
use futures_util::future::AbortHandle;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

use super::Outbound;

/// Who a terminal reply answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReplyTo {
    /// MCP: the JSON-RPC id.
    Mcp(RequestId),
    /// Legacy: the request id.
    Legacy(String),
}

/// Where a call's frames go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// The attached connection (WebSocket), or the reply buffer while there is none.
    Attached,
    /// Stream `n` of the session's event log (Streamable HTTP).
    Stream(u64),
}

/// A call in flight.
pub struct CallEntry {
    /// Aborts the call's task (drops its future: permits return, provider requests abort).
    pub abort: AbortHandle,
    /// Tool name.
    pub tool: String,
    /// Start time.
    pub started: Instant,
    /// Whom to answer.
    pub reply_to: ReplyTo,
    /// Where its frames go.
    pub route: Route,
}

/// What the session knows about its client and its MCP state (any transport).
#[derive(Debug, Clone)]
pub struct SessionMeta {
    /// Minimum level of `notifications/message` (MCP `logging/setLevel`).
    pub log_level: LogLevel,
    /// The protocol revision negotiated in `initialize`.
    pub protocol_version: Option<String>,
    /// `clientInfo.name`.
    pub client_name: Option<String>,
    /// `clientInfo.version`.
    pub client_version: Option<String>,
    /// `notifications/initialized` was received.
    pub initialized: bool,
    /// Who owns the session (the first attach's principal).
    pub principal: Option<Arc<str>>,
}

impl Default for SessionMeta {
    fn default() -> Self {
        SessionMeta {
            log_level: LogLevel::Info,
            protocol_version: None,
            client_name: None,
            client_version: None,
            initialized: false,
            principal: None,
        }
    }
}

/// One event of the log (Streamable HTTP).
struct Event {
    seq: u64,
    stream: u64,
    frame: String,
    /// The last event of its stream (the terminal reply, or an empty end marker).
    end: bool,
}

/// What a stream reader gets.
#[derive(Debug, PartialEq, Eq)]
pub enum Read {
    /// The next event: its SSE id and frame (`None` for a silent end, e.g. a cancel).
    Event {
        /// `stream-seq`.
        id: String,
        /// The JSON-RPC frame.
        frame: Option<String>,
        /// Last event of the stream.
        end: bool,
    },
    /// Nothing yet.
    Wait,
    /// The session ended and the stream has nothing more.
    Closed,
}

/// Sent to the attached connection when one of its session's calls finished.
#[derive(actix::Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct CallFinished;

/// Sent to the connection attached to a session when another connection of the same
/// principal attaches to it (the newer one takes over; the older one closes).
#[derive(actix::Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct SessionReplaced;

/// Bytes queued in one connection's outbox (counted into the session's byte budget and the
/// global one): added when a text frame is queued, taken back by the writer when it takes
/// the frame.
pub struct OutboxGauge {
    bytes: AtomicUsize,
    global: Arc<AtomicUsize>,
}

impl OutboxGauge {
    /// Bytes queued now.
    pub fn bytes(&self) -> usize {
        self.bytes.load(Ordering::Acquire)
    }

    /// A text frame of `len` bytes was queued.
    pub fn add(&self, len: usize) {
        self.bytes.fetch_add(len, Ordering::AcqRel);
        self.global.fetch_add(len, Ordering::AcqRel);
    }

    /// The writer took a text frame of `len` bytes out of the outbox.
    pub fn taken(&self, len: usize) {
        let sub = |v: usize| Some(v.saturating_sub(len));
        let _ = self.bytes.fetch_update(Ordering::AcqRel, Ordering::Acquire, sub);
        let _ = self.global.fetch_update(Ordering::AcqRel, Ordering::Acquire, sub);
    }

    /// Queue a text frame unless the outbox is full; counts it when queued.
    pub fn try_send(&self, out: &mpsc::Sender<Outbound>, text: String) -> Result<(), String> {
        let len = text.len();
        match out.try_send(Outbound::Text(text)) {
            Ok(()) => {
                self.add(len);
                Ok(())
            }
            Err(mpsc::error::TrySendError::Full(Outbound::Text(t)))
            | Err(mpsc::error::TrySendError::Closed(Outbound::Text(t))) => Err(t),
            Err(_) => Err(String::new()),
        }
    }
}

struct Attached {
    conn_id: u64,
    out: mpsc::Sender<Outbound>,
    gauge: Arc<OutboxGauge>,
    notify: actix::Recipient<CallFinished>,
    replaced: actix::Recipient<SessionReplaced>,
}

struct Inner {
    attached: Option<Attached>,
    calls: HashMap<String, CallEntry>,
    pending: VecDeque<String>,
    lost: Vec<ReplyTo>,
    lost_overflow: u64,
    detached_at: Option<Instant>,
    stalled_since: Option<Instant>,
    pumping: bool,
    pending_bytes: usize,
    meta: SessionMeta,
    events: VecDeque<Event>,
    events_bytes: usize,
    next_seq: u64,
    next_stream: u64,
    closed: bool,
    /// Calls admitted but waiting for a slot.
    queued: usize,
}

/// Limits of the reply buffers.
#[derive(Debug, Clone, Copy)]
pub struct BufferLimits {
    /// Replies buffered per session.
    pub per_session: usize,
    /// Replies buffered across all sessions.
    pub global: usize,
    /// Bytes buffered per session (replies and events).
    pub per_session_bytes: usize,
    /// Bytes buffered across all sessions.
    pub global_bytes: usize,
    /// Calls that may wait for a slot per session beyond those running.
    pub queue: usize,
    /// How long a queued call waits for a slot before `OVER_CAPACITY`.
    pub queue_wait: Duration,
}

impl Default for BufferLimits {
    fn default() -> Self {
        BufferLimits {
            per_session: 256,
            global: 10_000,
            per_session_bytes: 16 << 20,
            global_bytes: 256 << 20,
            queue: 256,
            queue_wait: Duration::from_secs(30),
        }
    }
}

/// Why a call was not admitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The id is already in flight on this session.
    Duplicate,
    /// The session's queue is full (running + queued calls at the bound).
    QueueFull {
        /// Calls that may run at once.
        running: usize,
        /// Calls that may wait.
        queued: usize,
    },
    /// The session ended.
    Closed,
}

/// The shared session state.
pub struct SessionCore {
    id: Arc<str>,
    limits: BufferLimits,
    global_buffered: Arc<AtomicUsize>,
    global_bytes: Arc<AtomicUsize>,
    inner: Mutex<Inner>,
    /// Call slots (`session_max_inflight`); queued calls wait here, bounded.
    slots: Arc<tokio::sync::Semaphore>,
    max_running: usize,
    /// Wakes stream readers when events arrive or the session ends.
    events_changed: tokio::sync::Notify,
}

const LOST_IDS_KEPT: usize = 1000;

impl SessionCore {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The session id.
    pub fn id(&self) -> &Arc<str> {
        &self.id
    }

    /// Replies buffered, waiting for room in the attached connection's outbox (or for a resume).
    pub fn buffered(&self) -> usize {
        self.lock().pending.len()
    }

    /// Calls in flight.
    pub fn inflight(&self) -> usize {
        self.lock().calls.len()
    }

    /// Whether a key is in flight.
    pub fn contains(&self, key: &str) -> bool {
        self.lock().calls.contains_key(key)
    }

    /// Tool name of a call in flight.
    pub fn tool_of(&self, key: &str) -> Option<String> {
        self.lock().calls.get(key).map(|c| c.tool.clone())
    }

    /// Cancel one call: abort it and forget it (its stream, if any, ends without a reply).
    /// Returns its entry when it was running.
    pub fn cancel(&self, key: &str) -> Option<CallEntry> {
        let e = self.lock().calls.remove(key)?;
        e.abort.abort();
        if let Route::Stream(n) = e.route {
            self.end_stream(n);
        }
        Some(e)
    }

    /// Cancel everything (expiry, shutdown past its deadline). Returns the cancelled calls.
    pub fn cancel_all(&self) -> Vec<CallEntry> {
        let calls: Vec<CallEntry> = self.lock().calls.drain().map(|(_, e)| e).collect();
        for c in &calls {
            c.abort.abort();
        }
        calls
    }

    /// (key, tool, started) of every call, for heartbeats.
    pub fn calls(&self) -> Vec<(String, String, Instant)> {
        self.lock().calls.iter().map(|(k, c)| (k.clone(), c.tool.clone(), c.started)).collect()
    }

    fn fits(&self, own_bytes: usize, len: usize) -> bool {
        own_bytes + len <= self.limits.per_session_bytes
            && self.global_bytes.load(Ordering::Acquire) + len <= self.limits.global_bytes
    }

    fn buffer(&self, g: &mut Inner, frame: String, reply_to: Option<&ReplyTo>) {
        let global = self.global_buffered.load(Ordering::Acquire);
        let outbox = g.attached.as_ref().map_or(0, |a| a.gauge.bytes());
        if g.pending.len() < self.limits.per_session
            && global < self.limits.global
            && self.fits(g.pending_bytes + g.events_bytes + outbox, frame.len())
        {
            g.pending_bytes += frame.len();
            self.global_bytes.fetch_add(frame.len(), Ordering::AcqRel);
            g.pending.push_back(frame);
            self.global_buffered.fetch_add(1, Ordering::AcqRel);
        } else if let Some(r) = reply_to {
            if g.lost.len() < LOST_IDS_KEPT {
                g.lost.push(r.clone());
            } else {
                g.lost_overflow += 1;
            }
        }
    }

    /// Deliver a finished call's terminal frames (in order). Frames of a call that was
    /// cancelled meanwhile are discarded. Returns false when the call was not in flight.
    pub fn finish(self: &Arc<Self>, key: &str, frames: Vec<String>) -> bool {
        let mut g = self.lock();
        let Some(entry) = g.calls.remove(key) else { return false };
        if let Route::Stream(n) = entry.route {
            let last = frames.len().saturating_sub(1);
            for (i, f) in frames.into_iter().enumerate() {
                self.push_event_locked(&mut g, n, Some(f), i == last, Some(&entry.reply_to));
            }
            drop(g);
            self.events_changed.notify_waiters();
            return true;
        }
        self.deliver_locked(&mut g, frames, Some(&entry.reply_to));
        if let Some(a) = &g.attached {
            a.notify.do_send(CallFinished);
        }
        self.pump_locked(&mut g);
        true
    }

    /// Deliver terminal frames that belong to no running call (cancel acknowledgements and
    /// the like): to the connection, or into the buffer.
    pub fn deliver(self: &Arc<Self>, frames: Vec<String>, reply_to: Option<&ReplyTo>) {
        let mut g = self.lock();
        self.deliver_locked(&mut g, frames, reply_to);
        self.pump_locked(&mut g);
    }

    /// Start the pump when replies wait and a connection is attached: it moves them into
    /// the outbox as soon as there is room (event-driven, in order), and each frame moved
    /// counts as progress for the stall timer.
    fn pump_locked(self: &Arc<Self>, g: &mut Inner) {
        if g.pumping || g.pending.is_empty() {
            return;
        }
        let Some(out) = g.attached.as_ref().map(|a| a.out.clone()) else { return };
        g.pumping = true;
        let core = Arc::clone(self);
        actix_rt::spawn(async move {
            loop {
                let Ok(permit) = out.reserve().await else { break };
                let mut g = core.lock();
                if !g.attached.as_ref().is_some_and(|a| a.out.same_channel(&out)) {
                    break;
                }
                match g.pending.pop_front() {
                    Some(f) => {
                        core.global_buffered.fetch_sub(1, Ordering::AcqRel);
                        g.pending_bytes -= f.len();
                        core.global_bytes.fetch_sub(f.len(), Ordering::AcqRel);
                        if let Some(a) = &g.attached {
                            a.gauge.add(f.len());
                        }
                        permit.send(Outbound::Text(f));
                        g.stalled_since = if g.pending.is_empty() { None } else { Some(Instant::now()) };
                    }
                    None => {
                        g.stalled_since = None;
                        g.pumping = false;
                        return;
                    }
                }
            }
            core.lock().pumping = false;
        });
    }

    fn deliver_locked(&self, g: &mut Inner, frames: Vec<String>, reply_to: Option<&ReplyTo>) {
        for f in frames {
            // Keep order: once something is buffered, later frames queue behind it.
            // The outbox counts into the session's byte budget: a client that does not read
            // fills it by bytes (whatever its frame sizes), and then replies wait here and the
            // stall timer runs.
            let own = g.pending_bytes + g.events_bytes;
            let sent = match (&g.attached, g.pending.is_empty()) {
                // One frame may always go to an empty outbox, however big.
                (Some(a), true) if a.gauge.bytes() == 0 || self.fits(own + a.gauge.bytes(), f.len()) => {
                    a.gauge.try_send(&a.out, f).err()
                }
                _ => Some(f),
            };
            if let Some(f) = sent {
                if g.attached.is_some() && g.stalled_since.is_none() {
                    g.stalled_since = Some(Instant::now());
                }
                self.buffer(g, f, reply_to);
            }
        }
    }

    /// Send a frame that may be shed (progress) to the attached connection; false when there
    /// is none or its outbox is full.
    pub fn send_attached(&self, frame: String) -> bool {
        let g = self.lock();
        match &g.attached {
            Some(a) if self.fits(g.pending_bytes + g.events_bytes + a.gauge.bytes(), frame.len()) => {
                a.gauge.try_send(&a.out, frame).is_ok()
            }
            _ => false,
        }
    }

    /// Since when a terminal reply has been waiting for the attached client to read.
    pub fn stalled_for(&self) -> Option<Duration> {
        self.lock().stalled_since.map(|t| t.elapsed())
    }

    /// Make sure buffered replies are on their way to the attached connection.
    pub fn flush(self: &Arc<Self>) {
        let mut g = self.lock();
        self.pump_locked(&mut g);
    }

    /// Attach a connection: it receives the buffered replies first, then everything new.
    /// Returns the replies that could not be kept while detached (to report as errors).
    pub fn attach(
        self: &Arc<Self>,
        conn_id: u64,
        out: mpsc::Sender<Outbound>,
        gauge: Arc<OutboxGauge>,
        notify: actix::Recipient<CallFinished>,
        replaced: actix::Recipient<SessionReplaced>,
    ) -> (Vec<ReplyTo>, u64) {
        let mut g = self.lock();
        if let Some(old) = g.attached.take().filter(|a| a.conn_id != conn_id) {
            old.replaced.do_send(SessionReplaced);
        }
        g.attached = Some(Attached { conn_id, out, gauge, notify, replaced });
        g.detached_at = None;
        g.stalled_since = if g.pending.is_empty() { None } else { Some(Instant::now()) };
        g.pumping = false;
        let lost = (std::mem::take(&mut g.lost), std::mem::take(&mut g.lost_overflow));
        self.pump_locked(&mut g);
        lost
    }

    /// Put frames a dying connection never wrote back at the head of the buffer (they are
    /// older than anything buffered since), so a resumed connection receives them first.
    /// They are kept even past the buffer bound: at most one outbox worth per connection.
    pub fn requeue_front(self: &Arc<Self>, frames: Vec<String>) {
        if frames.is_empty() {
            return;
        }
        let mut g = self.lock();
        self.global_buffered.fetch_add(frames.len(), Ordering::AcqRel);
        for f in frames.into_iter().rev() {
            g.pending_bytes += f.len();
            self.global_bytes.fetch_add(f.len(), Ordering::AcqRel);
            g.pending.push_front(f);
        }
        self.pump_locked(&mut g);
    }

    /// Detach `conn_id` (if it is the attached one). Returns when the detach happened.
    pub fn detach(&self, conn_id: u64) -> Option<Instant> {
        let mut g = self.lock();
        if g.attached.as_ref().is_some_and(|a| a.conn_id == conn_id) {
            g.attached = None;
            g.stalled_since = None;
            let now = Instant::now();
            g.detached_at = Some(now);
            return Some(now);
        }
        None
    }

    /// Whether the session is still detached since exactly `at` (no resume in between).
    pub fn detached_since(&self, at: Instant) -> bool {
        self.lock().detached_at == Some(at)
    }

    /// Release the buffer and the event log (expiry, delete); stream readers end.
    fn release(&self) {
        let mut g = self.lock();
        let n = g.pending.len();
        g.pending.clear();
        self.global_buffered.fetch_sub(n, Ordering::AcqRel);
        self.global_bytes.fetch_sub(g.pending_bytes + g.events_bytes, Ordering::AcqRel);
        g.pending_bytes = 0;
        g.events.clear();
        g.events_bytes = 0;
        g.closed = true;
        drop(g);
        self.events_changed.notify_waiters();
    }

    /// Mark the session ended without clearing its event log: stream readers take what is
    /// left, then end.
    pub fn close(&self) {
        self.lock().closed = true;
        self.events_changed.notify_waiters();
    }

    /// The session's MCP state and client facts.
    pub fn meta(&self) -> SessionMeta {
        self.lock().meta.clone()
    }

    /// Change the session's MCP state.
    pub fn update_meta<R>(&self, f: impl FnOnce(&mut SessionMeta) -> R) -> R {
        f(&mut self.lock().meta)
    }

    /// The session's log level (cheap).
    pub fn log_level(&self) -> LogLevel {
        self.lock().meta.log_level
    }

    /// Bind the session to `principal` on first use; false when another principal owns it.
    pub fn bind_principal(&self, principal: &Arc<str>) -> bool {
        let mut g = self.lock();
        match &g.meta.principal {
            Some(p) => p == principal,
            None => {
                g.meta.principal = Some(Arc::clone(principal));
                true
            }
        }
    }

    /// The id of the connection attached now, if any.
    pub fn attached_conn(&self) -> Option<u64> {
        self.lock().attached.as_ref().map(|a| a.conn_id)
    }

    /// The session ended (deleted, expired, shut down).
    pub fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// Admit a call under `key`: refused for a duplicate id, a closed session or a full queue.
    /// The caller then waits for a slot ([`SessionCore::slot`]) inside the call's task.
    pub fn admit(&self, key: String, entry: CallEntry) -> Result<(), Refusal> {
        let mut g = self.lock();
        if g.closed {
            return Err(Refusal::Closed);
        }
        if g.calls.contains_key(&key) {
            return Err(Refusal::Duplicate);
        }
        if g.calls.len() >= self.max_running + self.limits.queue {
            return Err(Refusal::QueueFull { running: self.max_running, queued: self.limits.queue });
        }
        g.calls.insert(key, entry);
        Ok(())
    }

    /// Wait (bounded) for one of the session's call slots; `None` when the wait ran out.
    pub async fn slot(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        if let Ok(p) = Arc::clone(&self.slots).try_acquire_owned() {
            return Some(p);
        }
        self.lock().queued += 1;
        let got = tokio::time::timeout(self.limits.queue_wait, Arc::clone(&self.slots).acquire_owned()).await;
        self.lock().queued -= 1;
        got.ok().and_then(Result::ok)
    }

    /// Calls waiting for a slot.
    pub fn queued(&self) -> usize {
        self.lock().queued
    }

    /// How long a queued call may wait.
    pub fn queue_wait(&self) -> Duration {
        self.limits.queue_wait
    }

    /// A new stream of the event log (one per Streamable HTTP request answered as a stream).
    pub fn new_stream(&self) -> u64 {
        let mut g = self.lock();
        g.next_stream += 1;
        g.next_stream
    }

    fn push_event_locked(
        &self,
        g: &mut Inner,
        stream: u64,
        frame: Option<String>,
        end: bool,
        reply_to: Option<&ReplyTo>,
    ) -> bool {
        let mut frame = frame.unwrap_or_default();
        let own = g.pending_bytes + g.events_bytes;
        if !self.fits(own, frame.len()) {
            match (end, reply_to) {
                // Progress does not wait: it is shed.
                (false, _) => return false,
                (true, Some(ReplyTo::Mcp(id))) => frame = lost_reply_frame(id),
                (true, _) => frame.clear(),
            }
        }
        g.next_seq += 1;
        g.events_bytes += frame.len();
        self.global_bytes.fetch_add(frame.len(), Ordering::AcqRel);
        g.events.push_back(Event { seq: g.next_seq, stream, frame, end });
        true
    }

    /// Append a frame to stream `stream` (progress: `end = false`, shed when over budget).
    /// Returns false when it was shed.
    pub fn push_event(&self, stream: u64, frame: String, end: bool) -> bool {
        let ok = {
            let mut g = self.lock();
            if g.closed {
                return false;
            }
            self.push_event_locked(&mut g, stream, Some(frame), end, None)
        };
        self.events_changed.notify_waiters();
        ok
    }

    /// End stream `stream` with no frame (its call was cancelled by the client).
    pub fn end_stream(&self, stream: u64) {
        {
            let mut g = self.lock();
            self.push_event_locked(&mut g, stream, None, true, None);
        }
        self.events_changed.notify_waiters();
    }

    /// The next event of `stream` after sequence number `after`. Reading a stream's last
    /// event removes the stream's events from the log (the client has it all).
    pub fn read(&self, stream: u64, after: u64) -> (Read, u64) {
        let mut g = self.lock();
        let Some(i) = g.events.iter().position(|e| e.stream == stream && e.seq > after) else {
            let r = if g.closed { Read::Closed } else { Read::Wait };
            return (r, after);
        };
        let e = &g.events[i];
        let (seq, end) = (e.seq, e.end);
        // The last event is moved out (the stream's events go now); earlier ones stay for a
        // reader that resumes, so they are copied.
        let frame = if end {
            g.events.remove(i).map(|e| {
                g.events_bytes -= e.frame.len();
                self.global_bytes.fetch_sub(e.frame.len(), Ordering::AcqRel);
                e.frame
            })
        } else {
            Some(e.frame.clone())
        }
        .filter(|f| !f.is_empty());
        if end {
            let mut freed = 0;
            g.events.retain(|e| {
                let keep = e.stream != stream;
                if !keep {
                    freed += e.frame.len();
                }
                keep
            });
            g.events_bytes -= freed;
            self.global_bytes.fetch_sub(freed, Ordering::AcqRel);
        }
        (Read::Event { id: format!("{stream}-{seq}"), frame, end }, seq)
    }

    /// Wait until the event log changes (or the session ends). Register before reading:
    /// `let n = core.changed(); tokio::pin!(n); n.as_mut().enable(); core.read(..); n.await`.
    pub fn changed(&self) -> tokio::sync::futures::Notified<'_> {
        self.events_changed.notified()
    }

    /// Bytes buffered by this session (replies and events).
    pub fn buffered_bytes(&self) -> usize {
        let g = self.lock();
        g.pending_bytes + g.events_bytes
    }
}

/// The explicit error that replaces a terminal reply that did not fit the buffer.
fn lost_reply_frame(id: &RequestId) -> String {
    let e = crate::error::ToolError::Unavailable(
        "the reply did not fit the session's resume buffer and was dropped; resend the request".into(),
    );
    crate::protocol::jsonrpc::result_frame(id, crate::protocol::mcp::tool_error_result(&e, None))
}

/// Parse an SSE `Last-Event-ID` of the form `stream-seq`.
pub fn parse_event_id(s: &str) -> Option<(u64, u64)> {
    let (a, b) = s.trim().split_once('-')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// Where a connection's writer gives back the frames it could not write (the outbox it was
/// draining when the connection died or was closed for stalling): the session core the
/// connection is attached to at that moment. The session actor keeps it current.
#[derive(Clone, Default)]
pub struct ReturnSlot(Arc<Mutex<Option<Arc<SessionCore>>>>);

impl ReturnSlot {
    /// Point the slot at the core the connection is attached to.
    pub fn set(&self, core: &Arc<SessionCore>) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(Arc::clone(core));
    }

    /// Give unwritten frames back to the session (no-op when none or no core).
    pub fn give_back(&self, frames: Vec<String>) {
        if frames.is_empty() {
            return;
        }
        let core = self.0.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some(core) = core {
            core.requeue_front(frames);
        }
    }
}

/// All resumable sessions of this process, by id.
#[derive(Clone)]
///
/// This is the seam for a shared directory (several nodes serving one session): callers only
/// use `get`, `get_or_create`, `create`, `remove` and the counters.
pub struct SessionRegistry {
    sessions: Arc<Mutex<HashMap<String, Arc<SessionCore>>>>,
    limits: BufferLimits,
    max_running: usize,
    global_buffered: Arc<AtomicUsize>,
    global_bytes: Arc<AtomicUsize>,
    /// How long a detached session waits for its client.
    pub grace: Duration,
}

impl SessionRegistry {
    /// An empty registry.
    /// `max_running`: calls a session runs at once (`limits.session_max_inflight`).
    pub fn new(limits: BufferLimits, grace: Duration, max_running: usize) -> SessionRegistry {
        SessionRegistry {
            sessions: Arc::new(Mutex::new(HashMap::new())),
            limits,
            max_running: max_running.max(1),
            global_buffered: Arc::new(AtomicUsize::new(0)),
            global_bytes: Arc::new(AtomicUsize::new(0)),
            grace,
        }
    }

    /// The session with this id, if it exists.
    pub fn get(&self, id: &str) -> Option<Arc<SessionCore>> {
        self.lock().get(id).cloned()
    }

    fn new_core(&self, id: &str) -> Arc<SessionCore> {
        Arc::new(SessionCore {
            id: Arc::from(id),
            limits: self.limits,
            global_buffered: Arc::clone(&self.global_buffered),
            global_bytes: Arc::clone(&self.global_bytes),
            slots: Arc::new(tokio::sync::Semaphore::new(self.max_running)),
            max_running: self.max_running,
            events_changed: tokio::sync::Notify::new(),
            inner: Mutex::new(Inner {
                attached: None,
                calls: HashMap::new(),
                pending: VecDeque::new(),
                lost: Vec::new(),
                lost_overflow: 0,
                detached_at: None,
                stalled_since: None,
                pumping: false,
                pending_bytes: 0,
                meta: SessionMeta::default(),
                events: VecDeque::new(),
                events_bytes: 0,
                next_seq: 0,
                next_stream: 0,
                closed: false,
                queued: 0,
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Arc<SessionCore>>> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The session with this id, created when missing. The bool says whether it existed.
    pub fn get_or_create(&self, id: &str) -> (Arc<SessionCore>, bool) {
        let mut g = self.lock();
        if let Some(c) = g.get(id) {
            return (Arc::clone(c), true);
        }
        let core = self.new_core(id);
        g.insert(id.to_string(), Arc::clone(&core));
        (core, false)
    }

    /// A new session with a fresh random id.
    pub fn create(&self) -> Arc<SessionCore> {
        let id = uuid::Uuid::new_v4().to_string();
        let core = self.new_core(&id);
        self.lock().insert(id, Arc::clone(&core));
        core
    }

    /// Bytes buffered across all sessions (outboxes included).
    pub fn buffered_bytes(&self) -> usize {
        self.global_bytes.load(Ordering::Acquire)
    }

    /// A gauge for a new connection's outbox.
    pub fn outbox_gauge(&self) -> Arc<OutboxGauge> {
        Arc::new(OutboxGauge { bytes: AtomicUsize::new(0), global: Arc::clone(&self.global_bytes) })
    }

    /// Forget a session now: cancel its calls and release its buffer.
    pub fn remove(&self, core: &Arc<SessionCore>) {
        let mut g = self.lock();
        if g.get(core.id().as_ref()).is_some_and(|c| Arc::ptr_eq(c, core)) {
            g.remove(core.id().as_ref());
        }
        drop(g);
        core.cancel_all();
        core.release();
    }

    /// Drop a session from the directory without cancelling anything (it was closed).
    pub fn forget(&self, core: &Arc<SessionCore>) {
        let mut g = self.lock();
        if g.get(core.id().as_ref()).is_some_and(|c| Arc::ptr_eq(c, core)) {
            g.remove(core.id().as_ref());
        }
    }

    /// Replies buffered across all sessions.
    pub fn buffered(&self) -> usize {
        self.global_buffered.load(Ordering::Acquire)
    }

    /// Sessions known (attached or waiting for their client).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// True when no session is known.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn registry(per_session_bytes: usize) -> SessionRegistry {
        let limits = BufferLimits { per_session_bytes, ..BufferLimits::default() };
        SessionRegistry::new(limits, Duration::from_secs(1), 2)
    }

    #[test]
    fn a_session_belongs_to_its_first_principal() {
        let core = registry(1 << 20).create();
        let (alice, bob): (Arc<str>, Arc<str>) = (Arc::from("token:a"), Arc::from("token:b"));
        assert!(core.bind_principal(&alice));
        assert!(core.bind_principal(&alice), "the owner attaches again");
        assert!(!core.bind_principal(&bob), "another principal is refused");
        assert_eq!(core.meta().principal.as_deref(), Some("token:a"));
    }

    #[test]
    fn streams_replay_after_an_event_id_and_release_once_read_to_the_end() {
        let reg = registry(1 << 20);
        let core = reg.create();
        let (a, b) = (core.new_stream(), core.new_stream());
        core.push_event(a, "p1".into(), false);
        core.push_event(b, "other".into(), false);
        core.push_event(a, "p2".into(), false);
        core.push_event(a, "result".into(), true);
        let (first, seq) = core.read(a, 0);
        let Read::Event { id, frame, end: false } = first else { panic!("{first:?}") };
        assert_eq!(frame.as_deref(), Some("p1"));
        // A reader that resumes after that id gets the rest of stream `a` only.
        let (s, after) = parse_event_id(&id).unwrap();
        assert_eq!((s, after), (a, seq));
        let (next, seq) = core.read(a, after);
        assert!(matches!(next, Read::Event { frame: Some(ref f), end: false, .. } if f == "p2"));
        let (last, seq) = core.read(a, seq);
        assert!(matches!(last, Read::Event { frame: Some(ref f), end: true, .. } if f == "result"));
        assert_eq!(core.read(a, seq).0, Read::Wait, "stream a is released once read to its end");
        assert_eq!(core.buffered_bytes(), "other".len());
        assert_eq!(reg.buffered_bytes(), "other".len());
        reg.remove(&core);
        assert_eq!(reg.buffered_bytes(), 0);
        assert_eq!(core.read(b, 0).0, Read::Closed);
        assert_eq!(parse_event_id("x"), None);
    }

    #[test]
    fn the_byte_budget_sheds_progress_and_replaces_a_reply_by_an_explicit_error() {
        let core = registry(64).create();
        let s = core.new_stream();
        assert!(!core.push_event(s, "p".repeat(100), false), "progress over the budget is shed");
        let id = RequestId::Num(5);
        let entry = CallEntry {
            abort: AbortHandle::new_pair().0,
            tool: "t".into(),
            started: Instant::now(),
            reply_to: ReplyTo::Mcp(id.clone()),
            route: Route::Stream(s),
        };
        core.admit("n:5".into(), entry).unwrap();
        assert!(core.finish("n:5", vec!["r".repeat(1000)]));
        let (read, _) = core.read(s, 0);
        let Read::Event { frame: Some(f), end: true, .. } = read else { panic!("{read:?}") };
        assert!(f.contains("did not fit") && f.contains("\"id\":5"), "{f}");
    }
}
