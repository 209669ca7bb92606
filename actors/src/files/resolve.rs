//! The dedup manager's work for one [`Acquire`] as leader of its in-flight group: hash
//! first (a possible hit: some stored file has this size) or upload first (certainly new
//! content: read once, hashed while it streams to the provider and, for the `gateway` tier,
//! into the blob store from the same read), then take the reference with the registry's
//! atomic upsert (which also takes the caller's lease). See [`super::dedup`] for the
//! grouping.
//!
//! A failure says whether it is the provider's final answer for this file (an auth, client
//! or protocol error, or an unsupported request: retrying would get the same answer), in
//! which case the requests waiting for this leader with the same file share it instead of
//! each uploading again.

use super::dedup::{Acquire, Acquired, KeepInBlob};
use super::hash::{chunk_channel, hash_file, Digests, TeeSlot};
use super::ports::{status, FileRef, FileRegistry, NewFileRef};
use crate::clock::now_ms;
use crate::error::ToolError;
use crate::metrics::Metrics;
use crate::ports::StoreError;
use crate::provider::actor::{FileReply, FileRequest};
use crate::provider::service::ProviderSet;
use crate::provider::types::ErrorClass;
use std::sync::Arc;

/// A leader's failure: the error, and whether waiters for the same file share it.
#[derive(Debug, Clone)]
pub(super) struct Failed {
    pub(super) error: ToolError,
    pub(super) final_answer: bool,
}

impl From<ToolError> for Failed {
    fn from(error: ToolError) -> Self {
        Failed { error, final_answer: false }
    }
}

/// A provider failure that retrying the same file would only repeat.
fn final_answer(class: Option<ErrorClass>) -> bool {
    matches!(class, Some(ErrorClass::Auth | ErrorClass::Client | ErrorClass::Protocol | ErrorClass::Local))
}

fn upload_failed((error, class): (ToolError, Option<ErrorClass>)) -> Failed {
    Failed { final_answer: final_answer(class) && !matches!(error, ToolError::Cancelled { .. }), error }
}

pub(super) fn store_error(e: StoreError) -> ToolError {
    ToolError::Unavailable(format!("file registry: {e}"))
}

fn blob_error(e: super::ports::BlobError) -> ToolError {
    ToolError::Execution(e.to_string())
}

fn read_error(e: std::io::Error) -> ToolError {
    ToolError::Execution(format!("cannot read the file: {}", e.kind()))
}

pub(super) struct Resolver {
    pub(super) registry: Arc<dyn FileRegistry>,
    pub(super) providers: Arc<ProviderSet>,
    pub(super) metrics: Metrics,
}

impl Resolver {
    /// Hash first (a possible hit) or upload first (certainly new content), see the module doc.
    pub(super) async fn resolve(self, mut msg: Acquire) -> Result<Acquired, Failed> {
        let digests = match msg.digests.clone() {
            Some(d) => d,
            None => {
                let known = self.registry.any_file_of_size(&msg.provider, msg.size).await.map_err(store_error)?;
                if !known {
                    return self.upload_first(msg).await;
                }
                match msg.keep_in_blob.clone() {
                    // Hash first; the blob is written only if the store does not hold it yet
                    // (a repeat upload of a large file never rewrites its blob).
                    Some(KeepInBlob(blob)) => {
                        let d = hash_file(msg.path.clone()).await.map_err(read_error)?;
                        msg.blob_key = Some(ensure_blob(blob.as_ref(), &msg.path, &d).await?);
                        d
                    }
                    None => hash_file(msg.path.clone()).await.map_err(read_error)?,
                }
            }
        };
        self.acquire_hashed(msg, digests).await
    }

    /// New content: upload it (read once, hashed on the way), then record the reference.
    async fn upload_first(self, mut msg: Acquire) -> Result<Acquired, Failed> {
        self.metrics.obs.dedup_misses.inc();
        let (tee, kept) = match &msg.keep_in_blob {
            Some(KeepInBlob(blob)) => {
                let (sink, chunks) = chunk_channel();
                let (blob, size) = (Arc::clone(blob), msg.size);
                (TeeSlot::new(sink), Some(async move { blob.put_stream(chunks, size).await }))
            }
            None => (TeeSlot::default(), None),
        };
        let op = FileRequest::Upload {
            path: msg.path.clone(),
            filename: msg.filename.clone(),
            purpose: msg.purpose.clone(),
            tee,
        };
        let keep = async move {
            match kept {
                Some(put) => Some(put.await),
                None => None,
            }
        };
        let (uploaded, kept) = tokio::join!(self.providers.file_op_classed(&msg.provider, op), keep);
        let pf = match uploaded.map_err(upload_failed)? {
            FileReply::File(pf) => pf,
            _ => {
                return Err(
                    ToolError::Provider { provider: msg.provider, message: "unexpected upload answer".into() }.into()
                )
            }
        };
        match (kept, &msg.keep_in_blob) {
            (Some(Ok(info)), _) => msg.blob_key = Some(info.key),
            // The shared read did not reach the blob store whole (a retried upload): store it now.
            (Some(Err(e)), Some(KeepInBlob(blob))) => {
                tracing::debug!(error = %e, "blob copy from the shared read failed; storing it separately");
                msg.blob_key = Some(blob.put_file(&msg.path).await.map_err(blob_error)?.key);
            }
            _ => {}
        }
        let sha256 = match pf.sha256.clone() {
            Some(s) => s,
            // A transport that did not hash what it sent: hash the file now.
            None => hash_file(msg.path.clone()).await.map_err(read_error)?.sha256,
        };
        let new = self.new_ref(&msg, sha256, msg.size);
        let acq = match self.registry.acquire_file_ref(&new).await {
            Ok(acq) => acq,
            Err(e) => {
                self.delete_quietly(&msg.provider, &pf.id, "the reference could not be recorded").await;
                return Err(store_error(e).into());
            }
        };
        if acq.file.is_ready() {
            self.delete_quietly(&msg.provider, &pf.id, "the same content was uploaded meanwhile").await;
            return Ok(Acquired { file: acq.file, lease_id: acq.lease_id, hit: false });
        }
        Ok(self.complete(acq.file, acq.lease_id, pf.id, &msg, msg.size).await?)
    }

    async fn delete_quietly(&self, provider: &str, id: &str, why: &str) {
        match self.providers.file_op(provider, FileRequest::Delete(id.to_string())).await {
            Ok(_) => tracing::info!(provider = %provider, why, "duplicate provider file deleted"),
            Err(e) => {
                tracing::warn!(provider = %provider, why, error = %e, "could not delete a duplicate provider file")
            }
        }
    }

    fn new_ref(&self, msg: &Acquire, sha256: String, size: u64) -> NewFileRef {
        NewFileRef {
            provider: msg.provider.clone(),
            sha256,
            filename: msg.filename.clone(),
            size: i64::try_from(size).unwrap_or(i64::MAX),
            mime_type: None,
            purpose: msg.purpose.clone(),
            upload_method: msg.method.clone(),
            blob_key: msg.blob_key.clone(),
            lease: msg.lease,
            now_ms: now_ms(),
        }
    }

    /// Record a finished upload on its row.
    async fn complete(
        &self,
        mut row: FileRef,
        lease_id: i64,
        provider_file_id: String,
        msg: &Acquire,
        size: u64,
    ) -> Result<Acquired, ToolError> {
        self.registry
            .complete_upload(row.id, &provider_file_id, msg.blob_key.as_deref(), now_ms())
            .await
            .map_err(store_error)?;
        tracing::info!(provider = %msg.provider, upload_id = row.id, bytes = size, "file uploaded");
        row.provider_file_id = Some(provider_file_id);
        row.upload_status = status::COMPLETED.into();
        if msg.blob_key.is_some() {
            row.blob_key = msg.blob_key.clone();
        }
        Ok(Acquired { file: row, lease_id, hit: false })
    }

    /// One reference (atomic upsert); upload when the row has no usable provider file.
    async fn acquire_hashed(self, msg: Acquire, digests: Digests) -> Result<Acquired, Failed> {
        let new = self.new_ref(&msg, digests.sha256.clone(), digests.size);
        let acq = self.registry.acquire_file_ref(&new).await.map_err(store_error)?;
        let (row, lease_id) = (acq.file, acq.lease_id);
        if row.is_ready() {
            self.metrics.obs.dedup_hits.inc();
            self.metrics.obs.dedup_bytes_saved.inc_by(digests.size);
            tracing::debug!(provider = %msg.provider, upload_id = row.id, refs = row.reference_count, "dedup hit");
            return Ok(Acquired { file: row, lease_id, hit: true });
        }
        self.metrics.obs.dedup_misses.inc();
        let op = FileRequest::Upload {
            path: msg.path.clone(),
            filename: msg.filename.clone(),
            purpose: msg.purpose.clone(),
            tee: TeeSlot::default(),
        };
        let failed = match self.providers.file_op_classed(&msg.provider, op).await {
            // The upload hashed what it sent: a file changed since it was hashed would be
            // recorded under another content's identity, so it is refused instead.
            Ok(FileReply::File(pf)) if pf.sha256.as_ref().is_some_and(|s| *s != digests.sha256) => {
                self.delete_quietly(&msg.provider, &pf.id, "the file changed during its upload").await;
                Failed::from(ToolError::Execution(format!(
                    "{} changed while it was being uploaded; nothing was recorded, send it again",
                    msg.filename
                )))
            }
            Ok(FileReply::File(pf)) => return Ok(self.complete(row, lease_id, pf.id, &msg, digests.size).await?),
            Ok(_) => Failed::from(ToolError::Provider {
                provider: msg.provider.clone(),
                message: "unexpected upload answer".into(),
            }),
            Err(e) => upload_failed(e),
        };
        let _ = self.registry.fail_upload(row.id, lease_id, &failed.error.to_string(), now_ms()).await;
        Err(failed)
    }
}

/// The blob key of content already hashed: the existing blob when the store holds it
/// (nothing is written), else a new put.
pub(super) async fn ensure_blob(
    blob: &dyn super::ports::BlobStore,
    path: &std::path::Path,
    d: &Digests,
) -> Result<String, ToolError> {
    if blob.exists(&d.sha256).await.map_err(blob_error)? {
        tracing::debug!(bytes = d.size, "blob already stored; not written again");
        return Ok(blob.key_of(&d.sha256));
    }
    let info = blob.put_file(path).await.map_err(blob_error)?;
    if info.sha256 != d.sha256 {
        // Changed between the hash and the put: the blob holds other bytes than the hash names.
        return Err(ToolError::Execution("the file changed while it was being stored; send it again".into()));
    }
    Ok(info.key)
}
