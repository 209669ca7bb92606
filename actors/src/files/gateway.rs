//! `FileGateway`: what the file tools call to get a file to a provider.
//!
//! One upload: resolve the path under the allowed roots (symlinks resolved) → the policy
//! tier by size → `blob_only`: stream the file into the blob store while hashing it (one
//! read), done. `direct` and `gateway`: [`Acquire`] from the dedup manager, which uploads
//! only on a miss. Content of a size no stored file has is certainly new: it is read once,
//! hashed while it streams to the provider and — for `gateway` — to the blob store from the
//! same read. Otherwise it is hashed first (for `gateway`, on its way into the blob store),
//! and a hit never reads it again; only a miss of a size that exists reads it twice. A blob
//! the store already holds is never written again.
//!
//! Every upload takes a reference, which is a lease ([`LeaseScope`]): upload tools hand it
//! to the user (released by `kimi_manage_files` delete or after `files.reference_ttl_secs`);
//! chat tools hold it in a [`CallLeases`] for the length of the call, released when the
//! call ends however it ends (its `Drop` releases what an ended or dropped call still
//! holds). Kimi uploads are checked against Kimi's documented file types first.

use super::cleanup::CleanupCoordinator;
use super::dedup::{Acquire, DedupManager, KeepInBlob, Release};
use super::hash::hash_file;
use super::policy::{Tier, UploadPolicy};
use super::ports::{BlobStore, FileRef, FileRegistry, LeaseScope, NewLease};
use crate::error::ToolError;
use crate::supervision::ChildHandle;
use crate::tools::files::FileAccess;
use serde::Serialize;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Upload purposes by provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Purposes {
    /// Kimi (`file-extract` lets `files/{id}/content` return the extracted text).
    pub kimi: String,
    /// GLM (`agent`).
    pub glm: String,
    /// OpenAI-compatible providers (`assistants`).
    pub other: String,
}

/// The gateway and its collaborators.
pub struct FileGateway {
    /// The policy table.
    pub policy: UploadPolicy,
    /// The blob store, when configured.
    pub blob: Option<Arc<dyn BlobStore>>,
    /// The uploads registry.
    pub registry: Arc<dyn FileRegistry>,
    /// The dedup manager.
    pub dedup: ChildHandle<DedupManager>,
    /// The cleanup coordinator.
    pub cleanup: ChildHandle<CleanupCoordinator>,
    /// Upload purposes.
    pub purposes: Purposes,
    /// Most files per tool call.
    pub max_files_per_call: usize,
    /// How long a reference handed to the user lives (`files.reference_ttl_secs`); also the
    /// backstop expiry of call references.
    pub reference_ttl: Duration,
}

/// What became of one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Uploaded {
    /// Canonical path.
    pub path: String,
    /// Name given to the provider.
    pub filename: String,
    /// Size in bytes.
    pub size: u64,
    /// Content identity (absent for embedded files, which are not hashed).
    pub sha256: Option<String>,
    /// Policy tier.
    pub tier: Tier,
    /// Provider (absent for blob-only).
    pub provider: Option<String>,
    /// Provider file id.
    pub provider_file_id: Option<String>,
    /// Blob store key when kept there.
    pub blob_key: Option<String>,
    /// An existing provider file was reused.
    pub dedup_hit: bool,
    /// References to the provider file after this upload.
    pub reference_count: Option<i64>,
    /// A plain statement for the caller (blob-only, embed).
    pub note: Option<String>,
    /// When the reference this upload took expires, ms since the epoch (user references).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference_expires_at_ms: Option<i64>,
    /// The lease of the reference (internal).
    #[serde(skip)]
    pub lease_id: Option<i64>,
}

impl FileGateway {
    /// The purpose for a provider.
    pub fn purpose(&self, provider: &str) -> &str {
        match provider {
            "kimi" => &self.purposes.kimi,
            "glm" => &self.purposes.glm,
            _ => &self.purposes.other,
        }
    }

    /// Check the number of files of one call.
    pub fn check_count(&self, field: &str, n: usize) -> Result<(), ToolError> {
        if n == 0 {
            return Err(ToolError::InvalidArguments { field: field.into(), message: "no files given".into() });
        }
        if n > self.max_files_per_call {
            return Err(ToolError::InvalidArguments {
                field: field.into(),
                message: format!(
                    "{n} files; the limit is {} per call (files.max_files_per_call)",
                    self.max_files_per_call
                ),
            });
        }
        Ok(())
    }

    /// Resolve a path and its size (allowed roots, symlinks resolved).
    pub async fn resolve(&self, access: &FileAccess, field: &str, raw: &str) -> Result<(PathBuf, u64), ToolError> {
        access.resolve(field, raw).await
    }

    /// Upload one file to `provider` following the policy. `embed_allowed`: small files are
    /// returned as [`Tier::Embed`] without an upload (the caller embeds their text).
    /// `scope`: who holds the reference taken (the lease id is in the result; for
    /// [`LeaseScope::Call`] pass it to [`CallLeases`]).
    pub async fn upload(
        &self,
        access: &FileAccess,
        field: &str,
        raw: &str,
        provider: &str,
        embed_allowed: bool,
        scope: LeaseScope,
    ) -> Result<Uploaded, ToolError> {
        let (path, size) = self.resolve(access, field, raw).await?;
        let shown = path.display().to_string();
        let tier = self
            .policy
            .decide(&shown, provider, size, embed_allowed)
            .map_err(|r| ToolError::InvalidArguments { field: field.to_string(), message: r.to_string() })?;
        let filename = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "file".into());
        let mut out = Uploaded {
            path: shown,
            filename: filename.clone(),
            size,
            sha256: None,
            tier,
            provider: None,
            provider_file_id: None,
            blob_key: None,
            dedup_hit: false,
            reference_count: None,
            note: None,
            reference_expires_at_ms: None,
            lease_id: None,
        };
        if tier == Tier::Embed {
            out.note = Some(format!(
                "under {} bytes (files.embed_max_bytes): its text is embedded in the prompt, no upload",
                self.policy.embed_max_bytes
            ));
            return Ok(out);
        }
        if tier != Tier::BlobOnly {
            self.policy
                .check_type(&out.path, &filename, provider)
                .map_err(|r| ToolError::InvalidArguments { field: field.to_string(), message: r.to_string() })?;
        }
        let lease = NewLease { scope, expires_at_ms: self.expiry() };
        // Blob-only: hashed first, written only if the store does not hold it yet. `direct`
        // and `gateway` leave it to the dedup manager, which hashes while uploading when the
        // content is certainly new.
        let digests = match (tier, &self.blob) {
            (Tier::BlobOnly, Some(blob)) => {
                let d = hash_file(path.clone())
                    .await
                    .map_err(|e| ToolError::Execution(format!("cannot read {}: {}", out.path, e.kind())))?;
                let key = super::resolve::ensure_blob(blob.as_ref(), &path, &d).await?;
                let lease_id = self
                    .registry
                    .add_blob_lease(&key, lease, crate::env::now_ms())
                    .await
                    .map_err(|e| ToolError::Unavailable(format!("file registry: {e}")))?;
                out.lease_id = Some(lease_id);
                out.reference_expires_at_ms = (scope == LeaseScope::Upload).then_some(lease.expires_at_ms);
                out.blob_key = Some(key);
                Some(d)
            }
            (Tier::BlobOnly, None) => Some(
                hash_file(path.clone())
                    .await
                    .map_err(|e| ToolError::Execution(format!("cannot read {}: {}", out.path, e.kind())))?,
            ),
            _ => None,
        };
        if let Some(d) = &digests {
            out.size = d.size;
            out.sha256 = Some(d.sha256.clone());
        }
        if tier == Tier::BlobOnly {
            out.note = Some(format!(
                "{} bytes is above every provider's upload limit (files.kimi_max_bytes, files.glm_max_bytes, \
                 files.other_max_bytes): kept in the blob store only, not sent to any provider",
                out.size
            ));
            return Ok(out);
        }
        let addr = self.dedup.get().ok_or_else(|| ToolError::Unavailable("dedup manager is restarting".into()))?;
        let acquired = addr
            .send(Acquire {
                provider: provider.to_string(),
                path,
                filename,
                purpose: self.purpose(provider).to_string(),
                size: out.size,
                digests,
                method: tier.as_str().to_string(),
                blob_key: out.blob_key.clone(),
                keep_in_blob: match (tier, &self.blob) {
                    (Tier::Gateway, Some(blob)) => Some(KeepInBlob(Arc::clone(blob))),
                    _ => None,
                },
                lease,
            })
            .await
            .map_err(|_| ToolError::Unavailable("dedup manager stopped during the upload".into()))??;
        out.provider = Some(provider.to_string());
        out.provider_file_id = acquired.file.provider_file_id.clone();
        out.sha256 = Some(acquired.file.sha256.clone());
        if acquired.file.blob_key.is_some() {
            out.blob_key = acquired.file.blob_key.clone();
        }
        out.dedup_hit = acquired.hit;
        out.reference_count = Some(acquired.file.reference_count);
        out.lease_id = Some(acquired.lease_id);
        out.reference_expires_at_ms = (scope == LeaseScope::Upload).then_some(lease.expires_at_ms);
        Ok(out)
    }

    fn expiry(&self) -> i64 {
        crate::env::now_ms().saturating_add(i64::try_from(self.reference_ttl.as_millis()).unwrap_or(i64::MAX))
    }

    /// A holder for the references of one call.
    pub fn call_leases(&self) -> CallLeases {
        CallLeases::new(Arc::clone(&self.registry))
    }

    /// Give one reference to a provider file back (zero soft-deletes it; the cleanup removes
    /// it after the grace period).
    pub async fn release(&self, provider: &str, provider_file_id: &str) -> Result<Option<FileRef>, ToolError> {
        let addr = self.dedup.get().ok_or_else(|| ToolError::Unavailable("dedup manager is restarting".into()))?;
        addr.send(Release { provider: provider.to_string(), provider_file_id: provider_file_id.to_string() })
            .await
            .map_err(|_| ToolError::Unavailable("dedup manager stopped".into()))?
    }
}

/// The references one tool call holds (RAII): [`CallLeases::release`] gives them back when
/// the call ends; whatever is still held when the value is dropped — an error returned
/// early, a cancelled or timed-out call whose future was dropped — is released by a task
/// spawned from `Drop`. Should the process die first, the leases' expiry releases them.
pub struct CallLeases {
    registry: Arc<dyn FileRegistry>,
    ids: Vec<i64>,
}

impl CallLeases {
    /// Nothing held yet.
    pub fn new(registry: Arc<dyn FileRegistry>) -> CallLeases {
        CallLeases { registry, ids: Vec::new() }
    }

    /// Hold the lease of an upload (if it took one).
    pub fn hold(&mut self, up: &Uploaded) {
        self.ids.extend(up.lease_id);
    }

    /// Hold a lease by id.
    pub fn hold_lease(&mut self, lease_id: i64) {
        self.ids.push(lease_id);
    }

    /// Leases held.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Hand them over for good (they now belong to whoever got the result): nothing is
    /// released.
    pub fn keep(mut self) {
        self.ids.clear();
    }

    /// Release them now (at the end of the call); a failure is logged, the expiry remains.
    pub async fn release(mut self) {
        let ids = std::mem::take(&mut self.ids);
        if let Err(e) = self.registry.release_leases(&ids, crate::env::now_ms()).await {
            tracing::warn!(error = %e, leases = ids.len(), "call file references not released; they expire");
        }
    }
}

impl Drop for CallLeases {
    fn drop(&mut self) {
        if self.ids.is_empty() {
            return;
        }
        let (registry, ids) = (Arc::clone(&self.registry), std::mem::take(&mut self.ids));
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(async move {
                    if let Err(e) = registry.release_leases(&ids, crate::env::now_ms()).await {
                        tracing::warn!(error = %e, leases = ids.len(), "call file references not released; they expire");
                    }
                });
            }
            Err(_) => tracing::warn!(leases = ids.len(), "no runtime to release call file references; they expire"),
        }
    }
}
