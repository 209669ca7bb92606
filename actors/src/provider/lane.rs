//! Provider lanes: a provider's chat requests run on the calling worker thread.
//!
//! Crossing to the provider actor's thread and back costs two thread wake-ups per request,
//! which on a small machine is most of the gateway's added latency. A [`Lane`] holds what a
//! request needs (transport factory, retry policy, timeouts) and keeps one transport — one
//! HTTP client with its keep-alive pool — per thread, built on first use. The request then
//! runs exactly as it would inside the actor (same retries, permits, breaker reporting,
//! cancellation by dropping the future), only without the hop.
//!
//! The lane stays tied to its supervised [`ProviderActor`](super::actor::ProviderActor): each
//! actor incarnation links a liveness channel into the lane. While no live actor is linked
//! (it crashed and the coordinator has not recreated it yet) the lane refuses new requests,
//! and requests in flight when the actor dies fail at once with a `Network` error and give
//! their permits back — the same contract as requests the actor runs itself. Files API
//! operations (long uploads) still go to the actor's own thread.

use super::actor::{Chat, ChatOutcome, ProviderActorConfig, Runner};
use super::types::ProviderError;
use crate::metrics::Metrics;
use futures_util::future::LocalBoxFuture;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use tokio::sync::watch;

static NEXT_LANE: AtomicU64 = AtomicU64::new(1);

thread_local! {
    static RUNNERS: RefCell<HashMap<u64, Rc<Runner>>> = RefCell::new(HashMap::new());
}

/// The liveness of one actor incarnation: dropped with the actor.
pub struct LaneGuard(#[allow(dead_code)] watch::Sender<()>);

/// A provider's lane (cheap to clone; shared by every thread).
#[derive(Clone)]
pub struct Lane {
    id: u64,
    cfg: ProviderActorConfig,
    metrics: Metrics,
    link: Arc<RwLock<Option<watch::Receiver<()>>>>,
}

impl Lane {
    /// A lane for the provider `cfg` describes.
    pub fn new(cfg: ProviderActorConfig, metrics: Metrics) -> Lane {
        Lane { id: NEXT_LANE.fetch_add(1, Ordering::Relaxed), cfg, metrics, link: Arc::new(RwLock::new(None)) }
    }

    /// The provider's phase timeouts.
    pub fn timeouts(&self) -> &super::types::RequestTimeouts {
        &self.cfg.timeouts
    }

    /// Link a new actor incarnation: the lane serves while the returned guard lives.
    pub fn link(&self) -> LaneGuard {
        let (tx, rx) = watch::channel(());
        *self.link.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(rx);
        LaneGuard(tx)
    }

    fn alive(&self) -> Option<watch::Receiver<()>> {
        let rx = self.link.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()?;
        rx.has_changed().is_ok().then_some(rx)
    }

    fn runner(&self) -> Rc<Runner> {
        RUNNERS.with(|r| {
            Rc::clone(
                r.borrow_mut()
                    .entry(self.id)
                    .or_insert_with(|| Rc::new(Runner::new(&self.cfg, (self.cfg.transport)().into(), &self.metrics))),
            )
        })
    }

    /// Run one chat on this thread. `None` when no live actor is linked (restarting).
    pub fn chat(&self, msg: Chat) -> Option<LocalBoxFuture<'static, Result<ChatOutcome, ProviderError>>> {
        let mut alive = self.alive()?;
        let runner = self.runner();
        let name = self.cfg.name.clone();
        Some(Box::pin(async move {
            tokio::select! {
                r = runner.chat(msg) => r,
                _ = alive.changed() => Err(ProviderError::Network(format!("provider {name} actor stopped during the request"))),
            }
        }))
    }
}
