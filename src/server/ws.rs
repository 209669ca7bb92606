//! WebSocket upgrade: admission (auth, connection limits), subprotocol negotiation, and the
//! hand-over of the connection to a `WsSession` actor plus its single ordered writer task.

use super::AppState;
use actix::{Actor, AsyncContext};
use actix_web::{web, HttpRequest, HttpResponse};
use actix_ws::{AggregatedMessage, CloseCode, CloseReason, ProtocolError};
use exai_actors::session::{ConnInfo, Inbound, Outbound, ReturnSlot, WriterLink, WsSession};
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
        // RFC 6455: 1009 for a message too big, whether one frame or reassembled fragments
        // (actix-ws reports the latter as an I/O error), 1007 for a text message that is not
        // UTF-8.
        Err(ProtocolError::Overflow) => {
            Inbound::Error { code: 1009, reason: format!("message too big (limit {limit} bytes)") }
        }
        Err(ProtocolError::Io(e)) if e.to_string().contains("maximum continuation size") => {
            Inbound::Error { code: 1009, reason: format!("message too big (limit {limit} bytes)") }
        }
        Err(ProtocolError::Io(e)) if e.kind() == std::io::ErrorKind::InvalidData => {
            Inbound::Error { code: 1007, reason: "text message is not valid UTF-8".into() }
        }
        Err(e) => Inbound::Error { code: 1002, reason: format!("protocol error: {e}") },
    }
}

/// The one task that writes to the socket: frames in outbox order, or — when the session asks
/// for an urgent close (a client that stopped reading) — the close frame ahead of them.
/// Frames it could not write (the one in hand and the rest of the outbox, after an urgent
/// close or a failed write) go back to the session core for resume.
async fn writer(mut session: actix_ws::Session, mut rx: mpsc::Receiver<Outbound>, mut link: WriterSide) {
    let mut urgent = link.urgent.take();
    loop {
        let next = tokio::select! {
            biased;
            c = urgent_close(&mut urgent) => Err(c),
            m = rx.recv() => Ok(m),
        };
        let m = match next {
            Err(c) => return link.give_back_and_close(session, rx, None, c).await,
            Ok(None) => {
                let _ = session.close(Some(CloseReason { code: CloseCode::Normal, description: None })).await;
                return;
            }
            Ok(Some(m)) => m,
        };
        let step = match m {
            Outbound::Text(t) => {
                link.gauge.taken(t.len());
                let t = bytestring::ByteString::from(t);
                tokio::select! {
                    biased;
                    c = urgent_close(&mut urgent) => Step::Urgent(c, Some(t)),
                    r = tokio::time::timeout(link.send_timeout, session.text(t.clone())) => match r {
                        Ok(Ok(())) => {
                            link.frames_out.inc();
                            Step::Sent
                        }
                        _ => Step::Failed(Some(t)),
                    },
                }
            }
            Outbound::Close(code, reason) => {
                let r = CloseReason { code: CloseCode::from(code), description: Some(reason) };
                let _ = tokio::time::timeout(link.send_timeout, session.close(Some(r))).await;
                return;
            }
            Outbound::Ping(b) => control(&mut urgent, tokio::time::timeout(link.send_timeout, session.ping(&b))).await,
            Outbound::Pong(b) => control(&mut urgent, tokio::time::timeout(link.send_timeout, session.pong(&b))).await,
        };
        match step {
            Step::Sent => {}
            Step::Urgent(c, in_hand) => return link.give_back_and_close(session, rx, in_hand, c).await,
            Step::Failed(in_hand) => {
                link.give_back(&mut rx, in_hand);
                return;
            }
        }
    }
}

/// Send a control frame unless an urgent close comes first.
async fn control<F>(urgent: &mut Option<tokio::sync::oneshot::Receiver<(u16, String)>>, send: F) -> Step
where
    F: std::future::Future<Output = Result<Result<(), actix_ws::Closed>, tokio::time::error::Elapsed>>,
{
    tokio::select! {
        biased;
        c = urgent_close(urgent) => Step::Urgent(c, None),
        r = send => if matches!(r, Ok(Ok(()))) { Step::Sent } else { Step::Failed(None) },
    }
}

/// What one outbound frame came to.
enum Step {
    Sent,
    /// The session asked for an urgent close (with the text frame in hand, if any).
    Urgent((u16, String), Option<bytestring::ByteString>),
    /// The write failed or timed out (the connection is gone or not read).
    Failed(Option<bytestring::ByteString>),
}

/// The writer's side of its link with the session.
struct WriterSide {
    urgent: Option<tokio::sync::oneshot::Receiver<(u16, String)>>,
    return_slot: ReturnSlot,
    gauge: std::sync::Arc<exai_actors::session::core::OutboxGauge>,
    send_timeout: Duration,
    /// How long an urgent close waits for room for the close frame (the client must read).
    linger: Duration,
    frames_out: prometheus::IntCounter,
}

impl WriterSide {
    /// Stop taking frames and give the unwritten ones back to the session core, in order.
    fn give_back(&self, rx: &mut mpsc::Receiver<Outbound>, in_hand: Option<bytestring::ByteString>) {
        rx.close();
        let mut frames: Vec<String> = in_hand.map(|t| t.to_string()).into_iter().collect();
        while let Ok(m) = rx.try_recv() {
            if let Outbound::Text(t) = m {
                self.gauge.taken(t.len());
                frames.push(t);
            }
        }
        self.return_slot.give_back(frames);
    }

    /// Urgent close: frames not yet written return to the session; the close frame follows
    /// what the socket already holds, as soon as the client reads enough to make room.
    async fn give_back_and_close(
        &self,
        session: actix_ws::Session,
        mut rx: mpsc::Receiver<Outbound>,
        in_hand: Option<bytestring::ByteString>,
        (code, reason): (u16, String),
    ) {
        self.give_back(&mut rx, in_hand);
        let r = CloseReason { code: CloseCode::from(code), description: Some(reason) };
        let _ = tokio::time::timeout(self.linger, session.close(Some(r))).await;
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
    // Browsers apply no CORS to WebSocket upgrades: the core's Host and Origin rules hold here
    // exactly as on `POST /mcp` (clients that send no Origin, such as editors and SDKs, pass).
    if let Err(e) = super::mcp_http::guard::check_access(&req, &s.access) {
        state.metrics.connections_rejected.with_label_values(&["forbidden"]).inc();
        tracing::warn!(peer = ?req.peer_addr(), error = %e, "WebSocket upgrade refused");
        return Ok(HttpResponse::Forbidden().body(e.to_string()));
    }
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
    let resume = query_param(&req, "session_id");
    if resume.as_deref().is_some_and(|s| !exai_actors::protocol::legacy::valid_session_id(s)) {
        // A clear error, not a silently replaced id (the client would lose its session).
        return Ok(
            HttpResponse::BadRequest().body("invalid session_id: 3 to 64 characters of A-Z, a-z, 0-9, '-' and '_'")
        );
    }
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
    let return_slot = ReturnSlot::default();
    let gauge = state.session_deps.sessions.outbox_gauge();
    let side = WriterSide {
        urgent: Some(urgent_rx),
        return_slot: return_slot.clone(),
        gauge: std::sync::Arc::clone(&gauge),
        send_timeout: Duration::from_secs(s.client_timeout_secs.max(1)),
        linger: state.session_deps.close_linger,
        frames_out: state.metrics.frames.with_label_values(&["out"]),
    };
    actix_rt::spawn(writer(session, rx, side));
    let info = ConnInfo { peer, mcp_subprotocol: mcp, authenticated, guard, resume };
    let deps = state.session_deps.clone();
    WsSession::create(move |ctx| {
        ctx.add_stream(stream);
        WsSession::new(deps, info, tx, WriterLink { urgent_close: urgent_tx, gauge, return_slot })
    });
    Ok(resp)
}
