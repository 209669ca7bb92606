//! S3-compatible blob store over `object_store` (AWS S3, MinIO, Supabase Storage's S3
//! endpoint). Objects live at `<prefix>/<sha256>`. A put streams the file as a multipart
//! upload to `<prefix>/tmp/<uuid>` (parts of `PART_BYTES`, at most `MAX_PARTS_IN_FLIGHT`
//! buffered), hashing each chunk on the blocking pool, then copies the object to its
//! content address (skipped when it exists) and deletes the temporary one. `list` lists
//! `<prefix>/` (the cleanup's blob collection); `<prefix>/tmp/` is not listed.

use async_trait::async_trait;
use bytes::Bytes;
use exai_actors::files::hash::{count_read, DualHasher, ReadPass};
use exai_actors::files::ports::{is_sha256_hex, BlobError, BlobInfo, BlobStore, ChunkReceiver, StoredBlob};
use futures_util::StreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjPath;
use object_store::{ObjectStore, WriteMultipart};
use std::path::Path;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::CHUNK_BYTES;

/// Multipart part size (S3's minimum is 5 MiB).
const PART_BYTES: usize = 5 * 1024 * 1024;
/// Parts buffered or in flight at once.
const MAX_PARTS_IN_FLIGHT: usize = 2;

/// Connection settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Settings {
    /// Bucket.
    pub bucket: String,
    /// Endpoint URL (empty = AWS).
    pub endpoint: String,
    /// Region.
    pub region: String,
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: String,
    /// Key prefix.
    pub prefix: String,
    /// Allow `http://` endpoints (local MinIO, tests).
    pub allow_http: bool,
}

/// The store.
#[derive(Debug, Clone)]
pub struct S3BlobStore {
    store: Arc<AmazonS3>,
    prefix: String,
}

fn backend(e: object_store::Error) -> BlobError {
    BlobError::Backend(e.to_string())
}

impl S3BlobStore {
    /// Build the client (no request is made).
    pub fn new(s: &S3Settings) -> Result<S3BlobStore, BlobError> {
        let mut b = AmazonS3Builder::new()
            .with_bucket_name(&s.bucket)
            .with_region(&s.region)
            .with_access_key_id(&s.access_key_id)
            .with_secret_access_key(&s.secret_access_key)
            .with_allow_http(s.allow_http);
        if !s.endpoint.is_empty() {
            b = b.with_endpoint(&s.endpoint).with_virtual_hosted_style_request(false);
        }
        let store = b.build().map_err(backend)?;
        Ok(S3BlobStore { store: Arc::new(store), prefix: s.prefix.trim_matches('/').to_string() })
    }

    fn key(&self, name: &str) -> ObjPath {
        if self.prefix.is_empty() {
            ObjPath::from(name)
        } else {
            ObjPath::from(format!("{}/{name}", self.prefix))
        }
    }

    fn blob_path(&self, sha256: &str) -> Result<ObjPath, BlobError> {
        if !is_sha256_hex(sha256) {
            return Err(BlobError::InvalidKey(sha256.chars().take(80).collect()));
        }
        Ok(self.key(sha256))
    }

    /// Multipart-upload `chunks` to the temporary key `tmp`, hashing them (off the actor
    /// thread). `expected`: the size the content must have.
    async fn upload_tmp<S>(&self, mut chunks: S, tmp: &ObjPath, expected: Option<u64>) -> Result<BlobInfo, BlobError>
    where
        S: futures_util::Stream<Item = std::io::Result<Bytes>> + Unpin,
    {
        let upload = self.store.put_multipart(tmp).await.map_err(backend)?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_BYTES);
        let mut hasher = DualHasher::default();
        while let Some(chunk) = chunks.next().await {
            let chunk = match chunk {
                Ok(c) => c,
                Err(e) => {
                    let _ = writer.abort().await;
                    return Err(BlobError::Io(e.to_string()));
                }
            };
            let c = chunk.clone();
            hasher = tokio::task::spawn_blocking(move || {
                hasher.update(&c);
                hasher
            })
            .await
            .map_err(|e| BlobError::Io(format!("hashing task failed: {e}")))?;
            writer.wait_for_capacity(MAX_PARTS_IN_FLIGHT).await.map_err(backend)?;
            writer.put(chunk);
        }
        let d = hasher.finish();
        if let Some(want) = expected.filter(|w| *w != d.size) {
            let _ = writer.abort().await;
            return Err(BlobError::Io(format!("expected {want} bytes, got {}", d.size)));
        }
        writer.finish().await.map_err(backend)?;
        Ok(BlobInfo { key: d.sha256.clone(), sha256: d.sha256, xxh3: d.xxh3, size: d.size })
    }

    /// Move an uploaded temporary object to its content address (kept once).
    async fn settle(&self, tmp: &ObjPath, info: BlobInfo) -> Result<BlobInfo, BlobError> {
        let dest = self.blob_path(&info.sha256)?;
        let res = match self.store.head(&dest).await {
            Ok(_) => Ok(()),
            Err(object_store::Error::NotFound { .. }) => self.store.copy(tmp, &dest).await.map_err(backend),
            Err(e) => Err(backend(e)),
        };
        let _ = self.store.delete(tmp).await;
        res.map(|_| BlobInfo { key: dest.to_string(), ..info })
    }

    fn tmp_key(&self) -> ObjPath {
        self.key(&format!("tmp/{}", uuid::Uuid::new_v4()))
    }
}

/// A file's bytes as a stream of chunks (counted as blob reads).
fn file_chunks(file: tokio::fs::File) -> impl futures_util::Stream<Item = std::io::Result<Bytes>> + Unpin {
    Box::pin(futures_util::stream::unfold(Some(file), |file| async move {
        let mut file = file?;
        let mut buf = vec![0u8; CHUNK_BYTES];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                count_read(ReadPass::Blob, n as u64);
                Some((Ok(Bytes::from(buf)), Some(file)))
            }
            Err(e) => Some((Err(e), None)),
        }
    }))
}

#[async_trait]
impl BlobStore for S3BlobStore {
    fn kind(&self) -> &'static str {
        "s3"
    }

    fn key_of(&self, sha256: &str) -> String {
        self.key(sha256).to_string()
    }

    async fn list(&self) -> Result<Vec<StoredBlob>, BlobError> {
        let prefix = (!self.prefix.is_empty()).then(|| ObjPath::from(self.prefix.as_str()));
        let mut listing = self.store.list(prefix.as_ref());
        let mut out = Vec::new();
        while let Some(meta) = listing.next().await {
            let meta = meta.map_err(backend)?;
            let Some(sha) = meta.location.filename().filter(|n| is_sha256_hex(n)).map(str::to_string) else {
                continue;
            };
            // Only content addresses (`<prefix>/<sha256>`), never `<prefix>/tmp/…`.
            if meta.location != self.key(&sha) {
                continue;
            }
            out.push(StoredBlob {
                key: meta.location.to_string(),
                sha256: sha,
                size: meta.size,
                modified_ms: meta.last_modified.timestamp_millis(),
            });
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    async fn put_file(&self, path: &Path) -> Result<BlobInfo, BlobError> {
        let file = tokio::fs::File::open(path).await.map_err(|e| BlobError::Io(e.to_string()))?;
        let tmp = self.tmp_key();
        let info = self.upload_tmp(file_chunks(file), &tmp, None).await?;
        self.settle(&tmp, info).await
    }

    async fn put_stream(&self, chunks: ChunkReceiver, size: u64) -> Result<BlobInfo, BlobError> {
        let stream =
            Box::pin(futures_util::stream::unfold(chunks, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) }));
        let tmp = self.tmp_key();
        let info = self.upload_tmp(stream, &tmp, Some(size)).await?;
        self.settle(&tmp, info).await
    }

    async fn exists(&self, sha256: &str) -> Result<bool, BlobError> {
        match self.store.head(&self.blob_path(sha256)?).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(backend(e)),
        }
    }

    async fn get_to_file(&self, sha256: &str, dest: &Path) -> Result<u64, BlobError> {
        let res = match self.store.get(&self.blob_path(sha256)?).await {
            Ok(r) => r,
            Err(object_store::Error::NotFound { .. }) => return Err(BlobError::NotFound(sha256.into())),
            Err(e) => return Err(backend(e)),
        };
        let mut out = tokio::fs::File::create(dest).await.map_err(|e| BlobError::Io(e.to_string()))?;
        let mut stream = res.into_stream();
        let mut n = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(backend)?;
            out.write_all(&chunk).await.map_err(|e| BlobError::Io(e.to_string()))?;
            n += chunk.len() as u64;
        }
        out.flush().await.map_err(|e| BlobError::Io(e.to_string()))?;
        Ok(n)
    }

    async fn delete(&self, sha256: &str) -> Result<(), BlobError> {
        match self.store.delete(&self.blob_path(sha256)?).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(backend(e)),
        }
    }
}
