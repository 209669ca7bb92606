//! The error watcher: ERROR log events → deduplicated `error_investigations` records, with
//! an optional, budgeted root-cause analysis by a model.
//!
//! Producer side: [`ErrorQueue`], a bounded lock-free queue that a tracing layer (in the
//! `exai` crate) fills with [`ErrorEvent`]s. [`ErrorQueue::push`] never blocks the logging
//! thread: a full queue drops the event and counts it (`exai_error_events_dropped_total`).
//! The queue lives outside the actor, so events queued while the actor restarts survive.
//!
//! `ErrorWatcher` (a supervised child of the coordinator):
//! - states: `Idle` (waiting for the next tick) and `Writing` (one batch of upserts in
//!   flight); model analyses run beside that as futures in the actor's context;
//! - every `tick` it takes up to `batch` events, normalises and hashes each
//!   ([`super::normalize`]), coalesces repeats within the batch, and upserts them through
//!   [`DiagnosticsStore::record_error`] (one atomic upsert per distinct error);
//! - for an error seen for the first time, and only when `ai_enabled`, it asks the
//!   [`AnalysisModel`] for a root cause and fix if the hourly budget ([`HourlyBudget`])
//!   allows, and stores the answer with the record; otherwise it counts why not
//!   (`exai_error_analyses_total{outcome}`);
//! - messages: [`Drain`] (write everything queued, then answer), [`Crash`] (fault injection);
//! - it ends when the coordinator stops it at shutdown, or by a panic (then it is recreated).
//!
//! Its own log lines are never fed back to it (the layer skips this module's target).

use super::analysis::{error_prompt, parse_error_analysis, ERROR_SYSTEM};
use super::budget::HourlyBudget;
use super::normalize::{error_hash, normalize};
use crate::metrics::Metrics;
use crate::ports::{AnalysisModel, DiagnosticsStore, ErrorAnalysis, ErrorOccurrence, ErrorUpsert};
use crate::supervision::{Crash, Drain, ExitNotifier};
use actix::prelude::*;
use crossbeam_queue::ArrayQueue;
use prometheus::IntCounter;
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The tracing target prefix of the watcher itself (its events are not fed back).
pub const OWN_TARGET: &str = "exai_actors::watcher";

/// Longest raw sample kept in a record's context, in characters.
const SAMPLE_CHARS: usize = 2000;

/// One ERROR log event.
#[derive(Debug, Clone, PartialEq)]
pub struct ErrorEvent {
    /// When it was logged (Unix ms).
    pub at_ms: i64,
    /// tracing target (module path).
    pub target: String,
    /// The formatted message and fields.
    pub message: String,
}

/// Producer side of the error watcher.
#[derive(Clone)]
pub struct ErrorQueue {
    queue: Arc<ArrayQueue<ErrorEvent>>,
    received: IntCounter,
    dropped: IntCounter,
}

impl ErrorQueue {
    /// A queue of at most `capacity` events, counting into the watcher's metrics.
    pub fn new(capacity: usize, metrics: &Metrics) -> ErrorQueue {
        ErrorQueue {
            queue: Arc::new(ArrayQueue::new(capacity.max(1))),
            received: metrics.obs.error_events.clone(),
            dropped: metrics.obs.error_events_dropped.clone(),
        }
    }

    /// Enqueue an event; never blocks. Returns false (and counts a drop) when full.
    pub fn push(&self, ev: ErrorEvent) -> bool {
        self.received.inc();
        if self.queue.push(ev).is_err() {
            self.dropped.inc();
            return false;
        }
        true
    }

    /// Events waiting.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// True when nothing waits.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    fn take(&self, max: usize) -> Vec<ErrorEvent> {
        let mut out = Vec::with_capacity(max.min(self.queue.len()));
        while out.len() < max {
            match self.queue.pop() {
                Some(e) => out.push(e),
                None => break,
            }
        }
        out
    }
}

/// Error watcher settings.
#[derive(Debug, Clone)]
pub struct ErrorWatcherConfig {
    /// Ask the model for an analysis of each new error.
    pub ai_enabled: bool,
    /// Name of the model the [`AnalysisModel`] uses (stored as `model_used`).
    pub model: String,
    /// Hard budget of analyses per hour.
    pub calls_per_hour: u32,
    /// Most events taken per tick.
    pub batch: usize,
    /// How often the queue is drained.
    pub tick: Duration,
    /// Longest wait for one analysis.
    pub analysis_timeout: Duration,
}

impl Default for ErrorWatcherConfig {
    fn default() -> Self {
        ErrorWatcherConfig {
            ai_enabled: false,
            model: String::new(),
            calls_per_hour: 10,
            batch: 256,
            tick: Duration::from_millis(250),
            analysis_timeout: Duration::from_secs(120),
        }
    }
}

/// Events of one batch coalesced by hash (first-seen order kept).
pub fn coalesce(events: Vec<ErrorEvent>) -> Vec<ErrorOccurrence> {
    let mut order: Vec<ErrorOccurrence> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for ev in events {
        let message = normalize(&ev.message);
        let hash = error_hash(&message, &ev.target);
        let sample: String = ev.message.chars().take(SAMPLE_CHARS).collect();
        match index.get(&hash) {
            Some(&i) => {
                let o = &mut order[i];
                o.count += 1;
                o.at_ms = o.at_ms.max(ev.at_ms);
                o.context = json!({ "target": ev.target, "sample": sample });
            }
            None => {
                index.insert(hash.clone(), order.len());
                order.push(ErrorOccurrence {
                    error_hash: hash,
                    message,
                    error_type: ev.target.clone(),
                    context: json!({ "target": ev.target, "sample": sample }),
                    count: 1,
                    at_ms: ev.at_ms,
                });
            }
        }
    }
    order
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Idle,
    Writing,
}

/// The error watcher actor.
pub struct ErrorWatcher {
    queue: ErrorQueue,
    store: Arc<dyn DiagnosticsStore>,
    model: Option<Arc<dyn AnalysisModel>>,
    cfg: ErrorWatcherConfig,
    budget: HourlyBudget,
    metrics: Metrics,
    state: State,
    _exit: Option<ExitNotifier>,
}

impl ErrorWatcher {
    /// A watcher draining `queue` into `store`, asking `model` (when given and enabled).
    pub fn new(
        queue: ErrorQueue,
        store: Arc<dyn DiagnosticsStore>,
        model: Option<Arc<dyn AnalysisModel>>,
        cfg: ErrorWatcherConfig,
        metrics: Metrics,
        exit: Option<ExitNotifier>,
    ) -> ErrorWatcher {
        let budget = HourlyBudget::per_hour(cfg.calls_per_hour);
        ErrorWatcher { queue, store, model, cfg, budget, metrics, state: State::Idle, _exit: exit }
    }

    fn tick(&mut self, ctx: &mut Context<Self>) {
        if self.state == State::Writing || self.queue.is_empty() {
            return;
        }
        let batch = coalesce(self.queue.take(self.cfg.batch));
        self.state = State::Writing;
        let store = Arc::clone(&self.store);
        ctx.spawn(async move { write(store, batch).await }.into_actor(self).map(|written, act, ctx| {
            act.state = State::Idle;
            for (occ, up) in written {
                if up.created {
                    act.metrics.obs.error_groups_created.inc();
                    act.maybe_analyze(occ, up, ctx);
                }
            }
            if !act.queue.is_empty() {
                act.tick(ctx);
            }
        }));
    }

    fn maybe_analyze(&mut self, occ: ErrorOccurrence, up: ErrorUpsert, ctx: &mut Context<Self>) {
        if !self.cfg.ai_enabled {
            return;
        }
        let outcomes = &self.metrics.obs.error_analyses;
        let Some(model) = self.model.clone() else {
            outcomes.with_label_values(&["unavailable"]).inc();
            return;
        };
        if !self.budget.try_take(Instant::now()) {
            outcomes.with_label_values(&["over_budget"]).inc();
            tracing::warn!(id = up.id, budget = self.budget.limit(), "error analysis skipped: hourly budget used up");
            return;
        }
        let store = Arc::clone(&self.store);
        let (name, limit, counter) = (self.cfg.model.clone(), self.cfg.analysis_timeout, outcomes.clone());
        ctx.spawn(
            async move {
                let prompt = error_prompt(&occ, up.occurrence_count);
                let started = Instant::now();
                let answer = match tokio::time::timeout(limit, model.analyze(&name, ERROR_SYSTEM, &prompt)).await {
                    Ok(r) => r,
                    Err(_) => Err(format!("no answer within {} s", limit.as_secs())),
                };
                let text = match answer {
                    Ok(t) => t,
                    Err(e) => {
                        counter.with_label_values(&["failed"]).inc();
                        tracing::warn!(id = up.id, error = %e, "error analysis failed");
                        return;
                    }
                };
                let (investigation, fix) = parse_error_analysis(&text);
                let a = ErrorAnalysis {
                    investigation,
                    fix,
                    model: name,
                    duration_ms: started.elapsed().as_millis() as i64,
                };
                match store.set_error_analysis(up.id, &a).await {
                    Ok(()) => counter.with_label_values(&["ok"]).inc(),
                    Err(e) => {
                        counter.with_label_values(&["failed"]).inc();
                        tracing::warn!(id = up.id, error = %e, "could not store the error analysis");
                    }
                }
            }
            .into_actor(self),
        );
    }
}

async fn write(store: Arc<dyn DiagnosticsStore>, batch: Vec<ErrorOccurrence>) -> Vec<(ErrorOccurrence, ErrorUpsert)> {
    let mut out = Vec::with_capacity(batch.len());
    for occ in batch {
        match store.record_error(&occ).await {
            Ok(up) => out.push((occ, up)),
            Err(e) => tracing::warn!(error = %e, count = occ.count, "could not record an error occurrence"),
        }
    }
    out
}

impl Actor for ErrorWatcher {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(16);
        ctx.run_interval(self.cfg.tick, |act, ctx| act.tick(ctx));
    }
}

impl Handler<Drain> for ErrorWatcher {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: Drain, _: &mut Context<Self>) -> Self::Result {
        let queue = self.queue.clone();
        let store = Arc::clone(&self.store);
        let batch = self.cfg.batch;
        Box::pin(async move {
            loop {
                let events = queue.take(batch);
                if events.is_empty() {
                    break;
                }
                write(Arc::clone(&store), coalesce(events)).await;
            }
        })
    }
}

impl Handler<Crash> for ErrorWatcher {
    type Result = ();

    fn handle(&mut self, msg: Crash, _: &mut Context<Self>) {
        panic!("fault injection: {}", msg.0);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn ev(target: &str, message: &str, at_ms: i64) -> ErrorEvent {
        ErrorEvent { at_ms, target: target.into(), message: message.into() }
    }

    #[test]
    fn queue_drops_and_counts_when_full() {
        let m = Metrics::new().unwrap();
        let q = ErrorQueue::new(2, &m);
        assert!(q.push(ev("t", "a", 1)));
        assert!(q.push(ev("t", "b", 2)));
        assert!(!q.push(ev("t", "c", 3)));
        assert_eq!((m.obs.error_events.get(), m.obs.error_events_dropped.get()), (3, 1));
        assert_eq!(q.take(10).len(), 2);
        assert!(q.is_empty());
    }

    #[test]
    fn coalesce_groups_by_normalised_message_and_target() {
        let out = coalesce(vec![
            ev("exai::a", "timeout after 100 ms", 5),
            ev("exai::a", "timeout after 250 ms", 9),
            ev("exai::b", "timeout after 100 ms", 7),
            ev("exai::a", "timeout after 3 ms", 8),
        ]);
        assert_eq!(out.len(), 2);
        assert_eq!((out[0].count, out[0].at_ms, out[0].message.as_str()), (3, 9, "timeout after <n> ms"));
        assert_eq!(out[0].context["sample"], "timeout after 3 ms", "the latest raw sample is kept");
        assert_eq!((out[1].count, out[1].error_type.as_str()), (1, "exai::b"));
    }
}
