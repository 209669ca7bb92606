//! Typed errors of the exai client ([`ClientError`]).

use serde_json::Value;
use std::time::Duration;

/// Why a client operation failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    /// The URL cannot be used.
    #[error("invalid URL '{0}': expected ws://host:port/path or wss://…")]
    BadUrl(String),
    /// TCP/WebSocket connection failed.
    #[error("cannot connect: {0}")]
    Connect(String),
    /// Connected, but the protocol handshake (`initialize` or `hello`) failed.
    #[error("handshake failed: {0}")]
    Handshake(String),
    /// The server refused the token.
    #[error("unauthorized: the server rejected the token (or none was given)")]
    Unauthorized,
    /// The connection dropped while the call was in flight and it cannot be resumed.
    #[error("disconnected while the call was in flight (it may or may not have run)")]
    Disconnected,
    /// No connection became ready in time for this call.
    #[error("not connected to the server within {waited:?}{}", last.as_ref().map(|l| format!(" (last error: {l})")).unwrap_or_default())]
    NotConnected {
        /// How long the call waited.
        waited: Duration,
        /// The last connection error, if any.
        last: Option<String>,
    },
    /// The call did not finish in time.
    #[error("no reply within {0:?}")]
    Timeout(Duration),
    /// Too many calls are pending on this client.
    #[error("too many pending calls (limit {0})")]
    TooManyPending(usize),
    /// The call was cancelled by the caller.
    #[error("cancelled")]
    Cancelled,
    /// The server answered with a JSON-RPC error.
    #[error("JSON-RPC error {code}: {message}")]
    Rpc {
        /// Error code.
        code: i64,
        /// Message.
        message: String,
        /// Optional data.
        data: Option<Value>,
    },
    /// The server answered a legacy op with an `error` frame.
    #[error("server error {code}: {message}")]
    Legacy {
        /// Error code (e.g. `INVALID_REQUEST`).
        code: String,
        /// Message.
        message: String,
    },
    /// The server sent something this client does not understand.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The operation does not exist in the chosen protocol.
    #[error("not supported over the {protocol} protocol: {what}")]
    Unsupported {
        /// The protocol.
        protocol: &'static str,
        /// What was asked.
        what: String,
    },
    /// The client was closed.
    #[error("client closed")]
    Closed,
}

impl ClientError {
    /// True for connection-level problems (as opposed to answers from the server).
    pub fn is_connection(&self) -> bool {
        matches!(
            self,
            ClientError::Connect(_)
                | ClientError::Handshake(_)
                | ClientError::Unauthorized
                | ClientError::Disconnected
                | ClientError::NotConnected { .. }
                | ClientError::Closed
                | ClientError::BadUrl(_)
        )
    }

    /// An error from a JSON-RPC error object.
    pub fn from_rpc(err: &Value) -> ClientError {
        ClientError::Rpc {
            code: err.get("code").and_then(Value::as_i64).unwrap_or(-32603),
            message: err.get("message").and_then(Value::as_str).unwrap_or("unknown error").to_string(),
            data: err.get("data").cloned(),
        }
    }
}
