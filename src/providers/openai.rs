//! The OpenAI-compatible core shared by every vendor: one chat call (plain, or streamed as SSE
//! with its deltas delivered as they arrive and the first-token / stream deadlines), and the
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
use super::http::{read_body, HttpCore, JSON_BODY_LIMIT};
use super::response::{parse_completion, Step, StreamAccumulator};
use super::sse::SseParser;

/// One `POST {base}/chat/completions` with `body` (from `payload::chat_body`). `stream` selects SSE; then `on_event` gets every
/// content / reasoning delta as it arrives and the result holds the whole answer.
pub(crate) async fn chat_call(
    core: &HttpCore,
    body: &Value,
    headers: &[(HeaderName, HeaderValue)],
    stream: bool,
    timeouts: &RequestTimeouts,
    on_event: &mut dyn FnMut(StreamEvent),
) -> Result<ChatResponse, ProviderError> {
    let start = Instant::now();
    let bytes = Bytes::from(serde_json::to_vec(body).map_err(|e| ProviderError::Protocol(e.to_string()))?);
    let mut req = core
        .request(Method::POST, "/chat/completions", timeouts)
        .insert_header((CONTENT_TYPE, "application/json"))
        .insert_header((ACCEPT, if stream { "text/event-stream" } else { "application/json" }));
    for (k, v) in headers {
        req = req.insert_header((k.clone(), v.clone()));
    }
    let request_deadline = start + timeouts.request;
    if !stream {
        let mut res = core.send(req, bytes, request_deadline, "request").await?;
        let body = read_body(&mut res, request_deadline, JSON_BODY_LIMIT, false).await?;
        return parse_completion(&body);
    }
    let deadlines = StreamDeadlines { first_token: start + timeouts.first_token, stream: start + timeouts.stream };
    // The head must come before the request deadline, and before the first-token and stream
    // deadlines too (some servers hold the head until the first token).
    let (head_deadline, head_phase) =
        [(request_deadline, "request"), (deadlines.first_token, "first_token"), (deadlines.stream, "stream")]
            .into_iter()
            .min_by_key(|(d, _)| *d)
            .unwrap_or((request_deadline, "request"));
    let res = core.send(req, bytes, head_deadline, head_phase).await?;
    read_stream(res, deadlines, on_event).await
}

#[derive(Debug, Clone, Copy)]
struct StreamDeadlines {
    first_token: Instant,
    stream: Instant,
}

async fn read_stream(
    mut res: ClientResponse,
    deadlines: StreamDeadlines,
    on_event: &mut dyn FnMut(StreamEvent),
) -> Result<ChatResponse, ProviderError> {
    let is_sse = res
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|ct| ct.starts_with("text/event-stream"));
    if !is_sse {
        // A server that ignored `stream: true` and answered in one piece.
        let body = read_body(&mut res, deadlines.stream, JSON_BODY_LIMIT, false).await?;
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
    loop {
        let (deadline, phase) = if !got_token && deadlines.first_token < deadlines.stream {
            (deadlines.first_token, "first_token")
        } else {
            (deadlines.stream, "stream")
        };
        let next = match timeout_at(deadline, res.next()).await {
            Err(_) => return Err(ProviderError::Timeout { phase }),
            Ok(next) => next,
        };
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
