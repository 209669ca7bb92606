//! WebSocket upgrade: admission (auth, connection limits), subprotocol negotiation, and the
//! hand-over of the connection to a `WsSession` actor plus its single ordered writer task.

use super::AppState;
use actix::{Actor, AsyncContext};
use actix_web::{web, HttpRequest, HttpResponse};
use actix_ws::{AggregatedMessage, CloseCode, CloseReason, ProtocolError};
use exai_actors::session::{ConnInfo, Inbound, Outbound, WsSession};
use futures_util::StreamExt;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;
use subtle::ConstantTimeEq;
use tokio::sync::mpsc;

/// The token presented at upgrade: `Authorization: Bearer …` or `?token=…`.
pub(crate) fn presented_token(req: &HttpRequest) -> Option<String> {
    if let Some(h) = req.headers().get(actix_web::http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        if let Some(t) = h.strip_prefix("Bearer ") {
            return Some(t.trim().to_string());
        }
    }
    web::Query::<std::collections::HashMap<String, String>>::from_query(req.query_string())
        .ok()
        .and_then(|q| q.get("token").cloned())
}

fn query_param(req: &HttpRequest, name: &str) -> Option<String> {
    web::Query::<std::collections::HashMap<String, String>>::from_query(req.query_string())
        .ok()
        .and_then(|q| q.get(name).cloned())
}

/// Constant-time token comparison.
pub(crate) fn token_matches(expected: &str, given: &str) -> bool {
    given.len() == expected.len() && bool::from(given.as_bytes().ct_eq(expected.as_bytes()))
}

fn offers_mcp(req: &HttpRequest) -> bool {
    req.headers()
        .get_all(actix_web::http::header::SEC_WEBSOCKET_PROTOCOL)
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.split(',').any(|p| p.trim() == "mcp"))
}

/// True when the request asks for a WebSocket upgrade.
pub(crate) fn is_upgrade(req: &HttpRequest) -> bool {
    req.headers()
        .get(actix_web::http::header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

fn to_inbound(item: Result<AggregatedMessage, ProtocolError>, limit: usize) -> Inbound {
    match item {
        Ok(AggregatedMessage::Text(t)) => Inbound::Text(t.to_string()),
        Ok(AggregatedMessage::Binary(b)) => Inbound::Binary(b),
        Ok(AggregatedMessage::Ping(b)) => Inbound::Ping(b),
        Ok(AggregatedMessage::Pong(b)) => Inbound::Pong(b),
        Ok(AggregatedMessage::Close(r)) => {
            Inbound::Close(r.map(|r| (u16::from(r.code), r.description.unwrap_or_default())))
        }
        Err(ProtocolError::Overflow) => {
            Inbound::Error { code: 1009, reason: format!("message too big (limit {limit} bytes)") }
        }
        Err(e) => Inbound::Error { code: 1002, reason: format!("protocol error: {e}") },
    }
}

/// The one task that writes to the socket: frames in outbox order, or — when the session asks
/// for an urgent close (a client that stopped reading) — the close frame ahead of them.
async fn writer(
    mut session: actix_ws::Session,
    mut rx: mpsc::Receiver<Outbound>,
    urgent: tokio::sync::oneshot::Receiver<(u16, String)>,
    send_timeout: Duration,
    frames_out: prometheus::IntCounter,
) {
    let mut urgent = Some(urgent);
    loop {
        let next = tokio::select! {
            biased;
            (code, reason) = urgent_close(&mut urgent) => Err((code, reason)),
            m = rx.recv() => Ok(m),
        };
        let m = match next {
            Err((code, reason)) => return close_quickly(session, code, reason).await,
            Ok(None) => {
                let _ = session.close(Some(CloseReason { code: CloseCode::Normal, description: None })).await;
                return;
            }
            Ok(Some(m)) => m,
        };
        let urgent_close = tokio::select! {
            biased;
            c = urgent_close(&mut urgent) => Some(c),
            sent = async {
                match m {
                    Outbound::Text(t) => {
                        let r = tokio::time::timeout(send_timeout, session.text(t)).await;
                        if matches!(r, Ok(Ok(()))) {
                            frames_out.inc();
                        }
                        r
                    }
                    Outbound::Ping(b) => tokio::time::timeout(send_timeout, session.ping(&b)).await,
                    Outbound::Pong(b) => tokio::time::timeout(send_timeout, session.pong(&b)).await,
                    Outbound::Close(code, reason) => {
                        let r = CloseReason { code: CloseCode::from(code), description: Some(reason) };
                        let _ = tokio::time::timeout(send_timeout, session.clone().close(Some(r))).await;
                        Ok(Err(actix_ws::Closed))
                    }
                }
            } => {
                if !matches!(sent, Ok(Ok(()))) {
                    return;
                }
                None
            }
        };
        if let Some((code, reason)) = urgent_close {
            return close_quickly(session, code, reason).await;
        }
    }
}

/// Resolves with an urgent close request; never, once the session can no longer send one.
async fn urgent_close(u: &mut Option<tokio::sync::oneshot::Receiver<(u16, String)>>) -> (u16, String) {
    let got = match u.as_mut() {
        Some(rx) => rx.await.ok(),
        None => None,
    };
    *u = None;
    match got {
        Some(c) => c,
        None => std::future::pending().await,
    }
}

async fn close_quickly(session: actix_ws::Session, code: u16, reason: String) {
    let r = CloseReason { code: CloseCode::from(code), description: Some(reason) };
    let _ = tokio::time::timeout(Duration::from_secs(1), session.close(Some(r))).await;
}

async fn reject(req: &HttpRequest, body: web::Payload, code: u16, reason: String) -> actix_web::Result<HttpResponse> {
    let (resp, session, _stream) = actix_ws::handle(req, body)?;
    actix_rt::spawn(async move {
        let _ = session.close(Some(CloseReason { code: CloseCode::from(code), description: Some(reason) })).await;
    });
    Ok(resp)
}

/// GET with `Upgrade: websocket` on `/`, `/ws` or `/mcp`.
pub async fn upgrade(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> actix_web::Result<HttpResponse> {
    let s = &state.settings;
    if state.runtime.is_shutting_down() {
        return Ok(HttpResponse::ServiceUnavailable().body("server is shutting down"));
    }
    let mcp = offers_mcp(&req);
    let token = presented_token(&req);
    let authenticated = match (&s.auth_token, &token) {
        (None, _) => true,
        (Some(e), Some(g)) if token_matches(e, g) => true,
        (Some(_), Some(_)) => {
            tracing::warn!(peer = ?req.peer_addr(), "WebSocket upgrade with a wrong token");
            return Ok(HttpResponse::Unauthorized()
                .insert_header(("WWW-Authenticate", "Bearer"))
                .body("invalid token"));
        }
        // MCP clients must authenticate at upgrade; legacy clients may do it in `hello`.
        (Some(_), None) if mcp => {
            return Ok(HttpResponse::Unauthorized()
                .insert_header(("WWW-Authenticate", "Bearer"))
                .body("token required: Authorization: Bearer <token> or ?token=<token>"));
        }
        (Some(_), None) => false,
    };
    let peer = req.peer_addr().map(|a| a.ip()).unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
    let guard = match state.runtime.connections.try_admit(peer) {
        Ok(g) => g,
        Err(e) => {
            let reason = match e {
                exai_actors::limits::ConnLimitError::Global { .. } => "global",
                exai_actors::limits::ConnLimitError::PerIp { .. } => "per_ip",
            };
            state.metrics.connections_rejected.with_label_values(&[reason]).inc();
            tracing::warn!(peer = %peer, error = %e, "connection refused");
            return reject(&req, body, 1008, e.to_string()).await;
        }
    };
    let protocols: &[&str] = if mcp { &["mcp"] } else { &[] };
    let (resp, session, stream) = actix_ws::handle_with_protocols(&req, body, protocols)?;
    let limit = s.max_message_bytes;
    let stream = stream
        .max_frame_size(limit)
        .aggregate_continuations()
        .max_continuation_size(limit)
        .map(move |item| to_inbound(item, limit));
    let (tx, rx) = mpsc::channel(s.outbox_capacity.max(1));
    let (urgent_tx, urgent_rx) = tokio::sync::oneshot::channel();
    let frames_out = state.metrics.frames.with_label_values(&["out"]);
    actix_rt::spawn(writer(session, rx, urgent_rx, Duration::from_secs(s.client_timeout_secs.max(1)), frames_out));
    let resume = query_param(&req, "session_id").filter(|s| exai_actors::protocol::legacy::valid_session_id(s));
    let info = ConnInfo { peer, mcp_subprotocol: mcp, authenticated, guard, resume };
    let deps = state.session_deps.clone();
    WsSession::create(move |ctx| {
        ctx.add_stream(stream);
        WsSession::new(deps, info, tx, urgent_tx)
    });
    Ok(resp)
}
