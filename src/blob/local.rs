//! Local-folder blob store: `<root>/<sha256[0..2]>/<sha256>`. A put streams the source into
//! `<root>/tmp/<uuid>` while hashing (on the blocking pool, one fixed buffer), then renames
//! it to its content address — atomic, so a reader never sees a partial blob, and a second
//! put of the same content just drops its temporary file. `list` walks the two-character
//! folders (the cleanup's blob collection); `tmp/` is not listed.

use async_trait::async_trait;
use exai_actors::files::hash::{count_read, DualHasher, ReadPass};
use exai_actors::files::ports::{is_sha256_hex, BlobError, BlobInfo, BlobStore, ChunkReceiver, StoredBlob};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use super::CHUNK_BYTES;

/// The store.
#[derive(Debug, Clone)]
pub struct LocalBlobStore {
    root: PathBuf,
}

fn io(e: std::io::Error) -> BlobError {
    BlobError::Io(e.to_string())
}

impl LocalBlobStore {
    /// A store under `root` (created on first put).
    pub fn new(root: impl Into<PathBuf>) -> LocalBlobStore {
        LocalBlobStore { root: root.into() }
    }

    /// Where a blob lives.
    pub fn path_of(&self, sha256: &str) -> Result<PathBuf, BlobError> {
        if !is_sha256_hex(sha256) {
            return Err(BlobError::InvalidKey(sha256.chars().take(80).collect()));
        }
        Ok(self.root.join(&sha256[..2]).join(sha256))
    }

    fn list_blocking(&self) -> Result<Vec<StoredBlob>, BlobError> {
        let mut out = Vec::new();
        let top = match std::fs::read_dir(&self.root) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(io(e)),
        };
        for dir in top {
            let dir = dir.map_err(io)?;
            let name = dir.file_name().to_string_lossy().into_owned();
            if name.len() != 2 || !dir.file_type().map_err(io)?.is_dir() {
                continue;
            }
            for f in std::fs::read_dir(dir.path()).map_err(io)? {
                let f = f.map_err(io)?;
                let sha = f.file_name().to_string_lossy().into_owned();
                if !is_sha256_hex(&sha) || !sha.starts_with(&name) {
                    continue;
                }
                let meta = f.metadata().map_err(io)?;
                let modified_ms = meta
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
                out.push(StoredBlob { key: sha.clone(), sha256: sha, size: meta.len(), modified_ms });
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    fn put_blocking(&self, src: &Path) -> Result<BlobInfo, BlobError> {
        let mut input = std::fs::File::open(src).map_err(io)?;
        let mut buf = vec![0u8; CHUNK_BYTES];
        self.write_blocking(None, |out, h| loop {
            let n = input.read(&mut buf)?;
            if n == 0 {
                return Ok(());
            }
            count_read(ReadPass::Blob, n as u64);
            h.update(&buf[..n]);
            out.write_all(&buf[..n])?;
        })
    }

    fn put_chunks_blocking(&self, mut chunks: ChunkReceiver, size: u64) -> Result<BlobInfo, BlobError> {
        self.write_blocking(Some(size), |out, h| {
            while let Some(chunk) = chunks.blocking_recv() {
                let chunk = chunk?;
                h.update(&chunk);
                out.write_all(&chunk)?;
            }
            Ok(())
        })
    }

    /// Write a temporary file with `fill`, then move it to its content address (atomic:
    /// a reader never sees a partial blob). `expected`: the size the content must have.
    fn write_blocking(
        &self,
        expected: Option<u64>,
        fill: impl FnOnce(&mut std::fs::File, &mut DualHasher) -> std::io::Result<()>,
    ) -> Result<BlobInfo, BlobError> {
        let tmp_dir = self.root.join("tmp");
        std::fs::create_dir_all(&tmp_dir).map_err(io)?;
        let tmp = tmp_dir.join(uuid::Uuid::new_v4().to_string());
        let res = (|| {
            let mut out = std::fs::File::create(&tmp).map_err(io)?;
            let mut h = DualHasher::default();
            fill(&mut out, &mut h).map_err(io)?;
            out.sync_all().map_err(io)?;
            let d = h.finish();
            if let Some(want) = expected.filter(|w| *w != d.size) {
                return Err(BlobError::Io(format!("expected {want} bytes, got {}", d.size)));
            }
            let dest = self.path_of(&d.sha256)?;
            if let Some(parent) = dest.parent() {
                std::fs::create_dir_all(parent).map_err(io)?;
            }
            if dest.exists() {
                std::fs::remove_file(&tmp).map_err(io)?;
            } else {
                std::fs::rename(&tmp, &dest).map_err(io)?;
            }
            Ok(BlobInfo { key: d.sha256.clone(), sha256: d.sha256, xxh3: d.xxh3, size: d.size })
        })();
        if res.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        res
    }
}

#[async_trait]
impl BlobStore for LocalBlobStore {
    fn kind(&self) -> &'static str {
        "local"
    }

    fn key_of(&self, sha256: &str) -> String {
        sha256.to_string()
    }

    async fn list(&self) -> Result<Vec<StoredBlob>, BlobError> {
        let me = self.clone();
        tokio::task::spawn_blocking(move || me.list_blocking())
            .await
            .map_err(|e| BlobError::Io(format!("blob list task failed: {e}")))?
    }

    async fn put_file(&self, path: &Path) -> Result<BlobInfo, BlobError> {
        let (me, src) = (self.clone(), path.to_path_buf());
        tokio::task::spawn_blocking(move || me.put_blocking(&src))
            .await
            .map_err(|e| BlobError::Io(format!("blob write task failed: {e}")))?
    }

    async fn put_stream(&self, chunks: ChunkReceiver, size: u64) -> Result<BlobInfo, BlobError> {
        let me = self.clone();
        tokio::task::spawn_blocking(move || me.put_chunks_blocking(chunks, size))
            .await
            .map_err(|e| BlobError::Io(format!("blob write task failed: {e}")))?
    }

    async fn exists(&self, sha256: &str) -> Result<bool, BlobError> {
        Ok(tokio::fs::try_exists(self.path_of(sha256)?).await.map_err(io)?)
    }

    async fn get_to_file(&self, sha256: &str, dest: &Path) -> Result<u64, BlobError> {
        let src = self.path_of(sha256)?;
        match tokio::fs::copy(&src, dest).await {
            Ok(n) => Ok(n),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(BlobError::NotFound(sha256.into())),
            Err(e) => Err(io(e)),
        }
    }

    async fn delete(&self, sha256: &str) -> Result<(), BlobError> {
        match tokio::fs::remove_file(self.path_of(sha256)?).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io(e)),
        }
    }
}
