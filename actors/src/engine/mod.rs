//! The session engine: the one place where a request that arrived on any transport
//! (WebSocket MCP or legacy, Streamable HTTP, stdio) becomes a running call.
//!
//! Transports are framers: they turn bytes into typed messages ([`crate::protocol`]), hand
//! them to the engine together with the session they belong to ([`Caller`]), and turn what
//! comes back into bytes. The engine owns:
//! - admission ([`start_call`]): draining / shutting down, a duplicate id, the session's
//!   bounded queue (a burst waits for a slot; only a full queue or a wait past
//!   `limits.session_queue_wait_ms` is `OVER_CAPACITY`), all through the session's
//!   [`SessionCore`] call table;
//! - the call's task (spawned on the worker thread that received it, with its tracing span,
//!   abortable through the call table, outliving the connection that started it);
//! - rendering its terminal frames and delivering them along the call's [`Route`] (the
//!   attached connection or a stream of the session's event log, with sequence numbers);
//! - the MCP method match ([`mcp::request`], [`mcp::notification`]); methods that other
//!   modules add (tasks, prompts) plug in at [`hooks`].

pub mod hooks;
pub mod mcp;

use crate::dispatch::{CallRequest, CallResult, Dispatcher, LatencyMetrics};
use crate::error::ToolError;
use crate::session::core::{CallEntry, Refusal, ReplyTo, Route, SessionCore};
use futures_util::future::{AbortHandle, Abortable};
use std::sync::Arc;
use std::time::Instant;

/// Who is asking, on which session, and where the answer goes.
pub struct Caller<'a> {
    /// The call pipeline.
    pub dispatcher: &'a Dispatcher,
    /// The session.
    pub core: &'a Arc<SessionCore>,
    /// `mcp-ws`, `mcp-http`, `legacy-ws`, `mcp-stdio`.
    pub protocol: &'static str,
    /// Where this request's call frames go.
    pub route: Route,
    /// The connection is draining (shutdown): no new calls.
    pub draining: bool,
    /// Who is calling ([`crate::access::principal`]).
    pub principal: &'a Arc<str>,
}

/// Turns a finished call into its terminal frames.
pub type Render = Box<dyn FnOnce(&CallResult) -> Vec<String>>;

/// Why a call did not start.
#[derive(Debug)]
pub enum StartError {
    /// The request id is already in flight on this session (a protocol error).
    Duplicate,
    /// Refused with a tool error (shutting down, over capacity, session ended).
    Refused(ToolError),
}

/// Admit and start a call: it runs as its own task on this worker thread, registered in the
/// session's call table under `key` (cancel = abort), waits (bounded) for one of the
/// session's slots, and hands its rendered frames to the session core along the caller's
/// route.
pub fn start_call(
    c: &Caller<'_>,
    key: String,
    reply_to: ReplyTo,
    req: CallRequest,
    render: Render,
) -> Result<(), StartError> {
    let env = c.dispatcher.env();
    if c.draining || env.runtime.is_shutting_down() {
        return Err(StartError::Refused(ToolError::ShuttingDown));
    }
    let (abort, registration) = AbortHandle::new_pair();
    let tool = req.name.clone();
    let entry = CallEntry { abort, tool: tool.clone(), started: Instant::now(), reply_to, route: c.route };
    match c.core.admit(key.clone(), entry) {
        Ok(()) => {}
        Err(Refusal::Duplicate) => return Err(StartError::Duplicate),
        Err(Refusal::QueueFull { running, queued }) => {
            return Err(StartError::Refused(ToolError::OverCapacity {
                message: format!("session queue full ({running} calls running and {queued} waiting on this session)"),
                retry_after_secs: env.settings.retry_after_secs,
            }))
        }
        Err(Refusal::Closed) => return Err(StartError::Refused(ToolError::Unavailable("the session ended".into()))),
    }
    // Every line logged while the call runs names its session and request.
    let span = tracing::info_span!("call", session = %req.session_id, request = %req.request_id,
                                   tool = %req.name, protocol = req.protocol);
    let fut = tracing::Instrument::instrument(c.dispatcher.call(req), span);
    let poll = env.settings.idle_poll();
    let retry_after = env.settings.retry_after_secs;
    let core = Arc::clone(c.core);
    actix_rt::spawn(Abortable::new(
        async move {
            let res = match core.slot().await {
                Some(_slot) => fut.await,
                None => CallResult {
                    tool,
                    outcome: Err(ToolError::OverCapacity {
                        message: format!(
                            "the call waited {} ms for a free slot on this session",
                            core.queue_wait().as_millis()
                        ),
                        retry_after_secs: retry_after,
                    }),
                    latency: LatencyMetrics::default(),
                },
            };
            crate::idle_poll::touch(poll);
            let frames = render(&res);
            core.finish(&key, frames);
        },
        registration,
    ));
    Ok(())
}

/// Answer a call the server gave up on (drain deadline, shutdown) with an explicit error,
/// along its route.
pub fn answer_cancelled(core: &Arc<SessionCore>, entry: &CallEntry, frame: String) {
    match entry.route {
        Route::Stream(n) => {
            core.push_event(n, frame, true);
        }
        Route::Attached => core.deliver(vec![frame], Some(&entry.reply_to)),
    }
}
