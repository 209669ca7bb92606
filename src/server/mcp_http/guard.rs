//! Request checks for `/mcp`: DNS-rebinding protection (Host), Origin, bearer auth, content
//! negotiation (Accept, Content-Type), the `MCP-Protocol-Version` header and the
//! `Mcp-Session-Id` header.
//!
//! Loopback names (`localhost`, any `127.0.0.0/8` address, `::1`) with any port are always
//! allowed as Host and, with `http`/`https`, as Origin. Configured entries add to that; an
//! entry `*` allows everything (for deployments behind a proxy that checks these itself).

use super::error::HttpError;
use actix_web::http::header::{self, HeaderMap};
use actix_web::HttpRequest;
use exai_actors::protocol::mcp::SUPPORTED_VERSIONS;
use std::net::IpAddr;
use subtle::ConstantTimeEq;

/// Header carrying the session id.
pub const SESSION_HEADER: &str = "mcp-session-id";
/// Header carrying the negotiated protocol version.
pub const VERSION_HEADER: &str = "mcp-protocol-version";

/// Split `host[:port]` (IPv6 in brackets) into the host name and the port.
fn split_host(s: &str) -> (&str, Option<&str>) {
    if let Some(rest) = s.strip_prefix('[') {
        return match rest.split_once(']') {
            Some((h, tail)) => (h, tail.strip_prefix(':')),
            None => (s, None),
        };
    }
    match s.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') && p.bytes().all(|b| b.is_ascii_digit()) => (h, Some(p)),
        _ => (s, None),
    }
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost") || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Does `host` (a Host header value) match a configured entry? An entry without a port
/// matches any port.
fn host_matches(entry: &str, host: &str) -> bool {
    let (eh, ep) = split_host(entry.trim());
    let (h, p) = split_host(host);
    eh.eq_ignore_ascii_case(h) && (ep.is_none() || ep == p)
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, ()> {
    match headers.get(name) {
        None => Ok(None),
        Some(v) => v.to_str().map(Some).map_err(|_| ()),
    }
}

/// DNS-rebinding protection: the Host must be loopback or configured.
pub fn check_host(req: &HttpRequest, allowed: &[String]) -> Result<(), HttpError> {
    let host = match header_str(req.headers(), header::HOST.as_str()) {
        Err(()) => return Err(HttpError::Forbidden("Host header is not valid text".into())),
        Ok(Some(h)) => h.to_string(),
        // HTTP/2 carries the authority in the URI; a request with neither cannot come from a
        // browser and so cannot be a rebinding attack.
        Ok(None) => match req.uri().authority() {
            Some(a) => a.as_str().to_string(),
            None => return Ok(()),
        },
    };
    let (name, _) = split_host(&host);
    if is_loopback(name) || allowed.iter().any(|a| a.trim() == "*" || host_matches(a, &host)) {
        return Ok(());
    }
    Err(HttpError::Forbidden(format!("Host '{host}' is not allowed (DNS rebinding protection)")))
}

/// Origin check: when present it must be a loopback origin or configured.
pub fn check_origin(req: &HttpRequest, allowed: &[String]) -> Result<(), HttpError> {
    let origin = match header_str(req.headers(), header::ORIGIN.as_str()) {
        Err(()) => return Err(HttpError::Forbidden("Origin header is not valid text".into())),
        Ok(None) => return Ok(()),
        Ok(Some(o)) => o.trim().trim_end_matches('/'),
    };
    let loopback = origin
        .split_once("://")
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https"))
        .is_some_and(|(_, rest)| is_loopback(split_host(rest).0));
    let configured =
        allowed.iter().map(|a| a.trim()).any(|a| a == "*" || a.trim_end_matches('/').eq_ignore_ascii_case(origin));
    if loopback || configured {
        Ok(())
    } else {
        Err(HttpError::Forbidden(format!("Origin '{origin}' is not allowed")))
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_parsing_and_matching() {
        assert_eq!(split_host("127.0.0.1:8080"), ("127.0.0.1", Some("8080")));
        assert_eq!(split_host("[::1]:80"), ("::1", Some("80")));
        assert_eq!(split_host("[::1]"), ("::1", None));
        assert_eq!(split_host("localhost"), ("localhost", None));
        assert!(is_loopback("LOCALHOST") && is_loopback("127.0.0.2") && is_loopback("::1"));
        assert!(!is_loopback("evil.example.com") && !is_loopback("10.0.0.1"));
        assert!(host_matches("mcp.example.com", "MCP.example.com:443"));
        assert!(host_matches("mcp.example.com:8443", "mcp.example.com:8443"));
        assert!(!host_matches("mcp.example.com:8443", "mcp.example.com:9000"));
        assert!(!host_matches("example.com", "evil-example.com"));
    }
}
