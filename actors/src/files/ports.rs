//! Ports of the files feature: the content-addressed [`BlobStore`] (local folder or
//! S3-compatible, implemented in the `exai` crate), the [`FileRegistry`] over the
//! `provider_file_uploads`, `file_leases`, `cleanup_runs` and `cleanup_items` tables
//! (implemented by the SQLite and PostgreSQL stores), and [`ProviderFiles`], the provider
//! Files API as the cleanup needs it (implemented over `ProviderSet`; tests inject failures
//! through it).
//!
//! References are leases: every reference an upload row counts is one `file_leases` row
//! with a [`LeaseScope`] and an expiry, so a reference is released exactly once — by the
//! call that took it ([`LeaseScope::Call`]), by the user (`kimi_manage_files` delete) or by
//! its expiry (a cleanup run's first stage).

use crate::ports::StoreError;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Why a blob operation failed (never contains file contents).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BlobError {
    /// Reading the source file or writing the local store failed.
    #[error("blob store I/O error: {0}")]
    Io(String),
    /// The remote object store failed.
    #[error("blob store backend error: {0}")]
    Backend(String),
    /// No blob under this key.
    #[error("blob not found: {0}")]
    NotFound(String),
    /// A key that is not a sha256 hex digest.
    #[error("invalid blob key: {0}")]
    InvalidKey(String),
}

/// A stored blob.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobInfo {
    /// The key (the sha256 hex digest of the content, plus the backend's prefix).
    pub key: String,
    /// Lower-case sha256 hex digest of the content.
    pub sha256: String,
    /// xxh3-64 of the content (fast in-memory dedup key; not an identity).
    pub xxh3: u64,
    /// Size in bytes.
    pub size: u64,
}

/// Content-addressed blob storage. Writes are streamed with bounded memory and atomic
/// (a reader never sees a partial blob); putting the same content twice stores it once.
#[async_trait]
pub trait BlobStore: Send + Sync + 'static {
    /// `local` or `s3`.
    fn kind(&self) -> &'static str;
    /// The key a blob of this sha256 is stored under (what uploads record as `blob_key`).
    fn key_of(&self, sha256: &str) -> String;
    /// Stream the file at `path` into the store, hashing it in the same pass.
    async fn put_file(&self, path: &Path) -> Result<BlobInfo, BlobError>;
    /// Store the chunks of a shared read (see [`super::hash::hashed_chunks`]), hashing them;
    /// an error item, or fewer or more than `size` bytes, fails the put and stores nothing.
    async fn put_stream(&self, chunks: ChunkReceiver, size: u64) -> Result<BlobInfo, BlobError>;
    /// Whether a blob with this sha256 exists.
    async fn exists(&self, sha256: &str) -> Result<bool, BlobError>;
    /// Stream a blob out to `dest` (created or truncated); returns its size.
    async fn get_to_file(&self, sha256: &str, dest: &Path) -> Result<u64, BlobError>;
    /// Delete a blob (absent is not an error).
    async fn delete(&self, sha256: &str) -> Result<(), BlobError>;
    /// Every stored blob (content addresses only; temporary objects are not listed).
    async fn list(&self) -> Result<Vec<StoredBlob>, BlobError>;
}

/// One blob as [`BlobStore::list`] sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredBlob {
    /// The key as uploads record it (`blob_key`).
    pub key: String,
    /// Lower-case sha256 hex digest of the content.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
    /// Last write, ms since the epoch (the blob collection's grace period runs from it).
    pub modified_ms: i64,
}

/// The receiving end of a [`super::hash::ChunkSink`].
pub type ChunkReceiver = tokio::sync::mpsc::Receiver<std::io::Result<bytes::Bytes>>;

/// Whether `s` is a lower-case sha256 hex digest (the only keys blob stores accept).
pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Upload states of a `provider_file_uploads` row.
pub mod status {
    /// Reserved; the provider upload has not finished.
    pub const PENDING: &str = "pending";
    /// At the provider under `provider_file_id`.
    pub const COMPLETED: &str = "completed";
    /// The provider upload failed.
    pub const FAILED: &str = "failed";
    /// Removed at the provider; the row is kept only while references remain.
    pub const DELETED: &str = "deleted";
}

/// A `provider_file_uploads` row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRef {
    /// Row id.
    pub id: i64,
    /// Provider name.
    pub provider: String,
    /// Content identity.
    pub sha256: String,
    /// Provider's file id once uploaded.
    pub provider_file_id: Option<String>,
    /// See [`status`].
    pub upload_status: String,
    /// `direct`, `gateway` or `blob_only`.
    pub upload_method: Option<String>,
    /// Blob store key when the content is also kept there.
    pub blob_key: Option<String>,
    /// Live references.
    pub reference_count: i64,
    /// Size in bytes.
    pub file_size_bytes: i64,
    /// Name at first upload.
    pub filename: String,
    /// Last acquire or release.
    pub last_used_at_ms: i64,
    /// When the count last reached zero (soft delete); `None` while referenced.
    pub deleted_at_ms: Option<i64>,
    /// Set while a cleanup run has claimed the row (`cleanup_claimed_at`): the provider
    /// file may already be gone, so the row is never reused as it is.
    pub claimed: bool,
}

impl FileRef {
    /// Usable as-is: uploaded and not being cleaned up.
    pub fn is_ready(&self) -> bool {
        self.upload_status == status::COMPLETED && self.provider_file_id.is_some() && !self.claimed
    }
}

/// Who holds a reference and so when it is released.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeaseScope {
    /// Taken for one tool call (chat with files): released when the call ends, however it
    /// ends; the expiry is only the backstop for a process that died meanwhile.
    Call,
    /// Handed to the user (upload tools): released by `kimi_manage_files` delete or when it
    /// expires (`files.reference_ttl_secs`).
    Upload,
}

impl LeaseScope {
    /// The `file_leases.scope` value.
    pub fn as_str(self) -> &'static str {
        match self {
            LeaseScope::Call => "call",
            LeaseScope::Upload => "upload",
        }
    }
}

/// The lease an acquisition takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewLease {
    /// Who holds it.
    pub scope: LeaseScope,
    /// When it expires, ms.
    pub expires_at_ms: i64,
}

/// What [`FileRegistry::acquire_file_ref`] returns: the row and the lease taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acquisition {
    /// The row after the statement.
    pub file: FileRef,
    /// The `file_leases` row of this reference.
    pub lease_id: i64,
}

/// One page of expired leases, released.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExpiredLeases {
    /// Leases released in this page (upload and blob leases).
    pub leases: u64,
    /// Upload rows whose count went down, as they are after it, with the number released.
    pub rows: Vec<(FileRef, u64)>,
}

/// What [`FileRegistry::acquire_file_ref`] inserts when no row exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewFileRef {
    /// Provider name.
    pub provider: String,
    /// Content identity.
    pub sha256: String,
    /// File name.
    pub filename: String,
    /// Size in bytes.
    pub size: i64,
    /// MIME type if known.
    pub mime_type: Option<String>,
    /// Upload purpose.
    pub purpose: String,
    /// `direct` or `gateway`.
    pub upload_method: String,
    /// Blob key when kept in the blob store too.
    pub blob_key: Option<String>,
    /// The lease this reference is.
    pub lease: NewLease,
    /// Now, ms.
    pub now_ms: i64,
}

/// One audited item of a cleanup run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CleanupItem {
    /// Row id of the upload.
    pub upload_id: i64,
    /// Provider.
    pub provider: String,
    /// Provider file id.
    pub provider_file_id: Option<String>,
    /// `validate`, `provider`, `db` or `restore`.
    pub stage: String,
    /// `would_delete`, `deleted`, `failed`, `skipped`, `restored`.
    pub outcome: String,
    /// Error text (never file contents).
    pub error: Option<String>,
    /// When, ms.
    pub at_ms: i64,
}

/// Totals and outcome of a cleanup run (one `cleanup_runs` row).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CleanupSummary {
    /// Final state reached (`audit` when it ran to the end).
    pub state: String,
    /// Candidates discovered.
    pub discovered: i64,
    /// Candidates that passed validation (and were claimed unless dry-run).
    pub validated: i64,
    /// Removed at the provider and in the database.
    pub deleted: i64,
    /// Provider deletions that failed (after retries).
    pub failed: i64,
    /// Skipped (live references, grace period, quota).
    pub skipped: i64,
    /// `completed`, `completed_with_failures`, `dry_run`, `aborted_share`,
    /// `aborted_failures`, `nothing_to_do`.
    pub outcome: String,
    /// Human notes.
    pub notes: String,
    /// References released because they expired.
    pub leases_expired: i64,
    /// Blobs removed from the blob store (no upload row and no lease names them).
    pub blobs_deleted: i64,
}

/// What the store holds about uploads and cleanups, for the dashboard: the same on every
/// node sharing the store (unlike the process's counters).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct FileStats {
    /// Completed uploads that are not soft-deleted (one per provider and content).
    pub files: i64,
    /// References those uploads hold.
    pub references: i64,
    /// References beyond the first of each upload: uses served without a new upload.
    pub reused: i64,
    /// Bytes those reused references did not upload again.
    pub bytes_saved: i64,
    /// Cleanup runs recorded.
    pub cleanup_runs: i64,
    /// Of those, dry runs.
    pub cleanup_dry_runs: i64,
    /// Provider files the runs deleted, failed to delete, skipped.
    pub cleanup_deleted: i64,
    /// See `cleanup_deleted`.
    pub cleanup_failed: i64,
    /// See `cleanup_deleted`.
    pub cleanup_skipped: i64,
    /// Start (Unix ms) and outcome of the newest run.
    pub last_run_at_ms: Option<i64>,
    /// See `last_run_at_ms`.
    pub last_run_outcome: Option<String>,
}

/// Held while a node runs a cleanup (PostgreSQL: a session advisory lock on a dedicated
/// connection; SQLite: nothing beyond the single process).
#[async_trait]
pub trait CleanupLock: Send {
    /// Give the lock up.
    async fn release(self: Box<Self>);
}

/// Storage of uploads and cleanup audit. Every method is one statement (or one
/// transaction); none builds SQL from values.
#[async_trait]
pub trait FileRegistry: Send + Sync + 'static {
    /// The one atomic upsert: insert with one reference (status `pending`) or add one
    /// reference to the existing (provider, sha256) row (clearing a soft delete), and the
    /// reference's lease, in one transaction; returns the row as it is after the statement.
    async fn acquire_file_ref(&self, f: &NewFileRef) -> Result<Acquisition, StoreError>;

    /// Whether any row of `provider` has exactly `size` bytes (a cheap pre-check: content
    /// of a size no row has is certainly new). The default answers `true`, which only costs
    /// a hashing pass before the upload.
    async fn any_file_of_size(&self, _provider: &str, _size: u64) -> Result<bool, StoreError> {
        Ok(true)
    }
    /// Record a finished provider upload (status `completed`, any cleanup claim cleared);
    /// false if the row is gone.
    async fn complete_upload(
        &self,
        id: i64,
        provider_file_id: &str,
        blob_key: Option<&str>,
        now_ms: i64,
    ) -> Result<bool, StoreError>;
    /// A provider upload failed: status `failed` (unless another caller completed it), the
    /// caller's lease released.
    async fn fail_upload(&self, id: i64, lease_id: i64, error: &str, now_ms: i64) -> Result<(), StoreError>;
    /// Release leases (those already released are skipped, so a release is never counted
    /// twice); a row reaching zero references is soft-deleted (`deleted_at` = now).
    async fn release_leases(&self, lease_ids: &[i64], now_ms: i64) -> Result<(), StoreError>;
    /// A lease on a blob-only file (no upload row), keeping its blob from the collection.
    async fn add_blob_lease(&self, blob_key: &str, lease: NewLease, now_ms: i64) -> Result<i64, StoreError>;
    /// Release at most `limit` leases expired at `now_ms` (one transaction); see
    /// [`ExpiredLeases`]. Fewer than `limit` released means none is left.
    async fn expire_leases(&self, now_ms: i64, limit: u32) -> Result<ExpiredLeases, StoreError>;
    /// Whether a blob is still needed: an upload row names it and still holds references,
    /// a provider file or an upload in progress, or a lease names it.
    async fn blob_in_use(&self, blob_key: &str) -> Result<bool, StoreError>;
    /// Give one user reference (an `upload` lease, the oldest) back; reaching zero
    /// soft-deletes the row (`deleted_at` = now). References held by running calls are not
    /// touched. Returns the row after the update, if it exists.
    async fn release_file_ref(
        &self,
        provider: &str,
        provider_file_id: &str,
        now_ms: i64,
    ) -> Result<Option<FileRef>, StoreError>;
    /// The row of a provider file.
    async fn get_file_ref(&self, provider: &str, provider_file_id: &str) -> Result<Option<FileRef>, StoreError>;
    /// Rows of a provider (or all), newest first, at most `limit`.
    async fn list_file_refs(&self, provider: Option<&str>, limit: u32) -> Result<Vec<FileRef>, StoreError>;
    /// Discover (one page, by id after `after_id`): completed rows soft-deleted at or
    /// before `cutoff_ms` with no references, plus rows still claimed by an interrupted run.
    async fn cleanup_candidates(&self, cutoff_ms: i64, after_id: i64, limit: u32) -> Result<Vec<FileRef>, StoreError>;
    /// Rows that hold a provider file (`completed` with a provider id).
    async fn count_provider_files(&self) -> Result<i64, StoreError>;
    /// Validate + claim in one statement: set `cleanup_claimed_at` only if the row is still
    /// unreferenced and soft-deleted at or before `cutoff_ms`; a row already claimed (by an
    /// interrupted run) is taken over. False when the row no longer qualifies.
    async fn claim_for_cleanup(&self, id: i64, cutoff_ms: i64) -> Result<bool, StoreError>;
    /// Undo a claim whose provider file still exists (only if it still names that file).
    async fn unclaim(&self, id: i64, provider_file_id: &str) -> Result<bool, StoreError>;
    /// The provider removed the file: delete the row if unreferenced, else mark it
    /// `deleted` (no provider id, claim cleared). Only touches the row if it still names
    /// that file.
    async fn finish_cleanup(&self, id: i64, provider_file_id: &str, now_ms: i64) -> Result<bool, StoreError>;
    /// Open a `cleanup_runs` row; returns its id.
    async fn start_cleanup_run(&self, trigger: &str, dry_run: bool, now_ms: i64) -> Result<i64, StoreError>;
    /// Write `cleanup_items` rows in one transaction.
    async fn record_cleanup_items(&self, run_id: i64, items: &[CleanupItem]) -> Result<(), StoreError>;
    /// Close the run row with its totals.
    async fn finish_cleanup_run(&self, run_id: i64, s: &CleanupSummary, now_ms: i64) -> Result<(), StoreError>;
    /// Try to become the one node running a cleanup; `None` when another node holds it.
    async fn try_cleanup_lock(&self) -> Result<Option<Box<dyn CleanupLock>>, StoreError>;
    /// Dedup and cleanup totals from the tables (two aggregate queries).
    async fn file_stats(&self) -> Result<FileStats, StoreError>;
}

/// The provider Files API as the cleanup uses it.
#[async_trait(?Send)]
pub trait ProviderFiles {
    /// Delete a provider file. `Ok(true)`: removed; `Ok(false)`: it was already gone (404).
    async fn delete_file(&self, provider: &str, provider_file_id: &str) -> Result<bool, String>;
}
