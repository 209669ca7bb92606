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
//! The core is shared between threads (`Arc` + one short mutex; no await while locked).

use crate::protocol::jsonrpc::RequestId;
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
}

/// Sent to the attached connection when one of its session's calls finished.
#[derive(actix::Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct CallFinished;

struct Attached {
    conn_id: u64,
    out: mpsc::Sender<Outbound>,
    notify: actix::Recipient<CallFinished>,
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
}

/// Limits of the reply buffers.
#[derive(Debug, Clone, Copy)]
pub struct BufferLimits {
    /// Replies buffered per session.
    pub per_session: usize,
    /// Replies buffered across all sessions.
    pub global: usize,
}

/// The shared session state.
pub struct SessionCore {
    id: Arc<str>,
    limits: BufferLimits,
    global_buffered: Arc<AtomicUsize>,
    inner: Mutex<Inner>,
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

    /// Register a started call.
    pub fn add_call(&self, key: String, entry: CallEntry) {
        self.lock().calls.insert(key, entry);
    }

    /// Cancel one call: abort it and forget it. Returns its entry when it was running.
    pub fn cancel(&self, key: &str) -> Option<CallEntry> {
        let e = self.lock().calls.remove(key)?;
        e.abort.abort();
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

    fn buffer(&self, g: &mut Inner, frame: String, reply_to: Option<&ReplyTo>) {
        let global = self.global_buffered.load(Ordering::Acquire);
        if g.pending.len() < self.limits.per_session && global < self.limits.global {
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
            let sent = match (&g.attached, g.pending.is_empty()) {
                (Some(a), true) => match a.out.try_send(Outbound::Text(f)) {
                    Ok(()) => None,
                    Err(mpsc::error::TrySendError::Full(Outbound::Text(f)))
                    | Err(mpsc::error::TrySendError::Closed(Outbound::Text(f))) => Some(f),
                    Err(_) => None,
                },
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
        notify: actix::Recipient<CallFinished>,
    ) -> (Vec<ReplyTo>, u64) {
        let mut g = self.lock();
        g.attached = Some(Attached { conn_id, out, notify });
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

    /// Release the buffer (expiry).
    fn release(&self) {
        let mut g = self.lock();
        let n = g.pending.len();
        g.pending.clear();
        self.global_buffered.fetch_sub(n, Ordering::AcqRel);
    }
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
pub struct SessionRegistry {
    sessions: Arc<Mutex<HashMap<String, Arc<SessionCore>>>>,
    limits: BufferLimits,
    global_buffered: Arc<AtomicUsize>,
    /// How long a detached session waits for its client.
    pub grace: Duration,
}

impl SessionRegistry {
    /// An empty registry.
    pub fn new(limits: BufferLimits, grace: Duration) -> SessionRegistry {
        SessionRegistry {
            sessions: Arc::new(Mutex::new(HashMap::new())),
            limits,
            global_buffered: Arc::new(AtomicUsize::new(0)),
            grace,
        }
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
        let core = Arc::new(SessionCore {
            id: Arc::from(id),
            limits: self.limits,
            global_buffered: Arc::clone(&self.global_buffered),
            inner: Mutex::new(Inner {
                attached: None,
                calls: HashMap::new(),
                pending: VecDeque::new(),
                lost: Vec::new(),
                lost_overflow: 0,
                detached_at: None,
                stalled_since: None,
                pumping: false,
            }),
        });
        g.insert(id.to_string(), Arc::clone(&core));
        (core, false)
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
