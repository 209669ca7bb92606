//! MCP Streamable HTTP transport (spec revision 2025-11-25) on `/mcp`.
//!
//! - `POST /mcp` carries one JSON-RPC message. `initialize` creates a session and answers
//!   with `Mcp-Session-Id`; every other message needs that header (missing → 400, unknown or
//!   expired → 404). Notifications and responses get `202 Accepted`. Requests get
//!   `application/json`, except `tools/call` from a client that accepts `text/event-stream`,
//!   which is answered as SSE: progress and log notifications, then the response.
//! - `GET /mcp` with `Accept: text/event-stream` opens the session's listening stream (one per
//!   session, comment keepalives every 15 s); with `Last-Event-ID` it resumes the stream that
//!   event belonged to (what came after it, then the rest as it arrives); without that
//!   Accept → 405.
//! - Every SSE event of a call carries an `id:`; a POST stream that drops does not cancel its
//!   call: the reply waits in the session's event log (bounded in bytes) until it is read,
//!   the session is deleted or it expires. During a drain, requests get 503.
//! - `DELETE /mcp` ends the session and cancels its calls.
//!
//! Every request is checked first for Host (DNS-rebinding protection) and Origin (403), then
//! the bearer token when one is configured (401). Messages go through the session engine
//! (`exai_actors::engine`), exactly as on the WebSocket transport; this module only frames.

mod error;
pub(crate) mod guard;
mod rpc;
mod session;
mod sse;
#[cfg(test)]
mod tests;

pub use error::HttpError;

use actix_web::{web, HttpRequest, HttpResponse};
use exai_actors::dispatch::Dispatcher;
use exai_actors::protocol::jsonrpc::{self, Incoming, ParseError};
use exai_actors::session::SessionRegistry;
use session::{CancelKind, Session, Sessions};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// Configuration of the endpoint.
#[derive(Clone)]
pub struct McpHttpConfig {
    /// Hosts and Origins allowed besides loopback ones (the core's rules,
    /// [`exai_actors::access`]).
    pub access: exai_actors::access::AccessPolicy,
    /// A session with no request, no call in flight and no open stream for this long ends.
    pub session_idle_secs: u64,
    /// Most sessions at once; `initialize` beyond that gets 503.
    pub max_sessions: usize,
    /// When set, every request needs `Authorization: Bearer <token>`.
    pub auth_token: Option<String>,
}

impl Default for McpHttpConfig {
    fn default() -> Self {
        McpHttpConfig {
            access: exai_actors::access::AccessPolicy::default(),
            session_idle_secs: 3600,
            max_sessions: 1000,
            auth_token: None,
        }
    }
}

impl fmt::Debug for McpHttpConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("McpHttpConfig")
            .field("access", &self.access)
            .field("session_idle_secs", &self.session_idle_secs)
            .field("max_sessions", &self.max_sessions)
            .field("auth_token", &self.auth_token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// The Streamable HTTP endpoint: configuration, dispatcher and the session table.
pub struct McpHttp {
    dispatcher: Dispatcher,
    cfg: McpHttpConfig,
    sessions: Sessions,
    /// The principal of every caller admitted (the configured token's, or `local`).
    principal: Arc<str>,
}

impl McpHttp {
    /// The endpoint over `dispatcher`.
    /// Sessions live in `registry` (shared with the other transports).
    pub fn new(dispatcher: Dispatcher, cfg: McpHttpConfig, registry: SessionRegistry) -> Arc<McpHttp> {
        let idle = Duration::from_secs(cfg.session_idle_secs.max(1));
        let sessions = Sessions::new(Arc::clone(dispatcher.env()), registry, idle, cfg.max_sessions);
        let principal = exai_actors::access::principal(cfg.auth_token.as_deref());
        Arc::new(McpHttp { dispatcher, cfg, sessions, principal })
    }

    /// Live sessions (idle ones are swept first, at most once a second).
    pub fn session_count(&self) -> usize {
        self.sessions.maybe_sweep();
        self.sessions.len()
    }

    /// Calls in flight over all sessions.
    pub fn inflight_count(&self) -> usize {
        self.sessions.inflight()
    }

    /// Remove idle sessions now; returns how many ended. Requests also sweep lazily, so
    /// calling this on an interval only matters for keeping the gauges exact.
    pub fn sweep_expired(&self) -> usize {
        self.sessions.sweep()
    }

    /// End every session (shutdown): open streams close, calls in flight are cancelled and
    /// answered with a `CANCELLED` tool error. New sessions are refused once the runtime's
    /// shutdown flag is set.
    pub fn close_all(&self) {
        let n = self.sessions.close_all();
        if n > 0 {
            tracing::info!(sessions = n, "Streamable HTTP sessions closed for shutdown");
        }
    }

    /// A body limit matching `max_message_bytes` (actix's default is 256 KiB); mount it with
    /// `.app_data(http.payload_config())` on the `/mcp` routes.
    pub fn payload_config(&self) -> web::PayloadConfig {
        web::PayloadConfig::new(self.dispatcher.env().settings.max_message_bytes)
    }

    fn check_access(&self, req: &HttpRequest) -> Result<(), HttpError> {
        guard::check_access(req, &self.cfg.access).map_err(|e| HttpError::Forbidden(e.to_string()))?;
        guard::check_auth(req, self.cfg.auth_token.as_deref())
    }

    fn count_error(&self, code: i64) {
        self.dispatcher.env().metrics.protocol_errors.with_label_values(&["mcp-http", &code.to_string()]).inc();
    }

    fn fail(&self, e: HttpError) -> HttpResponse {
        self.count_error(e.code());
        if matches!(e, HttpError::Forbidden(_)) {
            tracing::warn!(error = %e, "Streamable HTTP request refused");
        }
        e.response()
    }

    fn session_for(&self, req: &HttpRequest) -> Result<Arc<Session>, HttpError> {
        let id = guard::session_id(req)?;
        let Some(s) = self.sessions.get(id) else {
            // During a drain the session was closed by the shutdown, not forgotten: say so.
            if self.dispatcher.env().runtime.is_shutting_down() {
                return Err(session::shutting_down());
            }
            return Err(HttpError::SessionNotFound);
        };
        s.touch();
        Ok(s)
    }

    async fn on_post(&self, req: &HttpRequest, body: &[u8]) -> Result<HttpResponse, HttpError> {
        self.sessions.maybe_sweep();
        self.check_access(req)?;
        guard::check_content_type(req)?;
        let text = std::str::from_utf8(body)
            .map_err(|_| HttpError::Malformed(ParseError::NotJson("body is not UTF-8".into())))?;
        if text.trim_start().starts_with('[') {
            guard::check_protocol_version(req)?;
            let session = self.session_for(req)?;
            if exai_actors::engine::mcp::batches_allowed(&session.core) {
                return Ok(rpc::batch(self, session, text).await);
            }
        }
        let msg = jsonrpc::parse(text).map_err(HttpError::Malformed)?;
        let accept = guard::accept(req);
        if let Incoming::Request { id, method, params } = &msg {
            if method == "initialize" {
                let accept = accept.require()?;
                return Ok(rpc::initialize(self, req, id.clone(), params.clone(), accept));
            }
        }
        guard::check_protocol_version(req)?;
        let session = self.session_for(req)?;
        match msg {
            Incoming::Request { id, method, params } => {
                let accept = accept.require()?;
                Ok(rpc::request(self, session, id, &method, params, accept).await)
            }
            Incoming::Notification { method, params } => {
                rpc::notification(self, &session, &method, params.as_ref());
                Ok(HttpResponse::Accepted().finish())
            }
            // We send no requests over HTTP; a stray response is acknowledged and dropped.
            Incoming::Response { .. } => Ok(HttpResponse::Accepted().finish()),
        }
    }

    fn on_get(&self, req: &HttpRequest) -> Result<HttpResponse, HttpError> {
        self.sessions.maybe_sweep();
        self.check_access(req)?;
        if !guard::accept(req).sse {
            return Err(HttpError::MethodNotAllowed(
                "GET /mcp needs Accept: text/event-stream (or a WebSocket upgrade)",
            ));
        }
        guard::check_protocol_version(req)?;
        let session = self.session_for(req)?;
        if let Some(last) = req.headers().get("last-event-id") {
            // Resume a stream that dropped: what came after that event on that stream.
            let (stream, seq) = last.to_str().ok().and_then(exai_actors::session::core::parse_event_id).ok_or(
                HttpError::BadRequest("Last-Event-ID must be an event id this server sent (stream-seq)".into()),
            )?;
            return Ok(sse::response(sse::events(Arc::clone(&session.core), stream, seq), None));
        }
        let (closed, guard) =
            session.open_stream().ok_or(HttpError::Conflict("a GET stream is already open for this session"))?;
        Ok(sse::response(sse::ListenStream::new(closed, guard), None))
    }

    fn on_delete(&self, req: &HttpRequest) -> Result<HttpResponse, HttpError> {
        self.check_access(req)?;
        guard::check_protocol_version(req)?;
        let id = guard::session_id(req)?;
        if self.sessions.remove(id, CancelKind::Client, "deleted by client") {
            Ok(HttpResponse::NoContent().finish())
        } else {
            Err(HttpError::SessionNotFound)
        }
    }
}

/// `POST /mcp`.
pub async fn post(req: HttpRequest, payload: web::Payload, state: web::Data<Arc<McpHttp>>) -> HttpResponse {
    let http: &McpHttp = &state;
    let body = match read_body(&req, payload, http.dispatcher.env().settings.max_message_bytes).await {
        Ok(b) => b,
        Err(e) => return http.fail(e),
    };
    match http.on_post(&req, &body).await {
        Ok(r) => r,
        Err(e) => http.fail(e),
    }
}

/// The request body, at most `limit` bytes: a larger one (by `Content-Length` or as it
/// streams in) is a JSON-RPC error with 413 like every other refusal here, not actix-web's
/// plain-text one.
async fn read_body(req: &HttpRequest, mut payload: web::Payload, limit: usize) -> Result<web::Bytes, HttpError> {
    use futures_util::StreamExt;
    let declared = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(HttpError::PayloadTooLarge(limit));
    }
    let mut buf = web::BytesMut::with_capacity(declared.map_or(0, |n| n as usize));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| HttpError::BadRequest(format!("cannot read the request body: {e}")))?;
        if buf.len() + chunk.len() > limit {
            return Err(HttpError::PayloadTooLarge(limit));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

/// `GET /mcp` that is not a WebSocket upgrade.
pub async fn get(req: HttpRequest, state: web::Data<Arc<McpHttp>>) -> HttpResponse {
    state.on_get(&req).unwrap_or_else(|e| state.fail(e))
}

/// `DELETE /mcp`.
pub async fn delete(req: HttpRequest, state: web::Data<Arc<McpHttp>>) -> HttpResponse {
    state.on_delete(&req).unwrap_or_else(|e| state.fail(e))
}
