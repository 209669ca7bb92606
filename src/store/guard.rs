//! [`Guarded`]: a reachability gate in front of a networked store (PostgreSQL).
//!
//! Without it, every operation against a database that refuses connections waits the whole
//! pool acquire timeout (sqlx retries a refused connection until then) and then reports only
//! "pool timed out"; so does every readiness probe.
//!
//! States of the gate: `Reachable` → `Unreachable { error, since }` → `Reachable`.
//! - Reachable: operations pass through. When one fails as unavailable, or a ping does not
//!   answer within the probe timeout, the gate probes: one direct connection attempt (not
//!   through the pool) bounded by the probe timeout. If that fails too, the store is
//!   unreachable, with the probe's error (e.g. "Connection refused").
//! - Unreachable: every operation fails at once with that error, without touching the pool.
//!   At most one probe per [`PROBE_INTERVAL`] runs, made by whichever operation, ping or
//!   maintenance tick (every 2 s) comes first; when it connects, the store is reachable again
//!   and that operation proceeds.
//!
//! The file registry ([`Store::file_registry`]) is not gated: uploads and cleanups are rare,
//! long operations that may wait for the pool.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use exai_actors::ports::{
    AuditorObservation, ConversationRecord, DiagnosticsStore, ErrorAnalysis, ErrorInvestigation, ErrorOccurrence,
    ErrorQuery, ErrorUpsert, MessageRecord, MigrationStatus, NewMessage, NewObservation, ObservationQuery,
    SessionRecord, Store, StoreError, ToolCallQuery, ToolCallRecord, TurnRecord,
};
use futures_util::future::BoxFuture;

/// Least time between two probes while the store is unreachable.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// One direct connection attempt: `Ok` when the database accepted it, else the driver's error.
pub type Probe = Arc<dyn Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

#[derive(Debug, Default)]
struct State {
    /// `Some` while unreachable: the last probe's error and when the outage was noticed.
    down: Option<(String, Instant)>,
    /// When the last probe finished.
    last_probe: Option<Instant>,
}

/// The gate's state machine, independent of the store it guards.
pub struct Gate {
    probe: Probe,
    timeout: Duration,
    state: Mutex<State>,
    probing: AtomicBool,
}

impl Gate {
    /// A gate whose probes run `probe`, each bounded by `timeout`.
    pub fn new(probe: Probe, timeout: Duration) -> Self {
        Gate { probe, timeout, state: Mutex::new(State::default()), probing: AtomicBool::new(false) }
    }

    /// `Some(error)` while the store is known to be unreachable.
    pub fn unreachable(&self) -> Option<String> {
        self.state.lock().ok().and_then(|s| s.down.as_ref().map(|(e, _)| e.clone()))
    }

    fn refusal(&self) -> StoreError {
        let (error, since) = match self.state.lock() {
            Ok(s) => s.down.clone().unwrap_or_else(|| ("unknown".into(), Instant::now())),
            Err(_) => ("unknown".into(), Instant::now()),
        };
        StoreError::Unavailable(format!("unreachable for {} s: {error}", since.elapsed().as_secs()))
    }

    /// Run one probe unless another is running; `None` when another one was.
    async fn probe_once(&self) -> Option<Result<(), String>> {
        if self.probing.swap(true, Ordering::AcqRel) {
            return None;
        }
        let result = match tokio::time::timeout(self.timeout, (self.probe)()).await {
            Ok(r) => r,
            Err(_) => Err(format!("no connection within {} ms", self.timeout.as_millis())),
        };
        if let Ok(mut s) = self.state.lock() {
            s.last_probe = Some(Instant::now());
            match &result {
                Ok(()) => {
                    if let Some((_, since)) = s.down.take() {
                        tracing::info!(down_secs = since.elapsed().as_secs(), "database reachable again");
                    }
                }
                Err(e) => {
                    if s.down.is_none() {
                        tracing::warn!(error = %e, "database unreachable; operations fail fast until it answers");
                        s.down = Some((e.clone(), Instant::now()));
                    } else if let Some(d) = s.down.as_mut() {
                        d.0 = e.clone();
                    }
                }
            }
        }
        self.probing.store(false, Ordering::Release);
        Some(result)
    }

    /// May an operation run? While unreachable: probe if one is due, else refuse at once.
    pub async fn admit(&self) -> Result<(), StoreError> {
        let due = match self.state.lock() {
            Ok(s) => match &s.down {
                None => return Ok(()),
                Some(_) => s.last_probe.is_none_or(|t| t.elapsed() >= PROBE_INTERVAL),
            },
            Err(_) => return Ok(()),
        };
        if due {
            if let Some(Ok(())) = self.probe_once().await {
                return Ok(());
            }
        }
        Err(self.refusal())
    }

    /// Look at an operation's result: an unavailable error while reachable is checked with a
    /// probe (a failing query on a reachable database leaves the gate as it is).
    pub async fn observe<T>(&self, r: &Result<T, StoreError>) {
        if matches!(r, Err(StoreError::Unavailable(_))) && self.unreachable().is_none() {
            let recent =
                self.state.lock().ok().and_then(|s| s.last_probe).is_some_and(|t| t.elapsed() < PROBE_INTERVAL);
            if !recent {
                let _ = self.probe_once().await;
            }
        }
    }

    /// Run `op` through the gate.
    pub async fn run<T, F>(&self, op: F) -> Result<T, StoreError>
    where
        F: Future<Output = Result<T, StoreError>>,
    {
        self.admit().await?;
        let r = op.await;
        self.observe(&r).await;
        r
    }
}

/// A [`Store`] whose operations go through a [`Gate`].
pub struct Guarded<S> {
    inner: S,
    gate: Gate,
}

impl<S: Store> Guarded<S> {
    /// Guard `inner` with `gate`.
    pub fn new(inner: S, gate: Gate) -> Self {
        Guarded { inner, gate }
    }

    /// The gate (tests, diagnostics).
    pub fn gate(&self) -> &Gate {
        &self.gate
    }
}

#[async_trait]
impl<S: Store> Store for Guarded<S> {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }

    /// Answers within the probe timeout whatever the database does.
    async fn ping(&self) -> Result<(), StoreError> {
        self.gate.admit().await?;
        let r = match tokio::time::timeout(self.gate.timeout, self.inner.ping()).await {
            Ok(r) => r,
            Err(_) => Err(StoreError::Unavailable(format!("no answer within {} ms", self.gate.timeout.as_millis()))),
        };
        self.gate.observe(&r).await;
        match r {
            Err(StoreError::Unavailable(_)) if self.gate.unreachable().is_some() => Err(self.gate.refusal()),
            other => other,
        }
    }

    async fn migration_status(&self) -> Result<MigrationStatus, StoreError> {
        self.gate.run(self.inner.migration_status()).await
    }

    async fn record_tool_calls(&self, rows: &[ToolCallRecord]) -> Result<u64, StoreError> {
        self.gate.run(self.inner.record_tool_calls(rows)).await
    }

    async fn recent_tool_calls(&self, q: &ToolCallQuery) -> Result<Vec<ToolCallRecord>, StoreError> {
        self.gate.run(self.inner.recent_tool_calls(q)).await
    }

    async fn prune_tool_calls(
        &self,
        before_ms: Option<i64>,
        keep_rows: Option<u64>,
        batch: u32,
    ) -> Result<u64, StoreError> {
        self.gate.run(self.inner.prune_tool_calls(before_ms, keep_rows, batch)).await
    }

    async fn upsert_session(&self, s: &SessionRecord) -> Result<(), StoreError> {
        self.gate.run(self.inner.upsert_session(s)).await
    }

    async fn close_session(&self, id: &str, at_ms: i64) -> Result<(), StoreError> {
        self.gate.run(self.inner.close_session(id, at_ms)).await
    }

    async fn get_session(&self, id: &str) -> Result<Option<SessionRecord>, StoreError> {
        self.gate.run(self.inner.get_session(id)).await
    }

    async fn create_conversation(&self, c: &ConversationRecord) -> Result<(), StoreError> {
        self.gate.run(self.inner.create_conversation(c)).await
    }

    async fn get_conversation(&self, continuation_id: &str) -> Result<Option<ConversationRecord>, StoreError> {
        self.gate.run(self.inner.get_conversation(continuation_id)).await
    }

    async fn append_message(&self, m: &NewMessage) -> Result<MessageRecord, StoreError> {
        self.gate.run(self.inner.append_message(m)).await
    }

    async fn append_messages(&self, msgs: &[NewMessage]) -> Result<Vec<MessageRecord>, StoreError> {
        self.gate.run(self.inner.append_messages(msgs)).await
    }

    async fn apply_turns(&self, turns: &[&TurnRecord]) -> Result<(), StoreError> {
        self.gate.run(self.inner.apply_turns(turns)).await
    }

    async fn ensure_conversation(&self, c: &ConversationRecord) -> Result<(), StoreError> {
        self.gate.run(self.inner.ensure_conversation(c)).await
    }

    /// Also the gate's heartbeat: while unreachable, a due probe runs here, so readiness
    /// recovers without traffic.
    async fn maintain(&self) -> Result<(), StoreError> {
        self.gate.run(self.inner.maintain()).await
    }

    async fn list_messages(&self, conversation_id: &str, limit: u32) -> Result<Vec<MessageRecord>, StoreError> {
        self.gate.run(self.inner.list_messages(conversation_id, limit)).await
    }

    async fn close(&self) {
        self.inner.close().await;
    }

    fn file_registry(&self) -> Option<Arc<dyn exai_actors::files::ports::FileRegistry>> {
        self.inner.file_registry()
    }

    fn task_store(&self) -> Option<Arc<dyn exai_actors::tasks::TaskStore>> {
        self.inner.task_store()
    }
}

#[async_trait]
impl<S: Store> DiagnosticsStore for Guarded<S> {
    async fn record_error(&self, e: &ErrorOccurrence) -> Result<ErrorUpsert, StoreError> {
        self.gate.run(self.inner.record_error(e)).await
    }

    async fn set_error_analysis(&self, id: i64, a: &ErrorAnalysis) -> Result<(), StoreError> {
        self.gate.run(self.inner.set_error_analysis(id, a)).await
    }

    async fn list_errors(&self, q: &ErrorQuery) -> Result<Vec<ErrorInvestigation>, StoreError> {
        self.gate.run(self.inner.list_errors(q)).await
    }

    async fn resolve_error(&self, id: i64, notes: Option<&str>, at_ms: i64) -> Result<ErrorInvestigation, StoreError> {
        self.gate.run(self.inner.resolve_error(id, notes, at_ms)).await
    }

    async fn add_observation(&self, o: &NewObservation) -> Result<i64, StoreError> {
        self.gate.run(self.inner.add_observation(o)).await
    }

    async fn list_observations(&self, q: &ObservationQuery) -> Result<Vec<AuditorObservation>, StoreError> {
        self.gate.run(self.inner.list_observations(q)).await
    }

    async fn acknowledge_observation(
        &self,
        id: i64,
        by: Option<&str>,
        at_ms: i64,
    ) -> Result<AuditorObservation, StoreError> {
        self.gate.run(self.inner.acknowledge_observation(id, by, at_ms)).await
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// A probe whose answer the test switches, counting its calls.
    fn probe(up: Arc<AtomicBool>, calls: Arc<AtomicUsize>) -> Probe {
        Arc::new(move || {
            let (up, calls) = (Arc::clone(&up), Arc::clone(&calls));
            Box::pin(async move {
                calls.fetch_add(1, Ordering::SeqCst);
                if up.load(Ordering::SeqCst) {
                    Ok(())
                } else {
                    Err("Connection refused (os error 111)".to_string())
                }
            })
        })
    }

    #[tokio::test]
    async fn a_failed_probe_makes_operations_fail_fast_until_a_probe_connects() {
        let (up, calls) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicUsize::new(0)));
        let gate = Gate::new(probe(Arc::clone(&up), Arc::clone(&calls)), Duration::from_millis(200));
        // Reachable: passes without probing.
        gate.admit().await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 0);
        // An unavailable error is checked by one probe, which fails: unreachable.
        gate.observe::<()>(&Err(StoreError::Unavailable("pool timed out".into()))).await;
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert!(gate.unreachable().unwrap().contains("refused"));
        // Within the probe interval: refused at once with the probe's error, no new probe.
        for _ in 0..5 {
            let e = gate.admit().await.unwrap_err();
            assert!(e.to_string().contains("Connection refused"), "{e}");
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        // After the interval the next operation probes; the database is back: admitted.
        up.store(true, Ordering::SeqCst);
        tokio::time::sleep(PROBE_INTERVAL).await;
        gate.admit().await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        assert!(gate.unreachable().is_none());
    }

    #[tokio::test]
    async fn a_query_error_on_a_reachable_database_leaves_it_reachable() {
        let (up, calls) = (Arc::new(AtomicBool::new(true)), Arc::new(AtomicUsize::new(0)));
        let gate = Gate::new(probe(up, Arc::clone(&calls)), Duration::from_millis(200));
        gate.observe::<()>(&Err(StoreError::Unavailable("canceling statement".into()))).await;
        assert!(gate.unreachable().is_none());
        // Constraint errors and successes are not looked at.
        gate.observe::<()>(&Err(StoreError::Constraint("dup".into()))).await;
        gate.observe(&Ok(())).await;
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        gate.admit().await.unwrap();
    }

    #[tokio::test]
    async fn a_probe_that_hangs_counts_as_failed_after_the_timeout() {
        let hang: Probe = Arc::new(|| Box::pin(futures_util::future::pending::<Result<(), String>>()));
        let gate = Gate::new(hang, Duration::from_millis(50));
        gate.observe::<()>(&Err(StoreError::Unavailable("x".into()))).await;
        assert!(gate.unreachable().unwrap().contains("within 50 ms"));
    }
}
