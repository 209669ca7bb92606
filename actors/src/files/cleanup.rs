//! `CleanupCoordinator`: the staged cleanup of provider files (a supervised child).
//!
//! States: `Idle` ⇄ `Running` (one run at a time on this node; across nodes the store's
//! cleanup lock — a PostgreSQL advisory lock — admits one runner). A run goes through
//! Expire → Discover → Validate → ProviderCleanup → DbCleanup → BlobCollect → Audit (see
//! `cleanup_run`).
//!
//! Messages: [`RunCleanup`] (trigger `schedule`, `cli`, `http` or `tool`, optional dry run;
//! answers the report or [`CleanupError::Busy`]), [`GetProgress`] (the live progress of
//! the current run), [`Drain`] (waits for nothing: a run interrupted by shutdown leaves
//! claimed rows that the next run finishes), [`Crash`] (fault injection). With a schedule
//! configured it sends itself `RunCleanup { trigger: "schedule" }` every interval.

use super::cleanup_run::{run_cleanup, CleanupError, CleanupReport, CleanupSettings, Progress, ProgressCell};
use super::ports::{BlobStore, FileRegistry, ProviderFiles};
use crate::metrics::Metrics;
use crate::provider::service::ProviderSet;
use crate::supervision::{Crash, Drain, ExitNotifier};
use actix::prelude::*;
use async_trait::async_trait;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Start a run.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<CleanupReport, CleanupError>")]
pub struct RunCleanup {
    /// `schedule`, `cli`, `http` or `tool`.
    pub trigger: String,
    /// Change nothing; report what would be deleted.
    pub dry_run: bool,
}

/// The live progress.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "Progress")]
pub struct GetProgress;

/// Builds the provider side on the actor's thread.
pub type ProviderFilesFactory = Arc<dyn Fn() -> Rc<dyn ProviderFiles> + Send + Sync>;

/// The actor.
pub struct CleanupCoordinator {
    registry: Arc<dyn FileRegistry>,
    files: Rc<dyn ProviderFiles>,
    blob: Option<Arc<dyn BlobStore>>,
    settings: CleanupSettings,
    schedule: Option<Duration>,
    running: bool,
    progress: ProgressCell,
    metrics: Metrics,
    _exit: Option<ExitNotifier>,
}

impl CleanupCoordinator {
    /// Build it; `schedule` = run every this often; `blob`: the blob store to collect.
    pub fn new(
        registry: Arc<dyn FileRegistry>,
        files: Rc<dyn ProviderFiles>,
        blob: Option<Arc<dyn BlobStore>>,
        settings: CleanupSettings,
        schedule: Option<Duration>,
        metrics: Metrics,
        exit: Option<ExitNotifier>,
    ) -> Self {
        CleanupCoordinator {
            registry,
            files,
            blob,
            settings,
            schedule,
            running: false,
            progress: Arc::new(Mutex::new(Progress::default())),
            metrics,
            _exit: exit,
        }
    }
}

impl Actor for CleanupCoordinator {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        if let Some(every) = self.schedule {
            ctx.run_interval(every, |act, ctx| {
                if !act.running {
                    ctx.notify(RunCleanup { trigger: "schedule".into(), dry_run: false });
                }
            });
        }
    }
}

impl Handler<RunCleanup> for CleanupCoordinator {
    type Result = ResponseActFuture<Self, Result<CleanupReport, CleanupError>>;

    fn handle(&mut self, msg: RunCleanup, _: &mut Context<Self>) -> Self::Result {
        if self.running {
            return Box::pin(fut::ready(Err(CleanupError::Busy)));
        }
        self.running = true;
        let (reg, files, settings, progress) =
            (Arc::clone(&self.registry), Rc::clone(&self.files), self.settings.clone(), Arc::clone(&self.progress));
        let blob = self.blob.clone();
        let work = async move {
            let Some(lock) = reg.try_cleanup_lock().await? else {
                return Err(CleanupError::Busy);
            };
            tracing::info!(trigger = %msg.trigger, dry_run = msg.dry_run, "cleanup run starting");
            let res = run_cleanup(
                reg.as_ref(),
                files.as_ref(),
                blob.as_deref(),
                &settings,
                &msg.trigger,
                msg.dry_run,
                &progress,
            )
            .await;
            lock.release().await;
            res
        };
        Box::pin(work.into_actor(self).map(|res, act, _| {
            act.running = false;
            let outcome = match &res {
                Ok(r) => r.summary.outcome.clone(),
                Err(CleanupError::Busy) => "busy".into(),
                Err(_) => "error".into(),
            };
            act.metrics.obs.cleanup_runs.with_label_values(&[&outcome]).inc();
            if let Ok(r) = &res {
                let items = &act.metrics.obs.cleanup_items;
                for (label, n) in [
                    ("deleted", r.summary.deleted),
                    ("failed", r.summary.failed),
                    ("skipped", r.summary.skipped),
                    ("blob_deleted", r.summary.blobs_deleted),
                    ("lease_expired", r.summary.leases_expired),
                ] {
                    items.with_label_values(&[label]).inc_by(u64::try_from(n).unwrap_or(0));
                }
            }
            res
        }))
    }
}

impl Handler<GetProgress> for CleanupCoordinator {
    type Result = MessageResult<GetProgress>;

    fn handle(&mut self, _: GetProgress, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.progress.lock().map(|p| p.clone()).unwrap_or_default())
    }
}

impl Handler<Drain> for CleanupCoordinator {
    type Result = ();

    fn handle(&mut self, _: Drain, _: &mut Context<Self>) {}
}

impl Handler<Crash> for CleanupCoordinator {
    type Result = ();

    fn handle(&mut self, msg: Crash, _: &mut Context<Self>) {
        panic!("fault injection: {}", msg.0);
    }
}

/// [`ProviderFiles`] over the provider service (permits, breaker and per-class retries of
/// the provider actor apply to each delete).
pub struct ProviderSetFiles(pub Arc<ProviderSet>);

#[async_trait(?Send)]
impl ProviderFiles for ProviderSetFiles {
    async fn delete_file(&self, provider: &str, provider_file_id: &str) -> Result<bool, String> {
        // `Ok(false)`: already gone at the provider (e.g. an interrupted earlier run deleted it).
        self.0.delete_file(provider, provider_file_id).await.map_err(|e| e.to_string())
    }
}
