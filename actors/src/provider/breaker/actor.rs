//! `BreakerActor`: the supervised companion of one provider's [`BreakerHandle`].
//!
//! States: none of its own — it drives the handle's `Closed` / `Open` / `HalfOpen` machine,
//! whose state lives in the handle and outlives the actor.
//! Messages taken: [`Drain`] (nothing to finish: answers at once), [`Crash`] (fault
//! injection: panics), [`GetBreakerSnapshot`] (answers the handle's snapshot).
//! Every tick (a tenth of `open_for`, between 10 ms and 250 ms) it calls
//! [`BreakerHandle::poll`], which moves an open breaker to half-open once `open_for` has
//! passed, so health and the `breaker_state` gauge show the change even when no call comes.
//! It sends nothing. It ends when the coordinator stops it, or by a panic, after which the
//! coordinator recreates it around the same handle.

use super::{BreakerHandle, BreakerSnapshot};
use crate::supervision::{Child, ChildHandle, Crash, Drain, ExitNotifier};
use actix::prelude::*;
use std::time::Duration;

/// Ask for the breaker's snapshot.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "BreakerSnapshot")]
pub struct GetBreakerSnapshot;

/// The breaker's timer actor.
pub struct BreakerActor {
    handle: BreakerHandle,
    tick: Duration,
    _exit: Option<ExitNotifier>,
}

impl BreakerActor {
    /// An actor for `handle`, ticking at a tenth of `open_for` (10 ms ..= 250 ms).
    pub fn new(handle: BreakerHandle, exit: Option<ExitNotifier>) -> BreakerActor {
        let tick = (handle.config().open_for / 10).clamp(Duration::from_millis(10), Duration::from_millis(250));
        BreakerActor::with_tick(handle, tick, exit)
    }

    /// An actor for `handle` with an explicit tick.
    pub fn with_tick(handle: BreakerHandle, tick: Duration, exit: Option<ExitNotifier>) -> BreakerActor {
        BreakerActor { handle, tick: tick.max(Duration::from_millis(1)), _exit: exit }
    }

    /// A supervised child named `name` (e.g. `breaker:kimi`) around `handle`, and the handle
    /// through which its current address can be reached.
    pub fn child(name: &'static str, handle: BreakerHandle) -> (Child<BreakerActor>, ChildHandle<BreakerActor>) {
        let addr = ChildHandle::default();
        let child = Child::new(name, addr.clone(), move |exit| BreakerActor::new(handle.clone(), Some(exit)));
        (child, addr)
    }
}

impl Actor for BreakerActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(16);
        self.handle.poll();
        ctx.run_interval(self.tick, |act, _| {
            act.handle.poll();
        });
    }
}

impl Handler<Drain> for BreakerActor {
    type Result = ();

    fn handle(&mut self, _: Drain, _: &mut Context<Self>) {}
}

impl Handler<Crash> for BreakerActor {
    type Result = ();

    fn handle(&mut self, msg: Crash, _: &mut Context<Self>) {
        panic!("fault injection: {}", msg.0);
    }
}

impl Handler<GetBreakerSnapshot> for BreakerActor {
    type Result = MessageResult<GetBreakerSnapshot>;

    fn handle(&mut self, _: GetBreakerSnapshot, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.handle.snapshot())
    }
}
