//! Test-only kit for the AI tools: an in-memory [`Store`], a scripted [`ProviderTransport`]
//! that answers with canned responses and counts calls, and a [`Harness`] wiring real
//! provider actors (under a real coordinator), the real `ProviderSet`, conversations and
//! file access into a `ToolContext`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::catalog::{builtin_models, Catalog, ProviderInfo};
use crate::conversation::{ConversationSettings, Conversations};
use crate::coordinator::SystemCoordinator;
use crate::env::{RuntimeState, ToolEnv};
use crate::error::ToolError;
use crate::metrics::Metrics;
use crate::ports::*;
use crate::provider::actor::{ProviderActor, ProviderActorConfig};
use crate::provider::breaker::{BreakerConfig, BreakerHandle};
use crate::provider::retry::RetryPolicy;
use crate::provider::router::RoutingConfig;
use crate::provider::service::{ProviderEntry, ProviderSet};
use crate::provider::transport::ProviderTransport;
use crate::provider::types::*;
use crate::settings::CoreSettings;
use crate::supervision::{Child, ChildHandle, ChildSpec};
use crate::toollog::ToolLogQueue;
use crate::tools::files::FileAccess;
use crate::tools::{CallTiming, ProgressSink, Tool, ToolContext, ToolOutput};
use actix::prelude::*;
use async_trait::async_trait;
use serde_json::{json, Map, Value};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Conversations and messages in memory, with the `Store` contract's idempotent appends.
#[derive(Default)]
pub struct MemStore {
    convs: Mutex<Vec<ConversationRecord>>,
    msgs: Mutex<Vec<MessageRecord>>,
}

fn no_diagnostics<T>() -> Result<T, StoreError> {
    Err(StoreError::Unavailable("diagnostics are not kept by the in-memory test store".into()))
}

#[async_trait]
impl crate::ports::DiagnosticsStore for MemStore {
    async fn record_error(&self, _: &crate::ports::ErrorOccurrence) -> Result<crate::ports::ErrorUpsert, StoreError> {
        no_diagnostics()
    }
    async fn set_error_analysis(&self, _: i64, _: &crate::ports::ErrorAnalysis) -> Result<(), StoreError> {
        no_diagnostics()
    }
    async fn list_errors(
        &self,
        _: &crate::ports::ErrorQuery,
    ) -> Result<Vec<crate::ports::ErrorInvestigation>, StoreError> {
        no_diagnostics()
    }
    async fn resolve_error(
        &self,
        _: i64,
        _: Option<&str>,
        _: i64,
    ) -> Result<crate::ports::ErrorInvestigation, StoreError> {
        no_diagnostics()
    }
    async fn add_observation(&self, _: &crate::ports::NewObservation) -> Result<i64, StoreError> {
        no_diagnostics()
    }
    async fn list_observations(
        &self,
        _: &crate::ports::ObservationQuery,
    ) -> Result<Vec<crate::ports::AuditorObservation>, StoreError> {
        no_diagnostics()
    }
    async fn acknowledge_observation(
        &self,
        _: i64,
        _: Option<&str>,
        _: i64,
    ) -> Result<crate::ports::AuditorObservation, StoreError> {
        no_diagnostics()
    }
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
        Ok(MigrationStatus { applied: vec![], known: vec![] })
    }
    async fn record_tool_calls(&self, rows: &[ToolCallRecord]) -> Result<u64, StoreError> {
        Ok(rows.len() as u64)
    }
    async fn recent_tool_calls(&self, _q: &ToolCallQuery) -> Result<Vec<ToolCallRecord>, StoreError> {
        Ok(vec![])
    }
    async fn upsert_session(&self, _s: &SessionRecord) -> Result<(), StoreError> {
        Ok(())
    }
    async fn close_session(&self, _id: &str, _at_ms: i64) -> Result<(), StoreError> {
        Ok(())
    }
    async fn get_session(&self, _id: &str) -> Result<Option<SessionRecord>, StoreError> {
        Ok(None)
    }
    async fn create_conversation(&self, c: &ConversationRecord) -> Result<(), StoreError> {
        let mut convs = self.convs.lock().unwrap();
        if convs.iter().any(|x| x.continuation_id == c.continuation_id || x.id == c.id) {
            return Err(StoreError::Constraint("conversation exists".into()));
        }
        convs.push(c.clone());
        Ok(())
    }
    async fn get_conversation(&self, continuation_id: &str) -> Result<Option<ConversationRecord>, StoreError> {
        Ok(self.convs.lock().unwrap().iter().find(|c| c.continuation_id == continuation_id).cloned())
    }
    async fn append_message(&self, m: &NewMessage) -> Result<MessageRecord, StoreError> {
        let mut msgs = self.msgs.lock().unwrap();
        if let Some(r) = msgs.iter().find(|r| r.idempotency_key == m.idempotency_key) {
            return Ok(r.clone());
        }
        let mut convs = self.convs.lock().unwrap();
        let conv = convs
            .iter_mut()
            .find(|c| c.id == m.conversation_id)
            .ok_or_else(|| StoreError::NotFound(m.conversation_id.clone()))?;
        conv.turn_count += 1;
        conv.updated_at_ms = m.created_at_ms;
        let seq = msgs.iter().filter(|r| r.conversation_id == m.conversation_id).count() as i64 + 1;
        let rec = m.stored(msgs.len() as i64 + 1, seq);
        msgs.push(rec.clone());
        Ok(rec)
    }
    async fn list_messages(&self, conversation_id: &str, limit: u32) -> Result<Vec<MessageRecord>, StoreError> {
        let msgs = self.msgs.lock().unwrap();
        Ok(msgs.iter().filter(|m| m.conversation_id == conversation_id).take(limit as usize).cloned().collect())
    }
    async fn close(&self) {}
}

struct NoActivity;

impl ActivitySource for NoActivity {
    fn recent(&self, _q: &ActivityQuery) -> Vec<ActivityEvent> {
        vec![]
    }
}

type Reply = dyn Fn(&str, &ChatRequest) -> Result<ChatResponse, ProviderError> + Send + Sync;

/// What the fake providers answer, and what they were asked.
pub struct Script {
    reply: Box<Reply>,
    calls: AtomicUsize,
    requests: Mutex<Vec<(String, ChatRequest)>>,
    searches: Mutex<Vec<Value>>,
}

impl Script {
    /// Chat calls so far (all providers).
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
    /// (provider, request) of every chat call.
    pub fn requests(&self) -> Vec<(String, ChatRequest)> {
        self.requests.lock().unwrap().clone()
    }
    /// Web search bodies received.
    pub fn searches(&self) -> Vec<Value> {
        self.searches.lock().unwrap().clone()
    }
}

struct FakeTransport {
    provider: String,
    script: Arc<Script>,
}

#[async_trait(?Send)]
impl ProviderTransport for FakeTransport {
    async fn chat(
        &self,
        req: &ChatRequest,
        _t: &RequestTimeouts,
        _on_event: &mut dyn FnMut(StreamEvent),
    ) -> Result<ChatResponse, ProviderError> {
        self.script.calls.fetch_add(1, Ordering::SeqCst);
        self.script.requests.lock().unwrap().push((self.provider.clone(), req.clone()));
        (self.script.reply)(&self.provider, req)
    }
    async fn web_search(&self, params: &Value, _t: &RequestTimeouts) -> Result<Value, ProviderError> {
        self.script.searches.lock().unwrap().push(params.clone());
        Ok(json!({ "search_result": [{ "title": "t", "link": "https://example.org", "content": "c" }] }))
    }
    async fn upload_file(
        &self,
        _: &Path,
        _: &str,
        _: &str,
        _: Option<crate::files::hash::ChunkSink>,
        _: &RequestTimeouts,
    ) -> Result<ProviderFile, ProviderError> {
        Err(ProviderError::Unsupported("fake".into()))
    }
    async fn list_files(&self, _: &RequestTimeouts) -> Result<Vec<ProviderFile>, ProviderError> {
        Err(ProviderError::Unsupported("fake".into()))
    }
    async fn file_content(&self, _: &str, _: &RequestTimeouts) -> Result<String, ProviderError> {
        Err(ProviderError::Unsupported("fake".into()))
    }
    async fn delete_file(&self, _: &str, _: &RequestTimeouts) -> Result<(), ProviderError> {
        Err(ProviderError::Unsupported("fake".into()))
    }
}

/// A text answer from `model`.
pub fn answer(model: &str, content: &str) -> ChatResponse {
    ChatResponse {
        content: content.into(),
        model: model.into(),
        usage: Some(Usage { prompt_tokens: 10, completion_tokens: 5, total_tokens: 15 }),
        finish_reason: Some("stop".into()),
        ..ChatResponse::default()
    }
}

fn breaker(metrics: &Metrics) -> BreakerHandle {
    BreakerHandle::new("fake", BreakerConfig::default(), metrics)
}
fn retry() -> RetryPolicy {
    RetryPolicy::default()
}

/// Everything a tool test needs.
pub struct Harness {
    /// Context for calls (its request id is replaced per call).
    pub ctx: ToolContext,
    /// The fake providers' script.
    pub script: Arc<Script>,
    /// The allowed root (a fresh temporary directory).
    pub root: PathBuf,
    _coordinator: Addr<SystemCoordinator>,
}

impl Harness {
    /// Providers `kimi` and `glm` (both configured) answering through `reply`.
    pub async fn new(
        settings: CoreSettings,
        reply: impl Fn(&str, &ChatRequest) -> Result<ChatResponse, ProviderError> + Send + Sync + 'static,
    ) -> Harness {
        let metrics = Metrics::new().unwrap();
        let settings = Arc::new(settings);
        let store: Arc<dyn Store> = Arc::new(MemStore::default());
        let runtime = Arc::new(RuntimeState::new(&settings));
        let info = |name: &str| ProviderInfo {
            name: name.into(),
            kind: name.into(),
            base_url: format!("http://127.0.0.1:9/{name}"),
            api_key_configured: true,
            files_api: true,
            web_search_endpoint: name == "glm",
        };
        let catalog = Arc::new(Catalog::new(builtin_models(), vec![info("kimi"), info("glm")]));
        let script = Arc::new(Script {
            reply: Box::new(reply),
            calls: AtomicUsize::new(0),
            requests: Mutex::new(vec![]),
            searches: Mutex::new(vec![]),
        });
        let mut children: Vec<Box<dyn ChildSpec>> = Vec::new();
        let mut entries = Vec::new();
        for name in ["kimi", "glm"] {
            let handle: ChildHandle<ProviderActor> = ChildHandle::default();
            let s = Arc::clone(&script);
            let cfg = ProviderActorConfig {
                name: name.into(),
                timeouts: RequestTimeouts {
                    connect: Duration::from_secs(1),
                    first_byte: Duration::from_secs(5),
                    idle: Duration::from_secs(5),
                    total: Duration::from_secs(5),
                },
                retry: retry(),
                transport: Arc::new(move || {
                    Box::new(FakeTransport { provider: name.into(), script: Arc::clone(&s) })
                        as Box<dyn ProviderTransport>
                }),
            };
            let m = metrics.clone();
            let b = breaker(&metrics);
            let b2 = b.clone();
            let lane = crate::provider::lane::Lane::new(cfg.clone(), metrics.clone());
            let l = lane.clone();
            children.push(Box::new(Child::new(name, handle.clone(), move |exit| {
                ProviderActor::new(cfg.clone(), b2.clone(), m.clone(), Some(exit)).linked(&l)
            })));
            entries.push(ProviderEntry {
                name: name.into(),
                actor: handle,
                lane,
                breaker: b,
                semaphore: Arc::new(tokio::sync::Semaphore::new(4)),
                max_inflight: 4,
                fallback: vec![],
                configured: true,
            });
        }
        let handles: Vec<_> = entries.iter().map(|e| e.actor.clone()).collect();
        let coordinator = SystemCoordinator::new(
            Arc::clone(&settings),
            Arc::clone(&runtime),
            metrics.clone(),
            Arc::clone(&store),
            children,
            false,
        )
        .start();
        for _ in 0..200 {
            if handles.iter().all(|h| h.get().is_some()) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(handles.iter().all(|h| h.get().is_some()), "provider actors did not start");
        let providers = Arc::new(ProviderSet::new(
            entries,
            8,
            Duration::from_secs(1),
            1,
            RoutingConfig::default(),
            Arc::clone(&catalog),
            metrics.clone(),
        ));
        let root = std::env::temp_dir().join(format!("exai-aitools-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&root).unwrap();
        let (files, problems) = FileAccess::new(std::slice::from_ref(&root), 1 << 20, 4 << 20);
        assert!(problems.is_empty());
        let env = Arc::new(ToolEnv {
            settings: Arc::clone(&settings),
            store: Arc::clone(&store),
            activity: Arc::new(NoActivity),
            metrics: metrics.clone(),
            runtime,
            catalog,
            toollog: ToolLogQueue::new(1024, metrics),
            providers,
            conversations: Arc::new(Conversations::new(store, ConversationSettings::default())),
            files: Arc::new(files),
        });
        let ctx = ToolContext {
            session_id: Arc::from("session-1"),
            request_id: String::new(),
            call_id: Arc::from(""),
            principal: crate::access::principal(None),
            protocol: "test",
            progress: ProgressSink::none(),
            env,
            timing: Rc::new(CallTiming::default()),
        };
        Harness { ctx, script, root, _coordinator: coordinator }
    }

    /// Providers that answer every chat with `content` from the requested model.
    pub async fn echo(settings: CoreSettings, content: &'static str) -> Harness {
        Harness::new(settings, move |_, req| Ok(answer(&req.model, content))).await
    }

    /// Call `tool` with `args` as a real client does: request id `1` every time (clients
    /// restart their ids on every connection), a fresh server call id.
    pub async fn call(&self, tool: &dyn Tool, args: Value) -> Result<ToolOutput, ToolError> {
        let mut ctx = self.ctx.clone();
        ctx.request_id = "1".to_string();
        ctx.call_id = Arc::from(uuid::Uuid::now_v7().to_string());
        let args: Map<String, Value> = match args {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        tool.call(ctx, args).await
    }

    /// Call and return the structured result.
    pub async fn ok(&self, tool: &dyn Tool, args: Value) -> Value {
        match self.call(tool, args).await {
            Ok(out) => out.structured.expect("structured result"),
            Err(e) => panic!("tool failed: {e}"),
        }
    }

    /// Write a file under the allowed root.
    pub fn file(&self, name: &str, text: &str) -> String {
        let p = self.root.join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}
