//! `ProviderSet`: what tools call to reach a model.
//!
//! It resolves the model (explicit name through the catalogue, `auto` through the router, a
//! continuation's locked model), then walks the candidate list — the model itself, then its
//! provider's fallback chain — skipping a candidate whose provider is open-circuited or cannot
//! grant concurrency permits within the queue wait. Permits are a global and a per-provider
//! semaphore; the wait is bounded and recorded (result latency metrics and a histogram). The
//! request then runs on the calling thread through the provider's [`Lane`] (no hop to the
//! actor's thread), owned by this future: dropping the call (cancel, disconnect, timeout)
//! aborts the provider request. Files API operations go to the provider's actor.
//! Streamed chunks are forwarded to the caller's progress sink as they arrive.

use super::actor::{Chat, ChatOutcome, FileOp, FileReply, FileRequest, InflightGauge, Permits, ProviderActor};
use super::breaker::BreakerHandle;
use super::lane::Lane;
use super::router::{auto_slot, counterpart, slot_model, RoutingConfig, StepInfo};
use super::types::{ChatRequest, ChatResponse, ProviderError, StreamEvent};
use crate::catalog::{Catalog, ModelEntry};
use crate::error::ToolError;
use crate::metrics::Metrics;
use crate::supervision::ChildHandle;
use crate::tools::{ProgressEvent, ProgressSink, ToolContext};
use serde::Serialize;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot, Semaphore};

/// One provider as the service sees it.
pub struct ProviderEntry {
    /// Provider id.
    pub name: String,
    /// Its actor (Files API operations; keeps the lane live).
    pub actor: ChildHandle<ProviderActor>,
    /// Its lane (chat requests on the caller's thread).
    pub lane: Lane,
    /// Its breaker.
    pub breaker: BreakerHandle,
    /// Its concurrency limit.
    pub semaphore: Arc<Semaphore>,
    /// The limit's size.
    pub max_inflight: usize,
    /// Models to try when this provider is open-circuited or at capacity.
    pub fallback: Vec<String>,
    /// Whether an API key is configured.
    pub configured: bool,
}

/// A chat as a tool asks for it.
#[derive(Debug, Clone, Default)]
pub struct ChatCall {
    /// Requested model; `None` or `"auto"` routes automatically.
    pub model: Option<String>,
    /// Calling tool (for auto routing).
    pub tool: String,
    /// Workflow position (for auto routing).
    pub step: Option<StepInfo>,
    /// Model locked by a continuation (wins over `model`).
    pub locked_model: Option<String>,
    /// The request; `model` is filled in by routing.
    pub request: ChatRequest,
}

/// A finished chat with its routing metadata.
#[derive(Debug, Clone, Serialize)]
pub struct ChatResult {
    /// The answer.
    pub response: ChatResponse,
    /// Provider that answered.
    pub provider: String,
    /// Model that answered.
    pub model: String,
    /// Model first chosen.
    pub requested_model: String,
    /// Set when a fallback answered: the model that could not.
    pub fallback_from: Option<String>,
    /// Why this model (auto routing reason, explicit, continuation).
    pub routing: String,
    /// Provider attempts (1 = no retry).
    pub attempts: u32,
    /// Time in provider requests, ms.
    pub provider_ms: f64,
}

/// All providers.
pub struct ProviderSet {
    entries: Vec<ProviderEntry>,
    global: Arc<Semaphore>,
    global_max: usize,
    queue_wait: Duration,
    retry_after_secs: u64,
    routing: RoutingConfig,
    catalog: Arc<Catalog>,
    metrics: Metrics,
}

fn tool_error(provider: &str, e: ProviderError) -> ToolError {
    match e {
        ProviderError::Cancelled => ToolError::Cancelled { reason: "provider request aborted".into() },
        ProviderError::OverCapacity { retry_after_secs, .. } | ProviderError::CircuitOpen { retry_after_secs, .. } => {
            ToolError::OverCapacity { message: e.to_string(), retry_after_secs }
        }
        other => ToolError::Provider { provider: provider.to_string(), message: other.to_string() },
    }
}

impl ProviderSet {
    /// Build from entries and limits.
    pub fn new(
        entries: Vec<ProviderEntry>,
        global_max: usize,
        queue_wait: Duration,
        retry_after_secs: u64,
        routing: RoutingConfig,
        catalog: Arc<Catalog>,
        metrics: Metrics,
    ) -> ProviderSet {
        ProviderSet {
            entries,
            global: Arc::new(Semaphore::new(global_max)),
            global_max,
            queue_wait,
            retry_after_secs,
            routing,
            catalog,
            metrics,
        }
    }

    /// The catalogue.
    pub fn catalog(&self) -> &Arc<Catalog> {
        &self.catalog
    }

    /// All provider entries.
    pub fn entries(&self) -> &[ProviderEntry] {
        &self.entries
    }

    fn entry(&self, name: &str) -> Option<&ProviderEntry> {
        self.entries.iter().find(|e| e.name == name)
    }

    /// Permits in use: (global used, global max).
    pub fn global_usage(&self) -> (usize, usize) {
        (self.global_max - self.global.available_permits(), self.global_max)
    }

    fn configured(&self, provider: &str) -> bool {
        self.entry(provider).is_some_and(|e| e.configured)
    }

    /// Resolve the model for a call: (entry, routing reason).
    pub fn resolve(&self, call: &ChatCall) -> Result<(&ModelEntry, String), ToolError> {
        let bad = |e: crate::catalog::UnknownModel| ToolError::InvalidArguments {
            field: "model".into(),
            message: e.to_string(),
        };
        if let Some(locked) = &call.locked_model {
            return Ok((self.catalog.resolve(locked).map_err(bad)?, "continuation keeps its model".into()));
        }
        match call.model.as_deref().map(str::trim) {
            Some(m) if !m.is_empty() && m != "auto" => Ok((self.catalog.resolve(m).map_err(bad)?, "explicit".into())),
            _ => {
                let (slot, why) = auto_slot(&call.tool, call.step.as_ref());
                let glm_ok = self.configured("glm");
                let kimi_ok = self.configured("kimi");
                let mut name = slot_model(&self.routing, slot, &call.tool, !glm_ok && kimi_ok);
                let mut reason = format!("auto: {why}");
                if let Ok(m) = self.catalog.resolve(&name) {
                    if !self.configured(&m.provider) {
                        if let Some(alt) = counterpart(&self.routing, &name)
                            .filter(|alt| self.catalog.resolve(alt).is_ok_and(|a| self.configured(&a.provider)))
                        {
                            reason = format!("{reason}; {} has no key, using {alt}", m.provider);
                            name = alt;
                        }
                    }
                }
                Ok((self.catalog.resolve(&name).map_err(bad)?, reason))
            }
        }
    }

    async fn permits(&self, e: &ProviderEntry) -> Result<(Permits, Duration), ProviderError> {
        let t0 = Instant::now();
        let over = |limit: String| ProviderError::OverCapacity {
            provider: e.name.clone(),
            limit,
            retry_after_secs: self.retry_after_secs,
        };
        let global = tokio::time::timeout(self.queue_wait, Arc::clone(&self.global).acquire_owned())
            .await
            .map_err(|_| over(format!("global provider limit {}", self.global_max)))?
            .map_err(|_| over("global provider limit closed".into()))?;
        let left = self.queue_wait.saturating_sub(t0.elapsed());
        let provider = tokio::time::timeout(left, Arc::clone(&e.semaphore).acquire_owned())
            .await
            .map_err(|_| over(format!("{} limit {}", e.name, e.max_inflight)))?
            .map_err(|_| over(format!("{} limit closed", e.name)))?;
        let gauge = InflightGauge::new(self.metrics.provider_inflight.with_label_values(&[&e.name]));
        Ok((Permits { global: Some(global), provider: Some(provider), gauge: Some(gauge) }, t0.elapsed()))
    }

    /// Candidates: the model, then its provider's fallback chain (deduplicated).
    fn candidates<'a>(&'a self, first: &'a ModelEntry) -> Vec<&'a ModelEntry> {
        let mut out = vec![first];
        if let Some(e) = self.entry(&first.provider) {
            for f in &e.fallback {
                if let Ok(m) = self.catalog.resolve(f) {
                    if !out.iter().any(|x| x.name == m.name) {
                        out.push(m);
                    }
                }
            }
        }
        out
    }

    /// Run a chat for a tool. Streams chunks to `ctx.progress` when it is active and adds
    /// the permit wait to the call's timing.
    pub async fn chat(&self, ctx: &ToolContext, call: ChatCall) -> Result<ChatResult, ToolError> {
        self.run(call, &ctx.progress, Some(&ctx.timing)).await
    }

    /// Run a chat outside any tool call (error watcher, auditor): no progress, no timing.
    pub async fn complete(&self, call: ChatCall) -> Result<ChatResult, ToolError> {
        self.run(call, &ProgressSink::none(), None).await
    }

    async fn run(
        &self,
        call: ChatCall,
        progress: &ProgressSink,
        timing: Option<&crate::tools::CallTiming>,
    ) -> Result<ChatResult, ToolError> {
        let (first, routing) = self.resolve(&call)?;
        let mut last: Option<(String, ProviderError)> = None;
        for (i, model) in self.candidates(first).into_iter().enumerate() {
            let Some(entry) = self.entry(&model.provider) else {
                last = Some((
                    model.provider.clone(),
                    ProviderError::Unsupported(format!("provider {} is not configured", model.provider)),
                ));
                continue;
            };
            if !entry.configured {
                last = Some((
                    entry.name.clone(),
                    ProviderError::Unsupported(format!(
                        "provider {} has no API key configured (set providers.{}.api_key or its environment variable)",
                        entry.name, entry.name
                    )),
                ));
                continue;
            }
            let breaker = match entry.breaker.try_acquire() {
                Ok(p) => p,
                Err(wait) => {
                    last = Some((
                        entry.name.clone(),
                        ProviderError::CircuitOpen {
                            provider: entry.name.clone(),
                            retry_after_secs: wait.as_secs().max(1),
                        },
                    ));
                    continue;
                }
            };
            let (permits, waited) = match self.permits(entry).await {
                Ok(p) => p,
                Err(e) => {
                    last = Some((entry.name.clone(), e));
                    continue;
                }
            };
            if let Some(t) = timing {
                t.provider_wait_ms.set(t.provider_wait_ms.get() + waited.as_secs_f64() * 1000.0);
            }
            self.metrics.provider_wait_seconds.with_label_values(&[&entry.name]).observe(waited.as_secs_f64());
            let mut req = call.request.clone();
            req.model = model.name.clone();
            req.stream = req.stream || progress.is_active();
            let (cancel_tx, cancel_rx) = oneshot::channel::<()>();
            let (tx, mut rx) = mpsc::channel::<StreamEvent>(256);
            let events = progress.is_active().then_some(tx);
            let Some(send) = entry.lane.chat(Chat { req, events, cancel: cancel_rx, permits, breaker }) else {
                last = Some((
                    entry.name.clone(),
                    ProviderError::Network(format!("provider {} is restarting", entry.name)),
                ));
                continue;
            };
            tokio::pin!(send);
            let res = loop {
                tokio::select! {
                    r = &mut send => break r,
                    Some(ev) = rx.recv() => forward(progress, ev),
                }
            };
            while let Ok(ev) = rx.try_recv() {
                forward(progress, ev);
            }
            drop(cancel_tx);
            let outcome: Result<ChatOutcome, ProviderError> = res;
            return match outcome {
                Ok(o) => {
                    let fallback_from = (i > 0).then(|| first.name.clone());
                    if fallback_from.is_some() {
                        self.metrics.provider_fallbacks.with_label_values(&[&first.provider]).inc();
                    }
                    Ok(ChatResult {
                        response: o.response,
                        provider: entry.name.clone(),
                        model: model.name.clone(),
                        requested_model: first.name.clone(),
                        fallback_from,
                        routing: routing.clone(),
                        attempts: o.attempts,
                        provider_ms: o.provider_ms,
                    })
                }
                Err(e) => Err(tool_error(&entry.name, e)),
            };
        }
        let (p, e) = last
            .unwrap_or_else(|| (first.provider.clone(), ProviderError::Unsupported("no provider available".into())));
        Err(tool_error(&p, e))
    }

    /// A Files API or web-search operation on a named provider (no fallback).
    pub async fn file_op(&self, provider: &str, op: FileRequest) -> Result<FileReply, ToolError> {
        self.file_op_typed(provider, op).await?.map_err(|e| tool_error(provider, e))
    }

    /// Delete a provider file: `Ok(true)` deleted, `Ok(false)` already gone (the provider
    /// answered 404 — decided on the typed status, never on message text).
    pub async fn delete_file(&self, provider: &str, id: &str) -> Result<bool, ToolError> {
        match self.file_op_typed(provider, FileRequest::Delete(id.to_string())).await? {
            Ok(_) => Ok(true),
            Err(ProviderError::BadRequest { status: 404, .. }) => Ok(false),
            Err(e) => Err(tool_error(provider, e)),
        }
    }

    /// A Files API operation: admission failures (unknown provider, open breaker, no
    /// permit) as the outer error, the provider's own answer as the inner result.
    async fn file_op_typed(
        &self,
        provider: &str,
        op: FileRequest,
    ) -> Result<Result<FileReply, ProviderError>, ToolError> {
        let entry = self.entry(provider).ok_or_else(|| ToolError::Provider {
            provider: provider.into(),
            message: "provider not configured".into(),
        })?;
        if !entry.configured {
            return Err(tool_error(
                provider,
                ProviderError::Unsupported(format!("provider {provider} has no API key configured")),
            ));
        }
        let breaker = entry.breaker.try_acquire().map_err(|w| {
            tool_error(
                provider,
                ProviderError::CircuitOpen { provider: provider.into(), retry_after_secs: w.as_secs().max(1) },
            )
        })?;
        let (permits, _) = self.permits(entry).await.map_err(|e| tool_error(provider, e))?;
        let addr =
            entry.actor.get().ok_or_else(|| ToolError::Unavailable(format!("provider {provider} is restarting")))?;
        let (cancel_tx, cancel_rx) = oneshot::channel::<()>();
        let res = addr.send(FileOp { op, cancel: cancel_rx, permits, breaker }).await;
        drop(cancel_tx);
        match res {
            Ok(r) => Ok(r),
            Err(_) => Err(ToolError::Unavailable(format!("provider {provider} actor stopped during the request"))),
        }
    }
}

fn forward(progress: &ProgressSink, ev: StreamEvent) {
    match ev {
        StreamEvent::Content(t) => progress.emit(ProgressEvent::Chunk(t)),
        StreamEvent::Reasoning(t) => progress.emit(ProgressEvent::Progress {
            progress: 0.0,
            total: None,
            message: Some(format!("thinking: {t}")),
        }),
    }
}
