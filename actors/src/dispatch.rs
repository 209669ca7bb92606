//! The dispatcher: one pipeline for every tool call, whatever protocol carried it.
//!
//! A call goes: look up (suffix-normalised) → refuse if shutting down → validate arguments
//! against the tool's schema → take a global in-flight slot (fail fast: OVER_CAPACITY with
//! `retry_after`, never a wait) → run under the tool kind's timeout → latency metrics,
//! Prometheus counters and one tool-call log row. The dispatcher is a plain cloneable value,
//! not an actor: it runs on the caller's worker thread so no single thread sits on the path
//! of every call. A call future that is dropped early (cancel, disconnect) still records a
//! `cancelled` outcome through its guard.

use crate::clock::now_ms;
use crate::env::ToolEnv;
use crate::error::ToolError;
use crate::ports::{CallOutcome, ToolCallRecord};
use crate::tools::registry::{Entry, Registry};
use crate::tools::{CallTiming, ProgressSink, ToolContext, ToolKind, ToolOutput};
use futures_util::future::LocalBoxFuture;
use serde::Serialize;
use serde_json::Value;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Latency breakdown attached to every result.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct LatencyMetrics {
    /// Whole call, ms.
    pub total_ms: f64,
    /// Waiting for the global in-flight slot, ms.
    pub global_wait_ms: f64,
    /// Waiting for provider permits, ms.
    pub provider_wait_ms: f64,
    /// Executing the tool, ms.
    pub processing_ms: f64,
    /// Provider that served the call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
}

/// A call to run.
pub struct CallRequest {
    /// Requested tool name (suffixes allowed).
    pub name: String,
    /// Raw arguments (absent = `{}`).
    pub args: Option<Value>,
    /// Logical session id.
    pub session_id: Arc<str>,
    /// Request id as text.
    pub request_id: String,
    /// Who calls ([`crate::access::principal`]): owns the threads the call opens.
    pub principal: Arc<str>,
    /// `mcp-ws`, `mcp-http`, `legacy-ws`.
    pub protocol: &'static str,
    /// Where progress goes.
    pub progress: ProgressSink,
}

/// The finished call.
#[derive(Debug, Clone)]
pub struct CallResult {
    /// Normalised tool name (or the requested name if unknown).
    pub tool: String,
    /// Output or error.
    pub outcome: Result<ToolOutput, ToolError>,
    /// Latency breakdown.
    pub latency: LatencyMetrics,
}

/// Runs tool calls.
#[derive(Clone)]
pub struct Dispatcher {
    registry: Arc<Registry>,
    env: Arc<ToolEnv>,
}

/// Length of `v` as compact JSON, counted without building the text.
fn json_len(v: &Value) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0 += b.len();
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut n = Count(0);
    // Neither the writer nor a `Value` (string keys only) can fail.
    let _ = serde_json::to_writer(&mut n, v);
    n.0
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn outcome_of(r: &Result<ToolOutput, ToolError>) -> CallOutcome {
    match r {
        Ok(_) => CallOutcome::Ok,
        Err(ToolError::OverCapacity { .. }) => CallOutcome::OverCapacity,
        Err(ToolError::Timeout { .. } | ToolError::ProviderTimeout { .. }) => CallOutcome::Timeout,
        Err(ToolError::Cancelled { .. }) => CallOutcome::Cancelled,
        Err(_) => CallOutcome::Error,
    }
}

/// Records a `cancelled` outcome if the call future is dropped before it finishes.
struct CallGuard {
    dispatcher: Dispatcher,
    entry_idx_name: String,
    req: Option<(Arc<str>, String, &'static str, i64, usize)>,
    started: Instant,
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        self.dispatcher.env.metrics.inflight.dec();
        if let Some((session, request_id, protocol, started_ms, args_bytes)) = self.req.take() {
            let latency = LatencyMetrics { total_ms: ms(self.started.elapsed()), ..LatencyMetrics::default() };
            let outcome: Result<ToolOutput, ToolError> =
                Err(ToolError::Cancelled { reason: "cancelled by client or disconnect".into() });
            self.dispatcher.finish(
                &self.entry_idx_name,
                &session,
                &request_id,
                protocol,
                started_ms,
                args_bytes,
                &outcome,
                &latency,
            );
        }
    }
}

impl Dispatcher {
    /// A dispatcher over `registry` using `env`.
    pub fn new(registry: Arc<Registry>, env: Arc<ToolEnv>) -> Dispatcher {
        Dispatcher { registry, env }
    }

    /// The registry.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// Shared services.
    pub fn env(&self) -> &Arc<ToolEnv> {
        &self.env
    }

    /// Timeout for a tool kind. Tools that call a model (simple and workflow kinds) get at
    /// least one provider call's whole budget: the provider phases (connect, first byte, idle,
    /// total) decide when such a call has taken too long, not the tool timeout.
    pub fn timeout_for(&self, kind: ToolKind) -> Duration {
        let s = &self.env.settings;
        Duration::from_secs(match kind {
            ToolKind::Workflow => s.workflow_tool_timeout_secs.max(s.provider_call_budget_secs),
            ToolKind::Simple => s.simple_tool_timeout_secs.max(s.provider_call_budget_secs),
            ToolKind::Builtin => s.simple_tool_timeout_secs,
        })
    }

    /// The effective timeout for a tool name (unknown tools: the simple timeout).
    pub fn timeout_for_name(&self, name: &str) -> Duration {
        let kind = self.registry.get(name).map(|e| e.tool.spec().kind).unwrap_or(ToolKind::Simple);
        self.timeout_for(kind)
    }

    /// Run a call to completion. Never panics; every failure is a [`ToolError`] in the result.
    pub fn call(&self, req: CallRequest) -> LocalBoxFuture<'static, CallResult> {
        let started = Instant::now();
        let started_ms = now_ms();
        let this = self.clone();
        Box::pin(async move {
            let args_bytes = req.args.as_ref().map(json_len).unwrap_or(2);
            let Some(entry) = this.registry.get(&req.name) else {
                let outcome = Err(ToolError::NotFound { name: req.name.clone() });
                let latency = LatencyMetrics { total_ms: ms(started.elapsed()), ..LatencyMetrics::default() };
                this.finish(
                    "unknown",
                    &req.session_id,
                    &req.request_id,
                    req.protocol,
                    started_ms,
                    args_bytes,
                    &outcome,
                    &latency,
                );
                return CallResult { tool: req.name, outcome, latency };
            };
            let tool_name = entry.tool.spec().name.clone();
            this.env.metrics.inflight.inc();
            let mut guard = CallGuard {
                dispatcher: this.clone(),
                entry_idx_name: tool_name.clone(),
                req: Some((Arc::clone(&req.session_id), req.request_id.clone(), req.protocol, started_ms, args_bytes)),
                started,
            };
            let timing = Rc::new(CallTiming::default());
            let (outcome, global_wait, processing) = this.run(entry, req, Rc::clone(&timing)).await;
            let latency = LatencyMetrics {
                total_ms: ms(started.elapsed()),
                global_wait_ms: ms(global_wait),
                provider_wait_ms: timing.provider_wait_ms.get(),
                processing_ms: ms(processing),
                provider: match &outcome {
                    Ok(o) => o.provider.clone(),
                    Err(e) => e.provider().map(str::to_string),
                },
            };
            if let Some((session, request_id, protocol, started_ms, args_bytes)) = guard.req.take() {
                this.finish(&tool_name, &session, &request_id, protocol, started_ms, args_bytes, &outcome, &latency);
            }
            drop(guard);
            CallResult { tool: tool_name, outcome, latency }
        })
    }

    async fn run(
        &self,
        entry: &Entry,
        req: CallRequest,
        timing: Rc<CallTiming>,
    ) -> (Result<ToolOutput, ToolError>, Duration, Duration) {
        let zero = Duration::ZERO;
        if self.env.runtime.is_shutting_down() {
            return (Err(ToolError::ShuttingDown), zero, zero);
        }
        let args = match entry.validate(req.args) {
            Ok(a) => a,
            Err(e) => return (Err(e), zero, zero),
        };
        let wait_start = Instant::now();
        let Some(_permit) = self.env.runtime.inflight.try_acquire() else {
            let max = self.env.runtime.inflight.max();
            let err = ToolError::OverCapacity {
                message: format!("global concurrency limit reached ({max} calls in flight)"),
                retry_after_secs: self.env.settings.retry_after_secs,
            };
            return (Err(err), wait_start.elapsed(), zero);
        };
        let global_wait = wait_start.elapsed();
        self.env.metrics.global_wait_seconds.observe(global_wait.as_secs_f64());
        let spec = entry.tool.spec();
        let limit = self.timeout_for(spec.kind);
        let ctx = ToolContext {
            session_id: req.session_id,
            request_id: req.request_id,
            call_id: Arc::from(uuid::Uuid::now_v7().to_string()),
            principal: req.principal,
            protocol: req.protocol,
            progress: req.progress,
            env: Arc::clone(&self.env),
            timing,
        };
        let run_start = Instant::now();
        let fut = entry.tool.call(ctx, args);
        let outcome = match tokio::time::timeout(limit, fut).await {
            Ok(r) => r,
            Err(_) => Err(ToolError::Timeout { tool: spec.name.clone(), secs: limit.as_secs() }),
        };
        (outcome, global_wait, run_start.elapsed())
    }

    #[allow(clippy::too_many_arguments)]
    fn finish(
        &self,
        tool: &str,
        session: &str,
        request_id: &str,
        protocol: &'static str,
        started_ms: i64,
        args_bytes: usize,
        outcome: &Result<ToolOutput, ToolError>,
        latency: &LatencyMetrics,
    ) {
        let kind = outcome_of(outcome);
        if let Some(e) = self.registry.get(tool) {
            e.metrics.outcome(kind).inc();
            e.metrics.seconds.observe(latency.total_ms / 1000.0);
        } else {
            self.env.metrics.tool_calls.with_label_values(&["unknown", kind.as_str()]).inc();
        }
        let (provider, model) = match outcome {
            Ok(o) => (o.provider.clone(), o.model.clone()),
            Err(e) => (e.provider().map(str::to_string), None),
        };
        self.env.toollog.push(ToolCallRecord {
            id: 0,
            started_at_ms: started_ms,
            session_id: session.to_string(),
            request_id: request_id.to_string(),
            tool: tool.to_string(),
            protocol: protocol.to_string(),
            outcome: kind,
            error_code: outcome.as_ref().err().map(|e| e.code().to_string()),
            total_ms: latency.total_ms,
            global_wait_ms: latency.global_wait_ms,
            provider_wait_ms: latency.provider_wait_ms,
            processing_ms: latency.processing_ms,
            provider,
            model,
            args_bytes: args_bytes as i64,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::json_len;
    use serde_json::json;

    #[test]
    fn json_len_is_the_compact_text_length() {
        for v in [json!({}), json!({"prompt": "hé \"x\"\n\u{1F600}", "n": [1, 2.5, null, true], "o": {"a": {}}})] {
            assert_eq!(json_len(&v), v.to_string().len());
        }
    }
}
