//! The OpenAI-compatible core shared by every vendor: one chat call (plain, or streamed as SSE
//! with its deltas delivered as they arrive and the first-byte / idle / total deadlines), and the
//! transport for plain OpenAI-compatible servers (Ollama, vLLM, OpenRouter, ...). Request
//! bodies come from `exai_actors::provider::payload`, the one place the vendor rules live.

use async_trait::async_trait;
use awc::http::header::{HeaderName, HeaderValue, ACCEPT, CONTENT_TYPE};
use awc::http::Method;
use awc::ClientResponse;
use bytes::Bytes;
use exai_actors::files::hash::ChunkSink;
use exai_actors::provider::payload::{chat_body, PayloadKind};
use exai_actors::provider::transport::ProviderTransport;
use exai_actors::provider::types::{
    ChatRequest, ChatResponse, ProviderError, ProviderFile, RequestTimeouts, StreamEvent,
};
use futures_util::{FutureExt, StreamExt};
use serde_json::Value;
use std::path::Path;
use tokio::time::{timeout_at, Instant};

use super::errors::payload_error;
use super::files;
use super::http::{read_body, Clock, HttpCore, JSON_BODY_LIMIT};
use super::response::{parse_completion, Step, StreamAccumulator};
use super::sse::SseParser;

/// One `POST {base}/chat/completions` with `body` (from `payload::chat_body`). `stream` selects
/// SSE; then `on_event` gets every content / reasoning delta as it arrives and the result holds
/// the whole answer. Phases ([`Clock`]): the head (and a stream's first delta) within
/// `first_byte`, every later piece within `idle` of the previous one, all within `total` — a
/// stream that keeps flowing runs until the total.
pub(crate) async fn chat_call(
    core: &HttpCore,
    body: &Value,
    headers: &[(HeaderName, HeaderValue)],
    stream: bool,
    timeouts: &RequestTimeouts,
    on_event: &mut dyn FnMut(StreamEvent),
) -> Result<ChatResponse, ProviderError> {
    let clock = Clock::start(timeouts);
    let bytes = Bytes::from(serde_json::to_vec(body).map_err(|e| ProviderError::Protocol(e.to_string()))?);
    let mut req = core
        .request(Method::POST, "/chat/completions", timeouts)
        .insert_header((CONTENT_TYPE, "application/json"))
        .insert_header((ACCEPT, if stream { "text/event-stream" } else { "application/json" }));
    for (k, v) in headers {
        req = req.insert_header((k.clone(), v.clone()));
    }
    let mut res = core.send(req, bytes, clock.first_byte(), &clock).await?;
    if !stream {
        let body = read_body(&mut res, &clock, JSON_BODY_LIMIT, false).await?;
        return parse_completion(&body);
    }
    read_stream(res, &clock, on_event).await
}

async fn read_stream(
    mut res: ClientResponse,
    clock: &Clock,
    on_event: &mut dyn FnMut(StreamEvent),
) -> Result<ChatResponse, ProviderError> {
    let is_sse = res
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|ct| ct.starts_with("text/event-stream"));
    if !is_sse {
        // A server that ignored `stream: true` and answered in one piece.
        let body = read_body(&mut res, clock, JSON_BODY_LIMIT, false).await?;
        let answer = parse_completion(&body)?;
        if let Some(r) = answer.reasoning.as_ref().filter(|r| !r.is_empty()) {
            on_event(StreamEvent::Reasoning(r.clone()));
        }
        if !answer.content.is_empty() {
            on_event(StreamEvent::Content(answer.content.clone()));
        }
        return Ok(answer);
    }
    let mut parser = SseParser::new();
    let mut acc = StreamAccumulator::new();
    let mut events = Vec::new();
    let mut got_token = false;
    let mut last = Instant::now();
    loop {
        // Until the first delta: the first-byte limit; then the idle gap since the last piece.
        let deadline = if got_token { clock.idle_after(last) } else { clock.first_byte() };
        let next = match timeout_at(deadline.at, res.next()).await {
            Err(_) => return Err(deadline.error()),
            Ok(next) => next,
        };
        last = Instant::now();
        let ended = next.is_none();
        match next {
            None => parser.finish(&mut events)?,
            Some(Err(e)) => return Err(payload_error(e)),
            Some(Ok(chunk)) => parser.feed(&chunk, &mut events)?,
        }
        for event in events.drain(..) {
            if event.data.trim().is_empty() {
                continue;
            }
            match acc.apply(&event.data, on_event)? {
                Step::Continue { token } => got_token |= token,
                Step::Done => {
                    drain_ready(&mut res);
                    return Ok(acc.finish());
                }
            }
        }
        if ended {
            break;
        }
    }
    if acc.is_complete() {
        Ok(acc.finish())
    } else {
        Err(ProviderError::Network("the stream ended before the answer was complete".into()))
    }
}

/// Reads what is already buffered after `[DONE]` (the chunked terminator), without waiting,
/// so the connection can go back to the pool.
fn drain_ready(res: &mut ClientResponse) {
    for _ in 0..4 {
        match res.next().now_or_never() {
            Some(Some(Ok(_))) => continue,
            _ => break,
        }
    }
}

/// A plain OpenAI-compatible server.
#[derive(Debug)]
pub(crate) struct OpenAiTransport {
    core: HttpCore,
}

impl OpenAiTransport {
    pub(crate) fn new(core: HttpCore) -> OpenAiTransport {
        OpenAiTransport { core }
    }
}

#[async_trait(?Send)]
impl ProviderTransport for OpenAiTransport {
    async fn chat(
        &self,
        req: &ChatRequest,
        timeouts: &RequestTimeouts,
        on_event: &mut dyn FnMut(StreamEvent),
    ) -> Result<ChatResponse, ProviderError> {
        if req.web_search {
            tracing::debug!(provider = %self.core.name(), "web search requested but this provider has none; ignored");
        }
        let body = chat_body(PayloadKind::OpenAi, req);
        chat_call(&self.core, &body, &[], req.stream, timeouts, on_event).await
    }

    async fn web_search(&self, _params: &Value, _timeouts: &RequestTimeouts) -> Result<Value, ProviderError> {
        Err(ProviderError::Unsupported(format!("provider {} has no web search API", self.core.name())))
    }

    async fn upload_file(
        &self,
        path: &Path,
        filename: &str,
        purpose: &str,
        tee: Option<ChunkSink>,
        timeouts: &RequestTimeouts,
    ) -> Result<ProviderFile, ProviderError> {
        files::upload(&self.core, path, filename, purpose, tee, timeouts).await
    }

    async fn list_files(&self, timeouts: &RequestTimeouts) -> Result<Vec<ProviderFile>, ProviderError> {
        files::list(&self.core, timeouts).await
    }

    async fn file_content(&self, id: &str, timeouts: &RequestTimeouts) -> Result<String, ProviderError> {
        files::content(&self.core, id, timeouts).await
    }

    async fn delete_file(&self, id: &str, timeouts: &RequestTimeouts) -> Result<(), ProviderError> {
        files::delete(&self.core, id, timeouts).await
    }
}
