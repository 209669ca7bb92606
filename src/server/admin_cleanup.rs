//! `POST /admin/cleanup?dry_run=…` runs one staged cleanup and answers its report (409 when
//! a run is already in progress on this node or another); `GET /admin/cleanup` answers the
//! progress of the current run (what `exai cleanup` draws its progress bar from). Both
//! exist only when `server.admin_token` is configured and require it.

use super::admin::{authorized, unauthorized};
use super::AppState;
use actix_web::{web, HttpRequest, HttpResponse};
use exai_actors::files::cleanup::{GetProgress, RunCleanup};
use exai_actors::files::cleanup_run::CleanupError;
use serde::Deserialize;
use serde_json::json;

/// Query of `POST /admin/cleanup`.
#[derive(Debug, Deserialize)]
pub struct RunQuery {
    /// Change nothing; report what would be deleted.
    #[serde(default)]
    dry_run: bool,
    /// `http` (default) or `cli` (set by `exai cleanup`).
    #[serde(default)]
    trigger: Option<String>,
}

fn unavailable(msg: &str) -> HttpResponse {
    HttpResponse::ServiceUnavailable().json(json!({ "error": { "code": "SERVICE_UNAVAILABLE", "message": msg } }))
}

fn gate(req: &HttpRequest, state: &AppState) -> Option<HttpResponse> {
    if state.admin_token.is_none() {
        return Some(HttpResponse::NotFound().finish());
    }
    if !authorized(req, state) {
        return Some(unauthorized());
    }
    None
}

/// Run a cleanup.
pub async fn run(req: HttpRequest, q: web::Query<RunQuery>, state: web::Data<AppState>) -> HttpResponse {
    if let Some(r) = gate(&req, &state) {
        return r;
    }
    let Some(addr) = state.cleanup.as_ref().and_then(|h| h.get()) else {
        return unavailable("cleanup coordinator is not running");
    };
    let trigger = match q.trigger.as_deref() {
        Some("cli") => "cli",
        _ => "http",
    };
    match addr.send(RunCleanup { trigger: trigger.into(), dry_run: q.dry_run }).await {
        Ok(Ok(report)) => HttpResponse::Ok().json(report),
        Ok(Err(CleanupError::Busy)) => HttpResponse::Conflict()
            .json(json!({ "error": { "code": "CONFLICT", "message": CleanupError::Busy.to_string() } })),
        Ok(Err(e)) => unavailable(&e.to_string()),
        Err(_) => unavailable("cleanup coordinator stopped during the run"),
    }
}

/// Progress of the current run.
pub async fn progress(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    if let Some(r) = gate(&req, &state) {
        return r;
    }
    let Some(addr) = state.cleanup.as_ref().and_then(|h| h.get()) else {
        return unavailable("cleanup coordinator is not running");
    };
    match addr.send(GetProgress).await {
        Ok(p) => HttpResponse::Ok().json(p),
        Err(_) => unavailable("cleanup coordinator stopped"),
    }
}
