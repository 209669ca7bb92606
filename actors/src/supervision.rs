//! The supervision protocol: what the coordinator and its children (and sessions) say to each
//! other, apart from the coordinator itself so that children depend on this small module and
//! not on the coordinator (nor, through it, on the service locator in `env.rs`).
//!
//! Children take [`Drain`] and [`Crash`] and hold an [`ExitNotifier`] that sends
//! [`ChildExited`] when they are dropped; callers reach them through a [`ChildHandle`] the
//! coordinator swaps on restart; a [`Child`] is the factory the coordinator restarts from.
//! Sessions send [`RegisterSession`] / [`UnregisterSession`] and take [`DrainSession`].

use actix::prelude::*;
use futures_util::future::LocalBoxFuture;
use serde::Serialize;
use std::sync::{Arc, RwLock};
use std::time::Instant;

/// Lifecycle state of a supervised child actor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChildState {
    /// Not started yet.
    Starting,
    /// Alive.
    Running,
    /// Died; a restart is scheduled.
    Restarting,
    /// Restarted too often within the window; given up.
    Failed,
    /// Stopped by shutdown.
    Stopped,
}

/// What health and `status` show per child.
#[derive(Debug, Clone, Serialize)]
pub struct ChildStatus {
    /// Child name.
    pub name: String,
    /// State.
    pub state: ChildState,
    /// Restarts since start.
    pub restarts: u32,
    /// Last restart time (ms), if any.
    pub last_restart_ms: Option<i64>,
    /// Why it last died, if known.
    pub last_exit: Option<String>,
}

/// Ask a child to finish its pending work (answered when done).
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct Drain;

/// Fault injection: the receiving child panics in its handler.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct Crash(pub String);

/// A child's instance ended (sent by its [`ExitNotifier`]).
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct ChildExited {
    /// Child name.
    pub name: &'static str,
    /// Which incarnation ended.
    pub generation: u64,
}

/// Held by a child actor; tells the coordinator when the actor is dropped (also on panic).
pub struct ExitNotifier {
    name: &'static str,
    generation: u64,
    to: Recipient<ChildExited>,
}

impl ExitNotifier {
    /// A notifier for incarnation `generation` of child `name`, reporting to `to`.
    pub fn new(name: &'static str, generation: u64, to: Recipient<ChildExited>) -> ExitNotifier {
        ExitNotifier { name, generation, to }
    }
}

impl Drop for ExitNotifier {
    fn drop(&mut self) {
        self.to.do_send(ChildExited { name: self.name, generation: self.generation });
    }
}

/// The current address of a supervised child (swapped on restart).
pub struct ChildHandle<A: Actor>(Arc<RwLock<Option<Addr<A>>>>);

impl<A: Actor> Clone for ChildHandle<A> {
    fn clone(&self) -> Self {
        ChildHandle(Arc::clone(&self.0))
    }
}

impl<A: Actor> Default for ChildHandle<A> {
    fn default() -> Self {
        ChildHandle(Arc::new(RwLock::new(None)))
    }
}

impl<A: Actor> ChildHandle<A> {
    /// The live address, if the child is running.
    pub fn get(&self) -> Option<Addr<A>> {
        self.0.read().ok().and_then(|g| g.clone()).filter(|a| a.connected())
    }

    fn set(&self, addr: Addr<A>) {
        if let Ok(mut g) = self.0.write() {
            *g = Some(addr);
        }
    }
}

/// What the coordinator needs to know about a child, independent of its type.
pub trait ChildSpec {
    /// Child name (metrics label, health key).
    fn name(&self) -> &'static str;
    /// Create and start a new instance.
    fn start(&self, exit: ExitNotifier);
    /// Whether the current instance is alive.
    fn alive(&self) -> bool;
    /// Ask the instance to finish its pending work.
    fn drain(&self) -> LocalBoxFuture<'static, ()>;
    /// Fault injection.
    fn crash(&self, reason: String) -> bool;
}

type Factory<A> = Arc<dyn Fn(ExitNotifier) -> A + Send + Sync>;

/// A typed child: a factory plus the handle it fills, started on the coordinator's thread or
/// on a given arbiter.
pub struct Child<A: Actor> {
    name: &'static str,
    handle: ChildHandle<A>,
    factory: Factory<A>,
    arbiter: Option<actix_rt::ArbiterHandle>,
}

impl<A: Actor> Child<A> {
    /// A child built by `factory` on the coordinator's thread, reachable through `handle`.
    pub fn new(
        name: &'static str,
        handle: ChildHandle<A>,
        factory: impl Fn(ExitNotifier) -> A + Send + Sync + 'static,
    ) -> Self {
        Child { name, handle, factory: Arc::new(factory), arbiter: None }
    }

    /// A child built by `factory` on `arbiter`'s thread (for actors owning non-`Send`
    /// resources such as an HTTP client pool).
    pub fn in_arbiter(
        name: &'static str,
        handle: ChildHandle<A>,
        arbiter: actix_rt::ArbiterHandle,
        factory: impl Fn(ExitNotifier) -> A + Send + Sync + 'static,
    ) -> Self {
        Child { name, handle, factory: Arc::new(factory), arbiter: Some(arbiter) }
    }
}

impl<A> ChildSpec for Child<A>
where
    A: Actor<Context = Context<A>> + Handler<Drain> + Handler<Crash>,
{
    fn name(&self) -> &'static str {
        self.name
    }

    fn start(&self, exit: ExitNotifier) {
        let addr = match &self.arbiter {
            None => (self.factory)(exit).start(),
            Some(arb) => {
                let f = Arc::clone(&self.factory);
                A::start_in_arbiter(arb, move |_| f(exit))
            }
        };
        self.handle.set(addr);
    }

    fn alive(&self) -> bool {
        self.handle.get().is_some()
    }

    fn drain(&self) -> LocalBoxFuture<'static, ()> {
        let addr = self.handle.get();
        Box::pin(async move {
            if let Some(a) = addr {
                let _ = a.send(Drain).await;
            }
        })
    }

    fn crash(&self, reason: String) -> bool {
        match self.handle.get() {
            Some(a) => a.try_send(Crash(reason)).is_ok(),
            None => false,
        }
    }
}

/// A connection registers so that shutdown can reach it.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RegisterSession {
    /// Connection id.
    pub id: u64,
    /// Where to send [`DrainSession`].
    pub drain: Recipient<DrainSession>,
}

/// A connection ended.
#[derive(Message)]
#[rtype(result = "()")]
pub struct UnregisterSession {
    /// Connection id.
    pub id: u64,
}

/// Sent to every session at shutdown: refuse new calls, finish in-flight ones by `deadline`,
/// then close with 1001 (after the deadline, cancel what is left with an explicit error).
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct DrainSession {
    /// When remaining calls are cancelled.
    pub deadline: Instant,
}
