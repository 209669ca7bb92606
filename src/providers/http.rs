//! The HTTP core every vendor shares: one pooled awc client per connect timeout, the base
//! URL, `Authorization: Bearer` (a sensitive header value, never printed) and the configured
//! extra headers on every request, sending with a deadline, and bounded body reads whose
//! every read must come within the idle limit ([`Clock`]: the phases of one request).

use awc::body::MessageBody;
use awc::http::header::{HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE, USER_AGENT};
use awc::http::Method;
use awc::{Client, ClientRequest, ClientResponse};
use bytes::{Bytes, BytesMut};
use exai_actors::provider::types::{ProviderError, RequestTimeouts};
use futures_util::StreamExt;
use serde_json::Value;
use std::cell::RefCell;
use std::fmt;
use std::time::{Duration, SystemTime};
use tokio::time::{timeout_at, Instant};

use super::errors::{payload_error, send_error, status_error, VendorClass};
use super::TransportConfig;

/// A deadline and the phase whose limit it is.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Deadline {
    pub at: Instant,
    pub phase: &'static str,
    pub limit: Duration,
}

impl Deadline {
    /// The timeout error of this phase.
    pub(crate) fn error(&self) -> ProviderError {
        ProviderError::Timeout { phase: self.phase, limit: self.limit }
    }

    fn earliest(self, other: Deadline) -> Deadline {
        if other.at < self.at {
            other
        } else {
            self
        }
    }
}

/// The phases of one request, from its start.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    start: Instant,
    t: RequestTimeouts,
}

impl Clock {
    pub(crate) fn start(t: &RequestTimeouts) -> Clock {
        Clock { start: Instant::now(), t: *t }
    }

    /// The end of the whole call.
    pub(crate) fn total(&self) -> Deadline {
        Deadline { at: self.start + self.t.total, phase: "total", limit: self.t.total }
    }

    /// Until the head (and a stream's first delta): the first-byte limit, within the total.
    pub(crate) fn first_byte(&self) -> Deadline {
        Deadline { at: self.start + self.t.first_byte, phase: "first_byte", limit: self.t.first_byte }
            .earliest(self.total())
    }

    /// The next piece of a flowing body must come by this: the idle limit after the last
    /// one, within the total.
    pub(crate) fn idle_after(&self, last: Instant) -> Deadline {
        Deadline { at: last + self.t.idle, phase: "idle", limit: self.t.idle }.earliest(self.total())
    }
}

/// Clients kept for distinct connect timeouts (normally one).
const MAX_CLIENTS: usize = 4;
/// Largest error body read to find the vendor's message.
const ERROR_BODY_LIMIT: usize = 64 * 1024;
/// Largest JSON body accepted from a provider.
pub(crate) const JSON_BODY_LIMIT: usize = 16 * 1024 * 1024;
/// Largest file content accepted (Kimi's extracted text).
pub(crate) const CONTENT_BODY_LIMIT: usize = 64 * 1024 * 1024;

/// Shared state of one provider's transport. Lives on its actor's thread.
pub(crate) struct HttpCore {
    name: String,
    base_url: String,
    auth: Option<HeaderValue>,
    extra_headers: Vec<(HeaderName, HeaderValue)>,
    clients: RefCell<Vec<(Duration, Client)>>,
    classify: fn(u16, &str) -> Option<VendorClass>,
}

impl fmt::Debug for HttpCore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpCore")
            .field("name", &self.name)
            .field("base_url", &self.base_url)
            .field("auth", &self.auth.as_ref().map(|_| "<redacted>"))
            .field("extra_headers", &self.extra_headers.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>())
            .finish()
    }
}

impl HttpCore {
    pub(crate) fn new(cfg: &TransportConfig) -> HttpCore {
        // awc's rustls connector panics without a process-wide crypto provider; app.rs installs
        // one at start-up, this covers other embedders (tests, benches). Already set = fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let auth = cfg.api_key.as_deref().filter(|k| !k.is_empty()).and_then(|key| {
            match HeaderValue::from_str(&format!("Bearer {key}")) {
                Ok(mut v) => {
                    v.set_sensitive(true);
                    Some(v)
                }
                Err(_) => {
                    tracing::warn!(provider = %cfg.name, "API key contains characters not allowed in a header; not sent");
                    None
                }
            }
        });
        let extra_headers = cfg
            .extra_headers
            .iter()
            .filter_map(|(k, v)| match (HeaderName::try_from(k.as_str()), HeaderValue::from_str(v)) {
                (Ok(name), Ok(mut value)) => {
                    value.set_sensitive(true);
                    Some((name, value))
                }
                _ => {
                    tracing::warn!(provider = %cfg.name, header = %k, "invalid extra header ignored");
                    None
                }
            })
            .collect();
        HttpCore {
            name: cfg.name.clone(),
            base_url: cfg.base_url.trim_end_matches('/').to_string(),
            auth,
            extra_headers,
            clients: RefCell::new(Vec::new()),
            classify: match cfg.kind {
                super::VendorKind::Kimi => super::kimi::classify,
                super::VendorKind::Glm => super::glm::classify,
                super::VendorKind::OpenAiCompatible => super::errors::by_status,
            },
        }
    }

    /// Provider name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    fn client(&self, connect: Duration) -> Client {
        let mut clients = self.clients.borrow_mut();
        if let Some((_, c)) = clients.iter().find(|(d, _)| *d == connect) {
            return c.clone();
        }
        let connector = awc::Connector::new().timeout(connect).handshake_timeout(connect);
        let client = Client::builder()
            .connector(connector)
            .disable_timeout()
            .disable_redirects()
            .no_default_headers()
            .add_default_header((USER_AGENT, concat!("exai/", env!("CARGO_PKG_VERSION"))))
            .finish();
        if clients.len() >= MAX_CLIENTS {
            clients.remove(0);
        }
        clients.push((connect, client.clone()));
        client
    }

    /// A request to `{base}{path}` with the key and the extra headers.
    pub(crate) fn request(&self, method: Method, path: &str, timeouts: &RequestTimeouts) -> ClientRequest {
        let url = format!("{}{}", self.base_url, path);
        let mut req = self.client(timeouts.connect).request(method, url);
        if let Some(auth) = &self.auth {
            req = req.insert_header((AUTHORIZATION, auth.clone()));
        }
        for (k, v) in &self.extra_headers {
            req = req.insert_header((k.clone(), v.clone()));
        }
        req
    }

    /// Sends `body`; the response head must arrive by `deadline`, else its phase's timeout.
    /// A non-success status becomes the mapped error (its body read, bounded, for the
    /// vendor's message).
    pub(crate) async fn send<B: MessageBody + 'static>(
        &self,
        req: ClientRequest,
        body: B,
        deadline: Deadline,
        clock: &Clock,
    ) -> Result<ClientResponse, ProviderError> {
        let mut res = match timeout_at(deadline.at, req.send_body(body)).await {
            Err(_) => return Err(deadline.error()),
            Ok(Err(e)) => return Err(send_error(e, &clock.t)),
            Ok(Ok(res)) => res,
        };
        let status = res.status();
        if status.is_success() {
            return Ok(res);
        }
        let body = read_body(&mut res, clock, ERROR_BODY_LIMIT, true).await.unwrap_or_default();
        let err = status_error(self.classify, status.as_u16(), res.headers(), &body, SystemTime::now());
        tracing::debug!(provider = %self.name, status = status.as_u16(), error = %err, "provider answered an error");
        Err(err)
    }

    /// Sends a JSON body (or none) and reads a JSON answer: the head within the first-byte
    /// limit, the body read with the idle limit, all within the total.
    pub(crate) async fn json_call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        timeouts: &RequestTimeouts,
    ) -> Result<Value, ProviderError> {
        let clock = Clock::start(timeouts);
        let req = self.request(method, path, timeouts);
        let mut res = match body {
            Some(b) => {
                let bytes = Bytes::from(serde_json::to_vec(b).map_err(|e| ProviderError::Protocol(e.to_string()))?);
                self.send(req.insert_header((CONTENT_TYPE, "application/json")), bytes, clock.first_byte(), &clock)
                    .await?
            }
            None => self.send(req, (), clock.first_byte(), &clock).await?,
        };
        let bytes = read_body(&mut res, &clock, JSON_BODY_LIMIT, false).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&bytes).map_err(|e| ProviderError::Protocol(format!("response is not valid JSON: {e}")))
    }
}

/// Reads a whole body, up to `limit` bytes: each read within the idle limit of the last one,
/// all within the total. With `truncate`, a body over the limit is cut rather than refused.
pub(crate) async fn read_body(
    res: &mut ClientResponse,
    clock: &Clock,
    limit: usize,
    truncate: bool,
) -> Result<Bytes, ProviderError> {
    let mut buf = BytesMut::new();
    let mut last = Instant::now();
    loop {
        let deadline = clock.idle_after(last);
        match timeout_at(deadline.at, res.next()).await {
            Err(_) => return Err(deadline.error()),
            Ok(None) => return Ok(buf.freeze()),
            Ok(Some(Err(e))) => return Err(payload_error(e)),
            Ok(Some(Ok(chunk))) => {
                last = Instant::now();
                if buf.len() + chunk.len() > limit {
                    if truncate {
                        let room = limit - buf.len();
                        buf.extend_from_slice(&chunk[..room]);
                        return Ok(buf.freeze());
                    }
                    return Err(ProviderError::Protocol(format!("response body larger than {limit} bytes")));
                }
                buf.extend_from_slice(&chunk);
            }
        }
    }
}
