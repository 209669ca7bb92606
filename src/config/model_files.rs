//! `[files]` (the upload policy table), `[blob]` (the blob store) and `[cleanup]` (the
//! staged cleanup of provider files), with their defaults and their validation.

use serde::{Deserialize, Serialize};

use super::secret::Secret;
use super::validate::Checker;
use super::ConfigError;

/// `[files]`: the one upload policy table and the file tools' settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FilesConfig {
    /// Below this many bytes chat tools embed the file's text in the prompt.
    pub embed_max_bytes: u64,
    /// From this size up a provider upload is also kept in the blob store.
    pub gateway_min_bytes: u64,
    /// Kimi's direct upload limit.
    pub kimi_max_bytes: u64,
    /// GLM's direct upload limit.
    pub glm_max_bytes: u64,
    /// Upload limit of OpenAI-compatible providers.
    pub other_max_bytes: u64,
    /// Largest file kept at all (blob store).
    pub max_blob_bytes: u64,
    /// Most files per tool call.
    pub max_files_per_call: usize,
    /// Kimi upload purpose.
    pub kimi_purpose: String,
    /// GLM upload purpose.
    pub glm_purpose: String,
    /// Upload purpose for OpenAI-compatible providers.
    pub other_purpose: String,
    /// A file reference handed to the user by an upload tool is released after this many
    /// seconds (then the cleanup may remove the file); also the backstop expiry of the
    /// references a chat-with-files call holds.
    pub reference_ttl_secs: u64,
}

impl Default for FilesConfig {
    fn default() -> Self {
        FilesConfig {
            embed_max_bytes: 50 * 1024,
            gateway_min_bytes: 5 * 1024 * 1024,
            kimi_max_bytes: 100 * 1024 * 1024,
            glm_max_bytes: 20 * 1024 * 1024,
            other_max_bytes: 20 * 1024 * 1024,
            max_blob_bytes: 512 * 1024 * 1024,
            max_files_per_call: 20,
            kimi_purpose: "file-extract".into(),
            glm_purpose: "agent".into(),
            other_purpose: "assistants".into(),
            reference_ttl_secs: 86_400,
        }
    }
}

/// `[blob]`: where large files are kept.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BlobConfig {
    /// `local`, `s3` or `none`.
    pub backend: String,
    /// Local folder; empty = `<storage.data_dir>/blobs`.
    pub local_dir: String,
    /// S3 bucket.
    pub s3_bucket: String,
    /// S3 endpoint URL; empty = AWS.
    pub s3_endpoint: String,
    /// S3 region.
    pub s3_region: String,
    /// S3 access key id.
    pub s3_access_key_id: Option<Secret>,
    /// S3 secret access key.
    pub s3_secret_access_key: Option<Secret>,
    /// Key prefix inside the bucket.
    pub s3_prefix: String,
    /// Allow an `http://` endpoint (local MinIO).
    pub s3_allow_http: bool,
}

impl Default for BlobConfig {
    fn default() -> Self {
        BlobConfig {
            backend: "local".into(),
            local_dir: String::new(),
            s3_bucket: String::new(),
            s3_endpoint: String::new(),
            s3_region: "us-east-1".into(),
            s3_access_key_id: None,
            s3_secret_access_key: None,
            s3_prefix: "exai-blobs".into(),
            s3_allow_http: false,
        }
    }
}

/// `[cleanup]`: the staged cleanup of unreferenced provider files.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CleanupConfig {
    /// Run on a schedule every this many seconds; 0 = only on demand (CLI, admin HTTP, tool).
    pub interval_secs: u64,
    /// A file must stay unreferenced this long before it is removed.
    pub grace_period_secs: u64,
    /// Most files removed per run.
    pub max_per_run: usize,
    /// Abort a run that would remove more than this share (0..1] of all provider files.
    pub max_delete_share: f64,
    /// Discovery page size.
    pub page_size: u32,
    /// Provider deletes per second.
    pub delete_rate_per_sec: f64,
    /// Validations run in parallel.
    pub validate_parallelism: usize,
}

impl Default for CleanupConfig {
    fn default() -> Self {
        CleanupConfig {
            interval_secs: 0,
            grace_period_secs: 86_400,
            max_per_run: 500,
            max_delete_share: 0.5,
            page_size: 100,
            delete_rate_per_sec: 5.0,
            validate_parallelism: 8,
        }
    }
}

impl Checker<'_> {
    /// `[files]`, `[blob]` and `[cleanup]`.
    pub(super) fn files(&self) -> Result<(), ConfigError> {
        let f = &self.cfg.files;
        self.at_least_one("files.kimi_max_bytes", f.kimi_max_bytes)?;
        self.at_least_one("files.glm_max_bytes", f.glm_max_bytes)?;
        self.at_least_one("files.other_max_bytes", f.other_max_bytes)?;
        self.at_least_one("files.max_files_per_call", f.max_files_per_call as u64)?;
        self.at_least_one("files.reference_ttl_secs", f.reference_ttl_secs)?;
        let max_provider = f.kimi_max_bytes.max(f.glm_max_bytes).max(f.other_max_bytes);
        if f.gateway_min_bytes < f.embed_max_bytes {
            return Err(self.fail(
                "files.gateway_min_bytes",
                Some(f.gateway_min_bytes.to_string()),
                format!("an integer >= {} (at least files.embed_max_bytes)", f.embed_max_bytes),
            ));
        }
        if f.max_blob_bytes < max_provider {
            return Err(self.fail(
                "files.max_blob_bytes",
                Some(f.max_blob_bytes.to_string()),
                format!("an integer >= {max_provider} (at least the largest provider limit)"),
            ));
        }
        for (k, v) in [("files.kimi_purpose", &f.kimi_purpose), ("files.glm_purpose", &f.glm_purpose)] {
            if v.trim().is_empty() {
                return Err(self.fail(k, Some(v.clone()), "a non-empty upload purpose"));
            }
        }
        let b = &self.cfg.blob;
        match b.backend.as_str() {
            "local" | "none" => {}
            "s3" => {
                if b.s3_bucket.trim().is_empty() {
                    return Err(self.fail(
                        "blob.s3_bucket",
                        None,
                        "a bucket name (required when blob.backend = \"s3\")",
                    ));
                }
                if b.s3_access_key_id.is_none() || b.s3_secret_access_key.is_none() {
                    return Err(self.fail(
                        "blob.s3_access_key_id",
                        None,
                        "blob.s3_access_key_id and blob.s3_secret_access_key (required when blob.backend = \"s3\")",
                    ));
                }
            }
            other => return Err(self.fail("blob.backend", Some(other.into()), "\"local\", \"s3\" or \"none\"")),
        }
        let c = &self.cfg.cleanup;
        self.at_least_one("cleanup.max_per_run", c.max_per_run as u64)?;
        self.at_least_one("cleanup.page_size", u64::from(c.page_size))?;
        self.at_least_one("cleanup.validate_parallelism", c.validate_parallelism as u64)?;
        if !(c.max_delete_share > 0.0 && c.max_delete_share <= 1.0) {
            return Err(self.fail(
                "cleanup.max_delete_share",
                Some(c.max_delete_share.to_string()),
                "a number > 0 and <= 1",
            ));
        }
        if !(c.delete_rate_per_sec > 0.0 && c.delete_rate_per_sec.is_finite()) {
            return Err(self.fail(
                "cleanup.delete_rate_per_sec",
                Some(c.delete_rate_per_sec.to_string()),
                "a number > 0",
            ));
        }
        Ok(())
    }
}
