//! The built-in dashboard and its JSON API (see `docs/OBSERVABILITY.md`).
//!
//! - `GET /dashboard`: the page (HTML, CSS and JS from `static/`, embedded in the binary;
//!   no build step, nothing fetched from elsewhere — a Content-Security-Policy enforces it).
//! - `GET /dashboard/events`: Server-Sent Events, one `overview` event per second.
//! - `GET /api/overview`, `/api/timeseries`, `/api/providers`, `/api/toolcalls`,
//!   `/api/errors`, `/api/auditor/observations`; `POST /api/errors/{id}/resolve`,
//!   `POST /api/auditor/observations/{id}/acknowledge`; `GET /api/cluster` (`cluster.rs`).
//!
//! Every route checks Host (DNS-rebinding protection) and Origin like `/mcp` does, and needs
//! `server.admin_token` when one is configured, else `server.auth_token` when that is set
//! (only a loopback-only server without either token leaves them open), as
//! `Authorization: Bearer <token>` or `?token=<token>` (the page keeps the token it was
//! opened with for its own requests).
//! With `monitoring.dashboard_enabled = false` none of these routes exist.

mod api;
mod cluster;
mod error;
mod overview;
mod page;
pub mod samples;

use super::mcp_http::guard;
use super::ws::{presented_token, token_matches};
use super::AppState;
use actix_web::{web, HttpRequest};
pub use error::ApiError;
use exai_actors::files::ports::{FileRegistry, FileStats};
use samples::SampleRing;
use serde::Serialize;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// How a model-backed watcher is set up, as the dashboard shows it.
#[derive(Debug, Clone, Serialize)]
pub struct AiStatus {
    /// Switched on in the configuration.
    pub enabled: bool,
    /// Configured model.
    pub model: String,
    /// Hard budget per hour.
    pub calls_per_hour: u32,
    /// Whether an analysis model is wired into this process (without one, nothing is asked).
    pub model_wired: bool,
}

/// Dashboard state shared by every worker.
pub struct Monitoring {
    /// Whether the routes exist.
    pub dashboard_enabled: bool,
    /// Most event streams at once.
    pub max_streams: usize,
    /// Per-second samples.
    pub samples: Arc<SampleRing>,
    /// Whether the error watcher runs.
    pub error_watcher_enabled: bool,
    /// Error analyses.
    pub error_ai: AiStatus,
    /// The auditor.
    pub auditor: AiStatus,
    /// The auditor's sample rate.
    pub auditor_sample_rate: f64,
    /// Dedup and cleanup totals read from the store (every node shows the same), refreshed
    /// every [`FILE_STATS_EVERY`] by [`spawn_file_stats`]; `None` before the first read or
    /// without the files tables.
    file_stats: std::sync::RwLock<Option<FileStats>>,
    streams: AtomicUsize,
}

/// How often the dashboard re-reads the store's dedup and cleanup totals.
pub const FILE_STATS_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Keep `mon`'s store totals fresh: read them now, then every [`FILE_STATS_EVERY`] until
/// shutdown begins. A failed read keeps the last figures (and logs at WARN once per failure run).
pub async fn spawn_file_stats(
    mon: Arc<Monitoring>,
    registry: Arc<dyn FileRegistry>,
    runtime: Arc<exai_actors::env::RuntimeState>,
) {
    let read = |mon: &Monitoring, failing: &mut bool, r: Result<FileStats, exai_actors::ports::StoreError>| match r {
        Ok(s) => {
            *failing = false;
            if let Ok(mut slot) = mon.file_stats.write() {
                *slot = Some(s);
            }
        }
        Err(e) => {
            if !*failing {
                tracing::warn!(error = %e, "dashboard: cannot read dedup and cleanup totals from the store");
            }
            *failing = true;
        }
    };
    let mut failing = false;
    read(&mon, &mut failing, registry.file_stats().await);
    actix_rt::spawn(async move {
        let mut every = tokio::time::interval(FILE_STATS_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        every.tick().await;
        while !runtime.is_shutting_down() {
            every.tick().await;
            read(&mon, &mut failing, registry.file_stats().await);
        }
    });
}

impl Monitoring {
    /// Dashboard state from the configuration; `model_wired` tells whether an analysis model
    /// is available to the watchers.
    pub fn new(cfg: &crate::config::Config, model_wired: bool) -> Monitoring {
        let m = &cfg.monitoring;
        Monitoring {
            dashboard_enabled: m.dashboard_enabled,
            max_streams: m.dashboard_max_streams,
            samples: Arc::new(SampleRing::new(m.history_secs as usize)),
            error_watcher_enabled: m.error_watcher_enabled,
            error_ai: AiStatus {
                enabled: m.error_ai_enabled,
                model: m.error_ai_model.clone(),
                calls_per_hour: m.error_ai_calls_per_hour,
                model_wired,
            },
            auditor: AiStatus {
                enabled: m.auditor_enabled,
                model: m.auditor_model.clone(),
                calls_per_hour: m.auditor_calls_per_hour,
                model_wired,
            },
            auditor_sample_rate: m.auditor_sample_rate,
            file_stats: std::sync::RwLock::new(None),
            streams: AtomicUsize::new(0),
        }
    }

    /// The store's dedup and cleanup totals as last read.
    pub fn file_stats(&self) -> Option<FileStats> {
        self.file_stats.read().ok().and_then(|s| s.clone())
    }

    /// Take an event-stream slot, if one is free.
    fn open_stream(self: &Arc<Self>, gauge: prometheus::IntGauge) -> Option<StreamSlot> {
        let mut cur = self.streams.load(Ordering::Relaxed);
        loop {
            if cur >= self.max_streams {
                return None;
            }
            match self.streams.compare_exchange_weak(cur, cur + 1, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => {
                    gauge.inc();
                    return Some(StreamSlot { owner: Arc::clone(self), gauge });
                }
                Err(actual) => cur = actual,
            }
        }
    }
}

/// A held event-stream slot; released on drop.
pub(crate) struct StreamSlot {
    owner: Arc<Monitoring>,
    gauge: prometheus::IntGauge,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.owner.streams.fetch_sub(1, Ordering::AcqRel);
        self.gauge.dec();
    }
}

/// Host, Origin and token checks shared by every dashboard route.
pub(crate) fn check(req: &HttpRequest, state: &AppState) -> Result<(), ApiError> {
    guard::check_access(req, &state.settings.access).map_err(|e| ApiError::Forbidden(e.to_string()))?;
    match &state.admin_guard {
        None => Ok(()),
        Some(t) if presented_token(req).is_some_and(|g| token_matches(t, &g)) => Ok(()),
        Some(_) => Err(ApiError::Unauthorized),
    }
}

/// Register the dashboard routes (when enabled).
pub fn routes(cfg: &mut web::ServiceConfig, enabled: bool) {
    if !enabled {
        return;
    }
    cfg.route("/dashboard", web::get().to(page::page))
        .route("/dashboard/", web::get().to(page::page))
        .route("/dashboard/events", web::get().to(page::events))
        .route("/api/overview", web::get().to(api::overview))
        .route("/api/cluster", web::get().to(cluster::nodes))
        .route("/api/timeseries", web::get().to(api::timeseries))
        .route("/api/providers", web::get().to(api::providers))
        .route("/api/toolcalls", web::get().to(api::toolcalls))
        .route("/api/errors", web::get().to(api::errors))
        .route("/api/errors/{id}/resolve", web::post().to(api::resolve_error))
        .route("/api/auditor/observations", web::get().to(api::observations))
        .route("/api/auditor/observations/{id}/acknowledge", web::post().to(api::acknowledge));
}
