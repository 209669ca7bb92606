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
//! Streamed chunks are forwarded to the caller's progress sink as they arrive; while nothing
//! arrives, a keep-alive progress notification goes out every `keepalive` (MCP clients that
//! asked for progress see the call alive through a thinking model's silence).
//!
//! A candidate that fails after the retries of a retryable class (rate limit, timeout, server,
//! network) or with an account error hands over to the next candidate unless output already
//! reached the caller. Permit and breaker acquisition happen in one place,
//! [`ProviderSet::admit`].

use super::actor::{Chat, ChatOutcome, FileOp, FileReply, FileRequest, InflightGauge, Permits, ProviderActor};
use super::breaker::{BreakerHandle, BreakerPermit};
use super::lane::Lane;
use super::router::{auto_slot, counterpart, slot_model, RoutingConfig, StepInfo};
use super::types::{ChatRequest, ChatResponse, ErrorClass, ProviderError, RequestTimeouts, StreamEvent};
use crate::catalog::{Catalog, ModelEntry};
use crate::cluster::{ClusterGate, GateRefusal};
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
    /// Cluster-wide limits and rate buckets (`None`: this node's semaphores are the limits).
    cluster: Option<Arc<ClusterGate>>,
    keepalive: Duration,
}

/// Default interval of the keep-alive progress sent while a provider is silent.
pub const DEFAULT_KEEPALIVE: Duration = Duration::from_secs(10);

fn tool_error(provider: &str, e: ProviderError) -> ToolError {
    tool_error_in(provider, e, None)
}

/// The tool's view of a provider failure: vendor text masked ([`crate::redact::mask`]), a
/// timeout as `TIMEOUT` naming its phase and every phase's limit, a refusal with a
/// `Retry-After` as an error carrying `retry_after`.
fn tool_error_in(provider: &str, e: ProviderError, timeouts: Option<&RequestTimeouts>) -> ToolError {
    let masked = |e: &ProviderError| crate::redact::mask(&e.to_string()).into_owned();
    match e {
        ProviderError::Cancelled => ToolError::Cancelled { reason: "provider request aborted".into() },
        // `ToolError::OverCapacity` adds "; retry after Ns" itself.
        ProviderError::OverCapacity { provider, limit, retry_after_secs } => ToolError::OverCapacity {
            message: format!("provider {provider} is at capacity ({limit})"),
            retry_after_secs,
        },
        ProviderError::CircuitOpen { provider, retry_after_secs } => {
            ToolError::OverCapacity { message: format!("circuit open for provider {provider}"), retry_after_secs }
        }
        ProviderError::Timeout { .. } => ToolError::ProviderTimeout {
            provider: provider.to_string(),
            message: match timeouts {
                Some(t) => format!("{e} (phase limits: {})", t.describe()),
                None => e.to_string(),
            },
        },
        ProviderError::RateLimited { retry_after: Some(after), .. } => ToolError::ProviderRetryLater {
            provider: provider.to_string(),
            message: masked(&e),
            retry_after_secs: after.as_secs() + u64::from(after.subsec_nanos() > 0),
        },
        other => ToolError::Provider { provider: provider.to_string(), message: masked(&other) },
    }
}

/// Whether a failed candidate may hand over to the next one: the provider failed after the
/// retries of a retryable class, or cannot serve this account at all — and nothing of the
/// answer reached the caller yet.
fn falls_back(e: &ProviderError, streamed: bool) -> bool {
    !streamed
        && matches!(
            e.class(),
            ErrorClass::RateLimit
                | ErrorClass::Timeout
                | ErrorClass::Server
                | ErrorClass::Network
                | ErrorClass::Account
        )
}

impl ProviderSet {
    /// Pre-registers `exai_provider_tokens_total` at zero for every catalogue model of an
    /// enabled provider.
    fn preregister_tokens(&self) {
        for m in self.catalog.models() {
            if self.entry(&m.provider).is_some() {
                for kind in ["prompt", "completion"] {
                    self.metrics.provider_tokens.with_label_values(&[&m.provider, &m.name, kind]);
                }
            }
        }
    }

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
        let set = ProviderSet {
            entries,
            global: Arc::new(Semaphore::new(global_max)),
            global_max,
            queue_wait,
            retry_after_secs,
            routing,
            catalog,
            metrics,
            cluster: None,
            keepalive: DEFAULT_KEEPALIVE,
        };
        set.preregister_tokens();
        set
    }

    /// Send a keep-alive progress notification after this long without output while a
    /// provider works (only to callers that asked for progress).
    pub fn with_keepalive(mut self, every: Duration) -> ProviderSet {
        self.keepalive = every.max(Duration::from_millis(100));
        self
    }

    /// Pass every provider request through `gate` as well (cluster-wide limits, rate buckets).
    pub fn with_cluster(mut self, gate: Arc<ClusterGate>) -> ProviderSet {
        self.cluster = Some(gate);
        self
    }

    /// The cluster gate, when there is one.
    pub fn cluster(&self) -> Option<&Arc<ClusterGate>> {
        self.cluster.as_ref()
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

    /// Admission of one provider request, the one place it happens: the breaker's permit
    /// (open → `CircuitOpen`), then the global and the provider's concurrency permits within
    /// the queue wait (→ `OverCapacity`). Returns both and the time waited.
    async fn admit(&self, e: &ProviderEntry) -> Result<(BreakerPermit, Permits, Duration), ProviderError> {
        let breaker = e.breaker.try_acquire().map_err(|wait| ProviderError::CircuitOpen {
            provider: e.name.clone(),
            retry_after_secs: wait.as_secs().max(1),
        })?;
        let (permits, waited) = self.permits(e, breaker.is_probe()).await?;
        Ok((breaker, permits, waited))
    }

    async fn permits(&self, e: &ProviderEntry, probe: bool) -> Result<(Permits, Duration), ProviderError> {
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
        let cluster = match &self.cluster {
            Some(g) if g.applies(&e.name) => g
                .admit(&e.name, probe, t0 + self.queue_wait)
                .await
                .map_err(|r| gate_error(&e.name, r, self.retry_after_secs))?,
            _ => None,
        };
        let gauge = InflightGauge::new(self.metrics.provider_inflight.with_label_values(&[&e.name]));
        Ok((Permits { global: Some(global), provider: Some(provider), gauge: Some(gauge), cluster }, t0.elapsed()))
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
        let candidates = self.candidates(first);
        let count = candidates.len();
        for (i, model) in candidates.into_iter().enumerate() {
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
            let queued = Instant::now();
            let (breaker, permits, waited) = match self.admit(entry).await {
                Ok(p) => p,
                Err(e) => {
                    // A wait that ended without permits is provider wait too.
                    if let Some(t) = timing {
                        t.provider_wait_ms.set(t.provider_wait_ms.get() + queued.elapsed().as_secs_f64() * 1000.0);
                    }
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
            let active = progress.is_active();
            let mut streamed = false;
            let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + self.keepalive, self.keepalive);
            let mut quiet_since = Instant::now();
            let t0 = Instant::now();
            let res = loop {
                tokio::select! {
                    r = &mut send => break r,
                    Some(ev) = rx.recv() => {
                        streamed = true;
                        quiet_since = Instant::now();
                        forward(progress, ev);
                    }
                    _ = ticker.tick(), if active => {
                        if quiet_since.elapsed() >= self.keepalive {
                            progress.emit(ProgressEvent::Progress {
                                progress: t0.elapsed().as_secs_f64(),
                                total: None,
                                message: Some(format!(
                                    "waiting for {} ({}): {}s",
                                    entry.name,
                                    model.name,
                                    t0.elapsed().as_secs()
                                )),
                            });
                        }
                    }
                }
            };
            while let Ok(ev) = rx.try_recv() {
                streamed = true;
                forward(progress, ev);
            }
            drop(cancel_tx);
            let outcome: Result<ChatOutcome, ProviderError> = res;
            match outcome {
                Ok(o) => {
                    if let Some(u) = o.response.usage {
                        if let Some(g) = &self.cluster {
                            g.record_tokens(&entry.name, u.total_tokens);
                        }
                        // Labelled by the catalogue name, so the model label stays bounded.
                        for (kind, n) in [("prompt", u.prompt_tokens), ("completion", u.completion_tokens)] {
                            self.metrics.provider_tokens.with_label_values(&[&entry.name, &model.name, kind]).inc_by(n);
                        }
                    }
                    let fallback_from = (i > 0).then(|| first.name.clone());
                    if fallback_from.is_some() {
                        self.metrics.provider_fallbacks.with_label_values(&[&first.provider]).inc();
                    }
                    return Ok(ChatResult {
                        response: o.response,
                        provider: entry.name.clone(),
                        model: model.name.clone(),
                        requested_model: first.name.clone(),
                        fallback_from,
                        routing: routing.clone(),
                        attempts: o.attempts,
                        provider_ms: o.provider_ms,
                    });
                }
                Err(e) if i + 1 < count && falls_back(&e, streamed) => {
                    tracing::info!(provider = %entry.name, model = %model.name, class = e.class().as_str(),
                                   "provider failed; trying the next candidate");
                    last = Some((entry.name.clone(), e));
                }
                Err(e) => return Err(tool_error_in(&entry.name, e, Some(entry.lane.timeouts()))),
            }
        }
        let (p, e) = last
            .unwrap_or_else(|| (first.provider.clone(), ProviderError::Unsupported("no provider available".into())));
        let timeouts = self.entry(&p).map(|e| e.lane.timeouts());
        Err(tool_error_in(&p, e, timeouts))
    }

    /// A Files API or web-search operation on a named provider (no fallback).
    pub async fn file_op(&self, provider: &str, op: FileRequest) -> Result<FileReply, ToolError> {
        self.file_op_typed(provider, op).await?.map_err(|e| tool_error(provider, e))
    }

    /// A Files API operation whose failure keeps the provider's error class (`None` when the
    /// request was not admitted: unknown provider, open breaker, no permit).
    pub async fn file_op_classed(
        &self,
        provider: &str,
        op: FileRequest,
    ) -> Result<FileReply, (ToolError, Option<super::types::ErrorClass>)> {
        match self.file_op_typed(provider, op).await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(e)) => {
                let class = e.class();
                Err((tool_error(provider, e), Some(class)))
            }
            Err(e) => Err((e, None)),
        }
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
        let (breaker, permits, _) = self.admit(entry).await.map_err(|e| tool_error(provider, e))?;
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

/// A cluster gate refusal as the provider error callers already handle.
fn gate_error(provider: &str, r: GateRefusal, retry_after_secs: u64) -> ProviderError {
    match r {
        GateRefusal::ProbeBusy => ProviderError::CircuitOpen {
            provider: provider.to_string(),
            retry_after_secs: super::breaker::HALF_OPEN_BUSY_RETRY.as_secs().max(1),
        },
        GateRefusal::Rate { retry_after, .. } => ProviderError::OverCapacity {
            provider: provider.to_string(),
            limit: r.to_string(),
            retry_after_secs: retry_after.as_secs_f64().ceil().max(1.0) as u64,
        },
        GateRefusal::Full { .. } | GateRefusal::Unavailable(_) => {
            ProviderError::OverCapacity { provider: provider.to_string(), limit: r.to_string(), retry_after_secs }
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
