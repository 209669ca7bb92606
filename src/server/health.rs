//! Health and metrics endpoints: `/health/live`, `/health/ready`, `/health/websocket` (JSON;
//! 200 means healthy, 503 means not) and `/metrics` (Prometheus text format; needs
//! `server.metrics_token` as `Authorization: Bearer <token>` when one is configured).
//!
//! Work in flight is never a fault: readiness depends on the store answering with current
//! migrations, every supervised actor running, the server not shutting down, and — once
//! providers report breaker states (`RuntimeState::breakers`) — at least one provider's
//! breaker not being open. Open breakers are listed under `degraded` while others still serve.

use super::ws::{presented_token, token_matches};
use super::AppState;
use actix_web::{web, HttpRequest, HttpResponse};
use exai_actors::breakers::BreakerState;
use exai_actors::supervision::ChildState;
use serde_json::json;
use std::sync::atomic::Ordering;

/// Liveness: the process answers.
pub async fn live(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "live", "uptime_secs": state.runtime.uptime_secs() }))
}

/// Readiness: store reachable with migrations applied, actors running, not shutting down.
pub async fn ready(state: web::Data<AppState>) -> HttpResponse {
    let store = match state.store.ping().await {
        Err(e) => json!({ "reachable": false, "error": e.to_string() }),
        Ok(()) => match state.store.migration_status().await {
            Ok(m) => json!({ "reachable": true, "migrations_current": m.is_current(), "applied": m.applied }),
            Err(e) => json!({ "reachable": true, "migrations_current": false, "error": e.to_string() }),
        },
    };
    let actors = state.runtime.children();
    // A full disk: turns and log rows cannot be stored, so new turns are refused.
    let storage_problem = state.runtime.storage.problem();
    let store_degraded = storage_problem.is_some();
    let store_ok = store["reachable"] == json!(true) && store["migrations_current"] == json!(true) && !store_degraded;
    let actors_ok = actors.iter().all(|c| c.state == ChildState::Running);
    let shutting = state.runtime.is_shutting_down();
    let breakers = state.runtime.breakers.snapshot();
    let all_open = state.runtime.breakers.all_open();
    let open: Vec<&str> =
        breakers.iter().filter(|b| b.state == BreakerState::Open).map(|b| b.provider.as_str()).collect();
    let ok = store_ok && actors_ok && !shutting && !all_open;
    let body = json!({
        "status": if ok { "ready" } else { "not_ready" },
        "store": {
            "backend": state.store.backend(),
            "detail": store,
            "status": if store_degraded { "degraded" } else { "ok" },
            "problem": storage_problem,
            "free_bytes": state.runtime.storage.free_bytes(),
        },
        "actors": actors,
        "providers": state.catalog.providers(),
        "breakers": breakers,
        "degraded": { "open_breakers": open, "store": store_degraded },
        "shutting_down": shutting,
    });
    if ok {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

/// WebSocket and call capacity.
pub async fn websocket(state: web::Data<AppState>) -> HttpResponse {
    let r = &state.runtime;
    let used = r.inflight.in_use();
    let (permits_used, permits_max) = state.session_deps.dispatcher.env().providers.global_usage();
    let max = r.inflight.max();
    let body = json!({
        "status": if r.is_shutting_down() { "draining" } else { "ok" },
        "connections": r.connections.total(),
        "max_connections": state.settings.max_connections,
        "sessions": {
            "mcp_ws": r.sessions_mcp_ws.load(Ordering::Relaxed),
            "legacy_ws": r.sessions_legacy.load(Ordering::Relaxed),
            "mcp_http": r.sessions_http.load(Ordering::Relaxed),
        },
        "inflight": { "global": used, "global_max": max, "utilization": if max == 0 { 0.0 } else { used as f64 / max as f64 } },
        "toollog_queue": state.toollog.len(),
        "conversation_journal_pending": state.journal.as_ref().map(|j| j.pending()),
        "provider_permits": { "in_use": permits_used, "max": permits_max },
        "resume": {
            "sessions": state.session_deps.sessions.len(),
            "buffered_replies": state.session_deps.sessions.buffered(),
        },
    });
    if r.is_shutting_down() {
        HttpResponse::ServiceUnavailable().json(body)
    } else {
        HttpResponse::Ok().json(body)
    }
}

/// Prometheus exposition (scrape-time gauges refreshed first).
pub async fn metrics(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    if let Some(t) = &state.metrics_token {
        if !presented_token(&req).is_some_and(|g| token_matches(t, &g)) {
            return HttpResponse::Unauthorized()
                .insert_header(("WWW-Authenticate", "Bearer"))
                .content_type("text/plain; charset=utf-8")
                .body("metrics token required (server.metrics_token): Authorization: Bearer <token>\n");
        }
    }
    state.metrics.refresh_runtime(&state.runtime, state.toollog.len());
    HttpResponse::Ok().content_type("text/plain; version=0.0.4; charset=utf-8").body(state.metrics.render())
}
