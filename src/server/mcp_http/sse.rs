//! Server-Sent Events bodies for `/mcp`.
//!
//! [`CallStream`] is the body of a `tools/call` answered as SSE: it owns the (abortable) call
//! future, so the call runs as the body is polled on the worker thread, and dropping the body
//! (client gone) drops the call, which releases its permits and aborts provider requests. It
//! yields the call's `notifications/progress` / `notifications/message` events, then the
//! final JSON-RPC response, then ends. [`ListenStream`] is the long-lived GET stream: comment
//! keepalives until its session ends. Events carry no `id:` because streams are not resumable.

use super::session::{CancelKind, InFlightGuard, StreamGuard};
use actix_web::http::header;
use actix_web::HttpResponse;
use bytes::Bytes;
use exai_actors::dispatch::CallResult;
use exai_actors::error::ToolError;
use exai_actors::protocol::jsonrpc::{self, RequestId};
use exai_actors::protocol::{mcp, mcp_frame};
use exai_actors::tools::{LogLevel, ProgressSink};
use futures_util::future::{Abortable, Aborted, LocalBoxFuture};
use futures_util::Stream;
use prometheus::IntCounter;
use serde_json::Value;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::AtomicU8;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::time::{interval_at, Instant, Interval, MissedTickBehavior};

/// Comment keepalive interval on open streams.
pub const KEEPALIVE_EVERY: Duration = Duration::from_secs(15);

const KEEPALIVE: &[u8] = b": keepalive\n\n";

/// One SSE `message` event carrying a JSON-RPC message.
pub fn event(json: &str) -> Bytes {
    Bytes::from(format!("event: message\ndata: {json}\n\n"))
}

fn keepalive_timer() -> Interval {
    let mut t = interval_at(Instant::now() + KEEPALIVE_EVERY, KEEPALIVE_EVERY);
    t.set_missed_tick_behavior(MissedTickBehavior::Delay);
    t
}

/// A `200 text/event-stream` response around `body`, never compressed or buffered.
pub fn response<S>(body: S, session: Option<&str>) -> HttpResponse
where
    S: Stream<Item = Result<Bytes, Infallible>> + 'static,
{
    let mut b = HttpResponse::Ok();
    b.content_type("text/event-stream")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header((header::CONTENT_ENCODING, "identity"))
        .insert_header(("x-accel-buffering", "no"));
    if let Some(s) = session {
        b.insert_header((super::guard::SESSION_HEADER, s));
    }
    b.streaming(body)
}

/// A one-event SSE response (for clients that accept only `text/event-stream`).
pub fn single(frame: &str, session: Option<&str>) -> HttpResponse {
    response(futures_util::stream::once(std::future::ready(Ok(event(frame)))), session)
}

/// Progress sink for an SSE call: progress needs the caller's token, log messages are
/// filtered by the session level; a full channel sheds the event and counts it.
pub fn progress_sink(
    tx: mpsc::Sender<String>,
    token: Option<Value>,
    level: LogLevel,
    shed: IntCounter,
) -> ProgressSink {
    mcp::ProgressRenderer::new(token, level).into_sink(move |frame| {
        if let Err(mpsc::error::TrySendError::Full(_)) = tx.try_send(frame) {
            shed.inc();
        }
    })
}

/// The frame that ends a call, or `None` when the client cancelled it (no response then).
pub fn final_frame(id: &RequestId, outcome: Result<CallResult, Aborted>, kind: &AtomicU8) -> Option<String> {
    match outcome {
        Ok(res) => Some(mcp_frame::call_result_frame(id, &res)),
        Err(Aborted) => match CancelKind::load(kind) {
            Some(CancelKind::Shutdown) => {
                let e = ToolError::Cancelled { reason: "server shutting down; the session was closed".into() };
                Some(jsonrpc::result_frame(id, mcp::tool_error_result(&e, None)))
            }
            _ => None,
        },
    }
}

/// The body of a `tools/call` answered as SSE.
pub struct CallStream {
    call: Option<Abortable<LocalBoxFuture<'static, CallResult>>>,
    progress: mpsc::Receiver<String>,
    id: RequestId,
    kind: Arc<AtomicU8>,
    last: Option<String>,
    done: bool,
    keepalive: Interval,
    _guard: InFlightGuard,
}

impl CallStream {
    /// Wrap a registered, abortable call.
    pub fn new(
        call: Abortable<LocalBoxFuture<'static, CallResult>>,
        progress: mpsc::Receiver<String>,
        id: RequestId,
        kind: Arc<AtomicU8>,
        guard: InFlightGuard,
    ) -> CallStream {
        CallStream {
            call: Some(call),
            progress,
            id,
            kind,
            last: None,
            done: false,
            keepalive: keepalive_timer(),
            _guard: guard,
        }
    }
}

impl Stream for CallStream {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if this.done {
                return Poll::Ready(None);
            }
            // Progress first: everything the tool reported goes out before the response.
            if let Poll::Ready(Some(frame)) = this.progress.poll_recv(cx) {
                return Poll::Ready(Some(Ok(event(&frame))));
            }
            if let Some(frame) = this.last.take() {
                this.done = true;
                return Poll::Ready(Some(Ok(event(&frame))));
            }
            if let Some(call) = this.call.as_mut() {
                if let Poll::Ready(outcome) = Pin::new(call).poll(cx) {
                    // Dropping the future drops the progress sender, so the queue drains.
                    this.call = None;
                    match final_frame(&this.id, outcome, &this.kind) {
                        Some(frame) => this.last = Some(frame),
                        None => this.done = true,
                    }
                    continue;
                }
            }
            if this.keepalive.poll_tick(cx).is_ready() {
                return Poll::Ready(Some(Ok(Bytes::from_static(KEEPALIVE))));
            }
            return Poll::Pending;
        }
    }
}

/// The body of the GET stream: keepalives until the session ends.
pub struct ListenStream {
    closed: oneshot::Receiver<()>,
    keepalive: Interval,
    done: bool,
    _guard: StreamGuard,
}

impl ListenStream {
    /// A stream that ends when the sender kept by the session is dropped.
    pub fn new(closed: oneshot::Receiver<()>, guard: StreamGuard) -> ListenStream {
        ListenStream { closed, keepalive: keepalive_timer(), done: false, _guard: guard }
    }
}

impl Stream for ListenStream {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        if Pin::new(&mut this.closed).poll(cx).is_ready() {
            this.done = true;
            return Poll::Ready(None);
        }
        if this.keepalive.poll_tick(cx).is_ready() {
            return Poll::Ready(Some(Ok(Bytes::from_static(KEEPALIVE))));
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use exai_actors::tools::ProgressEvent;
    use serde_json::json;

    #[test]
    fn sink_renders_progress_and_filters_logs() {
        let (tx, mut rx) = mpsc::channel(2);
        let shed = IntCounter::new("shed_test", "test").unwrap();
        let sink = progress_sink(tx, Some(json!(4)), LogLevel::Warning, shed.clone());
        sink.emit(ProgressEvent::Log { level: LogLevel::Info, data: json!("quiet") });
        sink.emit(ProgressEvent::Log { level: LogLevel::Error, data: json!("loud") });
        sink.emit(ProgressEvent::Progress { progress: 1.0, total: Some(2.0), message: None });
        sink.emit(ProgressEvent::Chunk("overflow".into()));
        let log: Value = serde_json::from_str(&rx.try_recv().unwrap()).unwrap();
        assert_eq!(log["method"], "notifications/message");
        assert_eq!(log["params"]["level"], "error");
        assert_eq!(log["params"]["data"], "loud");
        let p: Value = serde_json::from_str(&rx.try_recv().unwrap()).unwrap();
        assert_eq!(p["params"], json!({"progressToken":4,"progress":1.0,"total":2.0}));
        assert!(rx.try_recv().is_err());
        assert_eq!(shed.get(), 1, "the event that did not fit was shed");
        assert_eq!(&event("{}")[..], b"event: message\ndata: {}\n\n");
    }
}
