//! Tests of the Streamable HTTP endpoint through actix-web's test service: an in-memory
//! store, a dispatcher over the built-in tools plus `debug_sleep`, and request helpers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::{McpHttp, McpHttpConfig};
use actix_web::body::MessageBody;
use actix_web::dev::ServiceResponse;
use actix_web::test::{self, TestRequest};
use async_trait::async_trait;
use bytes::Bytes;
use exai_actors::catalog::{builtin_models, Catalog};
use exai_actors::conversation::{ConversationSettings, Conversations};
use exai_actors::dispatch::Dispatcher;
use exai_actors::env::{RuntimeState, ToolEnv};
use exai_actors::metrics::Metrics;
use exai_actors::ports::{
    ActivityEvent, ActivityQuery, ActivitySource, AuditorObservation, ConversationRecord, DiagnosticsStore,
    ErrorAnalysis, ErrorInvestigation, ErrorOccurrence, ErrorQuery, ErrorUpsert, MessageRecord, MigrationStatus,
    NewMessage, NewObservation, ObservationQuery, SessionRecord, Store, StoreError, ToolCallQuery, ToolCallRecord,
};
use exai_actors::provider::router::RoutingConfig;
use exai_actors::provider::service::ProviderSet;
use exai_actors::settings::CoreSettings;
use exai_actors::toollog::ToolLogQueue;
use exai_actors::tools::builtin::{self, DebugSleep};
use exai_actors::tools::files::FileAccess;
use exai_actors::tools::registry::Registry;
use serde_json::{json, Value};
use std::pin::Pin;
use std::sync::{Arc, Mutex};

/// Build the test service with the three handlers on `/mcp`.
macro_rules! app {
    ($http:expr) => {
        actix_web::test::init_service(
            actix_web::App::new()
                .app_data(actix_web::web::Data::new(std::sync::Arc::clone(&$http)))
                .route("/mcp", actix_web::web::post().to(crate::server::mcp_http::post))
                .route("/mcp", actix_web::web::get().to(crate::server::mcp_http::get))
                .route("/mcp", actix_web::web::delete().to(crate::server::mcp_http::delete)),
        )
        .await
    };
}

/// Send a request built by a helper.
macro_rules! send {
    ($app:expr, $req:expr) => {
        actix_web::test::call_service(&$app, $req.to_request()).await
    };
}

/// `initialize` and return the session id.
macro_rules! init {
    ($app:expr) => {{
        let resp = send!($app, $crate::server::mcp_http::tests::rpc(&$crate::server::mcp_http::tests::init_body()));
        assert_eq!(resp.status(), 200);
        resp.headers().get("mcp-session-id").expect("session header").to_str().unwrap().to_string()
    }};
}

mod access;
mod calls;
mod lifecycle;

/// An in-memory `Store`.
#[derive(Default)]
pub struct MemStore {
    pub sessions: Mutex<Vec<SessionRecord>>,
    calls: Mutex<Vec<ToolCallRecord>>,
    conversations: Mutex<Vec<ConversationRecord>>,
    messages: Mutex<Vec<MessageRecord>>,
}

#[async_trait]
impl Store for MemStore {
    fn backend(&self) -> &'static str {
        "memory"
    }
    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
    async fn migration_status(&self) -> Result<MigrationStatus, StoreError> {
        Ok(MigrationStatus { applied: vec![1], known: vec![1] })
    }
    async fn record_tool_calls(&self, rows: &[ToolCallRecord]) -> Result<u64, StoreError> {
        self.calls.lock().unwrap().extend_from_slice(rows);
        Ok(rows.len() as u64)
    }
    async fn recent_tool_calls(&self, q: &ToolCallQuery) -> Result<Vec<ToolCallRecord>, StoreError> {
        let calls = self.calls.lock().unwrap();
        Ok(calls
            .iter()
            .rev()
            .filter(|c| q.tool.as_ref().is_none_or(|t| &c.tool == t))
            .filter(|c| q.session_id.as_ref().is_none_or(|s| &c.session_id == s))
            .filter(|c| q.outcome.is_none_or(|o| c.outcome == o))
            .filter(|c| q.since_ms.is_none_or(|s| c.started_at_ms >= s))
            .take(q.limit as usize)
            .cloned()
            .collect())
    }
    async fn upsert_session(&self, s: &SessionRecord) -> Result<(), StoreError> {
        let mut all = self.sessions.lock().unwrap();
        match all.iter_mut().find(|r| r.id == s.id) {
            Some(r) => *r = s.clone(),
            None => all.push(s.clone()),
        }
        Ok(())
    }
    async fn close_session(&self, id: &str, at_ms: i64) -> Result<(), StoreError> {
        let mut all = self.sessions.lock().unwrap();
        let r = all.iter_mut().find(|r| r.id == id).ok_or_else(|| StoreError::NotFound(id.to_string()))?;
        r.closed_at_ms = Some(at_ms);
        Ok(())
    }
    async fn get_session(&self, id: &str) -> Result<Option<SessionRecord>, StoreError> {
        Ok(self.sessions.lock().unwrap().iter().find(|r| r.id == id).cloned())
    }
    async fn create_conversation(&self, c: &ConversationRecord) -> Result<(), StoreError> {
        let mut all = self.conversations.lock().unwrap();
        if all.iter().any(|r| r.continuation_id == c.continuation_id) {
            return Err(StoreError::Constraint(c.continuation_id.clone()));
        }
        all.push(c.clone());
        Ok(())
    }
    async fn get_conversation(&self, continuation_id: &str) -> Result<Option<ConversationRecord>, StoreError> {
        Ok(self.conversations.lock().unwrap().iter().find(|r| r.continuation_id == continuation_id).cloned())
    }
    async fn append_message(&self, m: &NewMessage) -> Result<MessageRecord, StoreError> {
        let mut all = self.messages.lock().unwrap();
        if let Some(r) = all.iter().find(|r| r.idempotency_key == m.idempotency_key) {
            return Ok(r.clone());
        }
        let seq = all.iter().filter(|r| r.conversation_id == m.conversation_id).count() as i64 + 1;
        let rec = m.stored(all.len() as i64 + 1, seq);
        all.push(rec.clone());
        Ok(rec)
    }
    async fn list_messages(&self, conversation_id: &str, limit: u32) -> Result<Vec<MessageRecord>, StoreError> {
        let all = self.messages.lock().unwrap();
        Ok(all.iter().filter(|r| r.conversation_id == conversation_id).take(limit as usize).cloned().collect())
    }
    async fn close(&self) {}
}

/// These tests never touch the diagnostics tables.
fn no_diagnostics<T>() -> Result<T, StoreError> {
    Err(StoreError::Unavailable("the Streamable HTTP test store keeps no diagnostics".into()))
}

#[async_trait]
impl DiagnosticsStore for MemStore {
    async fn record_error(&self, _: &ErrorOccurrence) -> Result<ErrorUpsert, StoreError> {
        no_diagnostics()
    }
    async fn set_error_analysis(&self, _: i64, _: &ErrorAnalysis) -> Result<(), StoreError> {
        no_diagnostics()
    }
    async fn list_errors(&self, _: &ErrorQuery) -> Result<Vec<ErrorInvestigation>, StoreError> {
        no_diagnostics()
    }
    async fn resolve_error(&self, _: i64, _: Option<&str>, _: i64) -> Result<ErrorInvestigation, StoreError> {
        no_diagnostics()
    }
    async fn add_observation(&self, _: &NewObservation) -> Result<i64, StoreError> {
        no_diagnostics()
    }
    async fn list_observations(&self, _: &ObservationQuery) -> Result<Vec<AuditorObservation>, StoreError> {
        no_diagnostics()
    }
    async fn acknowledge_observation(&self, _: i64, _: Option<&str>, _: i64) -> Result<AuditorObservation, StoreError> {
        no_diagnostics()
    }
}

struct NoActivity;

impl ActivitySource for NoActivity {
    fn recent(&self, _q: &ActivityQuery) -> Vec<ActivityEvent> {
        Vec::new()
    }
}

/// The endpoint plus what the tests inspect.
pub struct Fx {
    pub http: Arc<McpHttp>,
    pub store: Arc<MemStore>,
    pub env: Arc<ToolEnv>,
}

/// An endpoint over the built-in tools plus `debug_sleep` (two calls per session at most).
pub fn fixture(cfg: McpHttpConfig) -> Fx {
    let settings = Arc::new(CoreSettings { session_max_inflight: 2, ..CoreSettings::default() });
    let metrics = Metrics::new().unwrap();
    let mut tools = builtin::all();
    tools.push(Arc::new(DebugSleep::new()));
    let registry = Arc::new(Registry::new(tools, &[], 50, &metrics).unwrap());
    let store = Arc::new(MemStore::default());
    let catalog = Arc::new(Catalog::new(builtin_models(), vec![]));
    let providers = Arc::new(ProviderSet::new(
        vec![],
        4,
        std::time::Duration::from_millis(100),
        1,
        RoutingConfig::default(),
        Arc::clone(&catalog),
        metrics.clone(),
    ));
    let env = Arc::new(ToolEnv {
        settings: Arc::clone(&settings),
        store: store.clone(),
        activity: Arc::new(NoActivity),
        metrics: metrics.clone(),
        runtime: Arc::new(RuntimeState::new(&settings)),
        catalog,
        toollog: ToolLogQueue::new(1024, metrics),
        providers,
        conversations: Arc::new(Conversations::new(store.clone(), ConversationSettings::default())),
        files: Arc::new(FileAccess::new(&[], 1024, 4096).0),
    });
    // Two calls run per session and one more may wait for a slot.
    let limits = exai_actors::session::BufferLimits { queue: 1, ..Default::default() };
    let sessions = exai_actors::session::SessionRegistry::new(limits, std::time::Duration::from_secs(5), 2);
    let http = McpHttp::new(Dispatcher::new(registry, Arc::clone(&env)), cfg, sessions);
    Fx { http, store, env }
}

/// A POST of `body` as a well-behaved client sends it (loopback Host, both Accept types).
pub fn rpc(body: &Value) -> TestRequest {
    TestRequest::post()
        .uri("/mcp")
        .insert_header(("host", "127.0.0.1:8080"))
        .insert_header(("content-type", "application/json"))
        .insert_header(("accept", "application/json, text/event-stream"))
        .set_payload(body.to_string())
}

/// [`rpc`] on session `sid` with the protocol-version header.
pub fn on(sid: &str, body: &Value) -> TestRequest {
    rpc(body).insert_header(("mcp-session-id", sid)).insert_header(("mcp-protocol-version", "2025-11-25"))
}

/// The `initialize` request.
pub fn init_body() -> Value {
    json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{
        "protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"http-test","version":"1.0"}}})
}

/// A `tools/call` request.
pub fn call_body(id: i64, name: &str, args: Value, token: Option<&str>) -> Value {
    let mut v = json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":{"name":name,"arguments":args}});
    if let Some(t) = token {
        v["params"]["_meta"] = json!({ "progressToken": t });
    }
    v
}

/// The body as JSON.
pub async fn body_json<B: MessageBody>(resp: ServiceResponse<B>) -> Value {
    let b = test::read_body(resp).await;
    serde_json::from_slice(&b).unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&b)))
}

/// The JSON messages of an SSE body, in order; every event must be `event: message`.
pub fn sse_messages(body: &[u8]) -> Vec<Value> {
    sse_events(body).into_iter().map(|(_, v)| v).collect()
}

/// The events of an SSE body with their ids (`id:` line, when present).
pub fn sse_events(body: &[u8]) -> Vec<(Option<String>, Value)> {
    let text = std::str::from_utf8(body).unwrap();
    text.split("\n\n")
        .filter(|e| !e.trim().is_empty() && !e.starts_with(':'))
        .map(|e| {
            let mut lines = e.lines().peekable();
            let id = lines.next_if(|l| l.starts_with("id: ")).map(|l| l[4..].to_string());
            assert_eq!(lines.next(), Some("event: message"), "event: {e:?}");
            let data = lines.next().and_then(|l| l.strip_prefix("data: ")).unwrap();
            (id, serde_json::from_str(data).unwrap())
        })
        .collect()
}

/// The next chunk of a streaming body (`None` at its end).
pub async fn next_chunk<B: MessageBody + Unpin>(body: &mut B) -> Option<Bytes> {
    futures_util::future::poll_fn(|cx| Pin::new(&mut *body).poll_next(cx)).await.and_then(|r| r.ok())
}

/// The rest of a streaming body.
pub async fn rest<B: MessageBody + Unpin>(body: &mut B) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(c) = next_chunk(body).await {
        out.extend_from_slice(&c);
    }
    out
}
