//! The HTTP core every vendor shares: one pooled awc client per connect timeout, the base
//! URL, `Authorization: Bearer` (a sensitive header value, never printed) and the configured
//! extra headers on every request, sending with a deadline, and bounded body reads.

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

use super::errors::{payload_error, send_error, status_error};
use super::TransportConfig;

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

    /// Sends `body`; the response head must arrive by `deadline`, else `Timeout { phase }`.
    /// A non-success status becomes the mapped error (its body read, bounded, for the
    /// vendor's message).
    pub(crate) async fn send<B: MessageBody + 'static>(
        &self,
        req: ClientRequest,
        body: B,
        deadline: Instant,
        phase: &'static str,
    ) -> Result<ClientResponse, ProviderError> {
        let mut res = match timeout_at(deadline, req.send_body(body)).await {
            Err(_) => return Err(ProviderError::Timeout { phase }),
            Ok(Err(e)) => return Err(send_error(e)),
            Ok(Ok(res)) => res,
        };
        let status = res.status();
        if status.is_success() {
            return Ok(res);
        }
        let body = read_body(&mut res, deadline, ERROR_BODY_LIMIT, true).await.unwrap_or_default();
        let err = status_error(status.as_u16(), res.headers(), &body, SystemTime::now());
        tracing::debug!(provider = %self.name, status = status.as_u16(), error = %err, "provider answered an error");
        Err(err)
    }

    /// Sends a JSON body (or none) and reads a JSON answer, all within `timeouts.request`.
    pub(crate) async fn json_call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        timeouts: &RequestTimeouts,
    ) -> Result<Value, ProviderError> {
        let deadline = Instant::now() + timeouts.request;
        let req = self.request(method, path, timeouts);
        let mut res = match body {
            Some(b) => {
                let bytes = Bytes::from(serde_json::to_vec(b).map_err(|e| ProviderError::Protocol(e.to_string()))?);
                self.send(req.insert_header((CONTENT_TYPE, "application/json")), bytes, deadline, "request").await?
            }
            None => self.send(req, (), deadline, "request").await?,
        };
        let bytes = read_body(&mut res, deadline, JSON_BODY_LIMIT, false).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&bytes).map_err(|e| ProviderError::Protocol(format!("response is not valid JSON: {e}")))
    }
}

/// Reads a whole body, up to `limit` bytes, before `deadline`. With `truncate`, a body over
/// the limit is cut rather than refused.
pub(crate) async fn read_body(
    res: &mut ClientResponse,
    deadline: Instant,
    limit: usize,
    truncate: bool,
) -> Result<Bytes, ProviderError> {
    let mut buf = BytesMut::new();
    loop {
        match timeout_at(deadline, res.next()).await {
            Err(_) => return Err(ProviderError::Timeout { phase: "request" }),
            Ok(None) => return Ok(buf.freeze()),
            Ok(Some(Err(e))) => return Err(payload_error(e)),
            Ok(Some(Ok(chunk))) => {
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
