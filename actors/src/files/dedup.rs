//! `DedupManager`: content-based deduplication of provider uploads (a supervised child).
//!
//! States: `Serving` only. It keeps an in-flight table keyed by xxh3(provider, size) — the
//! size is known before the content is hashed, and equal content has equal size: the first
//! [`Acquire`] of a size becomes the leader while every [`Acquire`] of that size arriving
//! meanwhile waits for it and then goes through the table again (it may carry other bytes).
//! The leader:
//! - with digests (the file was hashed on its way into the blob store), or when the registry
//!   already holds some file of this provider and size (a possible hit): takes a reference
//!   with the store's atomic upsert and uploads only when the row holds no provider file —
//!   a hit never reads the file again;
//! - otherwise (no file of that size, so certainly new content): uploads first, reading the
//!   file once and hashing it while it streams to the provider, then records the reference
//!   under the sha256 of exactly the bytes sent. Should the same content have been completed
//!   meanwhile by another node, the duplicate provider file is deleted again.
//!
//! So N concurrent uploads of the same bytes make one provider upload and leave a reference
//! count of N. sha256 stays the identity: the xxh3 key only groups requests in memory; the
//! store is keyed by (provider, sha256).
//!
//! Messages: [`Acquire`] (→ the row with a provider file id; hit or miss), [`Release`]
//! (give a reference back; zero soft-deletes), [`Drain`] (no-op: work belongs to callers),
//! [`Crash`] (fault injection). Metrics: `exai_dedup_hits_total`, `exai_dedup_misses_total`,
//! `exai_dedup_bytes_saved_total`.

use super::hash::{hash_file, inflight_size_key, Digests};
use super::ports::{status, FileRef, FileRegistry, NewFileRef};
use crate::coordinator::{Crash, Drain, ExitNotifier};
use crate::env::now_ms;
use crate::error::ToolError;
use crate::metrics::Metrics;
use crate::ports::StoreError;
use crate::provider::actor::{FileReply, FileRequest};
use crate::provider::service::ProviderSet;
use actix::prelude::*;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::oneshot;

/// Take one reference to `digests` at `provider`, uploading the file if no usable provider
/// file exists yet.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<Acquired, ToolError>")]
pub struct Acquire {
    /// Provider.
    pub provider: String,
    /// The file (already checked against the allowed roots).
    pub path: PathBuf,
    /// Name to give it at the provider.
    pub filename: String,
    /// Upload purpose.
    pub purpose: String,
    /// Its size in bytes (from `stat`).
    pub size: u64,
    /// Its digests, when already computed (blob store tiers); `None` lets the manager decide
    /// whether to hash first (a possible hit) or to hash while uploading (certainly new).
    pub digests: Option<Digests>,
    /// `direct` or `gateway`.
    pub method: String,
    /// Blob key when also kept in the blob store.
    pub blob_key: Option<String>,
}

/// The row after an [`Acquire`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acquired {
    /// The row (with the provider file id).
    pub file: FileRef,
    /// True when an existing provider file was reused.
    pub hit: bool,
}

/// Give one reference back.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<Option<FileRef>, ToolError>")]
pub struct Release {
    /// Provider.
    pub provider: String,
    /// Provider file id.
    pub provider_file_id: String,
}

type Waiters = Vec<oneshot::Sender<()>>;

/// The actor.
pub struct DedupManager {
    registry: Arc<dyn FileRegistry>,
    providers: Arc<ProviderSet>,
    metrics: Metrics,
    inflight: HashMap<u64, Waiters>,
    _exit: Option<ExitNotifier>,
}

impl DedupManager {
    /// Build it.
    pub fn new(
        registry: Arc<dyn FileRegistry>,
        providers: Arc<ProviderSet>,
        metrics: Metrics,
        exit: Option<ExitNotifier>,
    ) -> Self {
        DedupManager { registry, providers, metrics, inflight: HashMap::new(), _exit: exit }
    }
}

impl Actor for DedupManager {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(4096);
    }
}

fn store_error(e: StoreError) -> ToolError {
    ToolError::Unavailable(format!("file registry: {e}"))
}

fn read_error(e: std::io::Error) -> ToolError {
    ToolError::Execution(format!("cannot read the file: {}", e.kind()))
}

struct Resolver {
    registry: Arc<dyn FileRegistry>,
    providers: Arc<ProviderSet>,
    metrics: Metrics,
}

impl Resolver {
    /// Hash first (a possible hit) or upload first (certainly new content), see the module doc.
    async fn resolve(self, msg: Acquire) -> Result<Acquired, ToolError> {
        let digests = match msg.digests.clone() {
            Some(d) => d,
            None => {
                let known = self.registry.any_file_of_size(&msg.provider, msg.size).await.map_err(store_error)?;
                if !known {
                    return self.upload_first(msg).await;
                }
                hash_file(msg.path.clone()).await.map_err(read_error)?
            }
        };
        self.acquire_hashed(msg, digests).await
    }

    /// New content: upload it (read once, hashed on the way), then record the reference.
    async fn upload_first(self, msg: Acquire) -> Result<Acquired, ToolError> {
        self.metrics.obs.dedup_misses.inc();
        let op = FileRequest::Upload {
            path: msg.path.clone(),
            filename: msg.filename.clone(),
            purpose: msg.purpose.clone(),
        };
        let pf = match self.providers.file_op(&msg.provider, op).await? {
            FileReply::File(pf) => pf,
            _ => {
                return Err(ToolError::Provider { provider: msg.provider, message: "unexpected upload answer".into() })
            }
        };
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
        let new = NewFileRef {
            provider: msg.provider.clone(),
            sha256: digests.sha256.clone(),
            filename: msg.filename.clone(),
            size: i64::try_from(digests.size).unwrap_or(i64::MAX),
            mime_type: None,
            purpose: msg.purpose.clone(),
            upload_method: msg.method.clone(),
            blob_key: msg.blob_key.clone(),
            now_ms: now_ms(),
        };
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
        };
        match self.providers.file_op(&msg.provider, op).await {
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

impl DedupManager {
    fn resolver(&self) -> Resolver {
        Resolver {
            registry: Arc::clone(&self.registry),
            providers: Arc::clone(&self.providers),
            metrics: self.metrics.clone(),
        }
    }
}

impl Handler<Acquire> for DedupManager {
    type Result = ResponseActFuture<Self, Result<Acquired, ToolError>>;

    fn handle(&mut self, msg: Acquire, ctx: &mut Context<Self>) -> Self::Result {
        let key = inflight_size_key(&msg.provider, msg.size);
        if let Some(waiters) = self.inflight.get_mut(&key) {
            let (tx, rx) = oneshot::channel();
            waiters.push(tx);
            let me = ctx.address();
            // After the leader: through the table again (this request may carry other bytes).
            return Box::pin(
                async move {
                    let _ = rx.await;
                    me.send(msg).await.map_err(|_| ToolError::Unavailable("dedup manager stopped".into()))?
                }
                .into_actor(self),
            );
        }
        self.inflight.insert(key, Vec::new());
        Box::pin(self.resolver().resolve(msg).into_actor(self).map(move |res, act, _| {
            for w in act.inflight.remove(&key).unwrap_or_default() {
                let _ = w.send(());
            }
            res
        }))
    }
}

impl Handler<Release> for DedupManager {
    type Result = ResponseFuture<Result<Option<FileRef>, ToolError>>;

    fn handle(&mut self, msg: Release, _: &mut Context<Self>) -> Self::Result {
        let reg = Arc::clone(&self.registry);
        Box::pin(async move {
            reg.release_file_ref(&msg.provider, &msg.provider_file_id, now_ms()).await.map_err(store_error)
        })
    }
}

impl Handler<Drain> for DedupManager {
    type Result = ();

    fn handle(&mut self, _: Drain, _: &mut Context<Self>) {}
}

impl Handler<Crash> for DedupManager {
    type Result = ();

    fn handle(&mut self, msg: Crash, _: &mut Context<Self>) {
        panic!("fault injection: {}", msg.0);
    }
}
