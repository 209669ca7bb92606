//! Shared services handed to tools and sessions, and the live runtime state.
//!
//! [`ToolEnv`] bundles what every call may need (settings, store, metrics, activity log,
//! model catalogue, runtime state). [`RuntimeState`] is written by the coordinator (child
//! states, shutdown flag) and read by health checks and the `status`/`health` tools.

use crate::catalog::Catalog;
use crate::conversation::Conversations;
use crate::limits::{ConnectionTracker, Limiter};
use crate::metrics::Metrics;
use crate::ports::{ActivitySource, Store};
use crate::provider::service::ProviderSet;
use crate::settings::CoreSettings;
use crate::toollog::ToolLogQueue;
use crate::tools::files::FileAccess;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Instant;

pub use crate::clock::now_ms;
use crate::supervision::ChildStatus;

/// Live process state shared across threads.
pub struct RuntimeState {
    /// Monotonic start.
    pub started: Instant,
    /// Wall-clock start, ms.
    pub started_at_ms: i64,
    /// Set when staged shutdown begins: no new connections or calls.
    pub shutting_down: AtomicBool,
    /// Supervised children, maintained by the coordinator.
    pub children: RwLock<Vec<ChildStatus>>,
    /// Names of registered tools, set once after the registry is built.
    pub tool_names: OnceLock<Vec<String>>,
    /// Global in-flight call slots.
    pub inflight: Arc<Limiter>,
    /// Open connections.
    pub connections: ConnectionTracker,
    /// Live sessions by protocol: mcp-ws, legacy-ws, mcp-http.
    pub sessions_mcp_ws: AtomicUsize,
    /// Live legacy sessions.
    pub sessions_legacy: AtomicUsize,
    /// Live Streamable HTTP sessions.
    pub sessions_http: AtomicUsize,
    /// Providers' circuit-breaker states (written by the provider layer).
    pub breakers: crate::breakers::BreakerBoard,
    /// Whether turns and log rows can be stored now (free space, writers failing on a full
    /// disk): checked before a provider is called, reported by readiness.
    pub storage: Arc<crate::storage_health::StorageHealth>,
    /// MCP tasks running in this process (the shutdown drain waits for them).
    pub tasks: crate::tasks::TaskRunner,
}

impl RuntimeState {
    /// Fresh state from settings.
    pub fn new(s: &CoreSettings) -> RuntimeState {
        RuntimeState {
            started: Instant::now(),
            started_at_ms: now_ms(),
            shutting_down: AtomicBool::new(false),
            children: RwLock::new(Vec::new()),
            tool_names: OnceLock::new(),
            inflight: Limiter::new(s.global_max_inflight),
            connections: ConnectionTracker::new(s.max_connections, s.max_connections_per_ip),
            sessions_mcp_ws: AtomicUsize::new(0),
            sessions_legacy: AtomicUsize::new(0),
            sessions_http: AtomicUsize::new(0),
            breakers: crate::breakers::BreakerBoard::default(),
            storage: Arc::new(crate::storage_health::StorageHealth::new()),
            tasks: crate::tasks::TaskRunner::default(),
        }
    }

    /// True once shutdown started.
    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Acquire)
    }

    /// Snapshot of child states.
    pub fn children(&self) -> Vec<ChildStatus> {
        self.children.read().map(|c| c.clone()).unwrap_or_default()
    }

    /// Seconds since start.
    pub fn uptime_secs(&self) -> u64 {
        self.started.elapsed().as_secs()
    }

    /// Session counter for a protocol name.
    pub fn session_counter(&self, protocol: &str) -> &AtomicUsize {
        match protocol {
            "legacy-ws" => &self.sessions_legacy,
            "mcp-http" => &self.sessions_http,
            _ => &self.sessions_mcp_ws,
        }
    }
}

/// Services every tool call can use.
pub struct ToolEnv {
    /// Core settings.
    pub settings: Arc<CoreSettings>,
    /// Storage port.
    pub store: Arc<dyn Store>,
    /// Recent log activity.
    pub activity: Arc<dyn ActivitySource>,
    /// Metrics.
    pub metrics: Metrics,
    /// Runtime state.
    pub runtime: Arc<RuntimeState>,
    /// Model and provider catalogue.
    pub catalog: Arc<Catalog>,
    /// Tool-call log queue.
    pub toollog: ToolLogQueue,
    /// Providers and model routing.
    pub providers: Arc<ProviderSet>,
    /// Conversation threads.
    pub conversations: Arc<Conversations>,
    /// Files tools may read.
    pub files: Arc<FileAccess>,
}
