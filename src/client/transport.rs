//! Opening one connection: the WebSocket upgrade (subprotocol `mcp`, token as a bearer header or
//! `?token=`) and the protocol handshake — MCP `initialize` + `notifications/initialized`, or
//! the legacy `hello` with its token and session id — before the connection actor takes over.

use super::{ClientConfig, ClientError, Protocol};
use awc::ws::{Codec, Frame, Message};
use awc::BoxedSocket;
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{json, Value};

/// The framed WebSocket connection.
pub(crate) type Framed = actix_codec::Framed<BoxedSocket, Codec>;

/// A connection that passed its handshake.
pub(crate) struct Opened {
    /// The socket.
    pub framed: Framed,
    /// MCP: the `initialize` result; legacy: the `hello_ack` frame.
    pub hello: Value,
    /// The session id the server handed out (legacy `hello_ack.session_id`; MCP
    /// `initialize` result `_meta` when present).
    pub session_id: Option<String>,
    /// MCP: the server says whether the session outlives the connection (`_meta."exai/resumable"`).
    pub resumable: Option<bool>,
    /// MCP: the server says whether this connection found the session still alive
    /// (`_meta."exai/resumed"`); `Some(false)` means calls sent before a drop are lost.
    pub resumed: Option<bool>,
}

/// What the handshake learnt: the reply, the session id, and the MCP resume flags.
type Handshake = (Value, Option<String>, Option<bool>, Option<bool>);

/// The URL to dial: the configured one, plus `token` and (for an MCP resume) `session_id`
/// query parameters.
pub(crate) fn dial_url(cfg: &ClientConfig, resume_session: Option<&str>) -> String {
    let mut url = cfg.url.clone();
    let mut add = |k: &str, v: &str| {
        url.push(if url.contains('?') { '&' } else { '?' });
        url.push_str(k);
        url.push('=');
        url.push_str(&encode(v));
    };
    if cfg.protocol == Protocol::Mcp {
        if let (true, Some(t)) = (cfg.token_in_query, cfg.token.as_deref()) {
            add("token", t);
        }
        if let Some(s) = resume_session {
            add("session_id", s);
        }
    }
    url
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Connect and run the handshake. `session_id`: legacy session to resume / MCP session to
/// resume (sent as `Mcp-Session-Id` and `?session_id=`).
pub(crate) async fn open(cfg: &ClientConfig, session_id: Option<&str>) -> Result<Opened, ClientError> {
    if !(cfg.url.starts_with("ws://") || cfg.url.starts_with("wss://")) {
        return Err(ClientError::BadUrl(cfg.url.clone()));
    }
    let mcp_resume = if cfg.protocol == Protocol::Mcp { session_id } else { None };
    let url = dial_url(cfg, mcp_resume);
    let client =
        awc::Client::builder().timeout(cfg.connect_timeout).max_http_version(awc::http::Version::HTTP_11).finish();
    let mut req = client.ws(url.as_str()).max_frame_size(cfg.max_frame_bytes);
    if cfg.protocol == Protocol::Mcp {
        req = req.protocols(["mcp"]);
        if let (false, Some(t)) = (cfg.token_in_query, cfg.token.as_deref()) {
            req = req.bearer_auth(t);
        }
        if let Some(s) = mcp_resume {
            req = req.set_header("Mcp-Session-Id", s);
        }
    }
    let connected = tokio::time::timeout(cfg.connect_timeout, req.connect())
        .await
        .map_err(|_| ClientError::Connect(format!("no WebSocket handshake within {:?}", cfg.connect_timeout)))?;
    let (_resp, mut framed) = connected.map_err(|e| match e {
        awc::error::WsClientError::InvalidResponseStatus(s) if s.as_u16() == 401 || s.as_u16() == 403 => {
            ClientError::Unauthorized
        }
        other => ClientError::Connect(other.to_string()),
    })?;
    let hs = async {
        match cfg.protocol {
            Protocol::Mcp => mcp_handshake(cfg, &mut framed).await,
            Protocol::Legacy => legacy_handshake(cfg, session_id, &mut framed).await,
        }
    };
    let (hello, session_id, resumable, resumed) = tokio::time::timeout(cfg.connect_timeout, hs)
        .await
        .map_err(|_| ClientError::Handshake(format!("no handshake reply within {:?}", cfg.connect_timeout)))??;
    Ok(Opened { framed, hello, session_id, resumable, resumed })
}

async fn send(framed: &mut Framed, v: &Value) -> Result<(), ClientError> {
    framed.send(Message::Text(v.to_string().into())).await.map_err(|e| ClientError::Handshake(e.to_string()))
}

/// The next text frame during the handshake (answering pings meanwhile).
async fn next_text(framed: &mut Framed) -> Result<Value, ClientError> {
    while let Some(item) = framed.next().await {
        match item.map_err(|e| ClientError::Handshake(e.to_string()))? {
            Frame::Text(b) | Frame::Binary(b) => {
                return serde_json::from_slice(&b).map_err(|e| ClientError::Protocol(format!("not JSON: {e}")));
            }
            Frame::Ping(p) => {
                let _ = framed.send(Message::Pong(p)).await;
            }
            Frame::Close(reason) => {
                let code = reason.as_ref().map(|r| u16::from(r.code));
                if code == Some(exai_actors::protocol::legacy::close::UNAUTHORIZED) {
                    return Err(ClientError::Unauthorized);
                }
                return Err(ClientError::Handshake(format!("server closed the connection ({reason:?})")));
            }
            Frame::Pong(_) | Frame::Continuation(_) => {}
        }
    }
    Err(ClientError::Handshake("connection closed during the handshake".into()))
}

async fn mcp_handshake(cfg: &ClientConfig, framed: &mut Framed) -> Result<Handshake, ClientError> {
    let params = cfg.initialize_params.clone().unwrap_or_else(|| {
        json!({
            "protocolVersion": exai_actors::protocol::mcp::LATEST_VERSION,
            "capabilities": {},
            "clientInfo": { "name": cfg.client_name, "version": env!("CARGO_PKG_VERSION") },
        })
    });
    let id = "exai-client-init";
    send(framed, &json!({ "jsonrpc": "2.0", "id": id, "method": "initialize", "params": params })).await?;
    loop {
        let v = next_text(framed).await?;
        if v.get("id").and_then(Value::as_str) == Some(id) {
            if let Some(err) = v.get("error") {
                return Err(ClientError::Handshake(ClientError::from_rpc(err).to_string()));
            }
            let result =
                v.get("result").cloned().ok_or_else(|| ClientError::Protocol("initialize: no result".into()))?;
            let meta = result.get("_meta");
            let sid = ["exai/session_id", "sessionId", "session_id", "exai/sessionId"]
                .iter()
                .find_map(|k| meta.and_then(|m| m.get(*k)).and_then(Value::as_str))
                .map(str::to_string);
            let flag = |k: &str| meta.and_then(|m| m.get(k)).and_then(Value::as_bool);
            let (resumable, resumed) = (flag("exai/resumable"), flag("exai/resumed"));
            send(framed, &json!({ "jsonrpc": "2.0", "method": "notifications/initialized" })).await?;
            return Ok((result, sid, resumable, resumed));
        }
        if v.get("method").and_then(Value::as_str) == Some("ping") {
            if let Some(pid) = v.get("id") {
                send(framed, &json!({ "jsonrpc": "2.0", "id": pid, "result": {} })).await?;
            }
        }
    }
}

async fn legacy_handshake(
    cfg: &ClientConfig,
    session_id: Option<&str>,
    framed: &mut Framed,
) -> Result<Handshake, ClientError> {
    let mut hello =
        json!({ "op": "hello", "client": { "name": cfg.client_name, "version": env!("CARGO_PKG_VERSION") } });
    if let Some(t) = &cfg.token {
        hello["token"] = json!(t);
    }
    if let Some(s) = session_id {
        hello["session_id"] = json!(s);
    }
    send(framed, &hello).await?;
    let ack = next_text(framed).await?;
    if ack.get("op").and_then(Value::as_str) != Some("hello_ack") {
        return Err(ClientError::Protocol(format!(
            "expected hello_ack, got {}",
            ack.get("op").unwrap_or(&Value::Null)
        )));
    }
    if ack.get("ok").and_then(Value::as_bool) != Some(true) {
        let err = ack.get("error").and_then(Value::as_str).unwrap_or("refused");
        return Err(if err == "unauthorized" { ClientError::Unauthorized } else { ClientError::Handshake(err.into()) });
    }
    let sid = ack.get("session_id").and_then(Value::as_str).map(str::to_string);
    Ok((ack, sid, None, None))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dial_url_adds_query_token_and_resume_session() {
        let mut cfg = ClientConfig::new("ws://127.0.0.1:1/mcp", Protocol::Mcp);
        cfg.token = Some("a b&c".into());
        assert_eq!(dial_url(&cfg, None), "ws://127.0.0.1:1/mcp", "header by default");
        cfg.token_in_query = true;
        assert_eq!(dial_url(&cfg, Some("s-1")), "ws://127.0.0.1:1/mcp?token=a%20b%26c&session_id=s-1");
        let legacy = ClientConfig { protocol: Protocol::Legacy, ..cfg };
        assert_eq!(dial_url(&legacy, Some("s-1")), "ws://127.0.0.1:1/mcp", "legacy: token and session in hello");
    }
}
