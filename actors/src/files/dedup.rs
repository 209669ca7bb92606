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

use super::hash::{inflight_size_key, Digests};
use super::ports::{BlobStore, FileRef, FileRegistry};
use super::resolve::{store_error, Resolver};
use crate::clock::now_ms;
use crate::error::ToolError;
use crate::metrics::Metrics;
use crate::provider::service::ProviderSet;
use crate::supervision::{Crash, Drain, ExitNotifier};
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
    /// Keep a copy in this blob store too (`gateway` tier): fed by the same read as the
    /// provider upload when the content is new, else stored while it is hashed.
    pub keep_in_blob: Option<KeepInBlob>,
}

/// The blob store an [`Acquire`] also keeps the file in.
#[derive(Clone)]
pub struct KeepInBlob(pub Arc<dyn BlobStore>);

impl std::fmt::Debug for KeepInBlob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeepInBlob({})", self.0.kind())
    }
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
