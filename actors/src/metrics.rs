//! Prometheus metrics: one registry for the whole process.
//!
//! Everything is registered once at start-up in [`Metrics::new`]. Label values are bounded:
//! protocols, outcomes, registered tool names, actor and provider names only — never request ids,
//! paths or client-supplied strings (an unknown tool is counted as `unknown`). Per-tool
//! counters are resolved once per tool ([`ToolMetrics`]) so the call path does no label
//! hashing.

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

/// Latency buckets in seconds, from 50 µs to 5 minutes.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    30.0, 60.0, 120.0, 300.0,
];

/// All metrics of the process.
#[derive(Clone)]
pub struct Metrics {
    /// The registry `/metrics` renders.
    pub registry: Registry,
    /// Open connections by protocol.
    pub connections_active: IntGaugeVec,
    /// Accepted connections by protocol.
    pub connections_total: IntCounterVec,
    /// Refused connections by reason.
    pub connections_rejected: IntCounterVec,
    /// WebSocket frames by direction (`in`/`out`).
    pub frames: IntCounterVec,
    /// Tool calls by tool and outcome.
    pub tool_calls: IntCounterVec,
    /// Whole-call latency by tool.
    pub call_seconds: HistogramVec,
    /// Wait for the global in-flight slot.
    pub global_wait_seconds: Histogram,
    /// Wait for provider permits, by provider.
    pub provider_wait_seconds: HistogramVec,
    /// Provider request time, by provider.
    pub provider_seconds: HistogramVec,
    /// Provider HTTP requests (attempts), by provider.
    pub provider_requests: IntCounterVec,
    /// Provider request failures by provider and error class.
    pub provider_errors: IntCounterVec,
    /// Provider retries by provider and error class.
    pub provider_retries: IntCounterVec,
    /// Calls served by a fallback model, by the provider that failed over.
    pub provider_fallbacks: IntCounterVec,
    /// Tokens the providers reported, by provider, model (a catalogue name) and kind
    /// (`prompt`, `completion`).
    pub provider_tokens: IntCounterVec,
    /// Provider requests holding permits right now, by provider.
    pub provider_inflight: IntGaugeVec,
    /// Calls in flight.
    pub inflight: IntGauge,
    /// Tool-call log rows written.
    pub toollog_written: IntCounter,
    /// Tool-call log rows dropped (queue full or write failed).
    pub toollog_dropped: IntCounterVec,
    /// Tool-call log rows deleted by retention.
    pub toollog_pruned: IntCounter,
    /// Journaled conversation turns not yet applied to the store.
    pub conversation_journal_pending: IntGauge,
    /// Conversation turns by how they reached the store: applied (write-behind), retried (a
    /// failed attempt), dropped (refused permanently), direct (journal unwritable).
    pub conversation_writes: IntCounterVec,
    /// Turns applied from the journal at start-up.
    pub conversation_journal_replayed: IntCounter,
    /// Store transactions of the conversation writer that applied turns (with
    /// `conversation_writes_total{result="applied"}`: the mean batch size).
    pub conversation_write_batches: IntCounter,
    /// Time to append one turn to the journal (on the reply path).
    pub conversation_journal_append_seconds: Histogram,
    /// Supervised actor restarts by actor.
    pub actor_restarts: IntCounterVec,
    /// Messages refused by a full mailbox, by actor.
    pub mailbox_rejections: IntCounterVec,
    /// Outbound messages shed by a full session outbox, by kind.
    pub outbox_shed: IntCounterVec,
    /// JSON-RPC / legacy protocol errors sent, by protocol and code.
    pub protocol_errors: IntCounterVec,
    /// Circuit breaker state by provider: 0 closed, 1 open, 2 half-open.
    pub breaker_state: IntGaugeVec,
    /// Circuit breaker transitions by provider, from-state and to-state.
    pub breaker_transitions: IntCounterVec,
    /// Observability additions: scrape-time gauges, dedup, cleanup, error watcher, auditor.
    pub obs: ObsMetrics,
}

/// Metrics added for observability. Gauges named "refreshed at scrape" are set by
/// [`Metrics::refresh_runtime`] just before `/metrics` renders; dedup and cleanup counters
/// are registered now (zero until those features count into them).
#[derive(Clone)]
pub struct ObsMetrics {
    /// Live sessions by protocol (refreshed at scrape).
    pub sessions_active: IntGaugeVec,
    /// Open WebSocket connections, including ones whose protocol is not known yet (refreshed at scrape).
    pub connections_open: IntGauge,
    /// The global in-flight call limit (refreshed at scrape).
    pub inflight_limit: IntGauge,
    /// Tool-call log rows waiting to be written (refreshed at scrape).
    pub toollog_queue_rows: IntGauge,
    /// Seconds since the process started (refreshed at scrape).
    pub uptime_seconds: IntGauge,
    /// File dedup: uploads avoided because the content was already there.
    pub dedup_hits: IntCounter,
    /// File dedup: uploads that had to happen.
    pub dedup_misses: IntCounter,
    /// File dedup: bytes not uploaded thanks to dedup hits.
    pub dedup_bytes_saved: IntCounter,
    /// File bytes read from disk by pass (`hash`, `upload`, `blob`; refreshed at scrape).
    pub file_read_bytes: IntCounterVec,
    /// Cleanup runs by outcome ([`CLEANUP_OUTCOMES`]).
    pub cleanup_runs: IntCounterVec,
    /// Cleanup items by outcome (`deleted`, `failed`, `skipped`).
    pub cleanup_items: IntCounterVec,
    /// ERROR log events the error watcher received.
    pub error_events: IntCounter,
    /// ERROR log events dropped because the watcher's queue was full.
    pub error_events_dropped: IntCounter,
    /// Distinct (normalised) errors seen for the first time.
    pub error_groups_created: IntCounter,
    /// Root-cause analyses by outcome (`ok`, `failed`, `over_budget`, `unavailable`).
    pub error_analyses: IntCounterVec,
    /// Finished tool calls the auditor sampled.
    pub auditor_sampled_calls: IntCounter,
    /// Auditor model calls by outcome (`ok`, `failed`, `over_budget`, `unavailable`).
    pub auditor_analyses: IntCounterVec,
    /// Stored auditor observations by severity (`info`, `low`, `medium`, `high`, `critical`).
    pub auditor_observations: IntCounterVec,
    /// Open dashboard event streams.
    pub dashboard_streams: IntGauge,
}

/// Outcome labels of model analyses (error watcher and auditor).
pub const ANALYSIS_OUTCOMES: &[&str] = &["ok", "failed", "over_budget", "unavailable"];
/// Severity labels of auditor observations (anything else is stored as `info`).
pub const SEVERITIES: &[&str] = &["info", "low", "medium", "high", "critical"];
/// Outcome labels of cleanup runs: the run outcomes (`CleanupSummary::outcome`), `busy`
/// (another run held the lock) and `error` (the run could not finish).
pub const CLEANUP_OUTCOMES: &[&str] = &[
    "completed",
    "completed_with_failures",
    "dry_run",
    "nothing_to_do",
    "aborted_share",
    "aborted_failures",
    "busy",
    "error",
];
/// Protocol labels of sessions.
pub const PROTOCOLS: &[&str] = &["mcp-ws", "legacy-ws", "mcp-http"];

impl ObsMetrics {
    fn new(r: &Registry) -> Result<ObsMetrics, prometheus::Error> {
        let counter = |name: &str, help: &str| reg(r, IntCounter::new(name, help)?);
        let gauge = |name: &str, help: &str| reg(r, IntGauge::new(name, help)?);
        let counters = |name: &str, help: &str, label: &str, values: &[&str]| {
            let v = reg(r, IntCounterVec::new(Opts::new(name, help), &[label])?)?;
            for value in values {
                v.with_label_values(&[value]);
            }
            Ok::<_, prometheus::Error>(v)
        };
        let sessions_active =
            reg(r, IntGaugeVec::new(Opts::new("sessions_active", "Live client sessions by protocol"), &["protocol"])?)?;
        for p in PROTOCOLS {
            sessions_active.with_label_values(&[p]);
        }
        Ok(ObsMetrics {
            sessions_active,
            connections_open: gauge("connections_open", "Open WebSocket connections (any protocol state)")?,
            inflight_limit: gauge("inflight_limit", "Global limit of tool calls in flight")?,
            toollog_queue_rows: gauge("toollog_queue_rows", "Tool-call log rows waiting to be written")?,
            uptime_seconds: gauge("uptime_seconds", "Seconds since the process started")?,
            dedup_hits: counter("dedup_hits_total", "File uploads avoided by deduplication")?,
            dedup_misses: counter("dedup_misses_total", "File uploads not found in the dedup index")?,
            dedup_bytes_saved: counter("dedup_bytes_saved_total", "Bytes not uploaded thanks to deduplication")?,
            file_read_bytes: counters(
                "file_read_bytes_total",
                "File bytes read from disk by pass (hash, upload, blob)",
                "pass",
                &["hash", "upload", "blob"],
            )?,
            cleanup_runs: counters("cleanup_runs_total", "Cleanup runs by outcome", "outcome", CLEANUP_OUTCOMES)?,
            cleanup_items: counters(
                "cleanup_items_total",
                "Cleanup items by outcome",
                "outcome",
                &["deleted", "failed", "skipped", "blob_deleted", "lease_expired"],
            )?,
            error_events: counter("error_events_total", "ERROR log events received by the error watcher")?,
            error_events_dropped: counter(
                "error_events_dropped_total",
                "ERROR log events dropped because the error watcher queue was full",
            )?,
            error_groups_created: counter("error_groups_created_total", "Distinct errors seen for the first time")?,
            error_analyses: counters(
                "error_analyses_total",
                "Error root-cause analyses by outcome",
                "outcome",
                ANALYSIS_OUTCOMES,
            )?,
            auditor_sampled_calls: counter(
                "auditor_sampled_calls_total",
                "Finished tool calls sampled by the auditor",
            )?,
            auditor_analyses: counters(
                "auditor_analyses_total",
                "Auditor model calls by outcome",
                "outcome",
                ANALYSIS_OUTCOMES,
            )?,
            auditor_observations: counters(
                "auditor_observations_total",
                "Auditor observations stored, by severity",
                "severity",
                SEVERITIES,
            )?,
            dashboard_streams: gauge("dashboard_streams", "Open dashboard event streams")?,
        })
    }
}

fn reg<T: prometheus::core::Collector + Clone + 'static>(r: &Registry, c: T) -> Result<T, prometheus::Error> {
    r.register(Box::new(c.clone()))?;
    Ok(c)
}

impl Metrics {
    /// Build and register everything (plus process metrics on Linux).
    pub fn new() -> Result<Metrics, prometheus::Error> {
        let m = Metrics::build()?;
        m.preregister();
        Ok(m)
    }

    /// Series with a known, fixed set of label values are exported at zero from the start,
    /// so dashboards and alerts see them before the first event.
    fn preregister(&self) {
        for p in PROTOCOLS {
            self.connections_active.with_label_values(&[p]);
            self.connections_total.with_label_values(&[p]);
        }
        for v in ["global", "per_ip", "forbidden"] {
            self.connections_rejected.with_label_values(&[v]);
        }
        for v in ["in", "out"] {
            self.frames.with_label_values(&[v]);
        }
        for v in ["queue_full", "write_failed"] {
            self.toollog_dropped.with_label_values(&[v]);
        }
        for v in ["applied", "retried", "dropped", "direct"] {
            self.conversation_writes.with_label_values(&[v]);
        }
        for v in ["progress", "terminal"] {
            self.outbox_shed.with_label_values(&[v]);
        }
        // The standard JSON-RPC codes on the MCP transports; invalid legacy frames.
        for p in ["mcp-ws", "mcp-http"] {
            for code in ["-32700", "-32600", "-32601", "-32602", "-32603"] {
                self.protocol_errors.with_label_values(&[p, code]);
            }
        }
        self.protocol_errors.with_label_values(&["legacy-ws", "invalid"]);
    }

    fn build() -> Result<Metrics, prometheus::Error> {
        let r = Registry::new_custom(Some("exai".into()), None)?;
        #[cfg(target_os = "linux")]
        r.register(Box::new(prometheus::process_collector::ProcessCollector::for_self()))?;
        let hist = |name: &str, help: &str| HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec());
        Ok(Metrics {
            connections_active: reg(
                &r,
                IntGaugeVec::new(
                    Opts::new("connections_active", "Open client connections by protocol"),
                    &["protocol"],
                )?,
            )?,
            connections_total: reg(
                &r,
                IntCounterVec::new(
                    Opts::new("connections_total", "Accepted client connections by protocol"),
                    &["protocol"],
                )?,
            )?,
            connections_rejected: reg(
                &r,
                IntCounterVec::new(
                    Opts::new("connections_rejected_total", "Refused connections by reason"),
                    &["reason"],
                )?,
            )?,
            frames: reg(
                &r,
                IntCounterVec::new(Opts::new("ws_frames_total", "WebSocket data frames by direction"), &["direction"])?,
            )?,
            tool_calls: reg(
                &r,
                IntCounterVec::new(
                    Opts::new("tool_calls_total", "Tool calls by tool and outcome"),
                    &["tool", "outcome"],
                )?,
            )?,
            call_seconds: reg(
                &r,
                HistogramVec::new(hist("tool_call_duration_seconds", "Whole tool call latency"), &["tool"])?,
            )?,
            global_wait_seconds: reg(
                &r,
                Histogram::with_opts(hist("global_wait_seconds", "Wait for a global in-flight slot"))?,
            )?,
            provider_wait_seconds: reg(
                &r,
                HistogramVec::new(
                    hist("provider_wait_seconds", "Wait for provider concurrency permits"),
                    &["provider"],
                )?,
            )?,
            provider_seconds: reg(
                &r,
                HistogramVec::new(hist("provider_request_duration_seconds", "Provider request time"), &["provider"])?,
            )?,
            provider_requests: reg(
                &r,
                IntCounterVec::new(
                    Opts::new("provider_requests_total", "Provider HTTP requests (attempts)"),
                    &["provider"],
                )?,
            )?,
            provider_errors: reg(
                &r,
                IntCounterVec::new(
                    Opts::new("provider_errors_total", "Provider request failures by error class"),
                    &["provider", "class"],
                )?,
            )?,
            provider_retries: reg(
                &r,
                IntCounterVec::new(
                    Opts::new("provider_retries_total", "Provider retries by error class"),
                    &["provider", "class"],
                )?,
            )?,
            provider_fallbacks: reg(
                &r,
                IntCounterVec::new(
                    Opts::new("provider_fallbacks_total", "Calls served by a fallback model"),
                    &["provider"],
                )?,
            )?,
            provider_tokens: reg(
                &r,
                IntCounterVec::new(
                    Opts::new("provider_tokens_total", "Tokens reported by providers, by model and kind"),
                    &["provider", "model", "kind"],
                )?,
            )?,
            provider_inflight: reg(
                &r,
                IntGaugeVec::new(Opts::new("provider_inflight", "Provider requests holding permits"), &["provider"])?,
            )?,
            inflight: reg(&r, IntGauge::new("inflight_calls", "Tool calls in flight")?)?,
            toollog_written: reg(&r, IntCounter::new("toollog_rows_written_total", "Tool-call log rows written")?)?,
            toollog_pruned: reg(
                &r,
                IntCounter::new("toollog_rows_pruned_total", "Tool-call log rows deleted by retention")?,
            )?,
            toollog_dropped: reg(
                &r,
                IntCounterVec::new(Opts::new("toollog_rows_dropped_total", "Tool-call log rows dropped"), &["reason"])?,
            )?,
            conversation_journal_pending: reg(
                &r,
                IntGauge::new("conversation_journal_pending", "Journaled conversation turns not yet in the store")?,
            )?,
            conversation_writes: reg(
                &r,
                IntCounterVec::new(
                    Opts::new("conversation_writes_total", "Write-behind conversation turns by outcome"),
                    &["result"],
                )?,
            )?,
            conversation_journal_replayed: reg(
                &r,
                IntCounter::new("conversation_journal_replayed_total", "Conversation turns replayed from the journal")?,
            )?,
            conversation_write_batches: reg(
                &r,
                IntCounter::new(
                    "conversation_write_batches_total",
                    "Store transactions of the conversation writer that applied turns",
                )?,
            )?,
            conversation_journal_append_seconds: reg(
                &r,
                Histogram::with_opts(hist(
                    "conversation_journal_append_seconds",
                    "Appending one conversation turn to the journal (on the reply path)",
                ))?,
            )?,
            actor_restarts: reg(
                &r,
                IntCounterVec::new(Opts::new("actor_restarts_total", "Supervised actor restarts"), &["actor"])?,
            )?,
            mailbox_rejections: reg(
                &r,
                IntCounterVec::new(
                    Opts::new("mailbox_rejections_total", "Messages refused by a full mailbox"),
                    &["actor"],
                )?,
            )?,
            outbox_shed: reg(
                &r,
                IntCounterVec::new(
                    Opts::new("outbox_shed_total", "Outbound messages shed by a full session outbox"),
                    &["kind"],
                )?,
            )?,
            protocol_errors: reg(
                &r,
                IntCounterVec::new(
                    Opts::new("protocol_errors_total", "Protocol-level errors sent"),
                    &["protocol", "code"],
                )?,
            )?,
            breaker_state: reg(
                &r,
                IntGaugeVec::new(
                    Opts::new("breaker_state", "Circuit breaker state by provider (0 closed, 1 open, 2 half-open)"),
                    &["provider"],
                )?,
            )?,
            breaker_transitions: reg(
                &r,
                IntCounterVec::new(
                    Opts::new("breaker_transitions_total", "Circuit breaker state transitions"),
                    &["provider", "from", "to"],
                )?,
            )?,
            obs: ObsMetrics::new(&r)?,
            registry: r,
        })
    }

    /// Refresh the scrape-time gauges from the runtime state.
    pub fn refresh_runtime(&self, rt: &crate::env::RuntimeState, toollog_rows: usize) {
        use std::sync::atomic::Ordering;
        let o = &self.obs;
        for p in PROTOCOLS {
            let n = rt.session_counter(p).load(Ordering::Relaxed);
            o.sessions_active.with_label_values(&[p]).set(n as i64);
        }
        o.connections_open.set(rt.connections.total() as i64);
        o.inflight_limit.set(rt.inflight.max() as i64);
        o.toollog_queue_rows.set(toollog_rows as i64);
        o.uptime_seconds.set(rt.uptime_secs() as i64);
        for (pass, total) in crate::files::hash::read_totals() {
            let c = o.file_read_bytes.with_label_values(&[pass]);
            let seen = c.get();
            if total > seen {
                c.inc_by(total - seen);
            }
        }
    }

    /// Make a configured provider's series visible (at zero) before its first request, so
    /// that dashboards and alerts on errors, retries and fallbacks see a healthy system as
    /// zero rather than as no data: requests, in-flight, the wait and request histograms,
    /// errors and retries for every error class, fallbacks.
    pub fn register_provider(&self, name: &str) {
        self.provider_requests.with_label_values(&[name]);
        self.provider_inflight.with_label_values(&[name]);
        self.provider_fallbacks.with_label_values(&[name]);
        self.provider_wait_seconds.with_label_values(&[name]);
        self.provider_seconds.with_label_values(&[name]);
        for class in crate::provider::types::ErrorClass::ALL {
            self.provider_errors.with_label_values(&[name, class.as_str()]);
            self.provider_retries.with_label_values(&[name, class.as_str()]);
        }
    }

    /// Make an actor's restart and mailbox-rejection series visible (at zero) before the
    /// first event.
    pub fn register_actor(&self, name: &str) {
        self.actor_restarts.with_label_values(&[name]);
        self.mailbox_rejections.with_label_values(&[name]);
    }

    /// Resolve the per-tool handles once.
    pub fn for_tool(&self, tool: &str) -> ToolMetrics {
        let c = |o: &str| self.tool_calls.with_label_values(&[tool, o]);
        ToolMetrics {
            ok: c("ok"),
            error: c("error"),
            over_capacity: c("over_capacity"),
            timeout: c("timeout"),
            cancelled: c("cancelled"),
            seconds: self.call_seconds.with_label_values(&[tool]),
        }
    }

    /// Render the text exposition format.
    pub fn render(&self) -> String {
        use prometheus::Encoder;
        let mut buf = Vec::new();
        let enc = prometheus::TextEncoder::new();
        if enc.encode(&self.registry.gather(), &mut buf).is_err() {
            return String::new();
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}

/// Pre-resolved per-tool metric handles.
#[derive(Clone)]
pub struct ToolMetrics {
    /// Ok outcomes.
    pub ok: IntCounter,
    /// Error outcomes.
    pub error: IntCounter,
    /// Over-capacity rejections.
    pub over_capacity: IntCounter,
    /// Timeouts.
    pub timeout: IntCounter,
    /// Cancellations.
    pub cancelled: IntCounter,
    /// Latency.
    pub seconds: Histogram,
}

impl ToolMetrics {
    /// The counter for an outcome.
    pub fn outcome(&self, o: crate::ports::CallOutcome) -> &IntCounter {
        use crate::ports::CallOutcome as O;
        match o {
            O::Ok => &self.ok,
            O::Error => &self.error,
            O::OverCapacity => &self.over_capacity,
            O::Timeout => &self.timeout,
            O::Cancelled => &self.cancelled,
        }
    }
}
