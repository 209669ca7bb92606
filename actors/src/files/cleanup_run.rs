//! One cleanup run, stage by stage:
//!
//! 0. **Expire**: references (leases) past their expiry are released, page by page; rows
//!    reaching zero are soft-deleted now (`files.reference_ttl_secs` for user references;
//!    call references are released when their call ends and expire only as a backstop).
//!    A dry run skips it.
//! 1. **Discover** (paged by id): soft-deleted, unreferenced rows past the grace period,
//!    plus rows still claimed by an interrupted run. At most `max_per_run` are taken (the
//!    quota; the rest wait for the next run). If the run would delete more than
//!    `max_delete_share` of all provider files it stops here (`aborted_share`).
//! 2. **Validate** (in parallel, `validate_parallelism` at a time): one conditional UPDATE
//!    per row claims it only if it is still unreferenced and past the grace period. A
//!    dry run claims nothing and stops after this stage, having deleted nothing.
//! 3. **ProviderCleanup**: delete at the provider, rate limited (`delete_rate_per_sec`),
//!    in batches; the provider actor retries each delete by error class (rate limit and
//!    5xx with exponential backoff, timeouts, network with jitter; auth and other 4xx
//!    never). A 404 means the file is already gone (e.g. a crashed earlier run). Failure
//!    policy on the share of failed deletes: under `continue_below` (5 %) continue; up to
//!    `stop_above` (20 %) retry the failed ones once; above it stop — as soon as the
//!    failures alone exceed that share of the run, without attempting the rest.
//! 4. **DbCleanup**: only rows whose file the provider really removed are deleted (or, if
//!    re-referenced meanwhile, marked `deleted`). Every other claim is undone (restore).
//! 5. **BlobCollect**: every blob in the blob store (local folder or S3) older than the
//!    grace period that no upload row needs (references, a provider file, an upload in
//!    progress) and no lease names is deleted (dry run: `would_delete`). Runs whatever the
//!    provider stages found, after them, so rows removed in this run free their blobs in it.
//! 6. **Audit**: the `cleanup_items` rows (blob items: stage `blob`, provider `blob`, the
//!    blob key as `provider_file_id`, upload id 0) and the `cleanup_runs` totals and outcome.
//!
//! A kill at any point leaves only claimed rows (never reused as they are); the next run
//! discovers them again and finishes the job.

use super::ports::{BlobStore, CleanupItem, CleanupSummary, FileRef, FileRegistry, ProviderFiles, StoredBlob};
use crate::clock::now_ms;
use crate::ports::StoreError;
use futures_util::stream::{self, StreamExt};
use serde::Serialize;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Settings of a run (config `[cleanup]`).
#[derive(Debug, Clone, PartialEq)]
pub struct CleanupSettings {
    /// Time a row must stay unreferenced before it is removed.
    pub grace: Duration,
    /// Most files removed per run.
    pub max_per_run: usize,
    /// Abort when a run would remove more than this share (0..=1) of all provider files.
    pub max_delete_share: f64,
    /// Discovery page size.
    pub page_size: u32,
    /// Provider deletes per second.
    pub delete_rate_per_sec: f64,
    /// Parallel validations.
    pub validate_parallelism: usize,
    /// Below this failure share the run continues.
    pub continue_below: f64,
    /// Above this failure share the run stops (between: the failed ones are retried once).
    pub stop_above: f64,
}

impl Default for CleanupSettings {
    fn default() -> Self {
        CleanupSettings {
            grace: Duration::from_secs(24 * 3600),
            max_per_run: 500,
            max_delete_share: 0.5,
            page_size: 100,
            delete_rate_per_sec: 5.0,
            validate_parallelism: 8,
            continue_below: 0.05,
            stop_above: 0.20,
        }
    }
}

/// Why a run could not happen.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CleanupError {
    /// Another run holds the lock (this node or another).
    #[error("a cleanup run is already in progress")]
    Busy,
    /// The database failed.
    #[error("cleanup storage error: {0}")]
    Store(String),
}

impl From<StoreError> for CleanupError {
    fn from(e: StoreError) -> Self {
        CleanupError::Store(e.to_string())
    }
}

/// Live progress of the current run (for the CLI progress bar).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Progress {
    /// A run is in progress.
    pub running: bool,
    /// Its id.
    pub run_id: Option<i64>,
    /// Current stage.
    pub stage: String,
    /// Items done in this stage.
    pub done: u64,
    /// Items in this stage.
    pub total: u64,
}

/// Shared progress cell.
pub type ProgressCell = Arc<Mutex<Progress>>;

fn set_progress(cell: &ProgressCell, f: impl FnOnce(&mut Progress)) {
    if let Ok(mut p) = cell.lock() {
        f(&mut p);
    }
}

/// The result of a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CleanupReport {
    /// `cleanup_runs.id`.
    pub run_id: i64,
    /// Dry run.
    pub dry_run: bool,
    /// Totals and outcome.
    pub summary: CleanupSummary,
    /// Per-item audit.
    pub items: Vec<CleanupItem>,
}

fn item(f: &FileRef, stage: &str, outcome: &str, error: Option<String>) -> CleanupItem {
    CleanupItem {
        upload_id: f.id,
        provider: f.provider.clone(),
        provider_file_id: f.provider_file_id.clone(),
        stage: stage.into(),
        outcome: outcome.into(),
        error,
        at_ms: now_ms(),
    }
}

fn blob_item(b: &StoredBlob, outcome: &str, error: Option<String>) -> CleanupItem {
    CleanupItem {
        upload_id: 0,
        provider: "blob".into(),
        provider_file_id: Some(b.key.clone()),
        stage: "blob".into(),
        outcome: outcome.into(),
        error,
        at_ms: now_ms(),
    }
}

/// Leases released per expire page.
const EXPIRE_PAGE: u32 = 500;

/// Run one cleanup. The caller holds the cluster lock. `blob`: the blob store to collect
/// (`None`: no blob store configured).
pub async fn run_cleanup(
    reg: &dyn FileRegistry,
    files: &dyn ProviderFiles,
    blob: Option<&dyn BlobStore>,
    s: &CleanupSettings,
    trigger: &str,
    dry_run: bool,
    progress: &ProgressCell,
) -> Result<CleanupReport, CleanupError> {
    let run_id = reg.start_cleanup_run(trigger, dry_run, now_ms()).await?;
    set_progress(progress, |p| {
        *p = Progress { running: true, run_id: Some(run_id), stage: "discover".into(), ..Progress::default() }
    });
    let mut sum = CleanupSummary::default();
    let mut items = Vec::new();
    let mut res = match dry_run {
        true => Ok(()),
        false => expire(reg, progress, &mut sum, &mut items).await,
    };
    if res.is_ok() {
        res = stages(reg, files, s, dry_run, progress, &mut sum, &mut items).await;
    }
    if let (Ok(()), Some(blob)) = (&res, blob) {
        if sum.outcome != "aborted_share" {
            res = collect_blobs(reg, blob, s, dry_run, progress, &mut sum, &mut items).await;
        }
    }
    if res.is_ok() && sum.outcome == "nothing_to_do" && (sum.blobs_deleted > 0 || sum.leases_expired > 0) {
        sum.outcome = "completed".into();
    }
    if let Err(e) = &res {
        sum.outcome = "error".into();
        sum.notes = format!("{}{}", if sum.notes.is_empty() { "" } else { "; " }, e);
    }
    // Audit, also after an error (best effort).
    let audited = reg.record_cleanup_items(run_id, &items).await;
    reg.finish_cleanup_run(run_id, &sum, now_ms()).await?;
    set_progress(progress, |p| {
        p.running = false;
        p.stage = "audit".into();
    });
    res?;
    audited?;
    tracing::info!(run_id, dry_run, outcome = %sum.outcome, deleted = sum.deleted, failed = sum.failed, "cleanup run finished");
    Ok(CleanupReport { run_id, dry_run, summary: sum, items })
}

/// Stage 0: release expired leases, page by page.
async fn expire(
    reg: &dyn FileRegistry,
    progress: &ProgressCell,
    sum: &mut CleanupSummary,
    items: &mut Vec<CleanupItem>,
) -> Result<(), CleanupError> {
    sum.state = "expire".into();
    set_progress(progress, |p| p.stage = "expire".into());
    let now = now_ms();
    loop {
        let page = reg.expire_leases(now, EXPIRE_PAGE).await?;
        sum.leases_expired += i64::try_from(page.leases).unwrap_or(i64::MAX);
        for (f, n) in &page.rows {
            let left = if f.reference_count == 0 { "no references left" } else { "references remain" };
            items.push(item(f, "expire", "released", Some(format!("{n} reference(s) expired; {left}"))));
        }
        set_progress(progress, |p| p.done = u64::try_from(sum.leases_expired).unwrap_or(0));
        if page.leases < u64::from(EXPIRE_PAGE) {
            return Ok(());
        }
    }
}

/// Stage 5: delete the blobs nothing needs any more (see the module doc).
async fn collect_blobs(
    reg: &dyn FileRegistry,
    blob: &dyn BlobStore,
    s: &CleanupSettings,
    dry_run: bool,
    progress: &ProgressCell,
    sum: &mut CleanupSummary,
    items: &mut Vec<CleanupItem>,
) -> Result<(), CleanupError> {
    let state = std::mem::replace(&mut sum.state, "blob_collect".into());
    let blobs = match blob.list().await {
        Ok(b) => b,
        Err(e) => {
            sum.state = state;
            let note = format!("blob collection skipped: {e}");
            sum.notes = if sum.notes.is_empty() { note } else { format!("{}; {note}", sum.notes) };
            return Ok(());
        }
    };
    set_progress(progress, |p| {
        p.stage = "blob_collect".into();
        p.done = 0;
        p.total = blobs.len() as u64;
    });
    let cutoff = now_ms() - i64::try_from(s.grace.as_millis()).unwrap_or(i64::MAX);
    let (mut would, mut failed) = (0i64, 0i64);
    for (i, b) in blobs.iter().enumerate() {
        set_progress(progress, |p| p.done = i as u64 + 1);
        if b.modified_ms > cutoff || reg.blob_in_use(&b.key).await? {
            continue;
        }
        if would + sum.blobs_deleted >= s.max_per_run as i64 {
            items.push(blob_item(b, "skipped", Some("over the per-run quota (cleanup.max_per_run)".into())));
            continue;
        }
        if dry_run {
            would += 1;
            items.push(blob_item(b, "would_delete", None));
            continue;
        }
        match blob.delete(&b.sha256).await {
            Ok(()) => {
                sum.blobs_deleted += 1;
                items.push(blob_item(b, "deleted", None));
            }
            Err(e) => {
                failed += 1;
                items.push(blob_item(b, "failed", Some(e.to_string())));
            }
        }
    }
    sum.state = state;
    let note = match (dry_run, failed) {
        (true, _) => format!("{would} blob(s) would be collected"),
        (false, 0) => format!("{} blob(s) collected", sum.blobs_deleted),
        (false, f) => format!("{} blob(s) collected, {f} could not be deleted", sum.blobs_deleted),
    };
    sum.notes = if sum.notes.is_empty() { note } else { format!("{}; {note}", sum.notes) };
    if failed > 0 && sum.outcome == "completed" {
        sum.outcome = "completed_with_failures".into();
    }
    Ok(())
}

async fn stages(
    reg: &dyn FileRegistry,
    files: &dyn ProviderFiles,
    s: &CleanupSettings,
    dry_run: bool,
    progress: &ProgressCell,
    sum: &mut CleanupSummary,
    items: &mut Vec<CleanupItem>,
) -> Result<(), CleanupError> {
    // 1. Discover.
    sum.state = "discover".into();
    let cutoff = now_ms() - i64::try_from(s.grace.as_millis()).unwrap_or(i64::MAX);
    let mut selected: Vec<FileRef> = Vec::new();
    let mut after = 0i64;
    loop {
        let page = reg.cleanup_candidates(cutoff, after, s.page_size.max(1)).await?;
        let Some(last) = page.last() else { break };
        after = last.id;
        sum.discovered += page.len() as i64;
        for f in page {
            if selected.len() < s.max_per_run {
                selected.push(f);
            } else {
                sum.skipped += 1;
                items.push(item(
                    &f,
                    "discover",
                    "skipped",
                    Some("over the per-run quota (cleanup.max_per_run)".into()),
                ));
            }
        }
        set_progress(progress, |p| p.done = sum.discovered as u64);
    }
    if selected.is_empty() {
        sum.state = "audit".into();
        sum.outcome = "nothing_to_do".into();
        return Ok(());
    }
    let total = reg.count_provider_files().await?;
    let share = selected.len() as f64 / total.max(1) as f64;
    if share > s.max_delete_share {
        sum.outcome = "aborted_share".into();
        sum.notes = format!(
            "would delete {} of {} provider files ({:.0} %), above cleanup.max_delete_share ({:.0} %); nothing deleted",
            selected.len(),
            total,
            share * 100.0,
            s.max_delete_share * 100.0
        );
        for f in &selected {
            items.push(item(f, "discover", "skipped", Some("run aborted: share limit".into())));
        }
        sum.skipped += selected.len() as i64;
        return Ok(());
    }

    // 2. Validate (claim) in parallel.
    sum.state = "validate".into();
    set_progress(progress, |p| {
        p.stage = "validate".into();
        p.done = 0;
        p.total = selected.len() as u64;
    });
    let checks = stream::iter(selected.into_iter().map(|f| async move {
        let ok = if dry_run { Ok(true) } else { reg.claim_for_cleanup(f.id, cutoff).await };
        (f, ok)
    }))
    .buffered(s.validate_parallelism.max(1))
    .collect::<Vec<_>>()
    .await;
    let mut claimed = Vec::new();
    for (f, ok) in checks {
        match ok? {
            true => {
                sum.validated += 1;
                if dry_run {
                    items.push(item(&f, "validate", "would_delete", None));
                } else {
                    claimed.push(f);
                }
            }
            false => {
                sum.skipped += 1;
                items.push(item(&f, "validate", "skipped", Some("referenced again or grace period not passed".into())));
            }
        }
    }
    if dry_run {
        sum.state = "audit".into();
        sum.outcome = "dry_run".into();
        sum.notes = format!("dry run: {} file(s) would be deleted; nothing was changed", sum.validated);
        return Ok(());
    }

    // 3. ProviderCleanup.
    sum.state = "provider_cleanup".into();
    set_progress(progress, |p| {
        p.stage = "provider_cleanup".into();
        p.done = 0;
        p.total = claimed.len() as u64;
    });
    let gap = Duration::from_secs_f64(1.0 / s.delete_rate_per_sec.max(0.01));
    let mut removed: Vec<FileRef> = Vec::new();
    let mut failed: Vec<(FileRef, String)> = Vec::new();
    let mut untouched: Vec<FileRef> = Vec::new();
    let mut attempted = 0usize;
    let mut stopped = false;
    let total_claimed = claimed.len().max(1);
    for (i, f) in claimed.into_iter().enumerate() {
        if stopped {
            untouched.push(f);
            continue;
        }
        if i > 0 {
            tokio::time::sleep(gap).await;
        }
        attempted += 1;
        delete_one(files, f, &mut removed, &mut failed).await;
        set_progress(progress, |p| p.done = attempted as u64);
        // Stop as soon as the failures alone exceed the stop band for the whole run.
        if failed.len() as f64 / total_claimed as f64 > s.stop_above {
            stopped = true;
        }
    }
    let ratio = if attempted == 0 { 0.0 } else { failed.len() as f64 / attempted as f64 };
    if !stopped && ratio > s.stop_above {
        stopped = true;
    }
    let mut retried = false;
    if !stopped && ratio >= s.continue_below && !failed.is_empty() {
        retried = true;
        let again = std::mem::take(&mut failed);
        for (f, first_error) in again {
            tokio::time::sleep(gap).await;
            let before = failed.len();
            delete_one(files, f, &mut removed, &mut failed).await;
            if failed.len() > before {
                if let Some(last) = failed.last_mut() {
                    last.1 = format!("{} (first attempt: {first_error})", last.1);
                }
            }
        }
    }

    // 4. DbCleanup: only what the provider removed.
    sum.state = "db_cleanup".into();
    for f in &removed {
        let pfid = f.provider_file_id.clone().unwrap_or_default();
        reg.finish_cleanup(f.id, &pfid, now_ms()).await?;
        items.push(item(f, "db", "deleted", None));
    }
    sum.deleted = removed.len() as i64;
    sum.failed = failed.len() as i64;
    // Restore: the claims whose provider files still exist.
    for (f, e) in &failed {
        items.push(item(f, "provider", "failed", Some(e.clone())));
        restore(reg, f, items).await?;
    }
    for f in &untouched {
        items.push(item(f, "provider", "skipped", Some("run stopped by the failure policy".into())));
        sum.skipped += 1;
        restore(reg, f, items).await?;
    }
    sum.state = "audit".into();
    let pct = ratio * 100.0;
    sum.outcome = if stopped {
        "aborted_failures"
    } else if failed.is_empty() {
        "completed"
    } else {
        "completed_with_failures"
    }
    .into();
    sum.notes = if stopped {
        format!(
            "{pct:.0} % of {attempted} provider deletes failed (above {:.0} %): stopped; {} claim(s) restored",
            s.stop_above * 100.0,
            failed.len() + untouched.len()
        )
    } else if retried {
        format!(
            "{pct:.0} % of deletes failed at first; the failed ones were retried once, {} still failed",
            failed.len()
        )
    } else {
        format!("{pct:.0} % of {attempted} provider deletes failed")
    };
    Ok(())
}

async fn delete_one(
    files: &dyn ProviderFiles,
    f: FileRef,
    removed: &mut Vec<FileRef>,
    failed: &mut Vec<(FileRef, String)>,
) {
    let Some(pfid) = f.provider_file_id.clone() else {
        removed.push(f);
        return;
    };
    match files.delete_file(&f.provider, &pfid).await {
        Ok(_) => removed.push(f),
        Err(e) => failed.push((f, e)),
    }
}

async fn restore(reg: &dyn FileRegistry, f: &FileRef, items: &mut Vec<CleanupItem>) -> Result<(), CleanupError> {
    let pfid = f.provider_file_id.clone().unwrap_or_default();
    if reg.unclaim(f.id, &pfid).await? {
        items.push(item(f, "restore", "restored", None));
    } else {
        // The same content was uploaded again while the row was claimed, so the row now names
        // a newer provider file; this one (whose delete failed) is referenced by nothing.
        // Say so in the audit trail rather than lose track of it silently.
        tracing::warn!(provider = %f.provider, provider_file_id = %pfid, "provider file left unreferenced");
        let why = "the row was re-uploaded during the run; this provider file is unreferenced and was not deleted";
        items.push(item(f, "restore", "orphaned", Some(why.into())));
    }
    Ok(())
}
