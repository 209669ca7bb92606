//! Admin endpoints, protected by `server.admin_token` when one is configured, else by
//! `server.auth_token` (see [`AppState::admin_guard`]).
//!
//! `POST /admin/shutdown` starts staged shutdown; it exists only when an admin token is
//! configured. `POST /admin/debug/crash/{child}` makes a supervised actor panic; it exists
//! only when `debug.fault_injection` is enabled (tests use it to prove the coordinator
//! recreates a panicked actor) and needs the admin token (or, without one, the auth token).
//! `POST /admin/debug/error` (same conditions) logs an ERROR event with the message given in
//! its JSON body `{"message": "..."}`, under the target `exai::debug` — tests use it to feed
//! the error watcher.

use super::ws::{presented_token, token_matches};
use super::AppState;
use actix_web::{web, HttpRequest, HttpResponse};
use exai_actors::coordinator::{CrashChild, Shutdown};
use serde_json::json;

pub(super) fn authorized(req: &HttpRequest, state: &AppState) -> bool {
    match &state.admin_guard {
        None => true,
        Some(t) => presented_token(req).is_some_and(|g| token_matches(t, &g)),
    }
}

pub(super) fn unauthorized() -> HttpResponse {
    HttpResponse::Unauthorized()
        .insert_header(("WWW-Authenticate", "Bearer"))
        .json(json!({ "error": { "code": "UNAUTHORIZED", "message": "admin token required" } }))
}

/// Start staged shutdown.
pub async fn shutdown(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    if state.admin_token.is_none() {
        return HttpResponse::NotFound().finish();
    }
    if !authorized(&req, &state) {
        return unauthorized();
    }
    state.coordinator.do_send(Shutdown { reason: "admin request".into() });
    HttpResponse::Accepted().json(json!({ "status": "shutting_down" }))
}

/// Fault injection: crash a supervised child.
pub async fn crash(req: HttpRequest, path: web::Path<String>, state: web::Data<AppState>) -> HttpResponse {
    if !state.fault_injection {
        return HttpResponse::NotFound().finish();
    }
    if !authorized(&req, &state) {
        return unauthorized();
    }
    let name = path.into_inner();
    match state.coordinator.send(CrashChild { name: name.clone() }).await {
        Ok(true) => HttpResponse::Accepted().json(json!({ "crashed": name })),
        Ok(false) => HttpResponse::NotFound()
            .json(json!({ "error": { "code": "NOT_FOUND", "message": format!("no running child '{name}'") } })),
        Err(e) => HttpResponse::ServiceUnavailable()
            .json(json!({ "error": { "code": "SERVICE_UNAVAILABLE", "message": e.to_string() } })),
    }
}

/// Fault injection: `pause` or `resume` applying journaled conversation turns to the store
/// (a paused writer stands for one that is stuck or behind; the turns stay in the journal).
pub async fn conversation_writer(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> HttpResponse {
    if !state.fault_injection {
        return HttpResponse::NotFound().finish();
    }
    if !authorized(&req, &state) {
        return unauthorized();
    }
    let Some(wb) = &state.journal else {
        return HttpResponse::NotFound()
            .json(json!({ "error": { "code": "NOT_FOUND", "message": "conversation write-behind is off" } }));
    };
    match path.as_str() {
        "pause" => wb.set_paused(true),
        "resume" => wb.set_paused(false),
        other => {
            return HttpResponse::BadRequest().json(json!({ "error": { "code": "INVALID_ARGUMENT",
                "message": format!("unknown action '{other}' (pause or resume)") } }))
        }
    }
    HttpResponse::Accepted().json(json!({ "conversation_writer": path.as_str(), "pending": wb.pending() }))
}

/// Body of `POST /admin/debug/error`.
#[derive(serde::Deserialize)]
pub struct ErrorBody {
    message: String,
}

/// Fault injection: log an ERROR event with the given message.
pub async fn log_error(req: HttpRequest, body: web::Json<ErrorBody>, state: web::Data<AppState>) -> HttpResponse {
    if !state.fault_injection {
        return HttpResponse::NotFound().finish();
    }
    if !authorized(&req, &state) {
        return unauthorized();
    }
    let message: String = body.into_inner().message.chars().take(2000).collect();
    tracing::error!(target: "exai::debug", "{message}");
    HttpResponse::Accepted().json(json!({ "logged": message }))
}
