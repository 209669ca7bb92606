//! The dashboard's JSON API under `/api/` (documented in `docs/OBSERVABILITY.md`).
//!
//! Lists are newest first and bounded (`limit` 1..=500). Failures are [`ApiError`]s: store
//! failures 503, unknown ids 404, malformed query strings or bodies 400.

use super::overview;
use super::{check, ApiError};
use crate::server::AppState;
use actix_web::{web, HttpRequest, HttpResponse};
use exai_actors::env::now_ms;
use exai_actors::ports::{CallOutcome, ErrorQuery, ObservationQuery, ToolCallQuery};
use serde::Deserialize;
use serde_json::json;

/// Result of every handler here.
type Reply = Result<HttpResponse, ApiError>;

const MAX_LIMIT: u32 = 500;
/// Most tool-call rows the provider figures look at.
const PROVIDER_ROWS: u32 = 10_000;

fn limit(l: Option<u32>, default: u32) -> u32 {
    l.unwrap_or(default).clamp(1, MAX_LIMIT)
}

/// The query string as `T` (unknown keys such as `token` are ignored).
fn query<T: for<'de> Deserialize<'de>>(req: &HttpRequest) -> Result<T, ApiError> {
    web::Query::<T>::from_query(req.query_string())
        .map(web::Query::into_inner)
        .map_err(|e| ApiError::BadRequest(e.to_string()))
}

/// An empty body is the default; anything else must be a JSON object of the right shape.
fn body<T: for<'de> Deserialize<'de> + Default>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(bytes).map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))
}

/// `GET /api/overview`.
pub async fn overview(req: HttpRequest, state: web::Data<AppState>) -> Reply {
    check(&req, &state)?;
    Ok(HttpResponse::Ok().json(overview::overview(&state)))
}

#[derive(Deserialize)]
struct SeriesQuery {
    secs: Option<usize>,
}

/// `GET /api/timeseries?secs=300`: per-second samples, oldest first.
pub async fn timeseries(req: HttpRequest, state: web::Data<AppState>) -> Reply {
    check(&req, &state)?;
    let q: SeriesQuery = query(&req)?;
    let secs = q.secs.unwrap_or(300).clamp(1, 86_400);
    Ok(HttpResponse::Ok().json(json!({ "interval_secs": 1, "samples": state.monitoring.samples.last(secs) })))
}

#[derive(Deserialize)]
struct ProvidersQuery {
    window_secs: Option<u64>,
}

/// `GET /api/providers?window_secs=3600`.
pub async fn providers(req: HttpRequest, state: web::Data<AppState>) -> Reply {
    check(&req, &state)?;
    let q: ProvidersQuery = query(&req)?;
    let window = q.window_secs.unwrap_or(3600).clamp(60, 7 * 86_400);
    let calls = state.store.recent_tool_calls(&overview::provider_query(window, PROVIDER_ROWS)).await?;
    Ok(HttpResponse::Ok().json(overview::providers(&state, &calls, window, PROVIDER_ROWS)))
}

#[derive(Deserialize)]
struct CallsQuery {
    limit: Option<u32>,
    tool: Option<String>,
    outcome: Option<String>,
    session_id: Option<String>,
}

/// `GET /api/toolcalls?limit=50&tool=&outcome=&session_id=`: the tool-call log tail.
pub async fn toolcalls(req: HttpRequest, state: web::Data<AppState>) -> Reply {
    check(&req, &state)?;
    let q: CallsQuery = query(&req)?;
    let outcome = match q.outcome.as_deref().filter(|o| !o.is_empty()) {
        None => None,
        Some(o) => Some(CallOutcome::parse(o).ok_or_else(|| ApiError::BadRequest(format!("unknown outcome '{o}'")))?),
    };
    let tq = ToolCallQuery {
        limit: limit(q.limit, 50),
        tool: q.tool.filter(|t| !t.is_empty()),
        session_id: q.session_id.filter(|s| !s.is_empty()),
        outcome,
        since_ms: None,
    };
    let rows = state.store.recent_tool_calls(&tq).await?;
    Ok(HttpResponse::Ok().json(json!({ "count": rows.len(), "calls": rows })))
}

#[derive(Deserialize)]
struct ErrorsQuery {
    resolved: Option<bool>,
    limit: Option<u32>,
}

/// `GET /api/errors?resolved=false&limit=50`.
pub async fn errors(req: HttpRequest, state: web::Data<AppState>) -> Reply {
    check(&req, &state)?;
    let q: ErrorsQuery = query(&req)?;
    let rows = state.store.list_errors(&ErrorQuery { resolved: q.resolved, limit: limit(q.limit, 50) }).await?;
    Ok(HttpResponse::Ok().json(json!({ "count": rows.len(), "errors": rows })))
}

/// Body of `POST /api/errors/{id}/resolve`.
#[derive(Deserialize, Default)]
struct ResolveBody {
    notes: Option<String>,
}

/// `POST /api/errors/{id}/resolve` with an optional JSON body `{"notes": "..."}`.
pub async fn resolve_error(
    req: HttpRequest,
    path: web::Path<i64>,
    bytes: web::Bytes,
    state: web::Data<AppState>,
) -> Reply {
    check(&req, &state)?;
    let b: ResolveBody = body(&bytes)?;
    let notes = b.notes.map(|n| n.chars().take(4000).collect::<String>());
    let rec = state.store.resolve_error(path.into_inner(), notes.as_deref(), now_ms()).await?;
    Ok(HttpResponse::Ok().json(rec))
}

#[derive(Deserialize)]
struct ObservationsQuery {
    acknowledged: Option<bool>,
    limit: Option<u32>,
}

/// `GET /api/auditor/observations?acknowledged=false&limit=50`.
pub async fn observations(req: HttpRequest, state: web::Data<AppState>) -> Reply {
    check(&req, &state)?;
    let q: ObservationsQuery = query(&req)?;
    let oq = ObservationQuery { acknowledged: q.acknowledged, limit: limit(q.limit, 50) };
    let rows = state.store.list_observations(&oq).await?;
    Ok(HttpResponse::Ok().json(json!({ "count": rows.len(), "observations": rows })))
}

/// Body of `POST /api/auditor/observations/{id}/acknowledge`.
#[derive(Deserialize, Default)]
struct AckBody {
    by: Option<String>,
}

/// `POST /api/auditor/observations/{id}/acknowledge` with an optional body `{"by": "..."}`.
pub async fn acknowledge(
    req: HttpRequest,
    path: web::Path<i64>,
    bytes: web::Bytes,
    state: web::Data<AppState>,
) -> Reply {
    check(&req, &state)?;
    let b: AckBody = body(&bytes)?;
    let by = b.by.map(|n| n.chars().take(200).collect::<String>());
    let rec = state.store.acknowledge_observation(path.into_inner(), by.as_deref(), now_ms()).await?;
    Ok(HttpResponse::Ok().json(rec))
}
