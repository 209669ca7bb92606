//! The [`FileRegistry`] port over both stores: `provider_file_uploads` (content-addressed
//! uploads with reference counts), `file_leases` (one row per reference, with its scope and
//! expiry), `cleanup_runs` and `cleanup_items`.
//!
//! The SQL is shared: `$N` parameters (numbered in order of first use, which SQLite binds
//! the same way), all values bound, never formatted into the text. Reference counting is
//! one atomic upsert, `INSERT … ON CONFLICT (provider, sha256) DO UPDATE SET
//! reference_count = reference_count + 1 … RETURNING …`, on both backends, in one transaction
//! with the insert of the reference's lease. Every release deletes a lease first and lowers
//! the count only if that delete removed a row, so no reference is given back twice (a call
//! ending while its lease expires, two concurrent deletes). The cleanup lock
//! is a PostgreSQL session advisory lock held on a dedicated connection; SQLite is single
//! node and needs none beyond the coordinator's own one-run-at-a-time rule.

use async_trait::async_trait;
use exai_actors::files::ports::{
    Acquisition, CleanupItem, CleanupLock, CleanupSummary, ExpiredLeases, FileRef, FileRegistry, FileStats, NewFileRef,
    NewLease,
};
use exai_actors::ports::StoreError;
use sqlx::pool::PoolConnection;
use sqlx::{Postgres, Row};
use std::collections::BTreeMap;

use super::error::map_sqlx;
use super::postgres::PgStore;
use super::sqlite::SqliteStore;

/// Advisory lock key of the cleanup run ("exaiclnp").
const CLEANUP_LOCK_KEY: i64 = 0x6578_6169_636c_6e70;

const FILE_COLUMNS: &str = "id, provider, sha256, provider_file_id, upload_status, upload_method, blob_key, \
     reference_count, file_size_bytes, filename, last_used_at, deleted_at, cleanup_claimed_at";

macro_rules! sql {
    (acquire) => {
        "INSERT INTO provider_file_uploads (provider, sha256, filename, file_size_bytes, mime_type, purpose, \
         upload_status, upload_method, blob_key, reference_count, last_used_at, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7, $8, 1, $9, $9, $9) \
         ON CONFLICT (provider, sha256) DO UPDATE SET \
         reference_count = provider_file_uploads.reference_count + 1, \
         last_used_at = excluded.last_used_at, updated_at = excluded.updated_at, deleted_at = NULL, \
         blob_key = COALESCE(provider_file_uploads.blob_key, excluded.blob_key) \
         RETURNING id, provider, sha256, provider_file_id, upload_status, upload_method, blob_key, \
         reference_count, file_size_bytes, filename, last_used_at, deleted_at, cleanup_claimed_at"
    };
}

const COMPLETE: &str = "UPDATE provider_file_uploads SET provider_file_id = $1, upload_status = 'completed', \
     blob_key = COALESCE($2, blob_key), cleanup_claimed_at = NULL, error_message = NULL, updated_at = $3 \
     WHERE id = $4";
const FAIL: &str = "UPDATE provider_file_uploads SET upload_status = 'failed', error_message = $1, updated_at = $2 \
     WHERE id = $3 AND upload_status <> 'completed'";
/// Lower a row's count by `$1` released leases; reaching zero soft-deletes it.
const RELEASE_N: &str = "UPDATE provider_file_uploads SET \
     reference_count = CASE WHEN reference_count > $1 THEN reference_count - $1 ELSE 0 END, \
     deleted_at = CASE WHEN reference_count <= $1 THEN $2 ELSE deleted_at END, \
     last_used_at = $2, updated_at = $2 \
     WHERE id = $3 \
     RETURNING id, provider, sha256, provider_file_id, upload_status, upload_method, blob_key, \
     reference_count, file_size_bytes, filename, last_used_at, deleted_at, cleanup_claimed_at";
const INSERT_LEASE: &str = "INSERT INTO file_leases (upload_id, blob_key, scope, expires_at, created_at) \
     VALUES ($1, $2, $3, $4, $5) RETURNING id";
const DELETE_LEASE: &str = "DELETE FROM file_leases WHERE id = $1 RETURNING upload_id";
/// The oldest user lease of a provider file.
const DELETE_USER_LEASE: &str = "DELETE FROM file_leases WHERE id = (SELECT l.id FROM file_leases l \
     JOIN provider_file_uploads u ON u.id = l.upload_id \
     WHERE u.provider = $1 AND u.provider_file_id = $2 AND l.scope = 'upload' ORDER BY l.id LIMIT 1) \
     RETURNING upload_id";
const EXPIRE_LEASES: &str = "DELETE FROM file_leases WHERE id IN \
     (SELECT id FROM file_leases WHERE expires_at <= $1 ORDER BY id LIMIT $2) RETURNING upload_id";
const BLOB_IN_USE: &str = "SELECT (SELECT COUNT(*) FROM (SELECT 1 FROM provider_file_uploads WHERE blob_key = $1 \
     AND (reference_count > 0 OR upload_status = 'pending' \
          OR (upload_status = 'completed' AND provider_file_id IS NOT NULL)) LIMIT 1) AS u) \
     + (SELECT COUNT(*) FROM (SELECT 1 FROM file_leases WHERE blob_key = $1 LIMIT 1) AS l)";
const CLAIM: &str = "UPDATE provider_file_uploads SET cleanup_claimed_at = $1 WHERE id = $2 AND \
     ((cleanup_claimed_at IS NULL AND reference_count = 0 AND deleted_at IS NOT NULL AND deleted_at <= $3 \
       AND upload_status = 'completed' AND provider_file_id IS NOT NULL) \
      OR cleanup_claimed_at IS NOT NULL)";
const UNCLAIM: &str =
    "UPDATE provider_file_uploads SET cleanup_claimed_at = NULL WHERE id = $1 AND provider_file_id = $2";
const FINISH_DELETE: &str = "DELETE FROM provider_file_uploads WHERE id = $1 AND provider_file_id = $2 \
     AND reference_count = 0";
const FINISH_MARK: &str = "UPDATE provider_file_uploads SET upload_status = 'deleted', provider_file_id = NULL, \
     cleanup_claimed_at = NULL, updated_at = $1 WHERE id = $2 AND provider_file_id = $3";
const SIZE_EXISTS: &str = "SELECT COUNT(*) FROM (SELECT 1 FROM provider_file_uploads \
     WHERE provider = $1 AND file_size_bytes = $2 LIMIT 1) AS t";
const COUNT_FILES: &str = "SELECT COUNT(*) FROM provider_file_uploads WHERE upload_status = 'completed' \
     AND provider_file_id IS NOT NULL";
// Sums cast to BIGINT: PostgreSQL's SUM of a bigint is numeric.
const DEDUP_STATS: &str = "SELECT CAST(COUNT(*) AS BIGINT), CAST(COALESCE(SUM(reference_count), 0) AS BIGINT), \
     CAST(COALESCE(SUM(CASE WHEN reference_count > 1 THEN reference_count - 1 ELSE 0 END), 0) AS BIGINT), \
     CAST(COALESCE(SUM(CASE WHEN reference_count > 1 THEN (reference_count - 1) * file_size_bytes ELSE 0 END), 0) \
     AS BIGINT) FROM provider_file_uploads WHERE upload_status = 'completed' AND deleted_at IS NULL";
const CLEANUP_STATS: &str = "SELECT CAST(COUNT(*) AS BIGINT), \
     CAST(COALESCE(SUM(CASE WHEN dry_run THEN 1 ELSE 0 END), 0) AS BIGINT), \
     CAST(COALESCE(SUM(deleted), 0) AS BIGINT), CAST(COALESCE(SUM(failed), 0) AS BIGINT), \
     CAST(COALESCE(SUM(skipped), 0) AS BIGINT) FROM cleanup_runs";
const LAST_RUN: &str = "SELECT started_at, outcome FROM cleanup_runs ORDER BY id DESC LIMIT 1";
const START_RUN: &str =
    "INSERT INTO cleanup_runs (started_at, trigger, dry_run, state) VALUES ($1, $2, $3, 'discover') \
     RETURNING id";
const ITEM: &str =
    "INSERT INTO cleanup_items (run_id, upload_id, provider, provider_file_id, stage, outcome, error, at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
const FINISH_RUN: &str = "UPDATE cleanup_runs SET finished_at = $1, state = $2, discovered = $3, validated = $4, \
     deleted = $5, failed = $6, skipped = $7, outcome = $8, notes = $9, leases_expired = $10, blobs_deleted = $11 \
     WHERE id = $12";

fn select_by_file() -> String {
    format!("SELECT {FILE_COLUMNS} FROM provider_file_uploads WHERE provider = $1 AND provider_file_id = $2")
}
fn select_list(provider: bool) -> String {
    if provider {
        format!("SELECT {FILE_COLUMNS} FROM provider_file_uploads WHERE provider = $1 ORDER BY id DESC LIMIT $2")
    } else {
        format!("SELECT {FILE_COLUMNS} FROM provider_file_uploads ORDER BY id DESC LIMIT $1")
    }
}
fn select_candidates() -> String {
    format!(
        "SELECT {FILE_COLUMNS} FROM provider_file_uploads WHERE id > $1 AND \
         ((reference_count = 0 AND deleted_at IS NOT NULL AND deleted_at <= $2 AND upload_status = 'completed' \
           AND provider_file_id IS NOT NULL) OR cleanup_claimed_at IS NOT NULL) ORDER BY id LIMIT $3"
    )
}

fn file_ref<R: Row>(r: &R) -> Result<FileRef, StoreError>
where
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    i64: sqlx::Type<R::Database> + for<'a> sqlx::Decode<'a, R::Database>,
    String: sqlx::Type<R::Database> + for<'a> sqlx::Decode<'a, R::Database>,
{
    let claimed: Option<i64> = r.try_get("cleanup_claimed_at").map_err(map_sqlx)?;
    Ok(FileRef {
        id: r.try_get("id").map_err(map_sqlx)?,
        provider: r.try_get("provider").map_err(map_sqlx)?,
        sha256: r.try_get("sha256").map_err(map_sqlx)?,
        provider_file_id: r.try_get("provider_file_id").map_err(map_sqlx)?,
        upload_status: r.try_get("upload_status").map_err(map_sqlx)?,
        upload_method: r.try_get("upload_method").map_err(map_sqlx)?,
        blob_key: r.try_get("blob_key").map_err(map_sqlx)?,
        reference_count: r.try_get("reference_count").map_err(map_sqlx)?,
        file_size_bytes: r.try_get("file_size_bytes").map_err(map_sqlx)?,
        filename: r.try_get("filename").map_err(map_sqlx)?,
        last_used_at_ms: r.try_get("last_used_at").map_err(map_sqlx)?,
        deleted_at_ms: r.try_get("deleted_at").map_err(map_sqlx)?,
        claimed: claimed.is_some(),
    })
}

/// The registry methods, identical for both pools except for the lock.
macro_rules! registry_impl {
    ($store:ty) => {
        #[async_trait]
        impl FileRegistry for $store {
            async fn acquire_file_ref(&self, f: &NewFileRef) -> Result<Acquisition, StoreError> {
                let mut tx = self.pool().begin().await.map_err(map_sqlx)?;
                let row = sqlx::query(sql!(acquire))
                    .bind(&f.provider)
                    .bind(&f.sha256)
                    .bind(&f.filename)
                    .bind(f.size)
                    .bind(&f.mime_type)
                    .bind(&f.purpose)
                    .bind(&f.upload_method)
                    .bind(&f.blob_key)
                    .bind(f.now_ms)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(map_sqlx)?;
                let file = file_ref(&row)?;
                let lease_id: i64 = sqlx::query_scalar(INSERT_LEASE)
                    .bind(Some(file.id))
                    .bind(None::<String>)
                    .bind(f.lease.scope.as_str())
                    .bind(f.lease.expires_at_ms)
                    .bind(f.now_ms)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(map_sqlx)?;
                tx.commit().await.map_err(map_sqlx)?;
                Ok(Acquisition { file, lease_id })
            }

            async fn complete_upload(
                &self,
                id: i64,
                provider_file_id: &str,
                blob_key: Option<&str>,
                now_ms: i64,
            ) -> Result<bool, StoreError> {
                let r = sqlx::query(COMPLETE)
                    .bind(provider_file_id)
                    .bind(blob_key)
                    .bind(now_ms)
                    .bind(id)
                    .execute(self.pool())
                    .await
                    .map_err(map_sqlx)?;
                Ok(r.rows_affected() > 0)
            }

            async fn fail_upload(&self, id: i64, lease_id: i64, error: &str, now_ms: i64) -> Result<(), StoreError> {
                let msg: String = error.chars().take(500).collect();
                let mut tx = self.pool().begin().await.map_err(map_sqlx)?;
                let gone: Option<Option<i64>> =
                    sqlx::query_scalar(DELETE_LEASE).bind(lease_id).fetch_optional(&mut *tx).await.map_err(map_sqlx)?;
                if gone.is_some() {
                    sqlx::query(RELEASE_N)
                        .bind(1i64)
                        .bind(now_ms)
                        .bind(id)
                        .execute(&mut *tx)
                        .await
                        .map_err(map_sqlx)?;
                }
                sqlx::query(FAIL).bind(msg).bind(now_ms).bind(id).execute(&mut *tx).await.map_err(map_sqlx)?;
                tx.commit().await.map_err(map_sqlx)
            }

            async fn release_leases(&self, lease_ids: &[i64], now_ms: i64) -> Result<(), StoreError> {
                if lease_ids.is_empty() {
                    return Ok(());
                }
                let mut tx = self.pool().begin().await.map_err(map_sqlx)?;
                for id in lease_ids {
                    let gone: Option<Option<i64>> =
                        sqlx::query_scalar(DELETE_LEASE).bind(id).fetch_optional(&mut *tx).await.map_err(map_sqlx)?;
                    if let Some(Some(upload)) = gone {
                        sqlx::query(RELEASE_N)
                            .bind(1i64)
                            .bind(now_ms)
                            .bind(upload)
                            .execute(&mut *tx)
                            .await
                            .map_err(map_sqlx)?;
                    }
                }
                tx.commit().await.map_err(map_sqlx)
            }

            async fn add_blob_lease(&self, blob_key: &str, lease: NewLease, now_ms: i64) -> Result<i64, StoreError> {
                sqlx::query_scalar(INSERT_LEASE)
                    .bind(None::<i64>)
                    .bind(blob_key)
                    .bind(lease.scope.as_str())
                    .bind(lease.expires_at_ms)
                    .bind(now_ms)
                    .fetch_one(self.pool())
                    .await
                    .map_err(map_sqlx)
            }

            async fn expire_leases(&self, now_ms: i64, limit: u32) -> Result<ExpiredLeases, StoreError> {
                let mut tx = self.pool().begin().await.map_err(map_sqlx)?;
                let gone: Vec<Option<i64>> = sqlx::query_scalar(EXPIRE_LEASES)
                    .bind(now_ms)
                    .bind(i64::from(limit.max(1)))
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(map_sqlx)?;
                let mut per_row: BTreeMap<i64, u64> = BTreeMap::new();
                for upload in gone.iter().flatten() {
                    *per_row.entry(*upload).or_default() += 1;
                }
                let mut out = ExpiredLeases { leases: gone.len() as u64, rows: Vec::with_capacity(per_row.len()) };
                for (upload, n) in per_row {
                    let row = sqlx::query(RELEASE_N)
                        .bind(i64::try_from(n).unwrap_or(i64::MAX))
                        .bind(now_ms)
                        .bind(upload)
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(map_sqlx)?;
                    if let Some(r) = row {
                        out.rows.push((file_ref(&r)?, n));
                    }
                }
                tx.commit().await.map_err(map_sqlx)?;
                Ok(out)
            }

            async fn blob_in_use(&self, blob_key: &str) -> Result<bool, StoreError> {
                let n: i64 =
                    sqlx::query_scalar(BLOB_IN_USE).bind(blob_key).fetch_one(self.pool()).await.map_err(map_sqlx)?;
                Ok(n > 0)
            }

            async fn release_file_ref(
                &self,
                provider: &str,
                provider_file_id: &str,
                now_ms: i64,
            ) -> Result<Option<FileRef>, StoreError> {
                let mut tx = self.pool().begin().await.map_err(map_sqlx)?;
                let gone: Option<Option<i64>> = sqlx::query_scalar(DELETE_USER_LEASE)
                    .bind(provider)
                    .bind(provider_file_id)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(map_sqlx)?;
                let row = match gone {
                    Some(Some(upload)) => sqlx::query(RELEASE_N)
                        .bind(1i64)
                        .bind(now_ms)
                        .bind(upload)
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(map_sqlx)?,
                    _ => sqlx::query(&select_by_file())
                        .bind(provider)
                        .bind(provider_file_id)
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(map_sqlx)?,
                };
                tx.commit().await.map_err(map_sqlx)?;
                row.as_ref().map(file_ref).transpose()
            }

            async fn get_file_ref(
                &self,
                provider: &str,
                provider_file_id: &str,
            ) -> Result<Option<FileRef>, StoreError> {
                let row = sqlx::query(&select_by_file())
                    .bind(provider)
                    .bind(provider_file_id)
                    .fetch_optional(self.pool())
                    .await
                    .map_err(map_sqlx)?;
                row.as_ref().map(file_ref).transpose()
            }

            async fn list_file_refs(&self, provider: Option<&str>, limit: u32) -> Result<Vec<FileRef>, StoreError> {
                let limit = i64::from(limit.clamp(1, 10_000));
                let sql = select_list(provider.is_some());
                let q = match provider {
                    Some(p) => sqlx::query(&sql).bind(p).bind(limit),
                    None => sqlx::query(&sql).bind(limit),
                };
                let rows = q.fetch_all(self.pool()).await.map_err(map_sqlx)?;
                rows.iter().map(file_ref).collect()
            }

            async fn cleanup_candidates(
                &self,
                cutoff_ms: i64,
                after_id: i64,
                limit: u32,
            ) -> Result<Vec<FileRef>, StoreError> {
                let rows = sqlx::query(&select_candidates())
                    .bind(after_id)
                    .bind(cutoff_ms)
                    .bind(i64::from(limit.max(1)))
                    .fetch_all(self.pool())
                    .await
                    .map_err(map_sqlx)?;
                rows.iter().map(file_ref).collect()
            }

            async fn any_file_of_size(&self, provider: &str, size: u64) -> Result<bool, StoreError> {
                let size = i64::try_from(size).unwrap_or(i64::MAX);
                let n: i64 = sqlx::query_scalar(SIZE_EXISTS)
                    .bind(provider)
                    .bind(size)
                    .fetch_one(self.pool())
                    .await
                    .map_err(map_sqlx)?;
                Ok(n > 0)
            }

            async fn file_stats(&self) -> Result<FileStats, StoreError> {
                let d = sqlx::query(DEDUP_STATS).fetch_one(self.pool()).await.map_err(map_sqlx)?;
                let c = sqlx::query(CLEANUP_STATS).fetch_one(self.pool()).await.map_err(map_sqlx)?;
                let last = sqlx::query(LAST_RUN).fetch_optional(self.pool()).await.map_err(map_sqlx)?;
                let i = |r: &_, n: usize| -> Result<i64, StoreError> { Row::try_get::<i64, _>(r, n).map_err(map_sqlx) };
                Ok(FileStats {
                    files: i(&d, 0)?,
                    references: i(&d, 1)?,
                    reused: i(&d, 2)?,
                    bytes_saved: i(&d, 3)?,
                    cleanup_runs: i(&c, 0)?,
                    cleanup_dry_runs: i(&c, 1)?,
                    cleanup_deleted: i(&c, 2)?,
                    cleanup_failed: i(&c, 3)?,
                    cleanup_skipped: i(&c, 4)?,
                    last_run_at_ms: last.as_ref().map(|r| r.try_get::<i64, _>(0)).transpose().map_err(map_sqlx)?,
                    last_run_outcome: last
                        .as_ref()
                        .map(|r| r.try_get::<Option<String>, _>(1))
                        .transpose()
                        .map_err(map_sqlx)?
                        .flatten(),
                })
            }

            async fn count_provider_files(&self) -> Result<i64, StoreError> {
                sqlx::query_scalar(COUNT_FILES).fetch_one(self.pool()).await.map_err(map_sqlx)
            }

            async fn claim_for_cleanup(&self, id: i64, cutoff_ms: i64) -> Result<bool, StoreError> {
                let r = sqlx::query(CLAIM)
                    .bind(exai_actors::env::now_ms())
                    .bind(id)
                    .bind(cutoff_ms)
                    .execute(self.pool())
                    .await
                    .map_err(map_sqlx)?;
                Ok(r.rows_affected() > 0)
            }

            async fn unclaim(&self, id: i64, provider_file_id: &str) -> Result<bool, StoreError> {
                let r = sqlx::query(UNCLAIM)
                    .bind(id)
                    .bind(provider_file_id)
                    .execute(self.pool())
                    .await
                    .map_err(map_sqlx)?;
                Ok(r.rows_affected() > 0)
            }

            async fn finish_cleanup(&self, id: i64, provider_file_id: &str, now_ms: i64) -> Result<bool, StoreError> {
                let r = sqlx::query(FINISH_DELETE)
                    .bind(id)
                    .bind(provider_file_id)
                    .execute(self.pool())
                    .await
                    .map_err(map_sqlx)?;
                if r.rows_affected() > 0 {
                    return Ok(true);
                }
                let r = sqlx::query(FINISH_MARK)
                    .bind(now_ms)
                    .bind(id)
                    .bind(provider_file_id)
                    .execute(self.pool())
                    .await
                    .map_err(map_sqlx)?;
                Ok(r.rows_affected() > 0)
            }

            async fn start_cleanup_run(&self, trigger: &str, dry_run: bool, now_ms: i64) -> Result<i64, StoreError> {
                sqlx::query_scalar(START_RUN)
                    .bind(now_ms)
                    .bind(trigger)
                    .bind(dry_run)
                    .fetch_one(self.pool())
                    .await
                    .map_err(map_sqlx)
            }

            async fn record_cleanup_items(&self, run_id: i64, items: &[CleanupItem]) -> Result<(), StoreError> {
                let mut tx = self.pool().begin().await.map_err(map_sqlx)?;
                for it in items {
                    sqlx::query(ITEM)
                        .bind(run_id)
                        .bind(it.upload_id)
                        .bind(&it.provider)
                        .bind(&it.provider_file_id)
                        .bind(&it.stage)
                        .bind(&it.outcome)
                        .bind(&it.error)
                        .bind(it.at_ms)
                        .execute(&mut *tx)
                        .await
                        .map_err(map_sqlx)?;
                }
                tx.commit().await.map_err(map_sqlx)
            }

            async fn finish_cleanup_run(&self, run_id: i64, s: &CleanupSummary, now_ms: i64) -> Result<(), StoreError> {
                sqlx::query(FINISH_RUN)
                    .bind(now_ms)
                    .bind(&s.state)
                    .bind(s.discovered)
                    .bind(s.validated)
                    .bind(s.deleted)
                    .bind(s.failed)
                    .bind(s.skipped)
                    .bind(&s.outcome)
                    .bind(&s.notes)
                    .bind(s.leases_expired)
                    .bind(s.blobs_deleted)
                    .bind(run_id)
                    .execute(self.pool())
                    .await
                    .map_err(map_sqlx)?;
                Ok(())
            }

            async fn try_cleanup_lock(&self) -> Result<Option<Box<dyn CleanupLock>>, StoreError> {
                self.cleanup_lock().await
            }
        }
    };
}

registry_impl!(SqliteStore);
registry_impl!(PgStore);

/// SQLite runs on one node: the lock is the coordinator's own single-run rule.
struct NodeLock;

#[async_trait]
impl CleanupLock for NodeLock {
    async fn release(self: Box<Self>) {}
}

impl SqliteStore {
    async fn cleanup_lock(&self) -> Result<Option<Box<dyn CleanupLock>>, StoreError> {
        Ok(Some(Box::new(NodeLock)))
    }
}

/// A session advisory lock on its own connection. Dropped without `release` (a panic),
/// the connection is detached and closed, which ends the session and frees the lock.
struct PgLock(Option<PoolConnection<Postgres>>);

#[async_trait]
impl CleanupLock for PgLock {
    async fn release(mut self: Box<Self>) {
        if let Some(mut conn) = self.0.take() {
            let ok = sqlx::query("SELECT pg_advisory_unlock($1)").bind(CLEANUP_LOCK_KEY).execute(&mut *conn).await;
            if ok.is_err() {
                drop(conn.detach());
            }
        }
    }
}

impl Drop for PgLock {
    fn drop(&mut self) {
        if let Some(conn) = self.0.take() {
            drop(conn.detach());
        }
    }
}

impl PgStore {
    async fn cleanup_lock(&self) -> Result<Option<Box<dyn CleanupLock>>, StoreError> {
        let mut conn = self.pool().acquire().await.map_err(map_sqlx)?;
        let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(CLEANUP_LOCK_KEY)
            .fetch_one(&mut *conn)
            .await
            .map_err(map_sqlx)?;
        Ok(got.then(|| Box::new(PgLock(Some(conn))) as Box<dyn CleanupLock>))
    }
}
