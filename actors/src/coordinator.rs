//! `SystemCoordinator`: the root of the supervision tree and owner of staged shutdown.
//!
//! States: `Running` → `Draining` (shutdown begun: no new connections or calls; sessions
//! and detached MCP tasks finish their in-flight calls up to the deadline; tasks still running
//! then are aborted and stored as failed) → `Flushing` (children drained, store
//! flushed and closed) → `Stopped` (the actix `System` is stopped with exit code 0).
//!
//! Messages taken: [`ChildExited`] (a child died; sent by its [`ExitNotifier`] on drop, which
//! also runs when a handler panics), [`RegisterSession`] / [`UnregisterSession`] (one per
//! connection), [`AttachServer`] (how to pause and stop the HTTP server), [`Shutdown`]
//! (SIGTERM, SIGINT or SIGHUP, or an operator), [`CrashChild`] (fault injection, only when enabled).
//! Messages sent: [`Drain`] to children, [`DrainSession`] to sessions.
//!
//! actix does not restart a panicked actor by itself, so the coordinator keeps a factory per
//! child and recreates it with exponential backoff; more than `restart_max` restarts within
//! `restart_window_secs` mark the child `Failed` (health then reports not ready). Children's
//! addresses live in [`ChildHandle`]s that the coordinator swaps on restart, so callers always
//! reach the current instance.

use crate::clock::now_ms;
use crate::env::RuntimeState;
use crate::metrics::Metrics;
use crate::ports::Store;
use crate::settings::CoreSettings;
pub use crate::supervision::{
    Child, ChildExited, ChildHandle, ChildSpec, ChildState, ChildStatus, Crash, Drain, DrainSession, ExitNotifier,
    RegisterSession, UnregisterSession,
};
use actix::prelude::*;
use futures_util::future::BoxFuture;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Begin staged shutdown.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct Shutdown {
    /// Why (logged).
    pub reason: String,
}

/// Fault injection: crash the named child. Answers whether it was found and alive.
#[derive(Message, Debug, Clone)]
#[rtype(result = "bool")]
pub struct CrashChild {
    /// Child name.
    pub name: String,
}

/// How the coordinator pauses and stops the HTTP server (provided by the transport layer).
pub struct ServerControl {
    /// Stop accepting new connections.
    pub pause: Box<dyn Fn() -> BoxFuture<'static, ()> + Send>,
    /// Stop the server (graceful: waits for open requests up to its own timeout).
    pub stop: Box<dyn Fn() -> BoxFuture<'static, ()> + Send>,
}

/// Hand the coordinator its [`ServerControl`].
#[derive(Message)]
#[rtype(result = "()")]
pub struct AttachServer(pub ServerControl);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Running,
    Draining,
    Flushing,
    Stopped,
}

struct ChildEntry {
    spec: Box<dyn ChildSpec>,
    generation: u64,
    restarts: u32,
    recent: VecDeque<Instant>,
    state: ChildState,
    last_restart_ms: Option<i64>,
    last_exit: Option<String>,
}

/// The coordinator actor.
pub struct SystemCoordinator {
    settings: Arc<CoreSettings>,
    runtime: Arc<RuntimeState>,
    metrics: Metrics,
    store: Arc<dyn Store>,
    children: Vec<ChildEntry>,
    sessions: HashMap<u64, Recipient<DrainSession>>,
    server: Option<ServerControl>,
    phase: Phase,
    listen_signals: bool,
    maintaining: bool,
}

impl SystemCoordinator {
    /// A coordinator that will start `children` in order.
    pub fn new(
        settings: Arc<CoreSettings>,
        runtime: Arc<RuntimeState>,
        metrics: Metrics,
        store: Arc<dyn Store>,
        children: Vec<Box<dyn ChildSpec>>,
        listen_signals: bool,
    ) -> Self {
        metrics.register_actor("coordinator");
        for c in &children {
            metrics.register_actor(c.name());
        }
        let children = children
            .into_iter()
            .map(|spec| ChildEntry {
                spec,
                generation: 0,
                restarts: 0,
                recent: VecDeque::new(),
                state: ChildState::Starting,
                last_restart_ms: None,
                last_exit: None,
            })
            .collect();
        SystemCoordinator {
            settings,
            runtime,
            metrics,
            store,
            children,
            sessions: HashMap::new(),
            server: None,
            phase: Phase::Running,
            listen_signals,
            maintaining: false,
        }
    }

    fn publish(&self) {
        let snapshot: Vec<ChildStatus> = self
            .children
            .iter()
            .map(|c| ChildStatus {
                name: c.spec.name().to_string(),
                state: c.state,
                restarts: c.restarts,
                last_restart_ms: c.last_restart_ms,
                last_exit: c.last_exit.clone(),
            })
            .collect();
        if let Ok(mut g) = self.runtime.children.write() {
            *g = snapshot;
        }
    }

    fn start_child(&mut self, idx: usize, ctx: &mut Context<Self>) {
        let me = ctx.address().recipient();
        if let Some(c) = self.children.get_mut(idx) {
            c.generation += 1;
            let exit = ExitNotifier::new(c.spec.name(), c.generation, me);
            c.spec.start(exit);
            c.state = ChildState::Running;
            tracing::info!(child = c.spec.name(), generation = c.generation, "child started");
        }
        self.publish();
    }

    fn on_exit(&mut self, name: &str, generation: u64, why: &str, ctx: &mut Context<Self>) {
        let Some(idx) = self.children.iter().position(|c| c.spec.name() == name) else { return };
        let s = Arc::clone(&self.settings);
        let c = &mut self.children[idx];
        if c.generation != generation || c.state != ChildState::Running {
            return;
        }
        if self.phase != Phase::Running {
            c.state = ChildState::Stopped;
            self.publish();
            return;
        }
        c.last_exit = Some(why.to_string());
        let now = Instant::now();
        let window = Duration::from_secs(s.restart_window_secs);
        while c.recent.front().is_some_and(|t| now.duration_since(*t) > window) {
            c.recent.pop_front();
        }
        if c.recent.len() as u32 >= s.restart_max {
            c.state = ChildState::Failed;
            tracing::error!(child = name, restarts = c.restarts, "child restarted too often; giving up");
            self.publish();
            return;
        }
        let shift = c.recent.len().min(16) as u32;
        let delay = s.restart_backoff_ms.saturating_mul(1u64 << shift).min(s.restart_backoff_max_ms);
        c.recent.push_back(now);
        c.restarts += 1;
        c.last_restart_ms = Some(now_ms());
        c.state = ChildState::Restarting;
        self.metrics.actor_restarts.with_label_values(&[c.spec.name()]).inc();
        tracing::error!(child = name, delay_ms = delay, reason = why, "child died; restarting");
        self.publish();
        ctx.run_later(Duration::from_millis(delay), move |act, ctx| {
            if act.phase == Phase::Running {
                act.start_child(idx, ctx);
            }
        });
    }

    fn begin_shutdown(&mut self, reason: &str, ctx: &mut Context<Self>) {
        if self.phase != Phase::Running {
            return;
        }
        self.phase = Phase::Draining;
        self.runtime.shutting_down.store(true, Ordering::Release);
        tracing::info!(reason, sessions = self.sessions.len(), "staged shutdown: draining");
        let deadline = Instant::now() + Duration::from_secs(self.settings.shutdown_deadline_secs);
        let pause = self.server.as_ref().map(|s| (s.pause)());
        for r in self.sessions.values() {
            r.do_send(DrainSession { deadline });
        }
        let fut = async move {
            if let Some(p) = pause {
                p.await;
            }
        };
        ctx.spawn(fut.into_actor(self).map(move |_, act, ctx| act.wait_sessions(deadline, ctx)));
    }

    fn wait_sessions(&mut self, deadline: Instant, ctx: &mut Context<Self>) {
        // Sessions cancel what is left at the deadline and then close; allow them a moment.
        // Detached MCP tasks are waited for too: at the deadline the rest are aborted, and
        // each stores itself as failed before the store closes.
        let hard = deadline + Duration::from_secs(3);
        let now = Instant::now();
        if now >= deadline {
            let aborted = self.runtime.tasks.abort_all();
            if aborted > 0 {
                tracing::warn!(tasks = aborted, "drain deadline passed: running tasks are failed");
            }
        }
        let tasks = self.runtime.tasks.running();
        if (self.sessions.is_empty() && tasks == 0) || now >= hard {
            if !self.sessions.is_empty() {
                tracing::warn!(left = self.sessions.len(), "sessions still open after the drain deadline");
            }
            if tasks > 0 {
                tracing::warn!(left = tasks, "tasks still running after the drain deadline");
            }
            self.flush(ctx);
            return;
        }
        ctx.run_later(Duration::from_millis(25), move |act, ctx| act.wait_sessions(deadline, ctx));
    }

    fn flush(&mut self, ctx: &mut Context<Self>) {
        self.phase = Phase::Flushing;
        tracing::info!("staged shutdown: stopping server, draining children, closing store");
        let stop = self.server.as_ref().map(|s| (s.stop)());
        let drains: Vec<_> = self.children.iter().rev().map(|c| c.spec.drain()).collect();
        let store = Arc::clone(&self.store);
        let fut = async move {
            if let Some(s) = stop {
                s.await;
            }
            for d in drains {
                d.await;
            }
            store.close().await;
        };
        ctx.spawn(fut.into_actor(self).map(|_, act, _| {
            act.phase = Phase::Stopped;
            for c in act.children.iter_mut() {
                c.state = ChildState::Stopped;
            }
            act.publish();
            tracing::info!("staged shutdown complete");
            System::current().stop_with_code(0);
        }));
    }
}

impl Actor for SystemCoordinator {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(4096);
        for i in 0..self.children.len() {
            self.start_child(i, ctx);
        }
        // Backstop: a child whose notifier somehow did not fire is still noticed.
        ctx.run_interval(Duration::from_secs(1), |act, ctx| {
            let dead: Vec<(String, u64)> = act
                .children
                .iter()
                .filter(|c| c.state == ChildState::Running && !c.spec.alive())
                .map(|c| (c.spec.name().to_string(), c.generation))
                .collect();
            for (name, generation) in dead {
                act.on_exit(&name, generation, "mailbox closed", ctx);
            }
        });
        if self.listen_signals {
            listen_for_signals(ctx);
        }
        // Store upkeep (SQLite WAL checkpoints, tool-call log retention) on a timer, off
        // every request path.
        ctx.run_interval(Duration::from_secs(2), |act, ctx| {
            if act.maintaining || act.phase != Phase::Running {
                return;
            }
            act.maintaining = true;
            let store = Arc::clone(&act.store);
            let metrics = act.metrics.clone();
            let retention = crate::toollog::Retention {
                max_age: act.settings.toollog_retention,
                max_rows: act.settings.toollog_max_rows,
            };
            ctx.spawn(
                async move {
                    if let Err(e) = store.maintain().await {
                        tracing::warn!(error = %e, "store maintenance failed");
                    }
                    // MCP tasks past their TTL are removed (reads already ignore them).
                    if let Some(tasks) = store.task_store() {
                        match tasks.delete_expired_tasks(crate::env::now_ms()).await {
                            Ok(0) => {}
                            Ok(n) => tracing::debug!(tasks = n, "expired tasks removed"),
                            Err(e) => tracing::warn!(error = %e, "removing expired tasks failed"),
                        }
                    }
                    match crate::toollog::prune(&*store, retention, now_ms(), &metrics).await {
                        Ok(0) => {}
                        Ok(n) => tracing::debug!(rows = n, "tool-call log pruned"),
                        Err(e) => tracing::warn!(error = %e, "tool-call log retention failed"),
                    }
                }
                .into_actor(act)
                .map(|_, act, _| act.maintaining = false),
            );
        });
    }
}

#[cfg(unix)]
fn listen_for_signals(ctx: &mut Context<SystemCoordinator>) {
    use actix_rt::signal::unix::{signal, SignalKind};
    let me = ctx.address();
    // SIGHUP drains exactly like SIGTERM: the configuration is not re-read (most of it is
    // wired into the actors and sockets at start-up), and a hang-up must not kill the process
    // with in-flight calls (the default action) and leave a `Restart=on-failure` unit down.
    for (kind, name) in
        [(SignalKind::terminate(), "SIGTERM"), (SignalKind::interrupt(), "SIGINT"), (SignalKind::hangup(), "SIGHUP")]
    {
        let me = me.clone();
        match signal(kind) {
            Ok(mut s) => {
                actix_rt::spawn(async move {
                    if s.recv().await.is_some() {
                        me.do_send(Shutdown { reason: name.into() });
                    }
                });
            }
            Err(e) => tracing::error!(error = %e, signal = name, "cannot listen for signal"),
        }
    }
}

#[cfg(not(unix))]
fn listen_for_signals(ctx: &mut Context<SystemCoordinator>) {
    let me = ctx.address();
    actix_rt::spawn(async move {
        if actix_rt::signal::ctrl_c().await.is_ok() {
            me.do_send(Shutdown { reason: "ctrl-c".into() });
        }
    });
}

impl Handler<ChildExited> for SystemCoordinator {
    type Result = ();

    fn handle(&mut self, msg: ChildExited, ctx: &mut Context<Self>) {
        self.on_exit(msg.name, msg.generation, "actor stopped or panicked", ctx);
    }
}

impl Handler<RegisterSession> for SystemCoordinator {
    type Result = ();

    fn handle(&mut self, msg: RegisterSession, _: &mut Context<Self>) {
        if self.phase != Phase::Running {
            msg.drain.do_send(DrainSession { deadline: Instant::now() });
        }
        self.sessions.insert(msg.id, msg.drain);
    }
}

impl Handler<UnregisterSession> for SystemCoordinator {
    type Result = ();

    fn handle(&mut self, msg: UnregisterSession, _: &mut Context<Self>) {
        self.sessions.remove(&msg.id);
    }
}

impl Handler<Shutdown> for SystemCoordinator {
    type Result = ();

    fn handle(&mut self, msg: Shutdown, ctx: &mut Context<Self>) {
        self.begin_shutdown(&msg.reason, ctx);
    }
}

impl Handler<AttachServer> for SystemCoordinator {
    type Result = ();

    fn handle(&mut self, msg: AttachServer, _: &mut Context<Self>) {
        self.server = Some(msg.0);
    }
}

impl Handler<CrashChild> for SystemCoordinator {
    type Result = bool;

    fn handle(&mut self, msg: CrashChild, _: &mut Context<Self>) -> bool {
        self.children
            .iter()
            .find(|c| c.spec.name() == msg.name)
            .map(|c| c.spec.crash(format!("requested crash of {}", msg.name)))
            .unwrap_or(false)
    }
}
