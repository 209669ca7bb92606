//! Request checks for `/mcp`: the core's Host and Origin rules read from the request's
//! headers ([`check_access`], also applied to every WebSocket upgrade and the dashboard),
//! bearer auth, content negotiation (Accept, Content-Type), the `MCP-Protocol-Version` header
//! and the `Mcp-Session-Id` header.

use super::error::HttpError;
use actix_web::http::header::{self, HeaderMap};
use actix_web::HttpRequest;
use exai_actors::access::{AccessError, AccessPolicy, Header};
use exai_actors::protocol::mcp::SUPPORTED_VERSIONS;
use subtle::ConstantTimeEq;

/// Header carrying the session id.
pub const SESSION_HEADER: &str = "mcp-session-id";
/// Header carrying the negotiated protocol version.
pub const VERSION_HEADER: &str = "mcp-protocol-version";

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, ()> {
    match headers.get(name) {
        None => Ok(None),
        Some(v) => v.to_str().map(Some).map_err(|_| ()),
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Header<'a> {
    match header_str(headers, name) {
        Ok(None) => Header::Absent,
        Ok(Some(v)) => Header::Text(v),
        Err(()) => Header::Invalid,
    }
}

/// The core's Host (DNS rebinding) and Origin rules ([`exai_actors::access`]) applied to an
/// HTTP request or a WebSocket upgrade.
pub fn check_access(req: &HttpRequest, policy: &AccessPolicy) -> Result<(), AccessError> {
    let h = req.headers();
    policy.check(
        header(h, header::HOST.as_str()),
        req.uri().authority().map(|a| a.as_str()),
        header(h, header::ORIGIN.as_str()),
    )
}

/// Bearer auth (constant-time compare) when a token is configured.
pub fn check_auth(req: &HttpRequest, token: Option<&str>) -> Result<(), HttpError> {
    let Some(expected) = token else {
        return Ok(());
    };
    let given = header_str(req.headers(), header::AUTHORIZATION.as_str())
        .ok()
        .flatten()
        .and_then(|v| v.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim());
    match given {
        Some(g) if g.len() == expected.len() && bool::from(g.as_bytes().ct_eq(expected.as_bytes())) => Ok(()),
        _ => Err(HttpError::Unauthorized),
    }
}

/// What the client accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accept {
    /// A JSON body is acceptable (`application/json`, a wildcard, or no Accept at all).
    pub json: bool,
    /// `text/event-stream` was asked for explicitly.
    pub sse: bool,
}

impl Accept {
    /// Refuse with 406 when neither response type is acceptable.
    pub fn require(self) -> Result<Accept, HttpError> {
        if self.json || self.sse {
            Ok(self)
        } else {
            Err(HttpError::NotAcceptable)
        }
    }
}

/// Parse Accept leniently: a missing header accepts JSON; quality values are ignored.
pub fn accept(req: &HttpRequest) -> Accept {
    let mut values = req.headers().get_all(header::ACCEPT).filter_map(|v| v.to_str().ok()).peekable();
    if values.peek().is_none() {
        return Accept { json: true, sse: false };
    }
    let mut a = Accept { json: false, sse: false };
    for range in values.flat_map(|v| v.split(',')) {
        let essence = range.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        match essence.as_str() {
            "application/json" | "application/*" | "*/*" => a.json = true,
            "text/event-stream" => a.sse = true,
            _ => {}
        }
    }
    a
}

/// A body must be `application/json` when a Content-Type is given.
pub fn check_content_type(req: &HttpRequest) -> Result<(), HttpError> {
    match header_str(req.headers(), header::CONTENT_TYPE.as_str()) {
        Ok(None) => Ok(()),
        Ok(Some(ct)) if ct.split(';').next().unwrap_or("").trim().eq_ignore_ascii_case("application/json") => Ok(()),
        _ => Err(HttpError::UnsupportedMediaType),
    }
}

/// `MCP-Protocol-Version`, when present, must be a revision we support (absent: 2025-03-26
/// semantics, accepted).
pub fn check_protocol_version(req: &HttpRequest) -> Result<(), HttpError> {
    match header_str(req.headers(), VERSION_HEADER) {
        Ok(None) => Ok(()),
        Ok(Some(v)) if SUPPORTED_VERSIONS.contains(&v.trim()) => Ok(()),
        Ok(Some(v)) => Err(HttpError::BadRequest(format!(
            "unsupported MCP-Protocol-Version '{v}'; supported: {}",
            SUPPORTED_VERSIONS.join(", ")
        ))),
        Err(()) => Err(HttpError::BadRequest("MCP-Protocol-Version is not valid text".into())),
    }
}

/// The `Mcp-Session-Id` header (400 when missing or empty).
pub fn session_id(req: &HttpRequest) -> Result<&str, HttpError> {
    match header_str(req.headers(), SESSION_HEADER) {
        Ok(Some(s)) if !s.trim().is_empty() => Ok(s.trim()),
        Ok(_) => Err(HttpError::SessionRequired),
        Err(()) => Err(HttpError::BadRequest("Mcp-Session-Id is not valid text".into())),
    }
}
