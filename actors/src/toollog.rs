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

use crate::metrics::Metrics;
use crate::ports::{Store, ToolCallRecord};
use crate::supervision::{Crash, Drain, ExitNotifier};
use actix::prelude::*;
use crossbeam_queue::ArrayQueue;
use std::sync::Arc;
use std::time::Duration;

/// Producer side of the tool-call log.
#[derive(Clone)]
pub struct ToolLogQueue {
    queue: Arc<ArrayQueue<ToolCallRecord>>,
    metrics: Metrics,
}

impl ToolLogQueue {
    /// A queue holding at most `capacity` rows.
    pub fn new(capacity: usize, metrics: Metrics) -> ToolLogQueue {
        ToolLogQueue { queue: Arc::new(ArrayQueue::new(capacity.max(1))), metrics }
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
        let metrics = self.queue.metrics.clone();
        ctx.spawn(async move { write_batch(store, metrics, rows).await }.into_actor(self).map(|_, act, ctx| {
            act.state = WriterState::Idle;
            // Under load, keep writing back to back instead of waiting for the next tick.
            if act.queue.len() >= act.batch {
                act.tick(ctx);
            }
        }));
    }
}

async fn write_batch(store: Arc<dyn Store>, metrics: Metrics, rows: Vec<ToolCallRecord>) {
    let n = rows.len() as u64;
    match store.record_tool_calls(&rows).await {
        Ok(w) => metrics.toollog_written.inc_by(w),
        Err(e) => {
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
                write_batch(Arc::clone(&store), queue.metrics.clone(), rows).await;
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
