//! The client side of both WebSocket protocols for the load driver: connect and handshake,
//! build a `tools/call` / `call_tool` frame for call number `seq`, and classify what comes back.

use super::{BenchError, BenchProtocol};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::time::Duration;

/// A WebSocket connection of the awc client.
pub type Framed = actix_codec::Framed<awc::BoxedSocket, awc::ws::Codec>;

/// What to call, where.
#[derive(Debug, Clone)]
pub struct Target {
    /// WebSocket URL.
    pub url: String,
    /// Protocol.
    pub protocol: BenchProtocol,
    /// Tool name.
    pub tool: String,
    /// Tool arguments (an object).
    pub args: Value,
    /// Auth token.
    pub token: Option<String>,
}

/// A frame from the server, as the driver sees it.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    /// The terminal reply to call `seq`; `ok` unless it is an error.
    Reply {
        /// Call number.
        seq: u64,
        /// Success.
        ok: bool,
    },
    /// An MCP `ping` request from the server (answer with an empty result).
    Ping(Value),
    /// Anything else (progress, notifications).
    Other,
}

/// The request frame for call `seq`.
pub fn request(t: &Target, seq: u64) -> Value {
    match t.protocol {
        BenchProtocol::Mcp => {
            json!({"jsonrpc":"2.0","id":seq,"method":"tools/call","params":{"name":t.tool,"arguments":t.args}})
        }
        BenchProtocol::Legacy => {
            json!({"op":"call_tool","request_id":seq.to_string(),"name":t.tool,"arguments":t.args})
        }
    }
}

/// Classifies a frame from the server.
pub fn classify(protocol: BenchProtocol, v: &Value) -> Incoming {
    match protocol {
        BenchProtocol::Mcp => {
            if v.get("method").and_then(Value::as_str) == Some("ping") {
                return Incoming::Ping(v["id"].clone());
            }
            match v.get("id").and_then(Value::as_u64) {
                Some(seq) if v.get("method").is_none() => {
                    Incoming::Reply { seq, ok: v.get("result").is_some_and(|r| r["isError"] != json!(true)) }
                }
                _ => Incoming::Other,
            }
        }
        BenchProtocol::Legacy => {
            let seq = v["request_id"].as_str().and_then(|s| s.parse().ok());
            match seq {
                Some(seq) if v["op"] == "call_tool_res" => Incoming::Reply { seq, ok: v["ok"] == json!(true) },
                _ => Incoming::Other,
            }
        }
    }
}

/// The next JSON frame (answering WebSocket pings on the way); `None` when the connection ended.
pub async fn recv_json(ws: &mut Framed) -> Option<Value> {
    while let Some(frame) = ws.next().await {
        match frame.ok()? {
            awc::ws::Frame::Text(b) | awc::ws::Frame::Binary(b) => return serde_json::from_slice(&b).ok(),
            awc::ws::Frame::Ping(p) => {
                let _ = ws.send(awc::ws::Message::Pong(p)).await;
            }
            awc::ws::Frame::Close(_) => return None,
            _ => {}
        }
    }
    None
}

/// Sends one JSON frame; false when the connection is gone.
pub async fn send_json(ws: &mut Framed, v: &Value) -> bool {
    ws.send(awc::ws::Message::Text(v.to_string().into())).await.is_ok()
}

/// Answers an MCP ping.
pub async fn pong(ws: &mut Framed, id: Value) -> bool {
    send_json(ws, &json!({"jsonrpc":"2.0","id":id,"result":{}})).await
}

/// Connects and completes the protocol handshake (`initialize` + `initialized`, or `hello`).
pub async fn connect(t: &Target) -> Result<Framed, BenchError> {
    let client = awc::Client::builder().timeout(Duration::from_secs(30)).finish();
    let mut url = t.url.clone();
    let mut req;
    if t.protocol == BenchProtocol::Mcp {
        if let Some(tok) = &t.token {
            url = format!("{url}{}token={tok}", if url.contains('?') { '&' } else { '?' });
        }
        req = client.ws(url).protocols(["mcp"]);
    } else {
        req = client.ws(url);
    }
    req = req.max_frame_size(64 * 1024 * 1024);
    let (_, mut ws) = req.connect().await.map_err(|e| BenchError::Connect(e.to_string()))?;
    let hello = match t.protocol {
        BenchProtocol::Mcp => json!({"jsonrpc":"2.0","id":"init","method":"initialize","params":{
            "protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"exai-bench","version":"1"}}}),
        BenchProtocol::Legacy => json!({"op":"hello","token":t.token}),
    };
    if !send_json(&mut ws, &hello).await {
        return Err(BenchError::Connect("handshake send failed".into()));
    }
    let ack = recv_json(&mut ws).await.ok_or_else(|| BenchError::Connect("no handshake reply".into()))?;
    let ok = match t.protocol {
        BenchProtocol::Mcp => ack.get("result").is_some(),
        BenchProtocol::Legacy => ack["ok"] == json!(true),
    };
    if !ok {
        return Err(BenchError::Connect(format!("handshake refused: {ack}")));
    }
    if t.protocol == BenchProtocol::Mcp {
        send_json(&mut ws, &json!({"jsonrpc":"2.0","method":"notifications/initialized"})).await;
    }
    Ok(ws)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(protocol: BenchProtocol) -> Target {
        Target { url: String::new(), protocol, tool: "version".into(), args: json!({}), token: None }
    }

    #[test]
    fn requests_carry_the_call_number() {
        let m = request(&target(BenchProtocol::Mcp), 42);
        assert_eq!((m["id"].clone(), m["params"]["name"].clone()), (json!(42), json!("version")));
        let l = request(&target(BenchProtocol::Legacy), 42);
        assert_eq!((l["request_id"].clone(), l["op"].clone()), (json!("42"), json!("call_tool")));
    }

    #[test]
    fn replies_are_classified() {
        let mcp = BenchProtocol::Mcp;
        assert_eq!(
            classify(mcp, &json!({"jsonrpc":"2.0","id":7,"result":{"isError":false}})),
            Incoming::Reply { seq: 7, ok: true }
        );
        assert_eq!(
            classify(mcp, &json!({"jsonrpc":"2.0","id":7,"result":{"isError":true}})),
            Incoming::Reply { seq: 7, ok: false }
        );
        assert_eq!(classify(mcp, &json!({"id":8,"error":{"code":-32000}})), Incoming::Reply { seq: 8, ok: false });
        assert_eq!(classify(mcp, &json!({"id":"p1","method":"ping"})), Incoming::Ping(json!("p1")));
        assert_eq!(classify(mcp, &json!({"method":"notifications/progress"})), Incoming::Other);
        let legacy = BenchProtocol::Legacy;
        assert_eq!(
            classify(legacy, &json!({"op":"call_tool_res","request_id":"9","ok":true})),
            Incoming::Reply { seq: 9, ok: true }
        );
        assert_eq!(classify(legacy, &json!({"op":"progress","request_id":"9"})), Incoming::Other);
    }
}
