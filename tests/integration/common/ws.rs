//! A small raw WebSocket test client built on `awc`, for MCP JSON-RPC and legacy EXAI op
//! protocol tests. It needs an actix runtime: use it from `#[actix_rt::test]` tests.
//!
//! Every receive takes a timeout, answers server Pings with Pongs, and reassembles fragmented
//! messages. The `recv_*` helpers panic with a readable message when the expected thing does
//! not arrive; [`WsClient::next_event`] returns whatever happened instead.

use std::time::{Duration, Instant};

use actix_rt::time::timeout;
use actix_ws::Item;
use awc::ws::{CloseCode, CloseReason, Codec, Frame, Message};
use awc::BoxedSocket;
use bytes::Bytes;
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{json, Value};

type Conn = actix_codec::Framed<BoxedSocket, Codec>;

/// Protocol version the test client announces in `initialize`.
pub const MCP_PROTOCOL_VERSION: &str = "2025-11-25";
/// Default per-call timeout used by [`WsClient::request`].
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Connection options: subprotocols to offer, extra request headers, frame size limit.
#[derive(Debug, Clone)]
pub struct WsOptions {
    pub protocols: Vec<String>,
    pub headers: Vec<(String, String)>,
    pub max_frame_size: usize,
    pub connect_timeout: Duration,
}

impl Default for WsOptions {
    fn default() -> Self {
        Self {
            protocols: Vec::new(),
            headers: Vec::new(),
            max_frame_size: 16 * 1024 * 1024,
            connect_timeout: Duration::from_secs(10),
        }
    }
}

impl WsOptions {
    /// Offers subprotocol `mcp`, as the real MCP clients do.
    pub fn mcp() -> Self {
        Self::default().protocol("mcp")
    }

    pub fn protocol(mut self, protocol: &str) -> Self {
        self.protocols.push(protocol.to_owned());
        self
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// `Authorization: Bearer <token>`.
    pub fn bearer(self, token: &str) -> Self {
        self.header("Authorization", &format!("Bearer {token}"))
    }
}

/// Why a connection attempt failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("handshake rejected with HTTP status {0}")]
    Status(u16),
    #[error("no handshake response within {0:?}")]
    Timeout(Duration),
    #[error("connection failed: {0}")]
    Other(String),
}

impl ConnectError {
    /// HTTP status of a rejected handshake (e.g. 401 for a missing token).
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Status(code) => Some(*code),
            _ => None,
        }
    }
}

/// One thing received from the server (Pings are answered and never surface).
#[derive(Debug, Clone, PartialEq)]
pub enum WsEvent {
    Text(String),
    Binary(Bytes),
    Pong(Bytes),
    /// Close frame: `(code, reason)`; a close without a payload reports 1005 ("no status").
    Close(u16, String),
    /// The TCP stream ended without a close frame.
    Ended,
    /// Protocol or I/O error.
    Error(String),
    /// Nothing arrived within the timeout.
    Timeout,
}

/// An open WebSocket connection.
pub struct WsClient {
    conn: Conn,
    url: String,
    protocol: Option<String>,
    response_headers: Vec<(String, String)>,
    partial: Option<(bool, Vec<u8>)>,
}

impl WsClient {
    /// Connects or panics with the reason.
    pub async fn connect(url: &str, options: WsOptions) -> Self {
        match Self::try_connect(url, options).await {
            Ok(client) => client,
            Err(e) => panic!("WebSocket connect to {url} failed: {e}"),
        }
    }

    /// Connects; `Err` carries the HTTP status when the server refused the upgrade.
    pub async fn try_connect(url: &str, options: WsOptions) -> Result<Self, ConnectError> {
        let client = awc::Client::builder().timeout(options.connect_timeout).finish();
        let mut request = client.ws(url).max_frame_size(options.max_frame_size);
        if !options.protocols.is_empty() {
            request = request.protocols(&options.protocols);
        }
        for (name, value) in &options.headers {
            request = request.set_header(name.as_str(), value.as_str());
        }
        let connected = timeout(options.connect_timeout, request.connect())
            .await
            .map_err(|_| ConnectError::Timeout(options.connect_timeout))?;
        let (response, conn) = connected.map_err(|e| match e {
            awc::error::WsClientError::InvalidResponseStatus(status) => ConnectError::Status(status.as_u16()),
            other => ConnectError::Other(other.to_string()),
        })?;
        let response_headers: Vec<(String, String)> = response
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect();
        let protocol = response_headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("sec-websocket-protocol"))
            .map(|(_, v)| v.clone());
        Ok(Self { conn, url: url.to_owned(), protocol, response_headers, partial: None })
    }

    /// The subprotocol the server selected (`Sec-WebSocket-Protocol` of the 101 response).
    pub fn protocol(&self) -> Option<&str> {
        self.protocol.as_deref()
    }

    /// A header of the 101 response (case-insensitive name).
    pub fn response_header(&self, name: &str) -> Option<&str> {
        self.response_headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    async fn send(&mut self, message: Message) {
        let what = format!("{message:?}");
        if let Err(e) = self.conn.send(message).await {
            panic!("WebSocket send to {} failed ({e}); message: {what:.200}", self.url);
        }
    }

    pub async fn send_text(&mut self, text: &str) {
        self.send(Message::Text(text.into())).await;
    }

    /// Sends a JSON text frame; an error (the server closed or reset) is returned, not a panic.
    pub async fn try_send_json(&mut self, value: &Value) -> Result<(), String> {
        self.conn.send(Message::Text(value.to_string().into())).await.map_err(|e| e.to_string())
    }

    pub async fn send_json(&mut self, value: &Value) {
        self.send_text(&value.to_string()).await;
    }

    pub async fn send_binary(&mut self, data: impl Into<Bytes>) {
        self.send(Message::Binary(data.into())).await;
    }

    pub async fn send_ping(&mut self, data: impl Into<Bytes>) {
        self.send(Message::Ping(data.into())).await;
    }

    /// Sends a Close frame (the server should answer with its own Close).
    pub async fn close(&mut self, code: u16, reason: &str) {
        let reason =
            CloseReason { code: CloseCode::from(code), description: (!reason.is_empty()).then(|| reason.to_owned()) };
        self.send(Message::Close(Some(reason))).await;
    }

    /// Next event within `wait`; Pings are answered with Pongs and skipped.
    pub async fn next_event(&mut self, wait: Duration) -> WsEvent {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let frame = match timeout(left, self.conn.next()).await {
                Err(_) => return WsEvent::Timeout,
                Ok(None) => return WsEvent::Ended,
                Ok(Some(Err(e))) => return WsEvent::Error(e.to_string()),
                Ok(Some(Ok(frame))) => frame,
            };
            match frame {
                Frame::Text(data) => return text_event(data.to_vec()),
                Frame::Binary(data) => return WsEvent::Binary(data),
                Frame::Pong(data) => return WsEvent::Pong(data),
                Frame::Ping(data) => {
                    // Best effort: the connection may already be closing.
                    let _ = self.conn.send(Message::Pong(data)).await;
                }
                Frame::Close(reason) => {
                    let _ = self.conn.send(Message::Close(reason.clone())).await;
                    return match reason {
                        Some(r) => WsEvent::Close(u16::from(r.code), r.description.unwrap_or_default()),
                        None => WsEvent::Close(1005, String::new()),
                    };
                }
                Frame::Continuation(item) => {
                    if let Some(event) = self.continuation(item) {
                        return event;
                    }
                }
            }
        }
    }

    fn continuation(&mut self, item: Item) -> Option<WsEvent> {
        match item {
            Item::FirstText(data) => self.partial = Some((true, data.to_vec())),
            Item::FirstBinary(data) => self.partial = Some((false, data.to_vec())),
            Item::Continue(data) => match self.partial.as_mut() {
                Some((_, buf)) => buf.extend_from_slice(&data),
                None => return Some(WsEvent::Error("continuation without a first frame".into())),
            },
            Item::Last(data) => {
                let Some((is_text, mut buf)) = self.partial.take() else {
                    return Some(WsEvent::Error("last fragment without a first frame".into()));
                };
                buf.extend_from_slice(&data);
                return Some(if is_text { text_event(buf) } else { WsEvent::Binary(buf.into()) });
            }
        }
        None
    }

    /// Next text message within `wait`, skipping Pongs; `None` on timeout. Panics on a close,
    /// end of stream, binary frame or error (unexpected for a text protocol).
    pub async fn try_recv_text(&mut self, wait: Duration) -> Option<String> {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next_event(left).await {
                WsEvent::Text(text) => return Some(text),
                WsEvent::Pong(_) => continue,
                WsEvent::Timeout => return None,
                other => panic!("expected a text message from {}, got {other:?}", self.url),
            }
        }
    }

    /// Next text message; panics on timeout.
    pub async fn recv_text(&mut self, wait: Duration) -> String {
        match self.try_recv_text(wait).await {
            Some(text) => text,
            None => panic!("no text message from {} within {wait:?}", self.url),
        }
    }

    /// Next message parsed as JSON; `None` on timeout. Panics if it is not JSON.
    pub async fn try_recv_json(&mut self, wait: Duration) -> Option<Value> {
        let text = self.try_recv_text(wait).await?;
        match serde_json::from_str(&text) {
            Ok(value) => Some(value),
            Err(e) => panic!("message from {} is not JSON ({e}): {text:.500}", self.url),
        }
    }

    /// Next message parsed as JSON; panics on timeout or non-JSON.
    pub async fn recv_json(&mut self, wait: Duration) -> Value {
        match self.try_recv_json(wait).await {
            Some(value) => value,
            None => panic!("no JSON message from {} within {wait:?}", self.url),
        }
    }

    /// Reads JSON messages until one matches `pred` (overall limit `wait`). Returns the match
    /// and the messages skipped before it (e.g. notifications preceding a response).
    pub async fn recv_json_until(
        &mut self,
        wait: Duration,
        mut pred: impl FnMut(&Value) -> bool,
    ) -> (Value, Vec<Value>) {
        let deadline = Instant::now() + wait;
        let mut skipped = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.try_recv_json(left).await {
                Some(value) if pred(&value) => return (value, skipped),
                Some(value) => skipped.push(value),
                None => panic!("no matching message from {} within {wait:?}; received instead: {skipped:#?}", self.url),
            }
        }
    }

    /// Waits for the JSON-RPC response (`result` or `error`) with this `id`; returns it and the
    /// messages received before it.
    pub async fn recv_response(&mut self, id: &Value, wait: Duration) -> (Value, Vec<Value>) {
        self.recv_json_until(wait, |v| {
            v.get("id") == Some(id) && (v.get("result").is_some() || v.get("error").is_some())
        })
        .await
    }

    /// Sends a JSON-RPC request (`params` omitted when `Value::Null`) and returns its response.
    pub async fn request(&mut self, id: impl Into<Value>, method: &str, params: Value) -> Value {
        let id = id.into();
        let mut message = json!({"jsonrpc": "2.0", "id": id, "method": method});
        if !params.is_null() {
            message["params"] = params;
        }
        self.send_json(&message).await;
        self.recv_response(&id, DEFAULT_TIMEOUT).await.0
    }

    /// Sends a JSON-RPC notification (no `id`).
    pub async fn notify(&mut self, method: &str, params: Value) {
        let mut message = json!({"jsonrpc": "2.0", "method": method});
        if !params.is_null() {
            message["params"] = params;
        }
        self.send_json(&message).await;
    }

    /// MCP handshake: `initialize` (id 0, like the SDK clients) + `notifications/initialized`.
    /// Returns the `initialize` response; panics if it is an error.
    pub async fn mcp_initialize(&mut self) -> Value {
        let params = json!({
            "protocolVersion": MCP_PROTOCOL_VERSION,
            "capabilities": {},
            "clientInfo": {"name": "exai-integration-tests", "version": "0.0.0"},
        });
        let response = self.request(0, "initialize", params).await;
        assert!(response.get("result").is_some(), "initialize failed: {response}");
        self.notify("notifications/initialized", Value::Null).await;
        response
    }

    /// Reads until a Close frame: `Some((code, reason))`, or `None` on timeout / end of stream
    /// without one. Text and binary messages before the close are skipped.
    pub async fn recv_close(&mut self, wait: Duration) -> Option<(u16, String)> {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next_event(left).await {
                WsEvent::Close(code, reason) => return Some((code, reason)),
                WsEvent::Timeout | WsEvent::Ended | WsEvent::Error(_) => return None,
                WsEvent::Text(_) | WsEvent::Binary(_) | WsEvent::Pong(_) => continue,
            }
        }
    }
}

fn text_event(data: Vec<u8>) -> WsEvent {
    match String::from_utf8(data) {
        Ok(text) => WsEvent::Text(text),
        Err(e) => WsEvent::Error(format!("text frame is not UTF-8: {e}")),
    }
}
