//! Conversation write-behind: a turn is journaled on the caller's thread and answered at once;
//! the `ConversationWriter` actor applies it to the store in order behind the reply.
//!
//! Durability comes from the [`Journal`]: the record is in the journal file before the client
//! sees the answer, and a restart applies whatever the previous process had not (see
//! [`WriteBehind::open`]). Consistency: a continuation of a thread with turns still queued
//! waits until they are applied ([`WriteBehind::settled`]), so it always sees its history.
//! Backpressure: at most `capacity` records wait; a caller beyond that waits for room, at most
//! [`ROOM_WAIT`], then gets an error naming the cause (never a hang while the store fails).
//! Every outcome is reported to the [`StorageHealth`]: a full disk (journal or store) marks
//! storage degraded, so new turns are refused before their provider call, and the first
//! successful write clears it again.
//!
//! `ConversationWriter` (a supervised child of the coordinator):
//! - states: `Idle` (queue empty, waiting to be woken), `Gathering` (woken, or just done with a
//!   batch: collecting turns for [`GROUP_COMMIT`], cut short by a waiting continuation or a
//!   full batch), `Applying` (up to 128 queued records
//!   going to the store in one transaction), `Isolating` (a batch failed: records go one at a
//!   time until one succeeds), `Backoff` (the store failed; retrying after 0.1–5 s). A record
//!   the store rejects permanently (constraint, missing row) three times is dropped with an
//!   error log.
//! - messages: [`Drain`] (apply everything queued, then empty the journal — staged shutdown;
//!   whatever the store refuses stays in the journal for the next start), [`Crash`] (fault
//!   injection).
//! - it ends when the coordinator stops it or by a panic, after which the coordinator recreates
//!   it; the queue and the journal live in [`WriteBehind`], so nothing is lost.

use super::journal::{frame, Journal, JournalError, TurnRecord};
use crate::metrics::Metrics;
use crate::ports::{Store, StoreError};
use crate::storage_health::{StorageHealth, Writer};
use crate::supervision::{Crash, Drain, ExitNotifier};
use actix::prelude::*;
use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

/// Why write-behind could not start or take a record.
#[derive(Debug, thiserror::Error)]
pub enum WriteBehindError {
    /// The journal failed.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// The store refused a replayed record for a reason that may pass.
    #[error("replaying the conversation journal: {0}")]
    Store(#[from] StoreError),
}

struct Entry {
    segment: u64,
    record: TurnRecord,
    attempts: u32,
}

#[derive(Default)]
struct Queue {
    entries: VecDeque<Entry>,
    pending: HashMap<String, u32>,
}

/// Most records applied in one store transaction.
const BATCH: usize = 128;

/// Longest a caller waits for room in a full queue before its turn is refused.
pub const ROOM_WAIT: Duration = Duration::from_secs(10);

/// Group commit: once woken from idle, the writer gathers turns this long before applying
/// them, so a trickle of turns costs one transaction (one set of WAL pages) per window instead
/// of one per turn. Nobody waits for it: the replies are already sent, and a continuation of a
/// thread with queued turns cuts the window short.
const GROUP_COMMIT: Duration = Duration::from_millis(50);

/// The records being applied; put back first in the queue, in order, if the apply is
/// abandoned (the writer crashed or was stopped mid-write), so pending counts stay true.
struct InFlight<'a> {
    wb: &'a WriteBehind,
    entries: Vec<Entry>,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if !self.entries.is_empty() {
            self.wb.requeue(std::mem::take(&mut self.entries));
        }
    }
}

/// Shared state of write-behind: journal, queue, per-thread pending counts.
pub struct WriteBehind {
    journal: Journal,
    store: Arc<dyn Store>,
    queue: Mutex<Queue>,
    wake: Notify,
    urgent: Notify,
    applied: Notify,
    applier: tokio::sync::Mutex<()>,
    capacity: usize,
    metrics: Metrics,
    paused: AtomicBool,
    isolate: AtomicBool,
    health: Arc<StorageHealth>,
}

/// What one step of the writer did.
#[derive(Debug)]
pub enum Step {
    /// Nothing was queued.
    Empty,
    /// One record reached the store (or was dropped as permanently refused).
    Applied,
    /// A batch failed; its records go back and are now tried one at a time.
    Split,
    /// The store failed; the record stays first in the queue.
    Failed(StoreError),
}

/// Apply one record: the thread's row on its first turn, then the messages. Idempotent.
pub async fn apply(store: &dyn Store, rec: &TurnRecord) -> Result<(), StoreError> {
    store.apply_turns(&[rec]).await
}

fn permanent(e: &StoreError) -> bool {
    matches!(e, StoreError::Constraint(_) | StoreError::NotFound(_) | StoreError::Corrupt(_))
}

impl WriteBehind {
    /// Open the journal in `dir`, apply what an earlier process left, and return the service.
    /// Fails when a left record cannot be applied for a reason that may pass (the store is
    /// down): the journal is kept for the next start.
    pub async fn open(
        dir: &Path,
        store: Arc<dyn Store>,
        capacity: usize,
        metrics: Metrics,
        health: Arc<StorageHealth>,
    ) -> Result<Arc<WriteBehind>, WriteBehindError> {
        let (journal, recovered) = Journal::open(dir, 64 * 1024 * 1024, 256 * 1024)?;
        for path in &recovered.torn {
            tracing::warn!(journal = %path.display(), "conversation journal ends in a torn record (the process died while writing it; that turn was never answered)");
        }
        let mut replayed = 0u64;
        for chunk in recovered.records.chunks(BATCH) {
            let refs: Vec<&TurnRecord> = chunk.iter().collect();
            if store.apply_turns(&refs).await.is_ok() {
                replayed += chunk.len() as u64;
                continue;
            }
            // Something in this batch failed: one by one, to find and drop only a bad record.
            for rec in chunk {
                match apply(store.as_ref(), rec).await {
                    Ok(()) => replayed += 1,
                    Err(e) if permanent(&e) => {
                        metrics.conversation_writes.with_label_values(&["dropped"]).inc();
                        tracing::error!(continuation_id = %rec.continuation_id, error = %e,
                                        "journaled conversation turn refused by the store; dropped");
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        }
        journal.retire(&recovered.files)?;
        if replayed > 0 {
            tracing::info!(records = replayed, "conversation journal replayed into the store");
        }
        metrics.conversation_journal_replayed.inc_by(replayed);
        Ok(Arc::new(WriteBehind {
            journal,
            store,
            queue: Mutex::new(Queue::default()),
            wake: Notify::new(),
            urgent: Notify::new(),
            applied: Notify::new(),
            applier: tokio::sync::Mutex::new(()),
            capacity: capacity.max(1),
            metrics,
            paused: AtomicBool::new(false),
            isolate: AtomicBool::new(false),
            health,
        }))
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records waiting for the store.
    pub fn pending(&self) -> usize {
        self.queue().entries.len()
    }

    /// The journal.
    pub fn journal(&self) -> &Journal {
        &self.journal
    }

    /// Journal `rec` and queue it for the store. Returns once the record is in the journal.
    /// When the journal cannot be written, the record goes to the store directly (after any
    /// earlier turns of its thread), so the caller still gets a stored turn or an error.
    pub async fn submit(&self, rec: TurnRecord) -> Result<(), StoreError> {
        let deadline = tokio::time::Instant::now() + ROOM_WAIT;
        loop {
            let room = self.applied.notified();
            let pending = self.pending();
            if pending < self.capacity {
                break;
            }
            if tokio::time::timeout_at(deadline, room).await.is_err() {
                let why = self.health.problem().unwrap_or_else(|| "the store is slow or failing".into());
                return Err(StoreError::Unavailable(format!(
                    "{pending} conversation turns are waiting for the store ({why}); this turn was not stored"
                )));
            }
        }
        let bytes = match frame(&rec) {
            Ok(b) => b,
            Err(e) => return Err(StoreError::Corrupt(e.to_string())),
        };
        let cid = rec.continuation_id.clone();
        let mut rec = Some(rec);
        let timer = self.metrics.conversation_journal_append_seconds.start_timer();
        let pushed = self.journal.append_then(&bytes, |segment| {
            let mut q = self.queue();
            *q.pending.entry(cid.clone()).or_insert(0) += 1;
            if let Some(record) = rec.take() {
                q.entries.push_back(Entry { segment, record, attempts: 0 });
            }
            if q.entries.len() == BATCH {
                self.urgent.notify_one();
            }
            self.metrics.conversation_journal_pending.set(q.entries.len() as i64);
        });
        timer.observe_duration();
        match pushed {
            Ok(()) => {
                self.health.wrote(Writer::Journal);
                self.wake.notify_one();
                Ok(())
            }
            Err(e) => {
                if e.is_disk_full() {
                    self.health.disk_full(Writer::Journal, &e.to_string());
                }
                tracing::warn!(error = %e, "conversation journal write failed; storing the turn directly");
                self.metrics.conversation_writes.with_label_values(&["direct"]).inc();
                self.settled(&cid).await;
                let res = match rec {
                    Some(r) => apply(self.store.as_ref(), &r).await,
                    None => Ok(()),
                };
                self.report(&res);
                res
            }
        }
    }

    /// Wait until no turn of `continuation_id` is queued.
    pub async fn settled(&self, continuation_id: &str) {
        loop {
            let next = self.applied.notified();
            if !self.queue().pending.contains_key(continuation_id) {
                return;
            }
            self.urgent.notify_one();
            next.await;
        }
    }

    /// Apply the queued records — up to [`BATCH`] in one transaction, or only the first while
    /// isolating a failure — one applier at a time, so order is kept.
    pub async fn step(&self) -> Step {
        let _one = self.applier.lock().await;
        let isolate = self.isolate.load(Ordering::Relaxed);
        let batch: Vec<Entry> = {
            let mut q = self.queue();
            let n = if isolate { 1 } else { BATCH }.min(q.entries.len());
            q.entries.drain(..n).collect()
        };
        if batch.is_empty() {
            return Step::Empty;
        }
        let mut held = InFlight { wb: self, entries: batch };
        let res = {
            let recs: Vec<&TurnRecord> = held.entries.iter().map(|e| &e.record).collect();
            self.store.apply_turns(&recs).await
        };
        let mut batch = std::mem::take(&mut held.entries);
        self.report(&res);
        match res {
            Ok(()) => {
                self.isolate.store(false, Ordering::Relaxed);
                self.metrics.conversation_writes.with_label_values(&["applied"]).inc_by(batch.len() as u64);
                self.metrics.conversation_write_batches.inc();
                self.done(batch);
                Step::Applied
            }
            Err(_) if batch.len() > 1 => {
                // One bad record must not hold the others back: retry them one by one.
                self.isolate.store(true, Ordering::Relaxed);
                self.requeue(batch);
                Step::Split
            }
            Err(e) if permanent(&e) && batch.first().is_some_and(|b| b.attempts >= 2) => {
                self.isolate.store(false, Ordering::Relaxed);
                self.metrics.conversation_writes.with_label_values(&["dropped"]).inc();
                for b in &batch {
                    tracing::error!(continuation_id = %b.record.continuation_id, error = %e,
                                    "conversation turn refused by the store three times; dropped");
                }
                self.done(batch);
                Step::Applied
            }
            Err(e) => {
                self.metrics.conversation_writes.with_label_values(&["retried"]).inc();
                for b in &mut batch {
                    b.attempts += 1;
                }
                self.requeue(batch);
                Step::Failed(e)
            }
        }
    }

    /// Tell the storage health how a store write went.
    fn report(&self, res: &Result<(), StoreError>) {
        match res {
            Ok(()) => self.health.wrote(Writer::Conversations),
            Err(StoreError::DiskFull(m)) => self.health.disk_full(Writer::Conversations, m),
            Err(_) => {}
        }
    }

    fn requeue(&self, batch: Vec<Entry>) {
        let mut q = self.queue();
        for e in batch.into_iter().rev() {
            q.entries.push_front(e);
        }
        drop(q);
        self.wake.notify_one();
    }

    fn done(&self, batch: Vec<Entry>) {
        {
            let mut q = self.queue();
            for entry in &batch {
                let cid = &entry.record.continuation_id;
                if let Some(n) = q.pending.get_mut(cid) {
                    *n -= 1;
                    if *n == 0 {
                        q.pending.remove(cid);
                    }
                }
            }
            self.metrics.conversation_journal_pending.set(q.entries.len() as i64);
        }
        for entry in &batch {
            if let Err(e) = self.journal.applied(entry.segment) {
                tracing::warn!(error = %e, "conversation journal upkeep failed (the records stay and are applied again, harmlessly, at the next start)");
            }
        }
        self.applied.notify_waiters();
    }

    /// Apply everything queued (stopping at the first store failure), then empty the journal
    /// if nothing is left. Returns the records left.
    pub async fn drain(&self) -> u64 {
        if !self.paused.load(Ordering::Relaxed) {
            while let Step::Applied | Step::Split = self.step().await {}
        }
        match self.journal.settle() {
            Ok(left) => left,
            Err(e) => {
                tracing::warn!(error = %e, "conversation journal could not be emptied at shutdown");
                self.pending() as u64
            }
        }
    }

    /// Fault injection: stop (or resume) applying records, as if the writer were stuck.
    pub fn set_paused(&self, paused: bool) {
        self.paused.store(paused, Ordering::Relaxed);
        self.wake.notify_one();
    }

    /// `Gathering`: wait up to [`GROUP_COMMIT`] for more records, unless a whole batch is
    /// already queued; a waiting continuation or a full batch cuts the wait short.
    async fn gather(&self) {
        if self.pending() < BATCH {
            tokio::select! {
                _ = tokio::time::sleep(GROUP_COMMIT) => {}
                _ = self.urgent.notified() => {}
            }
        }
    }

    async fn run(self: Arc<Self>) {
        let mut backoff = Duration::from_millis(100);
        loop {
            let woken = self.wake.notified();
            if self.paused.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            match self.step().await {
                Step::Empty => {
                    woken.await;
                    self.gather().await;
                }
                Step::Applied => {
                    backoff = Duration::from_millis(100);
                    // What arrived while that batch was applied gathers for a whole window
                    // too: applying it at once would turn a steady stream into batches of a
                    // few records each.
                    self.gather().await;
                }
                Step::Split => {}
                Step::Failed(e) => {
                    tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64,
                                   "conversation store write failed; the turn stays journaled and queued");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }
}

/// The actor applying queued turns.
pub struct ConversationWriter {
    wb: Arc<WriteBehind>,
    _exit: Option<ExitNotifier>,
}

impl ConversationWriter {
    /// A writer for `wb`.
    pub fn new(wb: Arc<WriteBehind>, exit: Option<ExitNotifier>) -> ConversationWriter {
        ConversationWriter { wb, _exit: exit }
    }
}

impl Actor for ConversationWriter {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(64);
        ctx.spawn(Arc::clone(&self.wb).run().into_actor(self));
    }
}

impl Handler<Drain> for ConversationWriter {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: Drain, _: &mut Context<Self>) -> Self::Result {
        let wb = Arc::clone(&self.wb);
        Box::pin(async move {
            let left = wb.drain().await;
            if left > 0 {
                tracing::warn!(
                    records = left,
                    "conversation turns left in the journal at shutdown; applied at the next start"
                );
            }
        })
    }
}

impl Handler<Crash> for ConversationWriter {
    type Result = ();

    fn handle(&mut self, msg: Crash, _: &mut Context<Self>) {
        panic!("fault injection: {}", msg.0);
    }
}

#[cfg(test)]
mod tests;
