//! An async client for exai servers over WebSocket, for both protocols: MCP (JSON-RPC with
//! subprotocol `mcp`) and the legacy EXAI op protocol.
//!
//! [`Client::connect`] starts a [`conn::Connection`] actor (it needs a running actix system)
//! that connects, reconnects with backoff, and multiplexes any number of concurrent calls by
//! request id. [`Client`] is a cheap clonable handle; dropping the last one closes the
//! connection. On it: the `exai call` command ([`call`]) and the `exai stdio` bridge ([`stdio`]).
//! Several server URLs (the nodes of a cluster) may be given: a failed connection attempt moves
//! on to the next one at once ([`ClientConfig::fallback_urls`], [`split_urls`]).

/// The URLs of a repeatable, comma-separated `--url` option, in order, without empty ones.
pub fn split_urls(urls: &[String]) -> Vec<String> {
    urls.iter().flat_map(|u| u.split(',')).map(str::trim).filter(|u| !u.is_empty()).map(str::to_string).collect()
}

mod backoff;
pub mod call;
mod conn;
mod error;
pub mod stdio;
mod transport;

pub use backoff::BackoffConfig;
pub use error::ClientError;
pub use exai_actors::protocol::jsonrpc::RequestId;

use actix::{Actor, Addr};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};

/// Which wire protocol to speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Protocol {
    /// MCP JSON-RPC over WebSocket (subprotocol `mcp`).
    Mcp,
    /// The legacy EXAI op protocol (`hello`, `call_tool`, …).
    Legacy,
}

impl Protocol {
    /// Name for messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Mcp => "mcp",
            Protocol::Legacy => "legacy",
        }
    }
}

/// Client settings.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Server URL, e.g. `ws://127.0.0.1:8079/mcp`.
    pub url: String,
    /// Further servers (other nodes of a cluster): when a connection attempt fails, the next
    /// URL is tried at once; the backoff applies after every URL failed in a row.
    pub fallback_urls: Vec<String>,
    /// Protocol.
    pub protocol: Protocol,
    /// Token (MCP: `Authorization: Bearer` or `?token=`; legacy: `hello.token`).
    pub token: Option<String>,
    /// MCP: send the token as `?token=` instead of a header.
    pub token_in_query: bool,
    /// Reconnect delays.
    pub backoff: BackoffConfig,
    /// Time limit for one connection attempt (upgrade + handshake).
    pub connect_timeout: Duration,
    /// How long a call waits for a connection before failing with `NotConnected`.
    pub ready_wait: Duration,
    /// WebSocket ping interval.
    pub heartbeat_interval: Duration,
    /// No frame from the server for this long: the connection is dead.
    pub dead_after: Duration,
    /// Most calls pending (queued or in flight) at once.
    pub max_pending: usize,
    /// Most `tools/call`s in flight on the connection at once (the rest wait in the queue);
    /// keep it at or below the server's `limits.session_max_inflight`.
    pub max_in_flight: usize,
    /// Capacity of each call's progress channel (excess progress is dropped).
    pub progress_capacity: usize,
    /// Capacity of the channel of server notifications not tied to a call.
    pub notification_capacity: usize,
    /// `clientInfo.name` / legacy `client.name`.
    pub client_name: String,
    /// MCP: the `initialize` params to send (default: latest version, no capabilities).
    pub initialize_params: Option<Value>,
    /// The session id to use: legacy `hello.session_id` (default: the one the server assigns);
    /// MCP `?session_id=` (default: none, and a dropped connection fails the calls in flight).
    /// A named session outlives a dropped connection for the server's resume grace: the client
    /// reconnects to it and receives the replies of the calls that were in flight.
    pub session_id: Option<String>,
    /// MCP: resume the session after a reconnect when the server handed out a session id.
    pub mcp_resume: bool,
    /// Largest accepted frame.
    pub max_frame_bytes: usize,
}

impl ClientConfig {
    /// Defaults for `url` and `protocol`.
    pub fn new(url: impl Into<String>, protocol: Protocol) -> ClientConfig {
        ClientConfig {
            url: url.into(),
            fallback_urls: Vec::new(),
            protocol,
            token: None,
            token_in_query: false,
            backoff: BackoffConfig::default(),
            connect_timeout: Duration::from_secs(5),
            ready_wait: Duration::from_secs(10),
            heartbeat_interval: Duration::from_secs(10),
            dead_after: Duration::from_secs(45),
            max_pending: 1024,
            max_in_flight: 8,
            progress_capacity: 64,
            notification_capacity: 256,
            client_name: "exai-client".into(),
            initialize_params: None,
            session_id: None,
            mcp_resume: true,
            max_frame_bytes: 16 * 1024 * 1024,
        }
    }
}

/// Connection states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnState {
    /// First connection attempt.
    Connecting,
    /// Connected and handshaken.
    Ready,
    /// Waiting before the next attempt.
    Backoff,
    /// A later connection attempt.
    Reconnecting,
    /// Closed for good.
    Closed,
}

/// What the client knows about its connection.
#[derive(Debug, Clone)]
pub struct Status {
    /// Current state.
    pub state: ConnState,
    /// The last connection error.
    pub last_error: Option<String>,
    /// Successful connections so far.
    pub connects: u64,
    /// MCP `initialize` result / legacy `hello_ack` of the latest connection.
    pub hello: Option<Value>,
    /// The session id in use (legacy always; MCP when the server hands one out).
    pub session_id: Option<String>,
}

/// A tool result: the MCP `CallToolResult`, or the legacy `call_tool_res` frame.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolResult {
    /// The result as received.
    pub value: Value,
    /// The tool failed (`isError: true` / `ok: false`).
    pub is_error: bool,
}

struct Inner {
    addr: Addr<conn::Connection>,
    protocol: Protocol,
    status: watch::Receiver<Status>,
    notifications: Mutex<Option<mpsc::Receiver<Value>>>,
    progress_capacity: usize,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.addr.do_send(conn::Shutdown);
    }
}

/// A call in progress: its upstream id and the receiver of its outcome.
pub struct PendingCall {
    /// The upstream request id (for [`Client::cancel`]).
    pub id: RequestId,
    rx: oneshot::Receiver<Result<Value, ClientError>>,
}

impl PendingCall {
    /// Wait for the outcome.
    pub async fn outcome(self) -> Result<Value, ClientError> {
        self.rx.await.unwrap_or(Err(ClientError::Closed))
    }
}

/// A handle to a connection actor (clone freely).
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl Client {
    /// Start connecting (in the background) on the current actix system.
    pub fn connect(cfg: ClientConfig) -> Client {
        let initial = Status {
            state: ConnState::Connecting,
            last_error: None,
            connects: 0,
            hello: None,
            session_id: cfg.session_id.clone(),
        };
        let (status_tx, status_rx) = watch::channel(initial);
        let (note_tx, note_rx) = mpsc::channel(cfg.notification_capacity.max(1));
        let protocol = cfg.protocol;
        let progress_capacity = cfg.progress_capacity.max(1);
        let addr = conn::Connection::new(Arc::new(cfg), status_tx, note_tx).start();
        Client {
            inner: Arc::new(Inner {
                addr,
                protocol,
                status: status_rx,
                notifications: Mutex::new(Some(note_rx)),
                progress_capacity,
            }),
        }
    }

    /// The protocol spoken.
    pub fn protocol(&self) -> Protocol {
        self.inner.protocol
    }

    /// Current status.
    pub fn status(&self) -> Status {
        self.inner.status.borrow().clone()
    }

    /// Watch status changes.
    pub fn watch(&self) -> watch::Receiver<Status> {
        self.inner.status.clone()
    }

    /// The server notifications not tied to a call (MCP log messages, unknown legacy ops).
    /// Can be taken once.
    pub fn take_notifications(&self) -> Option<mpsc::Receiver<Value>> {
        self.inner.notifications.lock().ok().and_then(|mut n| n.take())
    }

    /// Wait until the connection is ready; returns the handshake reply (MCP `initialize` result
    /// or legacy `hello_ack`).
    pub async fn wait_ready(&self, timeout: Duration) -> Result<Value, ClientError> {
        let mut rx = self.inner.status.clone();
        let fut = async move {
            rx.wait_for(|s| s.state == ConnState::Ready || s.state == ConnState::Closed)
                .await
                .map(|s| (s.state, s.hello.clone()))
        };
        match tokio::time::timeout(timeout, fut).await {
            Ok(Ok((ConnState::Ready, hello))) => Ok(hello.unwrap_or(Value::Null)),
            Ok(_) => Err(ClientError::Closed),
            Err(_) => {
                let last = self.inner.status.borrow().last_error.clone();
                if last.as_deref() == Some(&ClientError::Unauthorized.to_string()) {
                    return Err(ClientError::Unauthorized);
                }
                Err(ClientError::NotConnected { waited: timeout, last })
            }
        }
    }

    /// Submit a request; the returned [`PendingCall`] yields its outcome. MCP: any method;
    /// legacy: `tools/call`, `tools/list`, `ping` and `health` (answered with the raw reply frame).
    pub async fn start(
        &self,
        method: &str,
        params: Option<Value>,
        progress: Option<mpsc::Sender<Value>>,
    ) -> Result<PendingCall, ClientError> {
        let (tx, rx) = oneshot::channel();
        let msg = conn::Submit { method: method.to_string(), params, reply: tx, progress };
        let id = self.inner.addr.send(msg).await.map_err(|_| ClientError::Closed)??;
        Ok(PendingCall { id, rx })
    }

    /// A request and its result; `timeout` abandons (and cancels) it.
    pub async fn request(
        &self,
        method: &str,
        params: Option<Value>,
        timeout: Option<Duration>,
    ) -> Result<Value, ClientError> {
        let call = self.start(method, params, None).await?;
        self.finish(call, timeout).await
    }

    async fn finish(&self, call: PendingCall, timeout: Option<Duration>) -> Result<Value, ClientError> {
        let id = call.id.clone();
        match timeout {
            None => call.outcome().await,
            Some(t) => match tokio::time::timeout(t, call.outcome()).await {
                Ok(r) => r,
                Err(_) => {
                    self.cancel(&id, "timed out").await;
                    Err(ClientError::Timeout(t))
                }
            },
        }
    }

    /// Call a tool. `progress` receives progress notifications' params (MCP) or
    /// `progress`/`stream_chunk` frames (legacy).
    pub async fn call_tool(
        &self,
        name: &str,
        arguments: Value,
        timeout: Option<Duration>,
        progress: Option<mpsc::Sender<Value>>,
    ) -> Result<ToolResult, ClientError> {
        let params = json!({ "name": name, "arguments": arguments });
        let call = self.start("tools/call", Some(params), progress).await?;
        let value = self.finish(call, timeout).await?;
        let is_error = match self.inner.protocol {
            Protocol::Mcp => value.get("isError").and_then(Value::as_bool).unwrap_or(false),
            Protocol::Legacy => value.get("ok").and_then(Value::as_bool) != Some(true),
        };
        Ok(ToolResult { value, is_error })
    }

    /// A bounded progress channel of the configured capacity.
    pub fn progress_channel(&self) -> (mpsc::Sender<Value>, mpsc::Receiver<Value>) {
        mpsc::channel(self.inner.progress_capacity)
    }

    /// The tool list (MCP `tools/list` result / legacy `list_tools_res` frame).
    pub async fn list_tools(&self, timeout: Option<Duration>) -> Result<Value, ClientError> {
        self.request("tools/list", None, timeout).await
    }

    /// Send an MCP notification (not queued: fails when not connected).
    pub async fn notify(&self, method: &str, params: Option<Value>) -> Result<(), ClientError> {
        let msg = conn::Notify { method: method.to_string(), params };
        self.inner.addr.send(msg).await.map_err(|_| ClientError::Closed)?
    }

    /// Cancel a pending call: it fails with `Cancelled`, and the server is told
    /// (`notifications/cancelled` / legacy `cancel`) when it was already sent.
    pub async fn cancel(&self, id: &RequestId, reason: &str) {
        let _ = self.inner.addr.send(conn::Cancel { id: id.clone(), reason: reason.to_string() }).await;
    }

    /// Drop the TCP connection abruptly (as a network failure would); the client reconnects.
    pub fn drop_connection(&self) {
        self.inner.addr.do_send(conn::DropConnection);
    }

    /// Close the connection now (pending calls fail with `Closed`).
    pub fn close(&self) {
        self.inner.addr.do_send(conn::Shutdown);
    }
}
