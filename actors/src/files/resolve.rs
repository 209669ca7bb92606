//! The dedup manager's work for one [`Acquire`] as leader of its in-flight group: hash
//! first (a possible hit: some stored file has this size) or upload first (certainly new
//! content: read once, hashed while it streams to the provider and, for the `gateway` tier,
//! into the blob store from the same read), then take the reference with the registry's
//! atomic upsert. See [`super::dedup`] for the grouping.

use super::dedup::{Acquire, Acquired, KeepInBlob};
use super::hash::{chunk_channel, hash_file, Digests, TeeSlot};
use super::ports::{status, FileRef, FileRegistry, NewFileRef};
use crate::clock::now_ms;
use crate::error::ToolError;
use crate::metrics::Metrics;
use crate::ports::StoreError;
use crate::provider::actor::{FileReply, FileRequest};
use crate::provider::service::ProviderSet;
use std::sync::Arc;

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
    pub(super) async fn resolve(self, mut msg: Acquire) -> Result<Acquired, ToolError> {
        let digests = match msg.digests.clone() {
            Some(d) => d,
            None => {
                let known = self.registry.any_file_of_size(&msg.provider, msg.size).await.map_err(store_error)?;
                if !known {
                    return self.upload_first(msg).await;
                }
                match msg.keep_in_blob.clone() {
                    Some(KeepInBlob(blob)) => {
                        let info = blob.put_file(&msg.path).await.map_err(blob_error)?;
                        msg.blob_key = Some(info.key);
                        Digests { sha256: info.sha256, xxh3: info.xxh3, size: info.size }
                    }
                    None => hash_file(msg.path.clone()).await.map_err(read_error)?,
                }
            }
        };
        self.acquire_hashed(msg, digests).await
    }

    /// New content: upload it (read once, hashed on the way), then record the reference.
    async fn upload_first(self, mut msg: Acquire) -> Result<Acquired, ToolError> {
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
        let (uploaded, kept) = tokio::join!(self.providers.file_op(&msg.provider, op), keep);
        let pf = match uploaded? {
            FileReply::File(pf) => pf,
            _ => {
                return Err(ToolError::Provider { provider: msg.provider, message: "unexpected upload answer".into() })
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
        let row = match self.registry.acquire_file_ref(&new).await {
            Ok(row) => row,
            Err(e) => {
                self.delete_quietly(&msg.provider, &pf.id, "the reference could not be recorded").await;
                return Err(store_error(e));
            }
        };
        if row.is_ready() {
            self.delete_quietly(&msg.provider, &pf.id, "the same content was uploaded meanwhile").await;
            return Ok(Acquired { file: row, hit: false });
        }
        self.complete(row, pf.id, &msg, msg.size).await
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
            now_ms: now_ms(),
        }
    }

    /// Record a finished upload on its row.
    async fn complete(
        &self,
        mut row: FileRef,
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
        Ok(Acquired { file: row, hit: false })
    }

    /// One reference (atomic upsert); upload when the row has no usable provider file.
    async fn acquire_hashed(self, msg: Acquire, digests: Digests) -> Result<Acquired, ToolError> {
        let new = self.new_ref(&msg, digests.sha256.clone(), digests.size);
        let row = self.registry.acquire_file_ref(&new).await.map_err(store_error)?;
        if row.is_ready() {
            self.metrics.obs.dedup_hits.inc();
            self.metrics.obs.dedup_bytes_saved.inc_by(digests.size);
            tracing::debug!(provider = %msg.provider, upload_id = row.id, refs = row.reference_count, "dedup hit");
            return Ok(Acquired { file: row, hit: true });
        }
        self.metrics.obs.dedup_misses.inc();
        let op = FileRequest::Upload {
            path: msg.path.clone(),
            filename: msg.filename.clone(),
            purpose: msg.purpose.clone(),
            tee: TeeSlot::default(),
        };
        match self.providers.file_op(&msg.provider, op).await {
            // The upload hashed what it sent: a file changed since it was hashed would be
            // recorded under another content's identity, so it is refused instead.
            Ok(FileReply::File(pf)) if pf.sha256.as_ref().is_some_and(|s| *s != digests.sha256) => {
                self.delete_quietly(&msg.provider, &pf.id, "the file changed during its upload").await;
                let e = ToolError::Execution(format!(
                    "{} changed while it was being uploaded; nothing was recorded, send it again",
                    msg.filename
                ));
                let _ = self.registry.fail_upload(row.id, &e.to_string(), now_ms()).await;
                Err(e)
            }
            Ok(FileReply::File(pf)) => self.complete(row, pf.id, &msg, digests.size).await,
            Ok(_) => {
                let e = ToolError::Provider { provider: msg.provider, message: "unexpected upload answer".into() };
                let _ = self.registry.fail_upload(row.id, &e.to_string(), now_ms()).await;
                Err(e)
            }
            Err(e) => {
                let _ = self.registry.fail_upload(row.id, &e.to_string(), now_ms()).await;
                Err(e)
            }
        }
    }
}
