//! The JSON the dashboard shows: [`overview`] (live state and counters, pushed every second
//! on `/dashboard/events` and served at `/api/overview`) and [`providers`] (per-provider
//! latency and error rate from the tool-call log and the provider metrics, with breaker
//! states). Everything comes from the running process: metrics, runtime state, the store
//! (the dedup and cleanup figures are the store's, so every node sharing it shows the same).

use super::samples::{sessions, CallTotals};
use crate::server::AppState;
use exai_actors::env::now_ms;
use exai_actors::files::ports::FileStats;
use exai_actors::metrics::{Metrics, ANALYSIS_OUTCOMES, PROTOCOLS, SEVERITIES};
use exai_actors::ports::{ToolCallQuery, ToolCallRecord};
use prometheus::core::Collector;
use prometheus::IntCounterVec;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

fn by_label(v: &IntCounterVec, values: &[&str]) -> Value {
    let m: Map<String, Value> =
        values.iter().map(|l| (l.to_string(), json!(v.with_label_values(&[l]).get()))).collect();
    Value::Object(m)
}

/// Dedup totals from the store (`source: "store"`), the same on every node; `"unavailable"`
/// before the first read or without the files tables.
fn dedup(s: Option<&FileStats>) -> Value {
    match s {
        Some(s) => json!({
            "source": "store", "files": s.files, "references": s.references, "reused": s.reused,
            "bytes_saved": s.bytes_saved,
        }),
        None => json!({ "source": "unavailable" }),
    }
}

/// Cleanup totals from the store's `cleanup_runs`, like [`dedup`].
fn cleanup(s: Option<&FileStats>) -> Value {
    match s {
        Some(s) => json!({
            "source": "store",
            "runs": s.cleanup_runs, "dry_runs": s.cleanup_dry_runs,
            "items": { "deleted": s.cleanup_deleted, "failed": s.cleanup_failed, "skipped": s.cleanup_skipped },
            "last_run": s.last_run_at_ms.map(|at| json!({ "started_at_ms": at, "outcome": s.last_run_outcome })),
        }),
        None => json!({ "source": "unavailable" }),
    }
}

/// Live state and counters.
pub fn overview(state: &AppState) -> Value {
    let (rt, m, mon) = (&state.runtime, &state.metrics, &state.monitoring);
    let o = &m.obs;
    let totals = CallTotals::read(m);
    let by_protocol: Map<String, Value> =
        PROTOCOLS.iter().map(|p| (p.to_string(), json!(rt.session_counter(p).load(Ordering::Relaxed)))).collect();
    let (used, max) = (rt.inflight.in_use(), rt.inflight.max());
    json!({
        "at_ms": now_ms(),
        "server": {
            "name": state.settings.server_name,
            "version": state.settings.server_version,
            "uptime_secs": rt.uptime_secs(),
            "started_at_ms": rt.started_at_ms,
            "shutting_down": rt.is_shutting_down(),
            "store": state.store.backend(),
        },
        "sessions": { "total": sessions(rt), "by_protocol": by_protocol },
        "connections": { "open": rt.connections.total(), "max": state.settings.max_connections },
        "inflight": {
            "used": used, "max": max,
            "utilization": if max == 0 { 0.0 } else { used as f64 / max as f64 },
            "session_max": state.settings.session_max_inflight,
        },
        "toollog_queue": state.toollog.len(),
        "calls": {
            "total": totals.calls,
            "not_ok": totals.not_ok,
            "by_outcome": totals.by_outcome.iter().map(|(k, v)| (k.clone(), json!(v))).collect::<Map<_, _>>(),
            "mean_ms": totals.mean_ms(),
            "p95_ms": totals.p95_ms(),
        },
        "actors": rt.children(),
        "breakers": rt.breakers.snapshot(),
        "dedup": dedup(mon.file_stats().as_ref()),
        "cleanup": cleanup(mon.file_stats().as_ref()),
        "error_watcher": {
            "enabled": mon.error_watcher_enabled,
            "ai": mon.error_ai,
            "events": o.error_events.get(),
            "dropped": o.error_events_dropped.get(),
            "groups_created": o.error_groups_created.get(),
            "analyses": by_label(&o.error_analyses, ANALYSIS_OUTCOMES),
        },
        "auditor": {
            "ai": mon.auditor,
            "sample_rate": mon.auditor_sample_rate,
            "sampled_calls": o.auditor_sampled_calls.get(),
            "analyses": by_label(&o.auditor_analyses, ANALYSIS_OUTCOMES),
            "observations": by_label(&o.auditor_observations, SEVERITIES),
        },
        "sample": mon.samples.latest(),
    })
}

/// Request count and mean seconds per provider from a provider histogram.
fn provider_histogram(m: &prometheus::HistogramVec) -> BTreeMap<String, (u64, f64)> {
    let mut out = BTreeMap::new();
    for fam in m.collect() {
        for metric in fam.get_metric() {
            let Some(p) = metric.get_label().iter().find(|l| l.name() == "provider") else { continue };
            let h = metric.get_histogram();
            out.insert(p.value().to_string(), (h.get_sample_count(), h.get_sample_sum()));
        }
    }
    out
}

fn p95(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let idx = ((v.len() as f64 * 0.95).ceil() as usize).clamp(1, v.len()) - 1;
    Some(v[idx])
}

/// Per-provider figures over the last `window_secs` of the tool-call log (at most
/// `max_rows` calls), plus provider metrics and breaker states.
pub fn providers(state: &AppState, calls: &[ToolCallRecord], window_secs: u64, max_rows: u32) -> Value {
    let m: &Metrics = &state.metrics;
    let requests = provider_histogram(&m.provider_seconds);
    let waits = provider_histogram(&m.provider_wait_seconds);
    let breakers = state.runtime.breakers.snapshot();
    let mut names: Vec<String> = state.catalog.providers().iter().map(|p| p.name.clone()).collect();
    for n in calls.iter().filter_map(|c| c.provider.clone()).chain(requests.keys().cloned()) {
        if !names.contains(&n) {
            names.push(n);
        }
    }
    let rows: Vec<Value> = names
        .iter()
        .map(|name| {
            let info = state.catalog.provider(name);
            let mine: Vec<&ToolCallRecord> = calls.iter().filter(|c| c.provider.as_deref() == Some(name)).collect();
            let errors = mine.iter().filter(|c| c.outcome.as_str() != "ok").count();
            let lat: Vec<f64> = mine.iter().map(|c| c.total_ms).collect();
            let mean = (!lat.is_empty()).then(|| lat.iter().sum::<f64>() / lat.len() as f64);
            let (req, req_sum) = requests.get(name).copied().unwrap_or((0, 0.0));
            let (wait_n, wait_sum) = waits.get(name).copied().unwrap_or((0, 0.0));
            json!({
                "name": name,
                "kind": info.map(|i| i.kind.clone()),
                "configured": info.is_some_and(|i| i.api_key_configured),
                "breaker": breakers.iter().find(|b| &b.provider == name),
                "calls": mine.len(),
                "errors": errors,
                "error_rate": if mine.is_empty() { None } else { Some(errors as f64 / mine.len() as f64) },
                "mean_ms": mean,
                "p95_ms": p95(lat),
                "requests": req,
                "request_mean_ms": (req > 0).then(|| req_sum * 1000.0 / req as f64),
                "wait_mean_ms": (wait_n > 0).then(|| wait_sum * 1000.0 / wait_n as f64),
            })
        })
        .collect();
    let configured = state.catalog.providers().iter().filter(|p| p.api_key_configured).count();
    json!({
        "window_secs": window_secs,
        "calls_considered": calls.len(),
        "truncated": calls.len() as u64 >= u64::from(max_rows),
        "configured": configured,
        "providers": rows,
    })
}

/// The tool-call log query behind [`providers`].
pub fn provider_query(window_secs: u64, max_rows: u32) -> ToolCallQuery {
    ToolCallQuery {
        limit: max_rows,
        since_ms: Some(now_ms() - (window_secs as i64).saturating_mul(1000)),
        ..ToolCallQuery::default()
    }
}
