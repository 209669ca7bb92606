//! The AI auditor (off unless `monitoring.auditor_enabled`): samples finished tool calls and
//! asks a cheap model for observations, within a hard budget of calls per hour.
//!
//! `Auditor` (a supervised child of the coordinator) reads the tool-call log through the
//! `Store` port — the dispatcher and the call path are untouched:
//! - states: `Idle` and `Reviewing` (a log read or a model call in flight; ticks are skipped
//!   meanwhile, so at most one model call runs at a time);
//! - every `interval` it reads the calls logged since the last tick (rows with an id above
//!   the last one it saw, started after the auditor did), keeps each with probability
//!   `sample_rate`, and — when at least one is kept and the [`HourlyBudget`] allows — sends
//!   up to `max_batch` of them to the [`AnalysisModel`] in one request; the JSON answer
//!   becomes rows of `auditor_observations` (see [`super::analysis::parse_observations`]);
//! - outcomes are counted in `exai_auditor_analyses_total{outcome}` (`ok`, `failed`,
//!   `over_budget`, `unavailable`), sampled calls in `exai_auditor_sampled_calls_total`;
//! - messages: [`Drain`] (nothing to flush: answers at once), [`Crash`] (fault injection);
//! - it ends when the coordinator stops it at shutdown, or by a panic (then it is recreated
//!   and starts again from calls logged after its restart).

use super::analysis::{audit_prompt, parse_observations, AUDIT_SYSTEM};
use super::budget::HourlyBudget;
use crate::clock::now_ms;
use crate::metrics::Metrics;
use crate::ports::{AnalysisModel, NewObservation, Store, ToolCallQuery, ToolCallRecord};
use crate::supervision::{Crash, Drain, ExitNotifier};
use actix::prelude::*;
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Auditor settings.
#[derive(Debug, Clone)]
pub struct AuditorConfig {
    /// Probability (0..=1) that a finished call is sampled.
    pub sample_rate: f64,
    /// Hard budget of model calls per hour.
    pub calls_per_hour: u32,
    /// How often the log is read.
    pub interval: Duration,
    /// Name of the model the [`AnalysisModel`] uses (stored as `model_used`).
    pub model: String,
    /// Most calls sent in one request.
    pub max_batch: usize,
    /// Longest wait for one model answer.
    pub timeout: Duration,
}

impl Default for AuditorConfig {
    fn default() -> Self {
        AuditorConfig {
            sample_rate: 0.1,
            calls_per_hour: 60,
            interval: Duration::from_secs(60),
            model: String::new(),
            max_batch: 20,
            timeout: Duration::from_secs(120),
        }
    }
}

/// Rows read per tick at most (older unseen rows beyond that are skipped).
const READ_LIMIT: u32 = 2000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Idle,
    Reviewing,
}

/// The auditor actor.
pub struct Auditor {
    store: Arc<dyn Store>,
    model: Option<Arc<dyn AnalysisModel>>,
    cfg: AuditorConfig,
    budget: HourlyBudget,
    metrics: Metrics,
    state: State,
    since_ms: i64,
    last_id: i64,
    _exit: Option<ExitNotifier>,
}

impl Auditor {
    /// An auditor reading `store`'s tool-call log and asking `model`.
    pub fn new(
        store: Arc<dyn Store>,
        model: Option<Arc<dyn AnalysisModel>>,
        cfg: AuditorConfig,
        metrics: Metrics,
        exit: Option<ExitNotifier>,
    ) -> Auditor {
        let budget = HourlyBudget::per_hour(cfg.calls_per_hour);
        Auditor { store, model, cfg, budget, metrics, state: State::Idle, since_ms: now_ms(), last_id: 0, _exit: exit }
    }

    fn tick(&mut self, ctx: &mut Context<Self>) {
        if self.state == State::Reviewing {
            return;
        }
        self.state = State::Reviewing;
        let store = Arc::clone(&self.store);
        let q = ToolCallQuery { limit: READ_LIMIT, since_ms: Some(self.since_ms), ..ToolCallQuery::default() };
        ctx.spawn(async move { store.recent_tool_calls(&q).await }.into_actor(self).map(|res, act, ctx| match res {
            Ok(rows) => act.review(rows, ctx),
            Err(e) => {
                act.state = State::Idle;
                tracing::warn!(error = %e, "auditor could not read the tool-call log");
            }
        }));
    }

    fn review(&mut self, rows: Vec<ToolCallRecord>, ctx: &mut Context<Self>) {
        let mut fresh: Vec<ToolCallRecord> = rows.into_iter().filter(|r| r.id > self.last_id).collect();
        self.last_id = fresh.iter().map(|r| r.id).max().unwrap_or(self.last_id);
        fresh.sort_by_key(|r| r.id);
        let rate = self.cfg.sample_rate;
        let mut sample: Vec<ToolCallRecord> = fresh.into_iter().filter(|_| rand::random::<f64>() < rate).collect();
        self.metrics.obs.auditor_sampled_calls.inc_by(sample.len() as u64);
        sample.truncate(self.cfg.max_batch.max(1));
        if sample.is_empty() {
            self.state = State::Idle;
            return;
        }
        let outcomes = self.metrics.obs.auditor_analyses.clone();
        let Some(model) = self.model.clone() else {
            outcomes.with_label_values(&["unavailable"]).inc();
            self.state = State::Idle;
            return;
        };
        if !self.budget.try_take(Instant::now()) {
            outcomes.with_label_values(&["over_budget"]).inc();
            self.state = State::Idle;
            return;
        }
        let store = Arc::clone(&self.store);
        let (name, limit, severities) =
            (self.cfg.model.clone(), self.cfg.timeout, self.metrics.obs.auditor_observations.clone());
        let fut = async move {
            let prompt = audit_prompt(&sample);
            let answer = match tokio::time::timeout(limit, model.analyze(&name, AUDIT_SYSTEM, &prompt)).await {
                Ok(Ok(t)) => t,
                Ok(Err(e)) => return Err(e),
                Err(_) => return Err(format!("no answer within {} s", limit.as_secs())),
            };
            let Some(found) = parse_observations(&answer) else {
                return Err("the answer held no JSON observations".to_string());
            };
            let ids: Vec<i64> = sample.iter().map(|c| c.id).collect();
            let at = now_ms();
            for o in found {
                let refs = if o.tool_call_ids.is_empty() { &ids } else { &o.tool_call_ids };
                let rec = NewObservation {
                    tool_call_ref: Some(refs.iter().map(i64::to_string).collect::<Vec<_>>().join(",")),
                    observation: o.observation,
                    severity: o.severity,
                    category: o.category,
                    confidence: o.confidence,
                    recommendation: o.recommendation,
                    model_used: Some(name.clone()),
                    created_at_ms: at,
                    metadata: json!({ "sampled_calls": ids.len() }),
                };
                store.add_observation(&rec).await.map_err(|e| e.to_string())?;
                severities.with_label_values(&[rec.severity.as_str()]).inc();
            }
            Ok(())
        };
        ctx.spawn(fut.into_actor(self).map(move |res, act, _| {
            act.state = State::Idle;
            match res {
                Ok(()) => outcomes.with_label_values(&["ok"]).inc(),
                Err(e) => {
                    outcomes.with_label_values(&["failed"]).inc();
                    tracing::warn!(error = %e, "auditor review failed");
                }
            }
        }));
    }
}

impl Actor for Auditor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(16);
        ctx.run_interval(self.cfg.interval, |act, ctx| act.tick(ctx));
    }
}

impl Handler<Drain> for Auditor {
    type Result = ();

    fn handle(&mut self, _: Drain, _: &mut Context<Self>) {}
}

impl Handler<Crash> for Auditor {
    type Result = ();

    fn handle(&mut self, msg: Crash, _: &mut Context<Self>) {
        panic!("fault injection: {}", msg.0);
    }
}
