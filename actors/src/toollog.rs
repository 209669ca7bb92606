//! The tool-call log: a bounded lock-free queue plus the `ToolLogWriter` actor that drains it.
//!
//! Calls push one [`ToolCallRecord`] each with [`ToolLogQueue::push`], which never blocks and
//! never waits: when the queue is full the row is dropped and counted
//! (`exai_toollog_rows_dropped_total{reason="queue_full"}`), so logging can never slow a call.
//!
//! `ToolLogWriter` (a supervised child of the coordinator):
//! - states: `Idle` (waiting for the next tick) and `Writing` (one batch insert in flight);
//! - messages: [`Drain`] (write everything queued, then answer — used by staged shutdown),
//!   [`Crash`] (fault injection: panics, to prove the supervisor recreates it);
//! - every `toollog_flush_ms` it takes up to `toollog_batch` rows and writes them in one
//!   transaction through the `Store` port; a failed write drops that batch and counts it.
//! - it ends when the coordinator stops it at shutdown (after a final drain) or by a panic,
//!   after which the coordinator recreates it; the queue outlives it, so nothing queued is lost.
//!
//! Retention ([`prune`]): the coordinator's maintenance tick (every 2 s) deletes rows older
//! than `storage.toollog_retention_days` and the oldest beyond `storage.toollog_max_rows`, in
//! batches of [`PRUNE_BATCH`] rows, at most [`PRUNE_MAX_BATCHES`] per tick (so one tick's
//! writes stay short, and a backlog — a lowered limit, a first start on a big table — is
//! worked off over several ticks), counted in `exai_toollog_rows_pruned_total`.

use crate::metrics::Metrics;
use crate::ports::{Store, StoreError, ToolCallRecord};
use crate::storage_health::{StorageHealth, Writer};
use crate::supervision::{Crash, Drain, ExitNotifier};
use actix::prelude::*;
use crossbeam_queue::ArrayQueue;
use std::sync::Arc;
use std::time::Duration;

/// Rows deleted per retention statement.
pub const PRUNE_BATCH: u32 = 2_000;
/// Most retention batches per maintenance tick (with [`PRUNE_BATCH`]: 64,000 rows per 2 s
/// tick, far above the rate calls add rows).
pub const PRUNE_MAX_BATCHES: u32 = 32;

/// Retention limits of the tool-call log (`None`: no such limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Retention {
    /// Rows older than this are deleted.
    pub max_age: Option<Duration>,
    /// At most this many rows are kept.
    pub max_rows: Option<u64>,
}

/// One retention pass: delete what is due in bounded batches; returns rows deleted.
pub async fn prune(store: &dyn Store, limits: Retention, now_ms: i64, metrics: &Metrics) -> Result<u64, StoreError> {
    if limits.max_age.is_none() && limits.max_rows.is_none() {
        return Ok(0);
    }
    let before = limits.max_age.map(|a| now_ms.saturating_sub(i64::try_from(a.as_millis()).unwrap_or(i64::MAX)));
    let mut total = 0;
    for _ in 0..PRUNE_MAX_BATCHES {
        let n = store.prune_tool_calls(before, limits.max_rows, PRUNE_BATCH).await?;
        total += n;
        metrics.toollog_pruned.inc_by(n);
        if n < u64::from(PRUNE_BATCH) {
            break;
        }
        // Let the writes waiting for the store's writer in between.
        tokio::task::yield_now().await;
    }
    Ok(total)
}

/// Producer side of the tool-call log.
#[derive(Clone)]
pub struct ToolLogQueue {
    queue: Arc<ArrayQueue<ToolCallRecord>>,
    metrics: Metrics,
    health: Arc<StorageHealth>,
}

impl ToolLogQueue {
    /// A queue holding at most `capacity` rows.
    pub fn new(capacity: usize, metrics: Metrics) -> ToolLogQueue {
        ToolLogQueue { queue: Arc::new(ArrayQueue::new(capacity.max(1))), metrics, health: Arc::default() }
    }

    /// Report the writer's outcomes to `health` (a full disk marks storage degraded).
    pub fn with_storage_health(mut self, health: Arc<StorageHealth>) -> ToolLogQueue {
        self.health = health;
        self
    }

    /// Enqueue a row; drops and counts it when the queue is full.
    pub fn push(&self, rec: ToolCallRecord) {
        if self.queue.push(rec).is_err() {
            self.metrics.toollog_dropped.with_label_values(&["queue_full"]).inc();
        }
    }

    /// Rows waiting.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// True when nothing waits.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    fn take(&self, max: usize) -> Vec<ToolCallRecord> {
        let mut out = Vec::with_capacity(max.min(self.queue.len()));
        while out.len() < max {
            match self.queue.pop() {
                Some(r) => out.push(r),
                None => break,
            }
        }
        out
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WriterState {
    Idle,
    Writing,
}

/// The batching writer actor.
pub struct ToolLogWriter {
    queue: ToolLogQueue,
    store: Arc<dyn Store>,
    batch: usize,
    flush_every: Duration,
    state: WriterState,
    _exit: Option<ExitNotifier>,
}

impl ToolLogWriter {
    /// A writer draining `queue` into `store`.
    pub fn new(
        queue: ToolLogQueue,
        store: Arc<dyn Store>,
        batch: usize,
        flush_every: Duration,
        exit: Option<ExitNotifier>,
    ) -> ToolLogWriter {
        ToolLogWriter { queue, store, batch: batch.max(1), flush_every, state: WriterState::Idle, _exit: exit }
    }

    fn tick(&mut self, ctx: &mut Context<Self>) {
        if self.state == WriterState::Writing || self.queue.is_empty() {
            return;
        }
        let rows = self.queue.take(self.batch);
        self.state = WriterState::Writing;
        let store = Arc::clone(&self.store);
        let queue = self.queue.clone();
        ctx.spawn(async move { write_batch(store, queue, rows).await }.into_actor(self).map(|_, act, ctx| {
            act.state = WriterState::Idle;
            // Under load, keep writing back to back instead of waiting for the next tick.
            if act.queue.len() >= act.batch {
                act.tick(ctx);
            }
        }));
    }
}

async fn write_batch(store: Arc<dyn Store>, queue: ToolLogQueue, rows: Vec<ToolCallRecord>) {
    let n = rows.len() as u64;
    let metrics = &queue.metrics;
    match store.record_tool_calls(&rows).await {
        Ok(w) => {
            queue.health.wrote(Writer::ToolLog);
            metrics.toollog_written.inc_by(w)
        }
        Err(e) => {
            if let StoreError::DiskFull(m) = &e {
                queue.health.disk_full(Writer::ToolLog, m);
            }
            metrics.toollog_dropped.with_label_values(&["write_failed"]).inc_by(n);
            tracing::warn!(error = %e, rows = n, "tool-call log batch write failed; batch dropped");
        }
    }
}

impl Actor for ToolLogWriter {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(64);
        ctx.run_interval(self.flush_every, |act, ctx| act.tick(ctx));
    }
}

impl Handler<Drain> for ToolLogWriter {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: Drain, _: &mut Context<Self>) -> Self::Result {
        let queue = self.queue.clone();
        let store = Arc::clone(&self.store);
        let batch = self.batch;
        Box::pin(async move {
            loop {
                let rows = queue.take(batch);
                if rows.is_empty() {
                    break;
                }
                write_batch(Arc::clone(&store), queue.clone(), rows).await;
            }
        })
    }
}

impl Handler<Crash> for ToolLogWriter {
    type Result = ();

    fn handle(&mut self, msg: Crash, _: &mut Context<Self>) {
        panic!("fault injection: {}", msg.0);
    }
}
