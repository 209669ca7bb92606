//! The staged cleanup on both backends with a failure-injecting fake Files API (aimock and
//! llmock cannot fail individual deletes): each failure-policy band, dry run, the share
//! abort, the per-run quota, and the audit rows.

use async_trait::async_trait;
use exai_actors::files::cleanup_run::{run_cleanup, CleanupSettings, ProgressCell};
use exai_actors::files::ports::{FileRegistry, ProviderFiles};
use std::cell::RefCell;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use super::registry::{new_ref, registry};
use crate::store::harness::on_each_backend;

/// Deletes succeed except for the ids in `fail` (which fail `fail_times` times each).
struct FakeFiles {
    fail: HashSet<String>,
    fail_times: u32,
    attempts: RefCell<Vec<String>>,
    deleted: RefCell<HashSet<String>>,
}

impl FakeFiles {
    fn new(fail: impl IntoIterator<Item = String>, fail_times: u32) -> FakeFiles {
        FakeFiles {
            fail: fail.into_iter().collect(),
            fail_times,
            attempts: RefCell::default(),
            deleted: RefCell::default(),
        }
    }
}

#[async_trait(?Send)]
impl ProviderFiles for FakeFiles {
    async fn delete_file(&self, _provider: &str, id: &str) -> Result<bool, String> {
        self.attempts.borrow_mut().push(id.to_string());
        let tries = self.attempts.borrow().iter().filter(|a| *a == id).count() as u32;
        if self.fail.contains(id) && tries <= self.fail_times {
            return Err("provider server error (HTTP 500): injected".into());
        }
        Ok(self.deleted.borrow_mut().insert(id.to_string()))
    }
}

fn settings() -> CleanupSettings {
    CleanupSettings {
        grace: Duration::from_millis(0),
        max_delete_share: 1.0,
        delete_rate_per_sec: 1000.0,
        ..CleanupSettings::default()
    }
}

/// `n` soft-deleted files `f0..` (plus `live` referenced ones); returns their ids.
async fn seed(reg: &dyn FileRegistry, n: usize, live: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n + live {
        let sha = format!("{:064x}", i + 1);
        let r = reg.acquire_file_ref(&new_ref("kimi", &sha, 1_000)).await.unwrap().file;
        let id = format!("f{i}");
        reg.complete_upload(r.id, &id, None, 1_000).await.unwrap();
        if i < n {
            reg.release_file_ref("kimi", &id, 1_000).await.unwrap();
            ids.push(id);
        }
    }
    ids
}

async fn remaining(reg: &dyn FileRegistry) -> Vec<String> {
    let mut v: Vec<String> =
        reg.list_file_refs(None, 1000).await.unwrap().into_iter().filter_map(|r| r.provider_file_id).collect();
    v.sort();
    v
}

fn progress() -> ProgressCell {
    ProgressCell::default()
}

#[actix_rt::test]
async fn failure_bands_continue_retry_and_stop() {
    on_each_backend(|url| async move {
        // < 5 %: 1 of 40 fails → continue; the failed one is restored, the rest deleted.
        let reg = registry(&url).await;
        let ids = seed(reg.as_ref(), 40, 2).await;
        let fake = FakeFiles::new([ids[3].clone()], 99);
        let r = run_cleanup(reg.as_ref(), &fake, None, &settings(), "cli", false, &progress()).await.unwrap();
        assert_eq!(r.summary.outcome, "completed_with_failures", "{:?}", r.summary);
        assert_eq!((r.summary.deleted, r.summary.failed), (39, 1));
        assert_eq!(fake.attempts.borrow().len(), 40, "no retry below 5 %");
        let left = remaining(reg.as_ref()).await;
        assert_eq!(left.len(), 3, "the failed one and the two live ones remain: {left:?}");
        let restored = reg.get_file_ref("kimi", &ids[3]).await.unwrap().unwrap();
        assert!(!restored.claimed, "the failed claim is restored");
        assert!(r.items.iter().any(|i| i.stage == "restore" && i.outcome == "restored"));
        // The next run retries it and finishes.
        let fake2 = FakeFiles::new([], 0);
        let r2 = run_cleanup(reg.as_ref(), &fake2, None, &settings(), "cli", false, &progress()).await.unwrap();
        assert_eq!((r2.summary.outcome.as_str(), r2.summary.deleted), ("completed", 1));
    })
    .await;
    on_each_backend(|url| async move {
        // 5–20 %: 4 of 40 fail once → the failed ones are retried and succeed.
        let reg = registry(&url).await;
        let ids = seed(reg.as_ref(), 40, 0).await;
        let fake = FakeFiles::new(ids[..4].to_vec(), 1);
        let r = run_cleanup(reg.as_ref(), &fake, None, &settings(), "http", false, &progress()).await.unwrap();
        assert_eq!(r.summary.outcome, "completed", "{:?}", r.summary);
        assert_eq!((r.summary.deleted, r.summary.failed), (40, 0));
        assert_eq!(fake.attempts.borrow().len(), 44, "the four failed deletes were retried once");
        assert!(r.summary.notes.contains("retried"), "{}", r.summary.notes);
        assert!(remaining(reg.as_ref()).await.is_empty());
    })
    .await;
    on_each_backend(|url| async move {
        // > 20 %: 10 of 40 fail → stop at the 9th failure (9/40 > 20 %); the rest is not
        // attempted and every claim is restored.
        let reg = registry(&url).await;
        let ids = seed(reg.as_ref(), 40, 0).await;
        let fake = FakeFiles::new(ids[..10].to_vec(), 99);
        let r = run_cleanup(reg.as_ref(), &fake, None, &settings(), "schedule", false, &progress()).await.unwrap();
        assert_eq!(r.summary.outcome, "aborted_failures", "{:?}", r.summary);
        assert_eq!(fake.attempts.borrow().len(), 9, "stopped once the outcome was certain");
        assert_eq!((r.summary.deleted, r.summary.failed), (0, 9));
        assert_eq!(r.items.iter().filter(|i| i.stage == "restore" && i.outcome == "restored").count(), 40);
        let left = remaining(reg.as_ref()).await;
        assert_eq!(left.len(), 40);
        for row in reg.list_file_refs(None, 100).await.unwrap() {
            assert!(!row.claimed, "every claim restored: {row:?}");
            assert!(!fake.deleted.borrow().contains(row.provider_file_id.as_deref().unwrap_or("")));
        }
    })
    .await;
}

#[actix_rt::test]
async fn dry_run_share_abort_and_quota() {
    on_each_backend(|url| async move {
        let reg = registry(&url).await;
        seed(reg.as_ref(), 6, 4).await;
        let fake = FakeFiles::new([], 0);
        let before = remaining(reg.as_ref()).await;
        let r = run_cleanup(reg.as_ref(), &fake, None, &settings(), "cli", true, &progress()).await.unwrap();
        assert_eq!((r.summary.outcome.as_str(), r.summary.validated), ("dry_run", 6));
        assert!(fake.attempts.borrow().is_empty(), "dry run deletes nothing at the provider");
        assert_eq!(remaining(reg.as_ref()).await, before, "dry run deletes nothing in the database");
        assert_eq!(r.items.iter().filter(|i| i.outcome == "would_delete").count(), 6);

        // 6 of 10 files is above a 50 % share: abort before any claim.
        let s = CleanupSettings { max_delete_share: 0.5, ..settings() };
        let r = run_cleanup(reg.as_ref(), &fake, None, &s, "cli", false, &progress()).await.unwrap();
        assert_eq!(r.summary.outcome, "aborted_share", "{:?}", r.summary);
        assert!(r.summary.notes.contains("cleanup.max_delete_share"));
        assert!(fake.attempts.borrow().is_empty());
        assert_eq!(remaining(reg.as_ref()).await, before);

        // Quota: 4 per run.
        let s = CleanupSettings { max_per_run: 4, ..settings() };
        let r = run_cleanup(reg.as_ref(), &fake, None, &s, "cli", false, &progress()).await.unwrap();
        assert_eq!((r.summary.deleted, r.summary.skipped), (4, 2), "{:?}", r.summary);
        let r = run_cleanup(reg.as_ref(), &fake, None, &s, "cli", false, &progress()).await.unwrap();
        assert_eq!(r.summary.deleted, 2);
        assert_eq!(remaining(reg.as_ref()).await.len(), 4, "the live files stay");
        let _ = Arc::clone(&reg);
    })
    .await;
}
