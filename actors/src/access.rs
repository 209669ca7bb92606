//! Transport-neutral access rules every transport applies before it serves a request or an
//! upgrade: DNS-rebinding protection (the `Host` header) and the `Origin` check.
//!
//! Browsers apply no CORS to WebSocket upgrades, so a web page the user visits can open a
//! WebSocket to a loopback server unless the server itself refuses a foreign `Origin`; the
//! same page can reach a loopback server through a rebinding DNS name, which only the `Host`
//! check stops. The rules therefore hold for Streamable HTTP, every WebSocket upgrade and the
//! dashboard alike, and live here once.
//!
//! Loopback names (`localhost`, any `127.0.0.0/8` address, `::1`) with any port are always
//! allowed as Host and, with `http`/`https`, as Origin. Configured entries
//! (`server.allowed_hosts`, `server.allowed_origins`) add to that; an entry `*` allows
//! everything (for deployments behind a proxy that checks these itself). A request without
//! an `Origin` (editors, SDKs, scripts: anything that is not a browser) passes the Origin
//! check.

use sha2::{Digest, Sha256};
use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::Arc;

/// The principal of every caller when no token is configured: all local clients are one user.
pub const LOCAL_PRINCIPAL: &str = "local";

/// Who a caller is, from the credential it presented (after the transport checked it):
/// [`LOCAL_PRINCIPAL`] without one, else `token:` and the first 16 bytes of the token's
/// SHA-256 in hex (never the token itself). Threads, named sessions and tasks belong to a
/// principal: any connection, session or transport of the same principal may use them,
/// including after a restart; another principal may not.
pub fn principal(credential: Option<&str>) -> Arc<str> {
    let Some(token) = credential.filter(|t| !t.is_empty()) else {
        return Arc::from(LOCAL_PRINCIPAL);
    };
    let digest = Sha256::digest(token.as_bytes());
    let mut out = String::with_capacity(6 + 32);
    out.push_str("token:");
    for b in &digest[..16] {
        let _ = write!(out, "{b:02x}");
    }
    Arc::from(out)
}

/// Why a request was refused (HTTP 403 on every transport).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessError {
    /// The Host header is neither loopback nor configured.
    #[error("Host '{0}' is not allowed (DNS rebinding protection)")]
    Host(String),
    /// The Origin header is neither a loopback origin nor configured.
    #[error("Origin '{0}' is not allowed")]
    Origin(String),
    /// A header that is not valid text.
    #[error("{0} header is not valid text")]
    NotText(&'static str),
}

/// The configured extra Hosts and Origins.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AccessPolicy {
    /// Extra allowed Host values (`host` or `host:port`; `*` = any).
    pub allowed_hosts: Vec<String>,
    /// Extra allowed Origin values (`scheme://host[:port]`; `*` = any).
    pub allowed_origins: Vec<String>,
}

/// A header as the transport saw it: absent, text, or present but not valid text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Header<'a> {
    /// Not sent.
    Absent,
    /// Sent as valid text.
    Text(&'a str),
    /// Sent, but not valid text.
    Invalid,
}

/// Split `host[:port]` (IPv6 in brackets) into the host name and the port.
pub fn split_host(s: &str) -> (&str, Option<&str>) {
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

/// `localhost` or a loopback address.
pub fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost") || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Does `host` (a Host header value) match a configured entry? An entry without a port
/// matches any port.
fn host_matches(entry: &str, host: &str) -> bool {
    let (eh, ep) = split_host(entry.trim());
    let (h, p) = split_host(host);
    eh.eq_ignore_ascii_case(h) && (ep.is_none() || ep == p)
}

impl AccessPolicy {
    /// DNS-rebinding protection: the Host (or, without one, the request's authority) must be
    /// loopback or configured. A request with neither cannot come from a browser.
    pub fn check_host(&self, host: Header<'_>, authority: Option<&str>) -> Result<(), AccessError> {
        let host = match host {
            Header::Invalid => return Err(AccessError::NotText("Host")),
            Header::Text(h) => h,
            Header::Absent => match authority {
                Some(a) => a,
                None => return Ok(()),
            },
        };
        let (name, _) = split_host(host);
        if is_loopback(name) || self.allowed_hosts.iter().any(|a| a.trim() == "*" || host_matches(a, host)) {
            return Ok(());
        }
        Err(AccessError::Host(host.to_string()))
    }

    /// Origin check: when present it must be a loopback `http`/`https` origin or configured.
    pub fn check_origin(&self, origin: Header<'_>) -> Result<(), AccessError> {
        let origin = match origin {
            Header::Invalid => return Err(AccessError::NotText("Origin")),
            Header::Absent => return Ok(()),
            Header::Text(o) => o.trim().trim_end_matches('/'),
        };
        let loopback = origin
            .split_once("://")
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https"))
            .is_some_and(|(_, rest)| is_loopback(split_host(rest).0));
        let configured = self
            .allowed_origins
            .iter()
            .map(|a| a.trim())
            .any(|a| a == "*" || a.trim_end_matches('/').eq_ignore_ascii_case(origin));
        if loopback || configured {
            Ok(())
        } else {
            Err(AccessError::Origin(origin.to_string()))
        }
    }

    /// Both checks, Host first.
    pub fn check(&self, host: Header<'_>, authority: Option<&str>, origin: Header<'_>) -> Result<(), AccessError> {
        self.check_host(host, authority)?;
        self.check_origin(origin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn principals_are_local_or_a_token_digest() {
        assert_eq!(&*principal(None), LOCAL_PRINCIPAL);
        assert_eq!(&*principal(Some("")), LOCAL_PRINCIPAL);
        let a = principal(Some("secret-token-a"));
        assert!(a.starts_with("token:") && a.len() == 6 + 32, "{a}");
        assert!(!a.contains("secret"), "the token itself never appears");
        assert_eq!(a, principal(Some("secret-token-a")));
        assert_ne!(a, principal(Some("secret-token-b")));
    }

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

    #[test]
    fn origins_loopback_configured_absent_and_foreign() {
        let p = AccessPolicy { allowed_origins: vec!["https://app.example.com/".into()], ..Default::default() };
        assert_eq!(p.check_origin(Header::Absent), Ok(()));
        assert_eq!(p.check_origin(Header::Text("http://localhost:3000")), Ok(()));
        assert_eq!(p.check_origin(Header::Text("http://127.0.0.1")), Ok(()));
        assert_eq!(p.check_origin(Header::Text("https://APP.example.com")), Ok(()));
        assert_eq!(
            p.check_origin(Header::Text("https://evil.example")),
            Err(AccessError::Origin("https://evil.example".into()))
        );
        assert_eq!(p.check_origin(Header::Text("null")), Err(AccessError::Origin("null".into())));
        assert_eq!(
            p.check_origin(Header::Text("file://localhost")),
            Err(AccessError::Origin("file://localhost".into()))
        );
        assert_eq!(p.check_origin(Header::Invalid), Err(AccessError::NotText("Origin")));
        let any = AccessPolicy { allowed_origins: vec!["*".into()], ..Default::default() };
        assert_eq!(any.check_origin(Header::Text("https://evil.example")), Ok(()));
    }

    #[test]
    fn hosts_loopback_configured_authority_and_rebinding() {
        let p = AccessPolicy { allowed_hosts: vec!["mcp.example.com".into()], ..Default::default() };
        assert_eq!(p.check_host(Header::Text("127.0.0.1:8079"), None), Ok(()));
        assert_eq!(p.check_host(Header::Text("mcp.example.com:443"), None), Ok(()));
        assert_eq!(p.check_host(Header::Absent, None), Ok(()));
        assert_eq!(p.check_host(Header::Absent, Some("localhost:1")), Ok(()));
        assert_eq!(p.check_host(Header::Absent, Some("evil.example")), Err(AccessError::Host("evil.example".into())));
        assert_eq!(
            p.check_host(Header::Text("rebind.evil.example:8079"), None),
            Err(AccessError::Host("rebind.evil.example:8079".into()))
        );
        assert_eq!(p.check_host(Header::Invalid, None), Err(AccessError::NotText("Host")));
    }
}
