//! Server-Sent Events bodies for `/mcp`.
//!
//! [`events`] is the body of a `tools/call` answered as SSE, and of a `GET` that resumes one
//! after `Last-Event-ID`: it reads one stream of the session's event log (the call runs as
//! its own task in the core), yielding the call's `notifications/progress` /
//! `notifications/message` events, then the final JSON-RPC response, each with an `id:`
//! (`stream-seq`), then ends. Dropping it is not a cancel. [`ListenStream`] is the
//! long-lived GET stream: comment keepalives until its session ends.

use super::session::StreamGuard;
use actix_web::http::header;
use actix_web::HttpResponse;
use bytes::Bytes;
use exai_actors::session::core::Read;
use exai_actors::session::SessionCore;
use futures_util::Stream;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::time::{interval_at, Instant, Interval, MissedTickBehavior};

/// Comment keepalive interval on open streams.
pub const KEEPALIVE_EVERY: Duration = Duration::from_secs(15);

const KEEPALIVE: &[u8] = b": keepalive\n\n";

/// One SSE `message` event carrying a JSON-RPC message.
pub fn event(json: &str) -> Bytes {
    Bytes::from(format!("event: message\ndata: {json}\n\n"))
}

/// One SSE `message` event with its id (resumable with `Last-Event-ID`).
pub fn event_with_id(id: &str, json: &str) -> Bytes {
    Bytes::from(format!("id: {id}\nevent: message\ndata: {json}\n\n"))
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

/// The body of a stream of the session's event log: its events (each with its `id:`) after
/// sequence number `after`, until the stream's last event or the end of the session, with
/// comment keepalives while it waits. Dropping the body (client gone) leaves the call running
/// and its events in the log for a `GET` with `Last-Event-ID`.
pub fn events(core: Arc<SessionCore>, stream: u64, after: u64) -> impl Stream<Item = Result<Bytes, Infallible>> {
    futures_util::stream::unfold(Some((core, after, keepalive_timer())), move |state| async move {
        let (core, mut after, mut keepalive) = state?;
        loop {
            let waker = Arc::clone(&core);
            let changed = waker.changed();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let (read, seq) = core.read(stream, after);
            after = seq;
            match read {
                Read::Event { id, frame: Some(frame), end } => {
                    let next = (!end).then_some((core, after, keepalive));
                    return Some((Ok(event_with_id(&id, &frame)), next));
                }
                Read::Event { end: true, .. } | Read::Closed => return None,
                Read::Event { .. } => continue,
                Read::Wait => {
                    tokio::select! {
                        _ = &mut changed => {}
                        _ = keepalive.tick() => {
                            return Some((Ok(Bytes::from_static(KEEPALIVE)), Some((core, after, keepalive))));
                        }
                    }
                }
            }
        }
    })
}

/// The last frame of `stream` (a JSON response), or `None` when the stream ended without
/// one (a cancelled call) or the session ended.
pub async fn terminal(core: Arc<SessionCore>, stream: u64) -> Option<String> {
    let mut after = 0;
    loop {
        let changed = core.changed();
        tokio::pin!(changed);
        changed.as_mut().enable();
        let (read, seq) = core.read(stream, after);
        after = seq;
        match read {
            Read::Event { frame, end: true, .. } => return frame,
            Read::Event { .. } => continue,
            Read::Closed => return None,
            Read::Wait => changed.await,
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
    use super::*;

    #[test]
    fn events_are_framed_with_their_ids() {
        assert_eq!(&event("{}")[..], b"event: message\ndata: {}\n\n");
        assert_eq!(&event_with_id("3-7", "{}")[..], b"id: 3-7\nevent: message\ndata: {}\n\n");
    }
}
