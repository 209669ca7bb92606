//! `ProviderActor`: one per configured provider, on the providers' own arbiter thread.
//!
//! States: `Serving` (the only steady state; each request runs as its own future, so many
//! are in flight at once) — the actor ends when the coordinator stops it at shutdown or by a
//! panic, after which the coordinator recreates it (requests in flight at that moment fail
//! with a `Network` error to their callers and give their permits back).
//!
//! Messages: [`FileOp`] (Files API / web search, no retries beyond the policy), [`Drain`]
//! (no-op: requests are owned by their callers), [`Crash`] (fault injection).
//!
//! A [`Chat`] (one chat completion with retries) does not come here: it runs on the caller's
//! thread through the provider's [`Lane`](super::lane::Lane), with the same [`Runner`] code,
//! and each actor incarnation links its liveness into the lane ([`ProviderActor::linked`]):
//! when the actor dies, those requests fail as if it had run them.
//!
//! A request carries its concurrency permits and its circuit-breaker permit; they are dropped
//! when the request ends however it ends (success, error, cancel, panic), so nothing leaks.
//! The caller holds the sending half of a `cancel` channel: when the caller's future is
//! dropped (MCP cancel, legacy cancel, disconnect, timeout) the request future here sees the
//! channel close and drops the HTTP request at once. Retries follow the [`RetryPolicy`] by
//! error class, never after a streamed chunk reached the caller, never after a cancel, and
//! never when the wait would outlast the call's budget (`RequestTimeouts::total`, shared by all
//! attempts). The breaker counts every failed attempt, and once it opens the retries stop.

use super::breaker::{BreakerHandle, BreakerPermit};
use super::retry::RetryPolicy;
use super::transport::{ProviderTransport, TransportFactory};
use super::types::{ChatRequest, ChatResponse, ProviderError, ProviderFile, RequestTimeouts, StreamEvent};
use crate::metrics::Metrics;
use crate::supervision::{Crash, Drain, ExitNotifier};
use actix::prelude::*;
use serde_json::Value;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit};

/// Concurrency permits held for the life of one request.
#[derive(Debug)]
pub struct Permits {
    /// The global provider slot.
    pub global: Option<OwnedSemaphorePermit>,
    /// The provider's own slot.
    pub provider: Option<OwnedSemaphorePermit>,
    /// The provider's in-flight gauge, decremented when the permits are dropped.
    pub gauge: Option<InflightGauge>,
    /// Cluster-wide leases (cluster mode), released with the permits.
    pub cluster: Option<crate::cluster::LeaseSet>,
}

/// Counts one request in `exai_provider_inflight{provider}` while it lives.
#[derive(Debug)]
pub struct InflightGauge(prometheus::IntGauge);

impl InflightGauge {
    /// Increment now; decrement on drop.
    pub fn new(g: prometheus::IntGauge) -> InflightGauge {
        g.inc();
        InflightGauge(g)
    }
}

impl Drop for InflightGauge {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// One chat completion (run by a [`Lane`](super::lane::Lane)).
pub struct Chat {
    /// The routed request.
    pub req: ChatRequest,
    /// Where streamed chunks go (bounded; a full channel sheds chunks, the answer stays whole).
    pub events: Option<mpsc::Sender<StreamEvent>>,
    /// Closed by the caller to cancel.
    pub cancel: oneshot::Receiver<()>,
    /// Concurrency permits.
    pub permits: Permits,
    /// Circuit-breaker permit (reported on completion).
    pub breaker: BreakerPermit,
}

/// A successful chat with its cost.
#[derive(Debug, Clone)]
pub struct ChatOutcome {
    /// The answer.
    pub response: ChatResponse,
    /// Attempts made (1 = no retry).
    pub attempts: u32,
    /// Time spent in provider requests and retry waits, ms.
    pub provider_ms: f64,
    /// Whether output was streamed to the caller (no fallback may follow a failure then).
    pub streamed: bool,
}

/// A Files API or web-search operation.
#[derive(Debug, Clone)]
pub enum FileRequest {
    /// Upload a file from disk.
    Upload {
        /// Path (already checked against the allowed roots).
        path: PathBuf,
        /// Name to give it.
        filename: String,
        /// Purpose.
        purpose: String,
        /// Also feed the bytes to this sink (the blob store), from the same read.
        tee: crate::files::hash::TeeSlot,
    },
    /// List files.
    List,
    /// Extracted content.
    Content(String),
    /// Delete.
    Delete(String),
    /// Standalone web search with a vendor body.
    WebSearch(Value),
}

/// Result of a [`FileRequest`].
#[derive(Debug, Clone)]
pub enum FileReply {
    /// Uploaded or single file.
    File(ProviderFile),
    /// Listing.
    Files(Vec<ProviderFile>),
    /// Text content.
    Text(String),
    /// Deleted.
    Deleted,
    /// Raw JSON (web search).
    Json(Value),
}

/// A Files API or web-search request.
#[derive(Message)]
#[rtype(result = "Result<FileReply, ProviderError>")]
pub struct FileOp {
    /// What to do.
    pub op: FileRequest,
    /// Closed by the caller to cancel.
    pub cancel: oneshot::Receiver<()>,
    /// Concurrency permits.
    pub permits: Permits,
    /// Circuit-breaker permit.
    pub breaker: BreakerPermit,
}

/// Static settings of one provider actor.
#[derive(Clone)]
pub struct ProviderActorConfig {
    /// Provider id.
    pub name: String,
    /// Timeouts per request.
    pub timeouts: RequestTimeouts,
    /// Retry rules.
    pub retry: RetryPolicy,
    /// Builds the HTTP transport on the actor's thread.
    pub transport: TransportFactory,
}

/// The actor.
pub struct ProviderActor {
    cfg: ProviderActorConfig,
    transport: Rc<dyn ProviderTransport>,
    breaker: BreakerHandle,
    metrics: Metrics,
    _lane: Option<super::lane::LaneGuard>,
    _exit: Option<ExitNotifier>,
}

impl ProviderActor {
    /// Build on the current (provider) thread.
    pub fn new(cfg: ProviderActorConfig, breaker: BreakerHandle, metrics: Metrics, exit: Option<ExitNotifier>) -> Self {
        let transport: Rc<dyn ProviderTransport> = Rc::from((cfg.transport)());
        ProviderActor { cfg, transport, breaker, metrics, _lane: None, _exit: exit }
    }

    /// Serve `lane` while this incarnation lives (its requests fail when the actor dies).
    pub fn linked(mut self, lane: &super::lane::Lane) -> Self {
        self._lane = Some(lane.link());
        self
    }

    /// The breaker this actor reports to.
    pub fn breaker(&self) -> &BreakerHandle {
        &self.breaker
    }
}

impl Actor for ProviderActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(1024);
    }
}

/// What an attempt loop needs: cloned out of the actor, or kept per thread by a lane.
pub(super) struct Runner {
    name: String,
    transport: Rc<dyn ProviderTransport>,
    retry: RetryPolicy,
    timeouts: RequestTimeouts,
    metrics: Metrics,
}

impl Runner {
    pub(super) fn new(cfg: &ProviderActorConfig, transport: Rc<dyn ProviderTransport>, metrics: &Metrics) -> Runner {
        Runner {
            name: cfg.name.clone(),
            transport,
            retry: cfg.retry.clone(),
            timeouts: cfg.timeouts,
            metrics: metrics.clone(),
        }
    }

    fn count_error(&self, e: &ProviderError) {
        self.metrics.provider_errors.with_label_values(&[&self.name, e.class().as_str()]).inc();
    }

    /// Wait `d` unless cancelled first; true when cancelled.
    async fn backoff(&self, d: Duration, cancel: &mut oneshot::Receiver<()>) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(d) => false,
            _ = cancel => true,
        }
    }

    /// The timeouts of one attempt: what is left of the call's `total` (`None` once spent).
    fn attempt_timeouts(&self, deadline: Instant) -> Option<RequestTimeouts> {
        let left = deadline.saturating_duration_since(Instant::now());
        (!left.is_zero()).then(|| self.timeouts.with_total(left))
    }

    /// An attempt cut by what was left of the budget reports the configured total.
    fn budget_error(&self, e: ProviderError) -> ProviderError {
        match e {
            ProviderError::Timeout { phase: "total", .. } => {
                ProviderError::Timeout { phase: "total", limit: self.timeouts.total }
            }
            other => other,
        }
    }

    /// What to do after attempt `attempts` failed with `e`: the delay before the next one, or
    /// `None` to give up — the class allows no more, output already streamed, or the wait
    /// (a `Retry-After` above all) would not end before the call's deadline.
    fn retry_delay(&self, e: &ProviderError, attempts: u32, streamed: bool, deadline: Instant) -> Option<Duration> {
        if streamed {
            return None;
        }
        let d = self.retry.next_delay(e, attempts)?;
        let left = deadline.saturating_duration_since(Instant::now());
        if d >= left {
            tracing::info!(provider = %self.name, class = e.class().as_str(), wait_ms = d.as_millis() as u64,
                           left_ms = left.as_millis() as u64, "not retrying: the wait outlasts the call's budget");
            return None;
        }
        Some(d)
    }

    pub(super) async fn chat(&self, msg: Chat) -> Result<ChatOutcome, ProviderError> {
        let Chat { req, events, mut cancel, permits, mut breaker } = msg;
        let started = Instant::now();
        let deadline = started + self.timeouts.total;
        let mut attempts = 0u32;
        let mut streamed = false;
        let result = loop {
            let Some(timeouts) = self.attempt_timeouts(deadline) else {
                break Err(ProviderError::Timeout { phase: "total", limit: self.timeouts.total });
            };
            attempts += 1;
            self.metrics.provider_requests.with_label_values(&[&self.name]).inc();
            let t0 = Instant::now();
            let res = {
                let mut on_event = |ev: StreamEvent| {
                    streamed = true;
                    if let Some(tx) = &events {
                        let _ = tx.try_send(ev);
                    }
                };
                tokio::select! {
                    r = self.transport.chat(&req, &timeouts, &mut on_event) => r,
                    _ = &mut cancel => Err(ProviderError::Cancelled),
                }
            };
            self.metrics.provider_seconds.with_label_values(&[&self.name]).observe(t0.elapsed().as_secs_f64());
            match res.map_err(|e| self.budget_error(e)) {
                Ok(r) => break Ok(r),
                Err(ProviderError::Cancelled) => break Err(ProviderError::Cancelled),
                Err(e) => {
                    self.count_error(&e);
                    // The breaker counts attempts: each failed one is recorded now, and a
                    // breaker that opened meanwhile ends the retries.
                    let open = e.counts_as_failure() && breaker.attempt_failed();
                    let delay = if open { None } else { self.retry_delay(&e, attempts, streamed, deadline) };
                    match delay {
                        Some(d) => {
                            self.metrics.provider_retries.with_label_values(&[&self.name, e.class().as_str()]).inc();
                            tracing::info!(provider = %self.name, attempt = attempts, class = e.class().as_str(),
                                           delay_ms = d.as_millis() as u64, "retrying provider request");
                            if self.backoff(d, &mut cancel).await {
                                break Err(ProviderError::Cancelled);
                            }
                        }
                        None => break Err(e),
                    }
                }
            }
        };
        drop(permits);
        match &result {
            Ok(_) => breaker.success(),
            Err(_) => drop(breaker),
        }
        result.map(|response| ChatOutcome {
            response,
            attempts,
            provider_ms: started.elapsed().as_secs_f64() * 1000.0,
            streamed,
        })
    }

    async fn file(self, msg: FileOp) -> Result<FileReply, ProviderError> {
        let FileOp { op, mut cancel, permits, mut breaker } = msg;
        let deadline = Instant::now() + self.timeouts.total;
        let mut attempts = 0u32;
        let result = loop {
            let Some(timeouts) = self.attempt_timeouts(deadline) else {
                break Err(ProviderError::Timeout { phase: "total", limit: self.timeouts.total });
            };
            attempts += 1;
            self.metrics.provider_requests.with_label_values(&[&self.name]).inc();
            let t = &timeouts;
            let fut = async {
                match &op {
                    FileRequest::Upload { path, filename, purpose, tee } => {
                        self.transport.upload_file(path, filename, purpose, tee.take(), t).await.map(FileReply::File)
                    }
                    FileRequest::List => self.transport.list_files(t).await.map(FileReply::Files),
                    FileRequest::Content(id) => self.transport.file_content(id, t).await.map(FileReply::Text),
                    FileRequest::Delete(id) => self.transport.delete_file(id, t).await.map(|_| FileReply::Deleted),
                    FileRequest::WebSearch(p) => self.transport.web_search(p, t).await.map(FileReply::Json),
                }
            };
            let res = tokio::select! {
                r = fut => r,
                _ = &mut cancel => Err(ProviderError::Cancelled),
            };
            match res.map_err(|e| self.budget_error(e)) {
                Ok(r) => break Ok(r),
                Err(ProviderError::Cancelled) => break Err(ProviderError::Cancelled),
                Err(e) => {
                    self.count_error(&e);
                    let open = e.counts_as_failure() && breaker.attempt_failed();
                    match if open { None } else { self.retry_delay(&e, attempts, false, deadline) } {
                        Some(d) => {
                            self.metrics.provider_retries.with_label_values(&[&self.name, e.class().as_str()]).inc();
                            if self.backoff(d, &mut cancel).await {
                                break Err(ProviderError::Cancelled);
                            }
                        }
                        None => break Err(e),
                    }
                }
            }
        };
        drop(permits);
        match &result {
            Ok(_) => breaker.success(),
            Err(_) => drop(breaker),
        }
        result
    }
}

impl ProviderActor {
    fn runner(&self) -> Runner {
        Runner::new(&self.cfg, Rc::clone(&self.transport), &self.metrics)
    }
}

impl Handler<FileOp> for ProviderActor {
    type Result = ResponseFuture<Result<FileReply, ProviderError>>;

    fn handle(&mut self, msg: FileOp, _: &mut Context<Self>) -> Self::Result {
        Box::pin(self.runner().file(msg))
    }
}

impl Handler<Drain> for ProviderActor {
    type Result = ();

    fn handle(&mut self, _: Drain, _: &mut Context<Self>) {}
}

impl Handler<Crash> for ProviderActor {
    type Result = ();

    fn handle(&mut self, msg: Crash, _: &mut Context<Self>) {
        panic!("fault injection: {}", msg.0);
    }
}
