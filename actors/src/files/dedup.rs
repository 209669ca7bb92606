//! `DedupManager`: content-based deduplication of provider uploads (a supervised child).
//!
//! States: `Serving` only. It keeps an in-flight table keyed by xxh3(provider, sha256):
//! the first [`Acquire`] of some content becomes the leader — it takes a reference with the
//! store's atomic upsert and, unless the row already holds a provider file, uploads once —
//! while every [`Acquire`] of the same content arriving meanwhile waits for the leader and
//! then takes its own reference (one upsert each). So N concurrent uploads of the same bytes
//! make one provider upload and leave a reference count of N. sha256 stays the identity:
//! the xxh3 key only groups requests in memory; the store is keyed by (provider, sha256).
//!
//! Messages: [`Acquire`] (→ the row with a provider file id; hit or miss), [`Release`]
//! (give a reference back; zero soft-deletes), [`Drain`] (no-op: work belongs to callers),
//! [`Crash`] (fault injection). Metrics: `exai_dedup_hits_total`, `exai_dedup_misses_total`,
//! `exai_dedup_bytes_saved_total`.

use super::hash::{inflight_key, Digests};
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
    /// Its digests and size.
    pub digests: Digests,
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

type Waiters = Vec<oneshot::Sender<Result<(), ToolError>>>;

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

struct Resolver {
    registry: Arc<dyn FileRegistry>,
    providers: Arc<ProviderSet>,
    metrics: Metrics,
}

impl Resolver {
    /// One reference (atomic upsert); upload when the row has no usable provider file.
    async fn resolve(self, msg: Acquire) -> Result<Acquired, ToolError> {
        let new = NewFileRef {
            provider: msg.provider.clone(),
            sha256: msg.digests.sha256.clone(),
            filename: msg.filename.clone(),
            size: i64::try_from(msg.digests.size).unwrap_or(i64::MAX),
            mime_type: None,
            purpose: msg.purpose.clone(),
            upload_method: msg.method.clone(),
            blob_key: msg.blob_key.clone(),
            now_ms: now_ms(),
        };
        let mut row = self.registry.acquire_file_ref(&new).await.map_err(store_error)?;
        if row.is_ready() {
            self.metrics.obs.dedup_hits.inc();
            self.metrics.obs.dedup_bytes_saved.inc_by(msg.digests.size);
            tracing::debug!(provider = %msg.provider, upload_id = row.id, refs = row.reference_count, "dedup hit");
            return Ok(Acquired { file: row, hit: true });
        }
        self.metrics.obs.dedup_misses.inc();
        let op = FileRequest::Upload { path: msg.path.clone(), filename: msg.filename.clone(), purpose: msg.purpose };
        match self.providers.file_op(&msg.provider, op).await {
            Ok(FileReply::File(pf)) => {
                self.registry
                    .complete_upload(row.id, &pf.id, msg.blob_key.as_deref(), now_ms())
                    .await
                    .map_err(store_error)?;
                tracing::info!(provider = %msg.provider, upload_id = row.id, bytes = msg.digests.size, "file uploaded");
                row.provider_file_id = Some(pf.id);
                row.upload_status = status::COMPLETED.into();
                if msg.blob_key.is_some() {
                    row.blob_key = msg.blob_key;
                }
                Ok(Acquired { file: row, hit: false })
            }
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

    fn handle(&mut self, msg: Acquire, _: &mut Context<Self>) -> Self::Result {
        let key = inflight_key(&msg.provider, &msg.digests.sha256);
        let resolver = self.resolver();
        if let Some(waiters) = self.inflight.get_mut(&key) {
            let (tx, rx) = oneshot::channel();
            waiters.push(tx);
            return Box::pin(
                async move {
                    match rx.await {
                        Ok(Ok(())) => resolver.resolve(msg).await,
                        Ok(Err(e)) => Err(e),
                        Err(_) => Err(ToolError::Unavailable("the upload this request waited for was dropped".into())),
                    }
                }
                .into_actor(self),
            );
        }
        self.inflight.insert(key, Vec::new());
        Box::pin(resolver.resolve(msg).into_actor(self).map(move |res, act, _| {
            for w in act.inflight.remove(&key).unwrap_or_default() {
                let _ = w.send(res.as_ref().map(|_| ()).map_err(Clone::clone));
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
