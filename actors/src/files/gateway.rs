//! `FileGateway`: what the file tools call to get a file to a provider.
//!
//! One upload: resolve the path under the allowed roots (symlinks resolved) → the policy
//! tier by size → `blob_only`: stream the file into the blob store while hashing it (one
//! read), done. `direct` and `gateway`: [`Acquire`] from the dedup manager, which uploads
//! only on a miss. Content of a size no stored file has is certainly new: it is read once,
//! hashed while it streams to the provider and — for `gateway` — to the blob store from the
//! same read. Otherwise it is hashed first (for `gateway`, on its way into the blob store),
//! and a hit never reads it again; only a miss of a size that exists reads it twice.

use super::cleanup::CleanupCoordinator;
use super::dedup::{Acquire, DedupManager, KeepInBlob, Release};
use super::hash::hash_file;
use super::policy::{Tier, UploadPolicy};
use super::ports::{BlobStore, FileRef, FileRegistry};
use crate::error::ToolError;
use crate::supervision::ChildHandle;
use crate::tools::files::FileAccess;
use serde::Serialize;
use std::path::PathBuf;
use std::sync::Arc;

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
    pub async fn upload(
        &self,
        access: &FileAccess,
        field: &str,
        raw: &str,
        provider: &str,
        embed_allowed: bool,
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
        };
        if tier == Tier::Embed {
            out.note = Some(format!(
                "under {} bytes (files.embed_max_bytes): its text is embedded in the prompt, no upload",
                self.policy.embed_max_bytes
            ));
            return Ok(out);
        }
        // Blob tiers hash on the way into the blob store; `direct` leaves it to the dedup
        // manager, which hashes while uploading when the content is certainly new.
        let digests = match (tier, &self.blob) {
            (Tier::BlobOnly, Some(blob)) => {
                let info = blob.put_file(&path).await.map_err(|e| ToolError::Execution(e.to_string()))?;
                out.blob_key = Some(info.key.clone());
                Some(super::hash::Digests { sha256: info.sha256, xxh3: info.xxh3, size: info.size })
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
        Ok(out)
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
