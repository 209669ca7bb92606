//! The error watcher and the AI auditor.
//!
//! Against the real binary: a forced ERROR (fault-injection route) appears once in
//! `/api/errors` with its count rising on repeats, resolves through the API, and reopens when
//! it happens again; every log line of a call names its session and request (human and JSON
//! formats). In-process (the actors on a real SQLite store, with a counting fake model): with
//! a budget of N analyses per hour the N+1th new error gets no model call, and the auditor
//! samples calls, stores the model's observations, and stops at its budget.

use crate::common::http::{self, Reply};
use crate::common::ws::{WsClient, WsOptions};
use crate::common::{ServerOptions, ServerProcess};
use actix::Actor;
use async_trait::async_trait;
use exai::store::{self, StoreOptions};
use exai_actors::env::now_ms;
use exai_actors::metrics::Metrics;
use exai_actors::ports::{AnalysisModel, CallOutcome, ErrorQuery, ObservationQuery, Store, ToolCallRecord};
use exai_actors::watcher::auditor::{Auditor, AuditorConfig};
use exai_actors::watcher::errors::{ErrorEvent, ErrorQueue, ErrorWatcher, ErrorWatcherConfig};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const ADMIN: &str = "admin-token-0123456789abcdef";

async fn force_error(server: &ServerProcess, message: &str, token: Option<&str>) -> Reply {
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth.as_deref().map(|a| vec![("authorization", a)]).unwrap_or_default();
    http::post_json(&server.http_url("/admin/debug/error"), &json!({ "message": message }), &headers).await
}

async fn open_errors(server: &ServerProcess, token: &str) -> Vec<Value> {
    let r = http::get(
        &server.http_url("/api/errors?resolved=false&limit=50"),
        &[("authorization", &format!("Bearer {token}"))],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["errors"].as_array().unwrap().clone()
}

/// Polls until `check` accepts the open errors (10 s at most).
async fn wait_errors(server: &ServerProcess, token: &str, check: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let errors = open_errors(server, token).await;
        if check(&errors) {
            return errors;
        }
        assert!(Instant::now() < deadline, "condition not met; open errors: {errors:#?}\n{}", server.stderr_text());
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    }
}

#[actix_rt::test]
async fn forced_error_appears_once_counts_repeats_resolves_and_reopens() {
    let server = ServerProcess::start(
        ServerOptions::new().set("debug.fault_injection", "true").env("EXAI_SERVER__ADMIN_TOKEN", ADMIN),
    );
    assert_eq!(force_error(&server, "disk full", None).await.status, 401, "the admin token is required");
    for (n, path) in [(7, "/var/tmp/a.bin"), (8, "/var/tmp/b.bin"), (9, "/srv/c.bin")] {
        let r = force_error(&server, &format!("write of {n} MiB to {path} failed"), Some(ADMIN)).await;
        assert_eq!(r.status, 202, "{}", r.body);
    }
    let errors = wait_errors(&server, ADMIN, |e| e.first().is_some_and(|x| x["occurrence_count"] == 3)).await;
    assert_eq!(errors.len(), 1, "three variants of one error are one record: {errors:#?}");
    let e = &errors[0];
    assert_eq!(e["error_message"], "write of <n> MiB to <path> failed");
    assert_eq!(e["error_type"], "exai::debug");
    assert_eq!(e["error_context"]["sample"], "write of 9 MiB to /srv/c.bin failed");
    assert_eq!(e["investigation_result"], Value::Null, "no model analysis unless enabled");
    assert!(e["first_seen_at_ms"].as_i64() <= e["last_occurrence_at_ms"].as_i64());

    // A different error is a second record.
    force_error(&server, "upstream refused the connection", Some(ADMIN)).await;
    wait_errors(&server, ADMIN, |e| e.len() == 2).await;

    // Resolve with notes (the API needs the token too).
    let id = e["id"].as_i64().unwrap();
    let url = server.http_url(&format!("/api/errors/{id}/resolve"));
    assert_eq!(http::post_json(&url, &json!({"notes": "disk replaced"}), &[]).await.status, 401);
    let bearer = format!("Bearer {ADMIN}");
    let r = http::post_json(&url, &json!({"notes": "disk replaced"}), &[("authorization", &bearer)]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["resolved"], true);
    assert_eq!(r.json()["resolution_notes"], "disk replaced");
    let open = open_errors(&server, ADMIN).await;
    assert!(open.iter().all(|x| x["id"] != id), "resolved errors are not listed as open");
    let missing = server.http_url("/api/errors/999999/resolve");
    assert_eq!(http::post_json(&missing, &json!({}), &[("authorization", &bearer)]).await.status, 404);

    // It happens again: the same record reopens with its count still rising.
    force_error(&server, "write of 1 MiB to /tmp/z failed", Some(ADMIN)).await;
    let errors = wait_errors(&server, ADMIN, |e| e.iter().any(|x| x["id"] == id)).await;
    let again = errors.iter().find(|x| x["id"] == id).unwrap();
    assert_eq!(again["occurrence_count"], 4);
    assert_eq!(again["resolution_notes"], "disk replaced", "notes are kept");

    let metrics = http::get(&server.http_url("/metrics"), &[]).await.body;
    assert!(metrics.contains("exai_error_groups_created_total 2"), "{metrics}");
    assert!(metrics.contains("exai_error_events_dropped_total 0"), "{metrics}");
}

/// Writes `raw` on a fresh connection and returns the status line of the answer.
fn raw_request(port: u16, raw: &[u8]) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(raw).unwrap();
    let mut buf = [0u8; 256];
    let n = s.read(&mut buf).unwrap_or(0);
    String::from_utf8_lossy(&buf[..n]).lines().next().unwrap_or_default().to_string()
}

#[actix_rt::test]
async fn malformed_http_requests_are_warnings_not_error_records() {
    let server = ServerProcess::start(
        ServerOptions::new().set("debug.fault_injection", "true").env("EXAI_SERVER__ADMIN_TOKEN", ADMIN),
    );
    let bad: [&[u8]; 4] = [
        b"GARBAGE\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nBad Header\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: abc\r\n\r\n",
        b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 5\r\n\r\n{bad}",
    ];
    for raw in bad {
        let status = raw_request(server.port(), raw);
        assert!(status.contains(" 400 "), "{status}");
    }
    assert!(server.wait_for_stderr("WARN actix_http::h1", Duration::from_secs(5)), "{}", server.stderr_text());
    // The watcher would have stored them by now (it stores the forced error below within this
    // time); nothing client-caused is an error record, and nothing was logged at ERROR.
    actix_rt::time::sleep(Duration::from_millis(1500)).await;
    assert!(open_errors(&server, ADMIN).await.is_empty(), "{}", server.stderr_text());
    assert!(!server.stderr_text().contains(" ERROR "), "{}", server.stderr_text());
    // The watcher itself works in this set-up: a real ERROR becomes one record.
    assert_eq!(force_error(&server, "real failure after malformed requests", Some(ADMIN)).await.status, 202);
    let errors = wait_errors(&server, ADMIN, |e| !e.is_empty()).await;
    assert_eq!(errors.len(), 1, "{errors:#?}");
}

#[actix_rt::test]
async fn every_log_line_of_a_call_names_session_and_request() {
    for format in ["human", "json"] {
        let server = ServerProcess::start(
            ServerOptions::new().set("debug.fault_injection", "true").set("logging.format", format),
        );
        let mut c = WsClient::connect(&server.ws_url("/mcp"), WsOptions::mcp()).await;
        c.mcp_initialize().await;
        let r = c.request("req-42", "tools/call", json!({"name": "debug_sleep", "arguments": {"ms": 1}})).await;
        assert_eq!(r["result"]["isError"], false, "{r}");
        assert!(server.wait_for_stderr("debug_sleep done", Duration::from_secs(10)), "{}", server.stderr_text());
        let text = server.stderr_text();
        let line = text.lines().find(|l| l.contains("debug_sleep done")).unwrap();
        if format == "human" {
            assert!(line.contains("call{session=") && line.contains("request=req-42"), "{line}");
            assert!(line.contains("tool=debug_sleep") && line.contains("protocol=\"mcp-ws\""), "{line}");
        } else {
            let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
            assert_eq!(v["span"]["name"], "call", "{line}");
            assert_eq!(v["span"]["request"], "req-42", "{line}");
            assert!(v["span"]["session"].as_str().is_some_and(|s| s.len() == 36), "{line}");
        }
    }
}

/// A fake model that counts its calls and answers with a fixed text.
struct CountingModel {
    calls: AtomicUsize,
    answer: String,
}

impl CountingModel {
    fn new(answer: &str) -> Arc<CountingModel> {
        Arc::new(CountingModel { calls: AtomicUsize::new(0), answer: answer.to_string() })
    }
}

#[async_trait(?Send)]
impl AnalysisModel for CountingModel {
    async fn analyze(&self, _model: &str, system: &str, prompt: &str) -> Result<String, String> {
        assert!(!system.is_empty() && !prompt.is_empty());
        self.calls.fetch_add(1, Ordering::SeqCst);
        Ok(self.answer.clone())
    }
}

async fn sqlite() -> (tempfile::TempDir, Arc<dyn Store>) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("exai.db").display());
    (dir, store::open(&url, &StoreOptions::default()).await.unwrap())
}

async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
}

#[actix_rt::test]
async fn error_analyses_stop_at_the_hourly_budget() {
    let (_dir, store) = sqlite().await;
    let metrics = Metrics::new().unwrap();
    let queue = ErrorQueue::new(64, &metrics);
    let model = CountingModel::new(r#"{"root_cause":"the disk is full","fix":"free space","confidence":0.8}"#);
    let cfg = ErrorWatcherConfig {
        ai_enabled: true,
        model: "fake-model".into(),
        calls_per_hour: 2,
        tick: Duration::from_millis(20),
        ..ErrorWatcherConfig::default()
    };
    let watcher = ErrorWatcher::new(
        queue.clone(),
        Arc::clone(&store) as Arc<dyn exai_actors::ports::DiagnosticsStore>,
        Some(model.clone() as Arc<dyn AnalysisModel>),
        cfg,
        metrics.clone(),
        None,
    )
    .start();
    // Three distinct errors (the first one twice) with a budget of two analyses.
    for (target, msg) in [
        ("exai::t0", "disk full on /a"),
        ("exai::t0", "disk full on /b"),
        ("exai::t1", "socket reset by peer"),
        ("exai::t2", "cache miss storm"),
    ] {
        queue.push(ErrorEvent { at_ms: now_ms(), target: target.into(), message: msg.into() });
    }
    let s = Arc::clone(&store);
    eventually("three records, two of them analysed", async || {
        let all = s.list_errors(&ErrorQuery::default()).await.unwrap();
        all.len() == 3 && all.iter().filter(|e| e.investigation_result.is_some()).count() == 2
    })
    .await;
    // Give a wrongly scheduled third analysis the chance to show up.
    actix_rt::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(model.calls.load(Ordering::SeqCst), 2, "the N+1th new error gets no model call");
    let analyses = &metrics.obs.error_analyses;
    assert_eq!(analyses.with_label_values(&["ok"]).get(), 2);
    assert_eq!(analyses.with_label_values(&["over_budget"]).get(), 1);
    assert_eq!(metrics.obs.error_groups_created.get(), 3);
    let all = store.list_errors(&ErrorQuery::default()).await.unwrap();
    let analysed: Vec<_> = all.iter().filter(|e| e.investigation_result.is_some()).collect();
    for e in &analysed {
        assert_eq!(e.investigation_result, Some(json!({"root_cause": "the disk is full", "confidence": 0.8})));
        assert_eq!(e.fix_recommendation, Some(json!({"recommendation": "free space"})));
        assert_eq!(e.model_used.as_deref(), Some("fake-model"));
        assert!(e.investigation_duration_ms.is_some());
    }
    let disk = all.iter().find(|e| e.error_type == "exai::t0").unwrap();
    assert_eq!(disk.occurrence_count, 2);
    assert!(disk.investigation_result.is_some(), "the first new errors get the budget");
    // A repeat of a known error is counted but never analysed again.
    queue.push(ErrorEvent { at_ms: now_ms(), target: "exai::t0".into(), message: "disk full on /c".into() });
    let s = Arc::clone(&store);
    eventually("the repeat is counted", async || {
        s.list_errors(&ErrorQuery::default()).await.unwrap().iter().any(|e| e.occurrence_count == 3)
    })
    .await;
    assert_eq!(model.calls.load(Ordering::SeqCst), 2);
    watcher.do_send(exai_actors::coordinator::Drain);
}

fn call(i: i64, outcome: CallOutcome) -> ToolCallRecord {
    ToolCallRecord {
        id: 0,
        started_at_ms: now_ms() + i,
        session_id: "sess".into(),
        request_id: format!("r{i}"),
        tool: "chat".into(),
        protocol: "mcp-ws".into(),
        outcome,
        error_code: None,
        total_ms: 1500.0 + i as f64,
        global_wait_ms: 900.0,
        provider_wait_ms: 0.0,
        processing_ms: 600.0,
        provider: Some("glm".into()),
        model: Some("glm-4.5-flash".into()),
        args_bytes: 120,
    }
}

#[actix_rt::test]
async fn auditor_samples_calls_stores_observations_and_respects_its_budget() {
    let (_dir, store) = sqlite().await;
    let metrics = Metrics::new().unwrap();
    let model = CountingModel::new(
        r#"Here you go: [{"severity":"high","category":"latency","observation":"calls wait 900 ms for a global slot",
            "recommendation":"raise limits.global_max_inflight","confidence":0.7},
           {"severity":"low","category":"usage","observation":"only one tool is used"}]"#,
    );
    let cfg = AuditorConfig {
        sample_rate: 1.0,
        calls_per_hour: 1,
        interval: Duration::from_millis(50),
        model: "cheap-model".into(),
        ..AuditorConfig::default()
    };
    let auditor =
        Auditor::new(Arc::clone(&store), Some(model.clone() as Arc<dyn AnalysisModel>), cfg, metrics.clone(), None)
            .start();
    store.record_tool_calls(&[call(1, CallOutcome::Ok), call(2, CallOutcome::Error)]).await.unwrap();
    let s = Arc::clone(&store);
    eventually("two observations stored", async || {
        s.list_observations(&ObservationQuery::default()).await.unwrap().len() == 2
    })
    .await;
    assert_eq!(model.calls.load(Ordering::SeqCst), 1);
    let obs = store.list_observations(&ObservationQuery { acknowledged: Some(false), limit: 0 }).await.unwrap();
    let high = obs.iter().find(|o| o.fields.severity == "high").unwrap();
    assert_eq!(high.fields.category, "latency");
    assert_eq!(high.fields.recommendation.as_deref(), Some("raise limits.global_max_inflight"));
    assert_eq!(high.fields.model_used.as_deref(), Some("cheap-model"));
    assert_eq!(high.fields.confidence, Some(0.7));
    let ids: Vec<String> = store
        .recent_tool_calls(&exai_actors::ports::ToolCallQuery { limit: 10, ..Default::default() })
        .await
        .unwrap()
        .iter()
        .rev()
        .map(|c| c.id.to_string())
        .collect();
    assert_eq!(high.fields.tool_call_ref.as_deref(), Some(ids.join(",").as_str()), "refers to the sampled calls");
    assert_eq!(metrics.obs.auditor_sampled_calls.get(), 2);
    assert_eq!(metrics.obs.auditor_observations.with_label_values(&["high"]).get(), 1);

    // More calls, but the budget (1 per hour) is spent: no second model call.
    store.record_tool_calls(&[call(3, CallOutcome::Ok)]).await.unwrap();
    let m = metrics.clone();
    eventually("the next batch is refused by the budget", async || {
        m.obs.auditor_analyses.with_label_values(&["over_budget"]).get() == 1
    })
    .await;
    assert_eq!(model.calls.load(Ordering::SeqCst), 1);
    assert_eq!(metrics.obs.auditor_sampled_calls.get(), 3);
    auditor.do_send(exai_actors::coordinator::Drain);
}

#[actix_rt::test]
async fn auditor_with_zero_sample_rate_asks_nothing() {
    let (_dir, store) = sqlite().await;
    let metrics = Metrics::new().unwrap();
    let model = CountingModel::new("[]");
    let cfg = AuditorConfig { sample_rate: 0.0, interval: Duration::from_millis(20), ..AuditorConfig::default() };
    let _auditor =
        Auditor::new(Arc::clone(&store), Some(model.clone() as Arc<dyn AnalysisModel>), cfg, metrics.clone(), None)
            .start();
    store.record_tool_calls(&[call(1, CallOutcome::Ok), call(2, CallOutcome::Ok)]).await.unwrap();
    actix_rt::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(model.calls.load(Ordering::SeqCst), 0);
    assert_eq!(metrics.obs.auditor_sampled_calls.get(), 0);
    assert!(store.list_observations(&ObservationQuery::default()).await.unwrap().is_empty());
}
