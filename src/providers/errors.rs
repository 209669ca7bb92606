//! Failure mapping for the vendor HTTP layer: HTTP status and the vendor's own error code →
//! `ProviderError`, `Retry-After` (seconds or HTTP date, and `retry-after-ms`), the vendor's
//! own error message (from the JSON error body, truncated, secrets masked, never the request),
//! and awc's transport errors.
//!
//! The vendor taxonomies live in the vendor modules ([`super::glm::classify`]: Z.ai business
//! codes; [`super::kimi::classify`]: Moonshot error types); they decide first, the HTTP
//! status decides what they leave open.

use awc::error::{ConnectError, PayloadError, SendRequestError};
use awc::http::header::{HeaderMap, HttpDate};
use awc::http::StatusCode;
use exai_actors::provider::types::{ProviderError, RequestTimeouts};
use serde_json::Value;
use std::time::{Duration, SystemTime};

/// Longest vendor message kept in an error, in characters.
pub(crate) const MAX_MESSAGE_CHARS: usize = 300;

/// How a vendor's taxonomy classifies one error answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VendorClass {
    /// Slow down and retry (rate limit, overload).
    RateLimit,
    /// The account cannot be served (balance, locked, quota): never retried.
    Account,
    /// The key is wrong or lacks permission.
    Auth,
    /// The request is wrong.
    Client,
    /// The vendor failed.
    Server,
}

/// The vendor's code (`error.code`, `code`) or type (`error.type`, `type`) of an error body.
pub(crate) fn vendor_code(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let text = |v: Option<&Value>| match v? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    let e = v.get("error");
    text(e.and_then(|e| e.get("code")))
        .or_else(|| text(v.get("code")))
        .or_else(|| text(e.and_then(|e| e.get("type"))))
        .or_else(|| text(v.get("type")))
}

/// The error for a non-success HTTP status, with the vendor's message from `body`;
/// `classify` is the vendor's taxonomy (status, code → class).
pub(crate) fn status_error(
    classify: fn(u16, &str) -> Option<VendorClass>,
    status: u16,
    headers: &HeaderMap,
    body: &[u8],
    now: SystemTime,
) -> ProviderError {
    let message = vendor_message(body).unwrap_or_else(|| {
        StatusCode::from_u16(status).ok().and_then(|s| s.canonical_reason()).unwrap_or("no error message").to_string()
    });
    let code = vendor_code(body).unwrap_or_default();
    let class = classify(status, &code).unwrap_or(match status {
        429 => VendorClass::RateLimit,
        401 | 403 => VendorClass::Auth,
        500..=599 => VendorClass::Server,
        _ => VendorClass::Client,
    });
    match class {
        VendorClass::RateLimit => ProviderError::RateLimited { retry_after: parse_retry_after(headers, now), message },
        VendorClass::Account => ProviderError::Account { status, code, message },
        VendorClass::Auth => ProviderError::Auth { status, message },
        VendorClass::Server => ProviderError::Server { status, message },
        VendorClass::Client => ProviderError::BadRequest { status, message },
    }
}

/// The taxonomy of a vendor without one of its own: the HTTP status decides.
pub(crate) fn by_status(_status: u16, _code: &str) -> Option<VendorClass> {
    None
}

/// The server-suggested wait: `retry-after-ms` (OpenAI style) first, then `Retry-After`
/// (delay in seconds, or an HTTP date relative to `now`).
pub(crate) fn parse_retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    if let Some(ms) = text("retry-after-ms").and_then(|v| v.parse::<f64>().ok()) {
        if let Some(d) = seconds(ms / 1000.0) {
            return Some(d);
        }
    }
    text("retry-after").and_then(|v| parse_retry_after_value(v, now))
}

/// One `Retry-After` value: `120`, `1.5` or `Wed, 21 Oct 2015 07:28:00 GMT`.
pub(crate) fn parse_retry_after_value(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<f64>() {
        return seconds(secs);
    }
    let when: SystemTime = value.parse::<HttpDate>().ok()?.into();
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

fn seconds(secs: f64) -> Option<Duration> {
    if secs.is_finite() && secs >= 0.0 {
        Duration::try_from_secs_f64(secs).ok()
    } else {
        None
    }
}

/// The vendor's error message from a JSON error body (`error.message`, `error`, `message`,
/// `detail`, `msg`), truncated to [`MAX_MESSAGE_CHARS`]. Non-JSON bodies give `None`: a raw
/// body might echo the request.
pub(crate) fn vendor_message(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let found = message_in(&v)?;
    Some(truncate(&exai_actors::redact::mask(found.trim()), MAX_MESSAGE_CHARS))
}

fn message_in(v: &Value) -> Option<String> {
    let as_text = |v: &Value| match v {
        Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        _ => None,
    };
    let error = v.get("error");
    if let Some(m) = error.and_then(|e| e.get("message")).and_then(as_text) {
        return Some(m);
    }
    if let Some(m) = error.and_then(as_text) {
        return Some(m);
    }
    for key in ["message", "msg"] {
        if let Some(m) = v.get(key).and_then(as_text) {
            return Some(m);
        }
    }
    match v.get("detail") {
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s.clone()),
        // FastAPI validation errors: a list of {msg, loc, ...}.
        Some(Value::Array(items)) => {
            let msgs: Vec<String> = items.iter().filter_map(|i| i.get("msg").and_then(as_text)).collect();
            (!msgs.is_empty()).then(|| msgs.join("; "))
        }
        _ => None,
    }
}

/// At most `max` characters of `s`, with `…` when cut.
pub(crate) fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s.to_string(),
    }
}

/// An awc send failure (connect, write, response head).
pub(crate) fn send_error(e: SendRequestError, t: &RequestTimeouts) -> ProviderError {
    match e {
        SendRequestError::Connect(ConnectError::Timeout) => {
            ProviderError::Timeout { phase: "connect", limit: t.connect }
        }
        SendRequestError::Connect(e) => ProviderError::Network(format!("connect failed: {e}")),
        SendRequestError::Timeout => ProviderError::Timeout { phase: "first_byte", limit: t.first_byte },
        SendRequestError::Url(e) => ProviderError::Unsupported(format!("invalid provider URL: {e}")),
        SendRequestError::Send(e) => ProviderError::Network(format!("sending the request failed: {e}")),
        SendRequestError::Response(e) => ProviderError::Network(format!("reading the response head failed: {e}")),
        other => ProviderError::Network(format!("request failed: {other}")),
    }
}

/// A failure while reading a response body.
pub(crate) fn payload_error(e: PayloadError) -> ProviderError {
    ProviderError::Network(format!("connection lost while reading the response: {e}"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use awc::http::header::{HeaderName, HeaderValue};

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(HeaderName::from_static(k), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn retry_after_seconds_fraction_and_date() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_480); // 2015-10-21 07:28:00 GMT
        assert_eq!(parse_retry_after_value("120", now), Some(Duration::from_secs(120)));
        assert_eq!(parse_retry_after_value(" 1.5 ", now), Some(Duration::from_millis(1500)));
        assert_eq!(parse_retry_after_value("Wed, 21 Oct 2015 07:28:30 GMT", now), Some(Duration::from_secs(30)));
        // RFC 850 and asctime forms are valid HTTP dates too.
        assert_eq!(parse_retry_after_value("Wednesday, 21-Oct-15 07:29:00 GMT", now), Some(Duration::from_secs(60)));
        assert_eq!(parse_retry_after_value("Wed Oct 21 07:28:10 2015", now), Some(Duration::from_secs(10)));
        // A date in the past means "now".
        assert_eq!(parse_retry_after_value("Wed, 21 Oct 2015 07:00:00 GMT", now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after_value("-3", now), None);
        assert_eq!(parse_retry_after_value("soon", now), None);
        assert_eq!(parse_retry_after_value("inf", now), None);
    }

    #[test]
    fn retry_after_ms_wins_over_seconds() {
        let now = SystemTime::now();
        let h = headers(&[("retry-after", "7"), ("retry-after-ms", "250")]);
        assert_eq!(parse_retry_after(&h, now), Some(Duration::from_millis(250)));
        let h = headers(&[("retry-after", "7")]);
        assert_eq!(parse_retry_after(&h, now), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after(&HeaderMap::new(), now), None);
    }

    #[test]
    fn status_mapping() {
        let now = SystemTime::now();
        let body = br#"{"error":{"message":"slow down","type":"rate_limit_error"}}"#;
        assert_eq!(
            status_error(by_status, 429, &headers(&[("retry-after", "2")]), body, now),
            ProviderError::RateLimited { retry_after: Some(Duration::from_secs(2)), message: "slow down".into() }
        );
        // The vendor's taxonomy decides before the status: Z.ai's 429 "balance exhausted".
        let body = br#"{"error":{"code":"1113","message":"Insufficient balance"}}"#;
        assert_eq!(
            status_error(super::super::glm::classify, 429, &HeaderMap::new(), body, now),
            ProviderError::Account { status: 429, code: "1113".into(), message: "Insufficient balance".into() }
        );
        let body = br#"{"error":{"code":"1302","message":"High concurrency"}}"#;
        assert!(matches!(
            status_error(super::super::glm::classify, 429, &HeaderMap::new(), body, now),
            ProviderError::RateLimited { .. }
        ));
        let body = br#"{"error":{"type":"exceeded_current_quota_error","message":"Your account is suspended"}}"#;
        assert!(matches!(
            status_error(super::super::kimi::classify, 429, &HeaderMap::new(), body, now),
            ProviderError::Account { status: 429, .. }
        ));
        let body = br#"{"error":{"type":"engine_overloaded_error","message":"busy"}}"#;
        assert!(matches!(
            status_error(super::super::kimi::classify, 429, &HeaderMap::new(), body, now),
            ProviderError::RateLimited { .. }
        ));
        let e = status_error(by_status, 401, &HeaderMap::new(), br#"{"error":{"message":"bad key"}}"#, now);
        assert_eq!(e, ProviderError::Auth { status: 401, message: "bad key".into() });
        assert!(matches!(
            status_error(by_status, 403, &HeaderMap::new(), b"", now),
            ProviderError::Auth { status: 403, .. }
        ));
        let e = status_error(by_status, 503, &HeaderMap::new(), b"<html>oops</html>", now);
        assert_eq!(e, ProviderError::Server { status: 503, message: "Service Unavailable".into() });
        let e = status_error(by_status, 400, &HeaderMap::new(), br#"{"detail":[{"msg":"field required"}]}"#, now);
        assert_eq!(e, ProviderError::BadRequest { status: 400, message: "field required".into() });
        let e = status_error(by_status, 404, &HeaderMap::new(), br#"{"error":"no such model"}"#, now);
        assert_eq!(e, ProviderError::BadRequest { status: 404, message: "no such model".into() });
        // GLM's shape: {"error":{"code":"1211","message":"..."}}
        let e = status_error(
            by_status,
            400,
            &HeaderMap::new(),
            r#"{"error":{"code":"1211","message":"模型不存在"}}"#.as_bytes(),
            now,
        );
        assert_eq!(e, ProviderError::BadRequest { status: 400, message: "模型不存在".into() });
    }

    #[test]
    fn vendor_message_is_truncated_on_a_char_boundary() {
        let long = "é".repeat(1000);
        let body = serde_json::json!({"error": {"message": long}}).to_string();
        let m = vendor_message(body.as_bytes()).unwrap();
        assert_eq!(m.chars().count(), MAX_MESSAGE_CHARS + 1);
        assert!(m.ends_with('…'));
        // A non-JSON body is never echoed (it could contain the request).
        assert_eq!(vendor_message(b"you said: secret prompt"), None);
        // An echoed Authorization header is masked.
        let m = vendor_message(br#"{"error":{"message":"bad header Bearer sk-live-abcdef123"}}"#).unwrap();
        assert_eq!(m, "bad header Bearer ***");
    }

    #[test]
    fn send_errors_map_to_classes() {
        let t = RequestTimeouts {
            connect: Duration::from_secs(3),
            first_byte: Duration::from_secs(4),
            idle: Duration::from_secs(5),
            total: Duration::from_secs(6),
        };
        assert_eq!(
            send_error(SendRequestError::Connect(ConnectError::Timeout), &t),
            ProviderError::Timeout { phase: "connect", limit: Duration::from_secs(3) }
        );
        assert_eq!(
            send_error(SendRequestError::Timeout, &t),
            ProviderError::Timeout { phase: "first_byte", limit: Duration::from_secs(4) }
        );
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert!(matches!(
            send_error(SendRequestError::Connect(ConnectError::Io(refused)), &t),
            ProviderError::Network(_)
        ));
    }
}
