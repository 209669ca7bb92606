//! Builds the provider layer from the configuration: one circuit breaker (handle + actor), one
//! `ProviderActor` (all on one dedicated arbiter thread) and its `Lane` (chats on the caller's
//! thread) per enabled provider, and the `ProviderSet` tools call; plus conversations (and their write-behind
//! journal and writer), file access and the model the monitoring watchers ask.

use crate::config::{Config, ProviderKind};
use crate::providers::{transport_factory, TransportConfig, VendorKind};
use actix_rt::ArbiterHandle;
use exai_actors::breakers::BreakerBoard;
use exai_actors::catalog::Catalog;
use exai_actors::cluster::ClusterGate;
use exai_actors::conversation::writer::{ConversationWriter, WriteBehind, WriteBehindError};
use exai_actors::conversation::{ConversationSettings, Conversations};
use exai_actors::coordinator::{Child, ChildHandle, ChildSpec};
use exai_actors::metrics::Metrics;
use exai_actors::ports::AnalysisModel;
use exai_actors::ports::Store;
use exai_actors::provider::actor::{ProviderActor, ProviderActorConfig};
use exai_actors::provider::breaker::{BreakerActor, BreakerHandle};
use exai_actors::provider::lane::Lane;
use exai_actors::provider::service::{ChatCall, ProviderEntry, ProviderSet};
use exai_actors::provider::types::{ChatMessage, ChatRequest};
use exai_actors::tools::files::FileAccess;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// Child names are `&'static str`; providers are configured once at start-up.
fn static_name(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

/// The catalogue: built-in models, configured custom models, and every provider (no secrets).
pub fn catalog(cfg: &Config) -> Arc<Catalog> {
    let providers = cfg.provider_configs().iter().map(|p| p.info()).collect();
    Arc::new(Catalog::new(cfg.model_entries(), providers))
}

/// Provider actors, breakers and the service (behind `gate` when there is one). Adds the
/// supervised children to `children`.
#[allow(clippy::too_many_arguments)]
pub fn providers(
    cfg: &Config,
    retry_after_secs: u64,
    catalog: Arc<Catalog>,
    metrics: &Metrics,
    arbiter: &ArbiterHandle,
    board: &BreakerBoard,
    gate: Option<Arc<ClusterGate>>,
    children: &mut Vec<Box<dyn ChildSpec>>,
) -> Arc<ProviderSet> {
    let limits = cfg.provider_limits();
    let mut entries = Vec::new();
    for p in cfg.provider_configs() {
        if let Some(key) = &p.api_key {
            // Masked wherever vendor text is relayed or logged.
            exai_actors::redact::register(key.expose());
        }
    }
    if let Some(token) = &cfg.server.auth_token {
        exai_actors::redact::register(token.expose());
    }
    for p in cfg.provider_configs().into_iter().filter(|p| p.enabled) {
        metrics.register_provider(&p.name);
        let breaker = BreakerHandle::new(&p.name, p.breaker, metrics);
        board.register(breaker.clone());
        let (breaker_child, _) = BreakerActor::child(static_name(format!("breaker:{}", p.name)), breaker.clone());
        children.push(Box::new(breaker_child));
        let transport = transport_factory(TransportConfig {
            name: p.name.clone(),
            kind: match p.kind {
                ProviderKind::Kimi => VendorKind::Kimi,
                ProviderKind::Glm => VendorKind::Glm,
                ProviderKind::OpenAiCompatible => VendorKind::OpenAiCompatible,
            },
            base_url: p.base_url.clone(),
            api_key: p.api_key.as_ref().map(|k| k.expose().to_string()),
            extra_headers: Vec::new(),
            kimi_web_search_max_rounds: 3,
        });
        let actor_cfg =
            ProviderActorConfig { name: p.name.clone(), timeouts: p.timeouts, retry: p.retry.clone(), transport };
        let handle: ChildHandle<ProviderActor> = ChildHandle::default();
        let lane = Lane::new(actor_cfg.clone(), metrics.clone());
        let (b, m, l) = (breaker.clone(), metrics.clone(), lane.clone());
        children.push(Box::new(Child::in_arbiter(
            static_name(format!("provider:{}", p.name)),
            handle.clone(),
            arbiter.clone(),
            move |exit| ProviderActor::new(actor_cfg.clone(), b.clone(), m.clone(), Some(exit)).linked(&l),
        )));
        entries.push(ProviderEntry {
            name: p.name.clone(),
            actor: handle,
            lane,
            breaker,
            semaphore: Arc::new(Semaphore::new(p.max_inflight)),
            max_inflight: p.max_inflight,
            fallback: p.fallback.clone(),
            configured: p.usable(),
        });
    }
    let set = ProviderSet::new(
        entries,
        limits.global_max_inflight,
        limits.queue_wait,
        retry_after_secs,
        cfg.routing.clone(),
        catalog,
        metrics.clone(),
    )
    .with_keepalive(Duration::from_secs(cfg.timeouts.progress_interval_secs));
    Arc::new(match gate {
        Some(g) => set.with_cluster(g),
        None => set,
    })
}

/// Whether turns are stored write-behind (`conversations.write_behind`; `auto` means a SQLite
/// file: one server owns it, and its round trips are on every reply otherwise).
pub fn write_behind_enabled(cfg: &Config) -> bool {
    match cfg.conversations.write_behind.as_str() {
        "on" => true,
        "off" => false,
        _ => {
            let url = cfg.database_url();
            url.starts_with("sqlite:") && !url.contains(":memory:") && !url.contains("mode=memory")
        }
    }
}

/// Conversation threads over the store; with write-behind, also the journal service (its
/// writer actor is added to `children`). Replays what an earlier process left in the journal.
pub async fn conversations(
    cfg: &Config,
    store: Arc<dyn Store>,
    metrics: &Metrics,
    health: &Arc<exai_actors::storage_health::StorageHealth>,
    children: &mut Vec<Box<dyn ChildSpec>>,
) -> Result<(Arc<Conversations>, Option<Arc<WriteBehind>>), WriteBehindError> {
    let c = &cfg.conversations;
    let settings = ConversationSettings {
        max_turns: c.max_turns,
        ttl: Duration::from_secs(c.ttl_hours.saturating_mul(3600)),
        cross_session: c.cross_session,
    };
    if !write_behind_enabled(cfg) {
        return Ok((Arc::new(Conversations::new(store, settings).with_storage_health(Arc::clone(health))), None));
    }
    let dir = PathBuf::from(&cfg.storage.data_dir).join("journal");
    let wb = WriteBehind::open(&dir, Arc::clone(&store), 4096, metrics.clone(), Arc::clone(health)).await?;
    let handle: ChildHandle<ConversationWriter> = ChildHandle::default();
    let w = Arc::clone(&wb);
    children.insert(
        0,
        Box::new(Child::new("conversation-writer", handle, move |exit| {
            ConversationWriter::new(Arc::clone(&w), Some(exit))
        })),
    );
    let conversations =
        Conversations::with_write_behind(store, settings, Arc::clone(&wb)).with_storage_health(Arc::clone(health));
    Ok((Arc::new(conversations), Some(wb)))
}

/// File access from `tools.allowed_roots` (default: the working directory). Returns problems
/// with roots (logged as warnings by the caller).
pub fn files(cfg: &Config) -> (Arc<FileAccess>, Vec<String>) {
    let t = &cfg.tools;
    let roots: Vec<PathBuf> = if t.allowed_roots.is_empty() {
        std::env::current_dir().map(|d| vec![d]).unwrap_or_default()
    } else {
        t.allowed_roots.iter().map(PathBuf::from).collect()
    };
    let (fa, problems) = FileAccess::new(&roots, t.max_file_bytes, t.max_total_file_bytes);
    (Arc::new(fa), problems)
}

/// The model the error watcher and the auditor ask, reached through the provider layer
/// (limits, breaker, retries apply). `None` when neither feature is enabled.
pub fn analysis_model(cfg: &Config, providers: &Arc<ProviderSet>) -> Option<Arc<dyn AnalysisModel>> {
    let m = &cfg.monitoring;
    (m.error_ai_enabled || m.auditor_enabled)
        .then(|| Arc::new(ProviderAnalyst { providers: Arc::clone(providers) }) as Arc<dyn AnalysisModel>)
}

/// [`AnalysisModel`] over the [`ProviderSet`].
struct ProviderAnalyst {
    providers: Arc<ProviderSet>,
}

#[async_trait::async_trait(?Send)]
impl AnalysisModel for ProviderAnalyst {
    async fn analyze(&self, model: &str, system: &str, prompt: &str) -> Result<String, String> {
        let call = ChatCall {
            model: Some(model.to_string()),
            tool: "monitoring".into(),
            request: ChatRequest {
                messages: vec![ChatMessage::text("system", system), ChatMessage::text("user", prompt)],
                temperature: Some(0.2),
                ..ChatRequest::default()
            },
            ..ChatCall::default()
        };
        self.providers.complete(call).await.map(|r| r.response.content).map_err(|e| e.to_string())
    }
}
