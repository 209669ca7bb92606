//! The actix-web server: one port for WebSocket (MCP and legacy), Streamable HTTP on `/mcp`,
//! health, metrics and admin routes.
//!
//! Routes:
//! - `GET /`, `GET /ws`: WebSocket upgrade (protocol detected from the first frame, or `mcp`
//!   when the subprotocol is offered).
//! - `GET /mcp`: WebSocket upgrade when asked for, else the Streamable HTTP SSE stream;
//!   `POST /mcp`, `DELETE /mcp`: Streamable HTTP.
//! - `GET /health/live`, `/health/ready`, `/health/websocket`, `GET /metrics`.
//! - `POST /admin/shutdown`, `POST /admin/debug/crash/{child}`,
//!   `POST /admin/debug/conversation-writer/{pause,resume}`, `POST /admin/debug/error`
//!   (admin token; the debug routes only with fault injection enabled).
//! - `POST /admin/cleanup?dry_run=true|false` (run a staged cleanup; answers its report),
//!   `GET /admin/cleanup` (progress of the current run); admin token required.
//! - `GET /dashboard`, `/dashboard/events` and the JSON API under `/api/` ([`dashboard`]).

mod admin;
mod admin_cleanup;
pub mod dashboard;
mod health;
pub mod mcp_http;
mod ws;

use actix::Addr;
use actix_web::{web, HttpRequest, HttpResponse};
use exai_actors::catalog::Catalog;
use exai_actors::coordinator::SystemCoordinator;
use exai_actors::env::RuntimeState;
use exai_actors::metrics::Metrics;
use exai_actors::ports::Store;
use exai_actors::session::SessionDeps;
use exai_actors::settings::CoreSettings;
use exai_actors::toollog::ToolLogQueue;
use std::sync::Arc;

/// Shared state of every HTTP worker.
#[derive(Clone)]
pub struct AppState {
    /// Core settings.
    pub settings: Arc<CoreSettings>,
    /// Runtime state.
    pub runtime: Arc<RuntimeState>,
    /// Metrics.
    pub metrics: Metrics,
    /// Store.
    pub store: Arc<dyn Store>,
    /// Catalogue.
    pub catalog: Arc<Catalog>,
    /// Tool-call log queue (for its length in health).
    pub toollog: ToolLogQueue,
    /// What WebSocket sessions need.
    pub session_deps: SessionDeps,
    /// The coordinator.
    pub coordinator: Addr<SystemCoordinator>,
    /// Admin token, if configured (the shutdown and cleanup routes exist only with one).
    pub admin_token: Option<String>,
    /// The token that guards the admin surface (dashboard, `/api/*`, `/admin/*`):
    /// `server.admin_token` when set, else `server.auth_token`; none when neither is set.
    pub admin_guard: Option<String>,
    /// `server.metrics_token`: when set, `GET /metrics` requires it.
    pub metrics_token: Option<String>,
    /// Whether fault-injection routes exist.
    pub fault_injection: bool,
    /// Streamable HTTP sessions.
    pub mcp_http: Arc<mcp_http::McpHttp>,
    /// Dashboard state (samples, watcher settings, stream slots).
    pub monitoring: Arc<dashboard::Monitoring>,
    /// The cleanup coordinator (when the store has the files tables).
    pub cleanup: Option<exai_actors::coordinator::ChildHandle<exai_actors::files::cleanup::CleanupCoordinator>>,
    /// Conversation write-behind (when enabled).
    pub journal: Option<Arc<exai_actors::conversation::writer::WriteBehind>>,
    /// Cluster membership (cluster mode only).
    pub cluster: Option<crate::cluster::Cluster>,
}

async fn mcp_get(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
    http: web::Data<Arc<mcp_http::McpHttp>>,
) -> actix_web::Result<HttpResponse> {
    if ws::is_upgrade(&req) {
        ws::upgrade(req, body, state).await
    } else {
        Ok(mcp_http::get(req, http).await)
    }
}

async fn root(req: HttpRequest, body: web::Payload, state: web::Data<AppState>) -> actix_web::Result<HttpResponse> {
    if ws::is_upgrade(&req) {
        return ws::upgrade(req, body, state).await;
    }
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "name": state.settings.server_name,
        "version": state.settings.server_version,
        "websocket": ["/", "/ws", "/mcp"],
        "streamable_http": "/mcp",
        "health": ["/health/live", "/health/ready", "/health/websocket"],
        "metrics": "/metrics",
        "dashboard": state.monitoring.dashboard_enabled.then_some("/dashboard"),
    })))
}

/// Register every route.
pub fn configure(cfg: &mut web::ServiceConfig, state: AppState) {
    let http = Arc::clone(&state.mcp_http);
    let payload = http.payload_config();
    let dashboard_enabled = state.monitoring.dashboard_enabled;
    cfg.app_data(web::Data::new(state))
        .app_data(web::Data::new(http))
        .app_data(payload)
        .route("/", web::get().to(root))
        .route("/ws", web::get().to(ws::upgrade))
        .route("/mcp", web::get().to(mcp_get))
        .route("/mcp", web::post().to(mcp_http::post))
        .route("/mcp", web::delete().to(mcp_http::delete))
        .route("/health/live", web::get().to(health::live))
        .route("/health/ready", web::get().to(health::ready))
        .route("/health/websocket", web::get().to(health::websocket))
        .route("/metrics", web::get().to(health::metrics))
        .route("/admin/shutdown", web::post().to(admin::shutdown))
        .route("/admin/cleanup", web::post().to(admin_cleanup::run))
        .route("/admin/cleanup", web::get().to(admin_cleanup::progress))
        .route("/admin/debug/crash/{child}", web::post().to(admin::crash))
        .route("/admin/debug/conversation-writer/{action}", web::post().to(admin::conversation_writer))
        .route("/admin/debug/error", web::post().to(admin::log_error));
    dashboard::routes(cfg, dashboard_enabled);
}
