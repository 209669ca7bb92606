//! `GET /dashboard` (the embedded page) and `GET /dashboard/events` (the live SSE feed).
//!
//! The page is assembled once from `static/dashboard.html`, `dashboard.css` and
//! `dashboard.js` (embedded with `include_str!`), so the binary needs no files at run time.
//! The event stream sends one `overview` event at once and then one per second; it ends when
//! the client goes away or shutdown begins, and at most `monitoring.dashboard_max_streams`
//! are open at once (more get 503).

use super::overview::overview;
use super::{check, ApiError, StreamSlot};
use crate::server::AppState;
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use bytes::Bytes;
use std::convert::Infallible;
use std::sync::LazyLock;
use std::time::Duration;

const HTML: &str = include_str!("../../../static/dashboard.html");
const CSS: &str = include_str!("../../../static/dashboard.css");
const JS: &str = include_str!("../../../static/dashboard.js");

/// The page with its stylesheet and script inlined.
static PAGE: LazyLock<String> =
    LazyLock::new(|| HTML.replace("/*@DASHBOARD_CSS@*/", CSS).replace("/*@DASHBOARD_JS@*/", JS));

/// Nothing is loaded from anywhere but this server; inline code only from the page itself.
const CSP: &str = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
                   connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// `GET /dashboard`.
pub async fn page(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    check(&req, &state)?;
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CONTENT_SECURITY_POLICY, CSP))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header(("referrer-policy", "no-referrer"))
        .body(PAGE.as_str()))
}

struct Feed {
    state: web::Data<AppState>,
    first: bool,
    _slot: StreamSlot,
}

fn event(state: &AppState) -> Bytes {
    Bytes::from(format!("event: overview\ndata: {}\n\n", overview(state)))
}

/// `GET /dashboard/events`.
pub async fn events(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    check(&req, &state)?;
    if state.runtime.is_shutting_down() {
        return Err(ApiError::ShuttingDown);
    }
    let slot =
        state.monitoring.open_stream(state.metrics.obs.dashboard_streams.clone()).ok_or(ApiError::TooManyStreams)?;
    let feed = Feed { state, first: true, _slot: slot };
    let body = futures_util::stream::unfold(feed, |mut f| async move {
        if !f.first {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        f.first = false;
        if f.state.runtime.is_shutting_down() {
            return None;
        }
        let chunk = event(&f.state);
        Some((Ok::<_, Infallible>(chunk), f))
    });
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header((header::CONTENT_ENCODING, "identity"))
        .insert_header(("x-accel-buffering", "no"))
        .streaming(body))
}
