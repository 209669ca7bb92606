//! The uploads registry on both backends: one atomic upsert per reference (50 concurrent
//! acquires leave one row with 50 references), release and soft delete, claims, leases
//! (call and user scope, released once, expiry) and what keeps a blob in use.

use exai::store::{self, StoreOptions};
use exai_actors::files::gateway::CallLeases;
use exai_actors::files::ports::{FileRegistry, LeaseScope, NewFileRef, NewLease};
use std::sync::Arc;
use std::time::Duration;

use crate::store::harness::on_each_backend;

pub(crate) fn new_ref(provider: &str, sha: &str, now: i64) -> NewFileRef {
    NewFileRef {
        provider: provider.into(),
        sha256: sha.into(),
        filename: "a.txt".into(),
        size: 10,
        mime_type: None,
        purpose: "assistants".into(),
        upload_method: "direct".into(),
        blob_key: None,
        lease: NewLease { scope: LeaseScope::Upload, expires_at_ms: i64::MAX / 4 },
        now_ms: now,
    }
}

pub(crate) async fn registry(url: &str) -> Arc<dyn FileRegistry> {
    let s = store::open(url, &StoreOptions { max_connections: 8, ..StoreOptions::default() }).await.unwrap();
    s.file_registry().unwrap()
}

#[actix_rt::test]
async fn fifty_concurrent_acquires_are_one_row_with_fifty_references() {
    on_each_backend(|url| async move {
        let reg = registry(&url).await;
        let sha = "a".repeat(64);
        let futs = (0..50).map(|_| {
            let reg = Arc::clone(&reg);
            let sha = sha.clone();
            async move { reg.acquire_file_ref(&new_ref("kimi", &sha, 1_000)).await.unwrap().file }
        });
        let rows = futures_util::future::join_all(futs).await;
        let mut counts: Vec<i64> = rows.iter().map(|r| r.reference_count).collect();
        counts.sort_unstable();
        assert_eq!(counts, (1..=50).collect::<Vec<_>>(), "each upsert saw its own increment");
        assert!(rows.iter().all(|r| r.id == rows[0].id));
        // Another provider is another row.
        assert_eq!(reg.acquire_file_ref(&new_ref("glm", &sha, 1_000)).await.unwrap().file.reference_count, 1);

        assert!(reg.complete_upload(rows[0].id, "file-1", None, 2_000).await.unwrap());
        let got = reg.get_file_ref("kimi", "file-1").await.unwrap().unwrap();
        assert!(got.is_ready());
        assert_eq!(got.reference_count, 50);
        for i in 0..49 {
            let r = reg.release_file_ref("kimi", "file-1", 3_000 + i).await.unwrap().unwrap();
            assert_eq!(r.reference_count, 49 - i);
            assert_eq!(r.deleted_at_ms, None);
        }
        let last = reg.release_file_ref("kimi", "file-1", 5_000).await.unwrap().unwrap();
        assert_eq!((last.reference_count, last.deleted_at_ms), (0, Some(5_000)), "zero soft-deletes");
        let again = reg.release_file_ref("kimi", "file-1", 6_000).await.unwrap().unwrap();
        assert_eq!(again.reference_count, 0, "never below zero");
        // Grace period not passed: not a candidate, cannot be claimed.
        assert!(reg.cleanup_candidates(4_000, 0, 10).await.unwrap().is_empty());
        assert!(!reg.claim_for_cleanup(last.id, 4_000).await.unwrap());
        // Re-acquiring revives the soft-deleted row.
        let revived = reg.acquire_file_ref(&new_ref("kimi", &sha, 7_000)).await.unwrap().file;
        assert_eq!((revived.reference_count, revived.deleted_at_ms), (1, None));
        assert!(revived.is_ready());
        reg.release_file_ref("kimi", "file-1", 8_000).await.unwrap();
        let c = reg.cleanup_candidates(9_000, 0, 10).await.unwrap();
        assert_eq!(c.len(), 1);
        assert!(reg.claim_for_cleanup(c[0].id, 9_000).await.unwrap());
        let claimed = reg.get_file_ref("kimi", "file-1").await.unwrap().unwrap();
        assert!(claimed.claimed && !claimed.is_ready(), "a claimed row is never reused as is");
        assert!(reg.unclaim(c[0].id, "file-1").await.unwrap());
        assert!(reg.claim_for_cleanup(c[0].id, 9_000).await.unwrap());
        assert!(reg.finish_cleanup(c[0].id, "file-1", 9_500).await.unwrap());
        assert!(reg.get_file_ref("kimi", "file-1").await.unwrap().is_none(), "unreferenced row deleted");
        // A failed upload gives its reference back.
        let a = reg.acquire_file_ref(&new_ref("kimi", &"b".repeat(64), 1)).await.unwrap();
        let f = a.file;
        reg.fail_upload(f.id, a.lease_id, "boom", 2).await.unwrap();
        let rows = reg.list_file_refs(Some("kimi"), 10).await.unwrap();
        let failed = rows.iter().find(|r| r.id == f.id).unwrap();
        assert_eq!((failed.upload_status.as_str(), failed.reference_count), ("failed", 0));
    })
    .await;
}

#[actix_rt::test]
async fn one_cleanup_runner_per_cluster_on_postgres() {
    on_each_backend(|url| async move {
        let (a, b) = (registry(&url).await, registry(&url).await);
        let first = a.try_cleanup_lock().await.unwrap().expect("the first node gets the lock");
        let second = b.try_cleanup_lock().await.unwrap();
        if url.starts_with("sqlite:") {
            // SQLite is single node: the coordinator's own one-run rule is the lock.
            assert!(second.is_some());
        } else {
            assert!(second.is_none(), "a second node must not run a cleanup at the same time");
            first.release().await;
            let again = b.try_cleanup_lock().await.unwrap().expect("free after release");
            // Dropped without release (e.g. a panic): the session ends and frees the lock.
            drop(again);
            let mut got = None;
            for _ in 0..50 {
                got = a.try_cleanup_lock().await.unwrap();
                if got.is_some() {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            assert!(got.is_some(), "a dropped lock is freed");
        }
    })
    .await;
}

#[actix_rt::test]
async fn leases_are_released_once_by_their_call_by_the_user_or_by_expiry() {
    on_each_backend(|url| async move {
        let reg = registry(&url).await;
        let sha = "c".repeat(64);
        let call = |expires: i64| NewFileRef {
            lease: NewLease { scope: LeaseScope::Call, expires_at_ms: expires },
            ..new_ref("kimi", &sha, 1_000)
        };
        let user = |expires: i64| NewFileRef {
            lease: NewLease { scope: LeaseScope::Upload, expires_at_ms: expires },
            ..new_ref("kimi", &sha, 1_000)
        };
        let c1 = reg.acquire_file_ref(&call(i64::MAX / 4)).await.unwrap();
        assert!(reg.complete_upload(c1.file.id, "file-c", Some(&"c".repeat(64)), 1_000).await.unwrap());
        let u1 = reg.acquire_file_ref(&user(5_000)).await.unwrap();
        let u2 = reg.acquire_file_ref(&user(i64::MAX / 4)).await.unwrap();
        assert_eq!(u2.file.reference_count, 3);
        assert!(c1.lease_id != u1.lease_id && u1.lease_id != u2.lease_id);

        // The call ends: its lease is released; releasing it again changes nothing.
        reg.release_leases(&[c1.lease_id], 2_000).await.unwrap();
        reg.release_leases(&[c1.lease_id], 2_001).await.unwrap();
        assert_eq!(reg.get_file_ref("kimi", "file-c").await.unwrap().unwrap().reference_count, 2);

        // The user's release takes a user lease (the oldest), never a call's.
        let c2 = reg.acquire_file_ref(&call(i64::MAX / 4)).await.unwrap();
        let r = reg.release_file_ref("kimi", "file-c", 3_000).await.unwrap().unwrap();
        assert_eq!(r.reference_count, 2, "u1 released; u2 and the second call remain");
        // Expiry at 6 000: u1 already released, nothing else expired.
        let e = reg.expire_leases(6_000, 100).await.unwrap();
        assert_eq!(e.leases, 0, "a released lease does not expire again: {e:?}");
        reg.release_file_ref("kimi", "file-c", 7_000).await.unwrap();
        let r = reg.release_file_ref("kimi", "file-c", 7_001).await.unwrap().unwrap();
        assert_eq!((r.reference_count, r.deleted_at_ms), (1, None), "no user lease left: the call's stays");
        assert!(reg.blob_in_use(&"c".repeat(64)).await.unwrap(), "referenced row keeps its blob");
        reg.release_leases(&[c2.lease_id], 8_000).await.unwrap();
        let r = reg.get_file_ref("kimi", "file-c").await.unwrap().unwrap();
        assert_eq!((r.reference_count, r.deleted_at_ms), (0, Some(8_000)), "zero soft-deletes");
        assert!(reg.blob_in_use(&"c".repeat(64)).await.unwrap(), "the provider file still exists");

        // Expiry releases expired leases, in pages, and soft-deletes at zero.
        let sha2 = "d".repeat(64);
        let mut ids = Vec::new();
        for t in 0..5 {
            let mut n = user(10_000 + t);
            n.sha256 = sha2.clone();
            ids.push(reg.acquire_file_ref(&n).await.unwrap());
        }
        assert!(reg.complete_upload(ids[0].file.id, "file-d", None, 1_000).await.unwrap());
        let page = reg.expire_leases(10_002, 2).await.unwrap();
        assert_eq!(page.leases, 2);
        assert_eq!(page.rows.len(), 1);
        assert_eq!((page.rows[0].0.reference_count, page.rows[0].1), (3, 2));
        let page = reg.expire_leases(10_002, 100).await.unwrap();
        assert_eq!((page.leases, page.rows[0].0.reference_count), (1, 2));
        let page = reg.expire_leases(20_000, 100).await.unwrap();
        assert_eq!(page.leases, 2);
        let r = &page.rows[0].0;
        assert_eq!((r.reference_count, r.deleted_at_ms), (0, Some(20_000)));
        // The expired user references are gone: releasing one more gives nothing back.
        let r = reg.release_file_ref("kimi", "file-d", 21_000).await.unwrap().unwrap();
        assert_eq!((r.reference_count, r.deleted_at_ms), (0, Some(20_000)));

        // Blob-only files: a lease on the blob keeps it in use until it expires.
        let key = "e".repeat(64);
        assert!(!reg.blob_in_use(&key).await.unwrap());
        let lease = reg
            .add_blob_lease(&key, NewLease { scope: LeaseScope::Upload, expires_at_ms: 30_000 }, 1_000)
            .await
            .unwrap();
        assert!(reg.blob_in_use(&key).await.unwrap());
        let page = reg.expire_leases(30_000, 100).await.unwrap();
        assert_eq!((page.leases, page.rows.len()), (1, 0), "a blob lease has no row to count down");
        assert!(!reg.blob_in_use(&key).await.unwrap());
        reg.release_leases(&[lease], 31_000).await.unwrap();
    })
    .await;
}

#[actix_rt::test]
async fn a_dropped_call_future_releases_the_references_it_held() {
    on_each_backend(|url| async move {
        let reg = registry(&url).await;
        let sha = "f".repeat(64);
        let call = NewFileRef {
            lease: NewLease { scope: LeaseScope::Call, expires_at_ms: i64::MAX / 4 },
            ..new_ref("kimi", &sha, 1_000)
        };
        let a = reg.acquire_file_ref(&call).await.unwrap();
        assert!(reg.complete_upload(a.file.id, "file-f", None, 1_000).await.unwrap());
        let b = reg.acquire_file_ref(&call).await.unwrap();
        assert_eq!(b.file.reference_count, 2);
        // A call holding both references is dropped midway, as a cancel or a timeout drops it.
        let mut held = CallLeases::new(Arc::clone(&reg));
        held.hold_lease(a.lease_id);
        held.hold_lease(b.lease_id);
        let call_future = async move {
            let _held = held;
            std::future::pending::<()>().await
        };
        assert!(tokio::time::timeout(Duration::from_millis(50), call_future).await.is_err());
        let mut row = reg.get_file_ref("kimi", "file-f").await.unwrap().unwrap();
        for _ in 0..100 {
            if row.reference_count == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            row = reg.get_file_ref("kimi", "file-f").await.unwrap().unwrap();
        }
        assert_eq!(row.reference_count, 0, "the dropped call gave both references back");
        assert!(row.deleted_at_ms.is_some(), "and the file became a cleanup candidate");
    })
    .await;
}

#[actix_rt::test]
async fn file_stats_sum_references_savings_and_cleanup_runs() {
    use exai_actors::files::ports::{CleanupSummary, FileStats};
    on_each_backend(|url| async move {
        let reg = registry(&url).await;
        assert_eq!(reg.file_stats().await.unwrap(), FileStats::default(), "an empty registry");
        // One content used three times (two reuses of 10 bytes), one used once, one still pending.
        let (a, b, c) = ("a".repeat(64), "b".repeat(64), "c".repeat(64));
        let first = reg.acquire_file_ref(&new_ref("kimi", &a, 1)).await.unwrap();
        assert!(reg.complete_upload(first.file.id, "file-a", None, 2).await.unwrap());
        reg.acquire_file_ref(&new_ref("kimi", &a, 3)).await.unwrap();
        reg.acquire_file_ref(&new_ref("kimi", &a, 4)).await.unwrap();
        let other = reg.acquire_file_ref(&new_ref("glm", &b, 5)).await.unwrap();
        assert!(reg.complete_upload(other.file.id, "file-b", None, 6).await.unwrap());
        reg.acquire_file_ref(&new_ref("kimi", &c, 7)).await.unwrap();
        let dry = reg.start_cleanup_run("cli", true, 10).await.unwrap();
        let s = |outcome: &str, deleted, failed, skipped| CleanupSummary {
            state: "audit".into(),
            deleted,
            failed,
            skipped,
            outcome: outcome.into(),
            ..CleanupSummary::default()
        };
        reg.finish_cleanup_run(dry, &s("dry_run", 0, 0, 4), 11).await.unwrap();
        let run = reg.start_cleanup_run("http", false, 20).await.unwrap();
        reg.finish_cleanup_run(run, &s("completed_with_failures", 3, 1, 2), 21).await.unwrap();
        let stats = reg.file_stats().await.unwrap();
        assert_eq!(
            stats,
            FileStats {
                files: 2,
                references: 4,
                reused: 2,
                bytes_saved: 20,
                cleanup_runs: 2,
                cleanup_dry_runs: 1,
                cleanup_deleted: 3,
                cleanup_failed: 1,
                cleanup_skipped: 6,
                last_run_at_ms: Some(20),
                last_run_outcome: Some("completed_with_failures".into()),
            }
        );
    })
    .await;
}
