//! Wiring: builds the actor system from a loaded [`Config`] and runs it.
//!
//! Start order: metrics and the error watcher's queue → telemetry → listening sockets bound
//! (a busy address fails here, before anything else exists, as one line naming it) → store
//! (migrations applied) → runtime state, catalogue, tool registry, dispatcher →
//! `SystemCoordinator` (which starts its children: the tool-call log writer, the error watcher
//! and, when enabled, the auditor) and the dashboard's per-second sampler → HTTP server
//! started on the bound sockets and announced with `EXAI_LISTENING <addr>` on stdout → run
//! until the coordinator finishes staged shutdown and stops the system with its code.
//!
//! The system runs, and is dropped, inside its tokio runtime's context. When the system stops
//! (or start-up fails), the runner drops its `LocalSet` before the tokio runtime, and tokio
//! does not enter the runtime's context for that. Whatever the local tasks still own is
//! dropped there: an actor's context polls its actor one last time on drop (`started` of an
//! actor that never ran creates timers), and a sqlx pool connection returns itself to its pool
//! by spawning a task. Without a context both panic ("there is no reactor running", "this
//! functionality requires a Tokio context"); inside it they are dropped as on any other
//! cancellation.

use crate::config::{Config, LogFormat};
use crate::server::dashboard::samples::spawn_sampler;
use crate::server::dashboard::Monitoring;
use crate::server::{self, mcp_http, AppState};
use crate::store::{self, StoreOptions};
use crate::telemetry;
use crate::watchers;
use crate::wiring;
use actix::Actor;
use actix_web::{App, HttpServer};
use exai_actors::coordinator::{AttachServer, Child, ChildHandle, ChildSpec, ServerControl, SystemCoordinator};
use exai_actors::dispatch::Dispatcher;
use exai_actors::env::{RuntimeState, ToolEnv};
use exai_actors::metrics::Metrics;
use exai_actors::result_cache::ResultCache;
use exai_actors::session::{BufferLimits, SessionDeps, SessionRegistry};
use exai_actors::toollog::{ToolLogQueue, ToolLogWriter};
use exai_actors::tools::registry::Registry;
use exai_actors::tools::{ai, builtin, Tool};
use exai_actors::watcher::errors::ErrorQueue;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Errors that stop start-up.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// Telemetry could not be set up.
    #[error(transparent)]
    Telemetry(#[from] telemetry::TelemetryError),
    /// The store could not be opened or migrated.
    #[error("storage: {0}")]
    Store(#[from] exai_actors::ports::StoreError),
    /// Metrics registration failed.
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    /// The tool registry is inconsistent.
    #[error(transparent)]
    Registry(#[from] exai_actors::tools::registry::RegistryError),
    /// The listening address could not be bound (in use, not permitted, not local).
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address as configured (`host:port`).
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// Running the server failed.
    #[error("server: {0}")]
    Io(#[from] std::io::Error),
    /// The blob store could not be set up.
    #[error("blob store: {0}")]
    Blob(#[from] exai_actors::files::ports::BlobError),
    /// Cluster mode could not start.
    #[error(transparent)]
    Cluster(#[from] crate::cluster::ClusterStartError),
    /// The conversation journal could not be opened or replayed.
    #[error("conversations: {0}")]
    Journal(#[from] exai_actors::conversation::writer::WriteBehindError),
}

/// Pending-connection queue of each listening socket (actix-web's default).
const LISTEN_BACKLOG: u32 = 1024;

fn store_options(cfg: &Config, migrate: bool) -> StoreOptions {
    StoreOptions {
        max_connections: cfg.storage.max_connections,
        migrate,
        writer_nice: if crate::wiring::write_behind_enabled(cfg) { cfg.storage.writer_nice.min(19) as i32 } else { 0 },
        sqlite_cache_mib: cfg.storage.sqlite_cache_mib,
        acquire_timeout_ms: cfg.storage.acquire_timeout_ms,
        probe_timeout_ms: cfg.storage.probe_timeout_ms,
        ..StoreOptions::default()
    }
}

/// `exai serve`: run until shutdown; returns the process exit code.
pub fn serve(cfg: Config) -> Result<i32, AppError> {
    let format = if cfg.logging.format == LogFormat::Json { "json" } else { "human" };
    // Metrics exist before logging so that the error watcher's queue can count into them.
    let metrics = Metrics::new()?;
    let errors = watchers::error_queue(&cfg, &metrics);
    let ring = telemetry::init(&cfg.logging.level, format, 2000, errors.clone())?;
    for w in &cfg.warnings {
        tracing::warn!("config: {w}");
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let sys = actix_rt::System::new();
    let rt = sys.runtime().tokio_runtime().handle().clone();
    let _entered = rt.enter();
    let addrs = match sys.block_on(start(cfg, ring, metrics, errors, true)) {
        Ok(addrs) => addrs,
        Err(e) => {
            drop(sys);
            return Err(e);
        }
    };
    if let Some(a) = addrs.first() {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "EXAI_LISTENING {a}");
        let _ = out.flush();
    }
    Ok(sys.run_with_code()?)
}

/// Bind every address `host:port` resolves to before anything else starts, so that a busy or
/// forbidden address is one clear error and no actor exists yet to be torn down. Succeeds when
/// at least one address binds (as actix-web's own `bind` does).
fn bind_listeners(host: &str, port: u16, backlog: u32) -> Result<Vec<std::net::TcpListener>, AppError> {
    use std::net::ToSocketAddrs;
    let shown = if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") };
    let listen_err = |source| AppError::Listen { addr: shown.clone(), source };
    let addrs: Vec<SocketAddr> = (host, port).to_socket_addrs().map_err(listen_err)?.collect();
    let mut listeners = Vec::new();
    let mut first_err = None;
    for addr in addrs {
        let bound = (|| {
            let socket =
                if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
            socket.set_reuseaddr(true)?;
            socket.bind(addr)?;
            socket.listen(backlog)?.into_std()
        })();
        match bound {
            Ok(l) => listeners.push(l),
            Err(e) => {
                first_err.get_or_insert(AppError::Listen { addr: addr.to_string(), source: e });
            }
        }
    }
    match (listeners.is_empty(), first_err) {
        (false, _) => Ok(listeners),
        (true, Some(e)) => Err(e),
        (true, None) => {
            Err(listen_err(std::io::Error::new(std::io::ErrorKind::NotFound, "the host resolves to no address")))
        }
    }
}

/// Start the whole server inside the current actix system without printing anything on stdout
/// and without taking over signals (for `exai stdio --embedded`); returns the bound address.
pub async fn start_embedded(cfg: Config, ring: Arc<telemetry::ActivityRing>) -> Result<SocketAddr, AppError> {
    let metrics = Metrics::new()?;
    let addrs = start(cfg, ring, metrics, None, false).await?;
    addrs.first().copied().ok_or_else(|| AppError::Io(std::io::Error::other("the server bound no address")))
}

async fn start(
    cfg: Config,
    ring: Arc<telemetry::ActivityRing>,
    metrics: Metrics,
    errors: Option<ErrorQueue>,
    listen_signals: bool,
) -> Result<Vec<SocketAddr>, AppError> {
    let listeners = bind_listeners(&cfg.server.host, cfg.server.port, LISTEN_BACKLOG)?;
    let settings = Arc::new(cfg.core_settings());
    if cfg.server.metrics_token.is_none() && !crate::config::is_loopback_host(&cfg.server.host) {
        tracing::warn!(
            host = %cfg.server.host,
            "GET /metrics answers without a token on a non-loopback address; set server.metrics_token to guard it"
        );
    }
    let url = cfg.database_url();
    tracing::info!(database = %store::redact_url(&url), "opening store");
    let store = store::open(&url, &store_options(&cfg, true)).await?;
    fail_orphaned_tasks(store.as_ref()).await;
    let runtime = Arc::new(RuntimeState::new(&settings));
    let data_dir = std::path::Path::new(&cfg.storage.data_dir);
    if data_dir.is_dir() {
        runtime.storage.watch_dir(data_dir);
    }
    let catalog = wiring::catalog(&cfg);
    let toollog =
        ToolLogQueue::new(settings.toollog_queue, metrics.clone()).with_storage_health(Arc::clone(&runtime.storage));
    let mut children: Vec<Box<dyn ChildSpec>> = Vec::new();
    let provider_arbiter = actix_rt::Arbiter::new();
    let cluster = crate::cluster::connect(&cfg, &metrics)?;
    let gate = crate::cluster::gate(&cfg, cluster.as_ref());
    let providers = wiring::providers(
        &cfg,
        settings.retry_after_secs,
        Arc::clone(&catalog),
        &metrics,
        &provider_arbiter.handle(),
        &runtime.breakers,
        gate,
        &mut children,
    );
    if let Some(c) = &cluster {
        c.attach(&providers, &metrics, &mut children);
    }
    let (conversations, journal) =
        wiring::conversations(&cfg, Arc::clone(&store), &metrics, &runtime.storage, &mut children).await?;
    let (files, root_problems) = wiring::files(&cfg);
    for p in root_problems {
        tracing::warn!("{p}");
    }
    let env = Arc::new(ToolEnv {
        settings: Arc::clone(&settings),
        store: Arc::clone(&store),
        activity: ring,
        metrics: metrics.clone(),
        runtime: Arc::clone(&runtime),
        catalog: Arc::clone(&catalog),
        toollog: toollog.clone(),
        providers,
        conversations,
        files,
    });
    let mut tools: Vec<Arc<dyn Tool>> = builtin::all();
    tools.extend(ai::all());
    let mut cleanup = None;
    if let Some(registry) = store.file_registry() {
        let blob = crate::wiring_files::blob_store(&cfg)?;
        let gw = crate::wiring_files::gateway(&cfg, registry, blob, &env.providers, &metrics, &mut children);
        cleanup = Some(gw.cleanup.clone());
        tools.extend(ai::file_chat::all(&gw));
    }
    if cfg.debug.fault_injection {
        tracing::warn!("debug.fault_injection is on: test-only tools and routes are enabled");
        tools.push(Arc::new(builtin::DebugSleep::new()));
    }
    let registry = Arc::new(Registry::new(tools, &cfg.tools.disabled, settings.tools_page_size, &metrics)?);
    let _ = runtime.tool_names.set(registry.names());
    let dispatcher = Dispatcher::new(Arc::clone(&registry), Arc::clone(&env));

    let log_handle: ChildHandle<ToolLogWriter> = ChildHandle::default();
    let (q, st, batch, every) =
        (toollog.clone(), Arc::clone(&store), settings.toollog_batch, Duration::from_millis(settings.toollog_flush_ms));
    children.insert(
        0,
        Box::new(Child::new("toollog", log_handle, move |exit| {
            ToolLogWriter::new(q.clone(), Arc::clone(&st), batch, every, Some(exit))
        })),
    );
    // --- monitoring (issue 5): watchers, dashboard samples; analyses go through the providers ---
    let analysis = wiring::analysis_model(&cfg, &env.providers);
    let monitoring = Arc::new(Monitoring::new(&cfg, analysis.is_some()));
    children.extend(watchers::children(&cfg, &metrics, &store, errors, analysis));
    spawn_sampler(Arc::clone(&monitoring.samples), metrics.clone(), Arc::clone(&runtime));
    if let Some(registry) = store.file_registry() {
        crate::server::dashboard::spawn_file_stats(Arc::clone(&monitoring), registry, Arc::clone(&runtime)).await;
    }
    // --- end monitoring ---
    let coordinator = SystemCoordinator::new(
        Arc::clone(&settings),
        Arc::clone(&runtime),
        metrics.clone(),
        Arc::clone(&store),
        children,
        listen_signals,
    )
    .start();

    let session_deps = SessionDeps {
        dispatcher: dispatcher.clone(),
        register: coordinator.clone().recipient(),
        unregister: coordinator.clone().recipient(),
        results: Arc::new(ResultCache::new(
            settings.result_cache_entries,
            Duration::from_secs(settings.result_ttl_secs),
        )),
        sessions: SessionRegistry::new(
            BufferLimits {
                per_session: cfg.limits.resume_buffer_replies,
                global: cfg.limits.resume_buffer_global,
                per_session_bytes: cfg.limits.resume_buffer_bytes,
                global_bytes: cfg.limits.resume_buffer_global_bytes,
                queue: cfg.limits.session_queue,
                queue_wait: Duration::from_millis(cfg.limits.session_queue_wait_ms),
            },
            Duration::from_secs(cfg.timeouts.resume_grace_secs),
            settings.session_max_inflight,
        ),
        stall_close: Duration::from_secs(cfg.timeouts.stall_close_secs.max(1)),
        close_linger: Duration::from_secs(cfg.timeouts.stall_close_secs.clamp(5, 30)),
    };
    let http = mcp_http::McpHttp::new(
        dispatcher,
        mcp_http::McpHttpConfig {
            access: settings.access.clone(),
            session_idle_secs: cfg.http.session_idle_secs,
            max_sessions: cfg.http.max_sessions,
            auth_token: settings.auth_token.clone(),
        },
        session_deps.sessions.clone(),
    );
    let http_for_stop = Arc::clone(&http);
    let drain_deadline = Duration::from_secs(settings.shutdown_deadline_secs);
    let state = AppState {
        settings: Arc::clone(&settings),
        runtime,
        metrics,
        store,
        catalog,
        toollog,
        session_deps,
        coordinator: coordinator.clone(),
        admin_token: cfg.server.admin_token.as_ref().map(|t| t.expose().to_string()),
        admin_guard: cfg.server.admin_token.as_ref().or(cfg.server.auth_token.as_ref()).map(|t| t.expose().to_string()),
        metrics_token: cfg.server.metrics_token.as_ref().map(|t| t.expose().to_string()),
        fault_injection: cfg.debug.fault_injection,
        mcp_http: http,
        monitoring,
        cleanup,
        journal,
        cluster: cluster.clone(),
    };
    let server = HttpServer::new(move || {
        let st = state.clone();
        App::new().configure(move |c| server::configure(c, st))
    })
    .workers(cfg.worker_threads())
    // Replies are small frames written as they are ready: never let Nagle hold one back
    // waiting for the client's delayed ACK.
    .on_connect(|conn, _| {
        if let Some(tcp) = conn.downcast_ref::<actix_web::rt::net::TcpStream>() {
            let _ = tcp.set_nodelay(true);
        }
    })
    .h1_allow_half_closed(false)
    .disable_signals()
    .shutdown_timeout(settings.shutdown_deadline_secs + 5);
    let mut server = server;
    for l in listeners {
        server = server.listen(l)?;
    }
    let addrs = server.addrs();
    if let (Some(c), Some(a)) = (&cluster, addrs.first()) {
        c.bound(*a, cfg.server.port, !cfg.cluster.advertise_address.is_empty());
    }
    let srv = server.run();
    let handle = srv.handle();
    let (h1, h2) = (handle.clone(), handle);
    coordinator.do_send(AttachServer(ServerControl {
        pause: Box::new(move || {
            let h = h1.clone();
            Box::pin(async move { h.pause().await })
        }),
        stop: Box::new(move || {
            let h = h2.clone();
            let http = Arc::clone(&http_for_stop);
            Box::pin(async move {
                // Streamable HTTP calls get the same drain window as WebSocket calls.
                let until = std::time::Instant::now() + drain_deadline;
                while http.inflight_count() > 0 && std::time::Instant::now() < until {
                    tokio::time::sleep(Duration::from_millis(25)).await;
                }
                http.close_all();
                h.stop(true).await
            })
        }),
    }));
    actix_rt::spawn(async move {
        if let Err(e) = srv.await {
            tracing::error!(error = %e, "HTTP server ended with an error");
        }
    });
    for a in &addrs {
        tracing::info!(addr = %a, "listening");
    }
    Ok(addrs)
}

/// `exai migrate`: apply migrations and print their state as JSON.
pub fn migrate(cfg: Config) -> Result<i32, AppError> {
    let format = if cfg.logging.format == LogFormat::Json { "json" } else { "human" };
    telemetry::init(&cfg.logging.level, format, 100, None)?;
    let url = cfg.database_url();
    let sys = actix_rt::System::new();
    let rt = sys.runtime().tokio_runtime().handle().clone();
    let status = {
        let _entered = rt.enter();
        let status = sys.block_on(store::migrate_with(&url, &store_options(&cfg, true)));
        drop(sys);
        status?
    };
    crate::term::out_line(
        &serde_json::json!({ "database": store::redact_url(&url), "applied": status.applied, "known": status.known, "current": status.is_current() })
        .to_string(),
    );
    Ok(if status.is_current() { 0 } else { 1 })
}

/// A SQLite database serves one process (its file lock): a task still working in it at
/// start-up died with the previous process (killed, not drained), so it is failed with a clear
/// message instead of looking alive until its TTL. PostgreSQL may be shared by live servers,
/// whose running tasks must not be touched, so it is left alone.
async fn fail_orphaned_tasks(store: &dyn store::Store) {
    let Some(tasks) = store.task_store().filter(|_| store.backend() == "sqlite") else {
        return;
    };
    let why = "the server stopped before the task finished (it was not drained)";
    match tasks.fail_unfinished_tasks(why, exai_actors::env::now_ms()).await {
        Ok(0) => {}
        Ok(n) => tracing::warn!(tasks = n, "tasks left running by the previous process are failed"),
        Err(e) => tracing::warn!(error = %e, "failing orphaned tasks failed"),
    }
}
