//! Transport-level refusals of the Streamable HTTP endpoint and their HTTP responses.
//!
//! Each refusal is an HTTP status plus a JSON-RPC error body with `id: null` (the spec lets
//! the body of a 4xx/5xx carry such an error), so clients that only look at the body and
//! clients that only look at the status both learn what went wrong.

use actix_web::http::{header, StatusCode};
use actix_web::HttpResponse;
use exai_actors::protocol::jsonrpc::{self, codes, ParseError};
use serde_json::json;

/// Why a request to `/mcp` was refused before reaching MCP semantics.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum HttpError {
    /// The body is not a usable JSON-RPC message (400, -32700 or -32600).
    #[error("{0}")]
    Malformed(ParseError),
    /// A header or the request shape is wrong (400, -32600).
    #[error("Bad Request: {0}")]
    BadRequest(String),
    /// No `Mcp-Session-Id` on a request that needs one (400).
    #[error("Bad Request: the Mcp-Session-Id header is required (send initialize first)")]
    SessionRequired,
    /// Unknown, expired or terminated session (404).
    #[error("Not Found: unknown or expired session; send a new initialize")]
    SessionNotFound,
    /// Missing or wrong bearer token (401 with `WWW-Authenticate: Bearer`).
    #[error("Unauthorized: a valid bearer token is required")]
    Unauthorized,
    /// Host or Origin not allowed (403).
    #[error("Forbidden: {0}")]
    Forbidden(String),
    /// Method not usable here (405 with `Allow`).
    #[error("Method Not Allowed: {0}")]
    MethodNotAllowed(&'static str),
    /// The Accept header rules out every response type we produce (406).
    #[error("Not Acceptable: Accept must include application/json or text/event-stream")]
    NotAcceptable,
    /// A GET stream is already open for the session (409).
    #[error("Conflict: {0}")]
    Conflict(&'static str),
    /// The body is not `application/json` (415).
    #[error("Unsupported Media Type: Content-Type must be application/json")]
    UnsupportedMediaType,
    /// The body is larger than `server.max_message_bytes` (413).
    #[error("Payload Too Large: the body exceeds {0} bytes (server.max_message_bytes)")]
    PayloadTooLarge(usize),
    /// Over capacity or shutting down (503, with `Retry-After` when known).
    #[error("{message}")]
    Unavailable {
        /// JSON-RPC code (`OVER_CAPACITY` or `SHUTTING_DOWN`).
        code: i64,
        /// What happened.
        message: String,
        /// Suggested wait, seconds.
        retry_after: Option<u64>,
    },
}

impl HttpError {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            HttpError::Malformed(_) | HttpError::BadRequest(_) | HttpError::SessionRequired => StatusCode::BAD_REQUEST,
            HttpError::SessionNotFound => StatusCode::NOT_FOUND,
            HttpError::Unauthorized => StatusCode::UNAUTHORIZED,
            HttpError::Forbidden(_) => StatusCode::FORBIDDEN,
            HttpError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            HttpError::NotAcceptable => StatusCode::NOT_ACCEPTABLE,
            HttpError::Conflict(_) => StatusCode::CONFLICT,
            HttpError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            HttpError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            HttpError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The JSON-RPC error code of the body.
    pub fn code(&self) -> i64 {
        match self {
            HttpError::Malformed(ParseError::NotJson(_)) => codes::PARSE_ERROR,
            HttpError::Unavailable { code, .. } => *code,
            _ => codes::INVALID_REQUEST,
        }
    }

    /// The complete HTTP response.
    pub fn response(&self) -> HttpResponse {
        let body = match self {
            HttpError::Malformed(e) => e.to_frame(),
            HttpError::Unavailable { retry_after: Some(r), .. } => {
                jsonrpc::error_frame(None, self.code(), &self.to_string(), Some(json!({ "retry_after": r })))
            }
            _ => jsonrpc::error_frame(None, self.code(), &self.to_string(), None),
        };
        let mut b = HttpResponse::build(self.status());
        b.content_type("application/json");
        match self {
            HttpError::Unauthorized => {
                b.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
            }
            HttpError::MethodNotAllowed(_) => {
                b.insert_header((header::ALLOW, "GET, POST, DELETE"));
            }
            HttpError::Unavailable { retry_after: Some(r), .. } => {
                b.insert_header((header::RETRY_AFTER, r.to_string()));
            }
            _ => {}
        }
        b.body(body)
    }
}
