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
//! count of N (one lease each). When the leader fails with the provider's final answer for
//! the file (auth, client or protocol error: retrying gets the same answer), the waiters
//! for the same file (same resolved path) share that failure instead of each uploading
//! again — 50 concurrent uploads against a provider answering 400 make one POST. Waiters
//! with other files of that size, and every waiter after a retryable failure, go through
//! the table again. In cluster mode the leader also holds a cluster-wide lock on (provider,
//! size) (`ClusterGate::exclusive`), so the same holds for uploads through several nodes.
//! sha256 stays the identity: the xxh3 key only groups requests in memory; the
//! store is keyed by (provider, sha256).
//!
//! Messages: [`Acquire`] (→ the row with a provider file id; hit or miss), [`Release`]
//! (give a reference back; zero soft-deletes), [`Drain`] (no-op: work belongs to callers),
//! [`Crash`] (fault injection). Metrics: `exai_dedup_hits_total`, `exai_dedup_misses_total`,
//! `exai_dedup_bytes_saved_total`.

use super::hash::{inflight_size_key, Digests};
use super::ports::{BlobStore, FileRef, FileRegistry, NewLease};
use super::resolve::{store_error, Failed, Resolver};
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
    /// provider upload when the content is new, else stored once it is hashed (only if the
    /// store does not hold it yet).
    pub keep_in_blob: Option<KeepInBlob>,
    /// The lease the reference is (call or user scope, expiry).
    pub lease: NewLease,
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
    /// The lease of this reference (release it with `FileRegistry::release_leases`).
    pub lease_id: i64,
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

/// What a leader tells its waiters: its path, and its failure when waiters of the same file
/// share it.
#[derive(Debug, Clone)]
struct LeaderDone {
    path: PathBuf,
    shared_failure: Option<ToolError>,
}

type Waiters = Vec<oneshot::Sender<LeaderDone>>;

/// Longest wait for another node's upload of the same (provider, size) in cluster mode.
const CLUSTER_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(300);

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
            // After the leader: its final answer for the same file, or through the table
            // again (this request may carry other bytes, or the failure may pass).
            return Box::pin(
                async move {
                    if let Ok(LeaderDone { path, shared_failure: Some(e) }) = rx.await {
                        if path == msg.path {
                            return Err(e);
                        }
                    }
                    me.send(msg).await.map_err(|_| ToolError::Unavailable("dedup manager stopped".into()))?
                }
                .into_actor(self),
            );
        }
        self.inflight.insert(key, Vec::new());
        let path = msg.path.clone();
        // Cluster mode: one leader per (provider, size) across the nodes; a node that waited
        // finds the other's upload in the registry (a possible hit) and takes a reference.
        let (resolver, gate) = (self.resolver(), self.providers.cluster().cloned());
        let lead = async move {
            let _lock = match &gate {
                Some(g) => g.exclusive(&format!("upload:{}:{key:x}", msg.provider), CLUSTER_LOCK_WAIT).await,
                None => None,
            };
            resolver.resolve(msg).await
        };
        Box::pin(lead.into_actor(self).map(move |res, act, _| {
            let shared_failure = match &res {
                Err(Failed { error, final_answer: true }) => Some(error.clone()),
                _ => None,
            };
            for w in act.inflight.remove(&key).unwrap_or_default() {
                let _ = w.send(LeaderDone { path: path.clone(), shared_failure: shared_failure.clone() });
            }
            res.map_err(|f| f.error)
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
