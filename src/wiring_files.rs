//! Wiring of the files feature: the blob store chosen by `[blob]`, the upload policy from
//! `[files]`, the `DedupManager` and `CleanupCoordinator` children (supervised by the
//! coordinator) and the `FileGateway` the six file tools share.

use crate::blob::local::LocalBlobStore;
use crate::blob::s3::{S3BlobStore, S3Settings};
use crate::config::Config;
use exai_actors::coordinator::{Child, ChildHandle, ChildSpec};
use exai_actors::files::cleanup::{CleanupCoordinator, ProviderSetFiles};
use exai_actors::files::cleanup_run::CleanupSettings;
use exai_actors::files::dedup::DedupManager;
use exai_actors::files::gateway::{FileGateway, Purposes};
use exai_actors::files::policy::UploadPolicy;
use exai_actors::files::ports::{BlobError, BlobStore, FileRegistry, ProviderFiles};
use exai_actors::metrics::Metrics;
use exai_actors::provider::service::ProviderSet;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

/// The blob store `[blob]` names (`None` for `backend = "none"`).
pub fn blob_store(cfg: &Config) -> Result<Option<Arc<dyn BlobStore>>, BlobError> {
    let b = &cfg.blob;
    Ok(match b.backend.as_str() {
        "none" => None,
        "s3" => Some(Arc::new(S3BlobStore::new(&S3Settings {
            bucket: b.s3_bucket.clone(),
            endpoint: b.s3_endpoint.clone(),
            region: b.s3_region.clone(),
            access_key_id: b.s3_access_key_id.as_ref().map(|s| s.expose().to_string()).unwrap_or_default(),
            secret_access_key: b.s3_secret_access_key.as_ref().map(|s| s.expose().to_string()).unwrap_or_default(),
            prefix: b.s3_prefix.clone(),
            allow_http: b.s3_allow_http,
        })?)),
        _ => {
            let dir = if b.local_dir.is_empty() {
                PathBuf::from(&cfg.storage.data_dir).join("blobs")
            } else {
                PathBuf::from(&b.local_dir)
            };
            Some(Arc::new(LocalBlobStore::new(dir)))
        }
    })
}

/// The policy table from `[files]`.
pub fn policy(cfg: &Config, blob_enabled: bool) -> UploadPolicy {
    let f = &cfg.files;
    UploadPolicy {
        embed_max_bytes: f.embed_max_bytes,
        gateway_min_bytes: f.gateway_min_bytes,
        kimi_max_bytes: f.kimi_max_bytes,
        glm_max_bytes: f.glm_max_bytes,
        other_max_bytes: f.other_max_bytes,
        max_blob_bytes: f.max_blob_bytes,
        blob_enabled,
    }
}

/// Cleanup settings from `[cleanup]`.
pub fn cleanup_settings(cfg: &Config) -> CleanupSettings {
    let c = &cfg.cleanup;
    CleanupSettings {
        grace: Duration::from_secs(c.grace_period_secs),
        max_per_run: c.max_per_run,
        max_delete_share: c.max_delete_share,
        page_size: c.page_size,
        delete_rate_per_sec: c.delete_rate_per_sec,
        validate_parallelism: c.validate_parallelism,
        ..CleanupSettings::default()
    }
}

/// The gateway, with its two children added to `children`.
pub fn gateway(
    cfg: &Config,
    registry: Arc<dyn FileRegistry>,
    blob: Option<Arc<dyn BlobStore>>,
    providers: &Arc<ProviderSet>,
    metrics: &Metrics,
    children: &mut Vec<Box<dyn ChildSpec>>,
) -> Arc<FileGateway> {
    let dedup: ChildHandle<DedupManager> = ChildHandle::default();
    let (reg, ps, m) = (Arc::clone(&registry), Arc::clone(providers), metrics.clone());
    children.push(Box::new(Child::new("dedup", dedup.clone(), move |exit| {
        DedupManager::new(Arc::clone(&reg), Arc::clone(&ps), m.clone(), Some(exit))
    })));
    let cleanup: ChildHandle<CleanupCoordinator> = ChildHandle::default();
    let (reg, ps, m, settings) = (Arc::clone(&registry), Arc::clone(providers), metrics.clone(), cleanup_settings(cfg));
    let kept = blob.clone();
    let schedule = (cfg.cleanup.interval_secs > 0).then(|| Duration::from_secs(cfg.cleanup.interval_secs));
    children.push(Box::new(Child::new("cleanup", cleanup.clone(), move |exit| {
        let files: Rc<dyn ProviderFiles> = Rc::new(ProviderSetFiles(Arc::clone(&ps)));
        CleanupCoordinator::new(
            Arc::clone(&reg),
            files,
            kept.clone(),
            settings.clone(),
            schedule,
            m.clone(),
            Some(exit),
        )
    })));
    let f = &cfg.files;
    Arc::new(FileGateway {
        policy: policy(cfg, blob.is_some()),
        blob,
        registry,
        dedup,
        cleanup,
        purposes: Purposes { kimi: f.kimi_purpose.clone(), glm: f.glm_purpose.clone(), other: f.other_purpose.clone() },
        max_files_per_call: f.max_files_per_call,
        reference_ttl: Duration::from_secs(f.reference_ttl_secs),
    })
}
