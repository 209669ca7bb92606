//! Content hashing: sha256 (the identity) and xxh3-64 (the fast in-memory key) computed
//! together in one streaming pass with a fixed buffer, on the blocking pool — never on an
//! actor thread. [`hashed_chunks`] is the same pass feeding an upload body, so a file that
//! is uploaded is read from disk once.

use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use xxhash_rust::xxh3::Xxh3;

/// Why file bytes were read from disk (exported as `exai_file_read_bytes_total{pass}`, so
/// "read once" is observable: a new file uploaded directly adds its size once, to `upload`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadPass {
    /// Hashing only (before a dedup decision).
    Hash = 0,
    /// Streaming to a provider's upload (hashed on the way).
    Upload = 1,
    /// Streaming into the blob store (hashed on the way).
    Blob = 2,
}

static READ_BYTES: [AtomicU64; 3] = [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)];

/// Count bytes read from disk for `pass`.
pub fn count_read(pass: ReadPass, n: u64) {
    READ_BYTES[pass as usize].fetch_add(n, Ordering::Relaxed);
}

/// Bytes read so far in this process, by pass label.
pub fn read_totals() -> [(&'static str, u64); 3] {
    let g = |p: ReadPass| READ_BYTES[p as usize].load(Ordering::Relaxed);
    [("hash", g(ReadPass::Hash)), ("upload", g(ReadPass::Upload)), ("blob", g(ReadPass::Blob))]
}

/// Read buffer of the hashing pass.
pub const HASH_BUF_BYTES: usize = 1 << 20;

/// Both digests and the size of some content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digests {
    /// Lower-case sha256 hex.
    pub sha256: String,
    /// xxh3-64.
    pub xxh3: u64,
    /// Bytes hashed.
    pub size: u64,
}

/// Incremental sha256 + xxh3.
pub struct DualHasher {
    sha: Sha256,
    xxh: Box<Xxh3>,
    size: u64,
}

impl Default for DualHasher {
    fn default() -> Self {
        DualHasher { sha: Sha256::new(), xxh: Box::new(Xxh3::new()), size: 0 }
    }
}

impl DualHasher {
    /// Feed bytes.
    pub fn update(&mut self, data: &[u8]) {
        self.sha.update(data);
        self.xxh.update(data);
        self.size += data.len() as u64;
    }

    /// The digests.
    pub fn finish(self) -> Digests {
        Digests { sha256: hex(&self.sha.finalize()), xxh3: self.xxh.digest(), size: self.size }
    }
}

/// Lower-case hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(HEX[usize::from(b >> 4)]));
        s.push(char::from(HEX[usize::from(b & 15)]));
    }
    s
}

/// Hash a file synchronously (call from the blocking pool).
pub fn hash_file_blocking(path: &Path) -> std::io::Result<Digests> {
    let mut f = std::fs::File::open(path)?;
    let mut buf = vec![0u8; HASH_BUF_BYTES];
    let mut h = DualHasher::default();
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        count_read(ReadPass::Hash, n as u64);
        h.update(&buf[..n]);
    }
    Ok(h.finish())
}

/// Hash a file on the blocking pool.
pub async fn hash_file(path: PathBuf) -> std::io::Result<Digests> {
    tokio::task::spawn_blocking(move || hash_file_blocking(&path))
        .await
        .map_err(|e| std::io::Error::other(format!("hashing task failed: {e}")))?
}

/// Chunks read from disk per step of a hashed upload stream.
pub const STREAM_CHUNK_BYTES: usize = 256 * 1024;
/// Chunks a hashed upload stream reads ahead of the network (bounds its memory).
const STREAM_AHEAD: usize = 4;

/// A file read once, on the blocking pool: its chunks (for an upload body) and, once the
/// last chunk is taken, its digests. Exactly `size` bytes are read; a file that is shorter
/// or longer than announced fails the stream (the upload's length is already declared).
pub struct HashedChunks {
    /// The file's bytes, in order.
    pub chunks: tokio::sync::mpsc::Receiver<std::io::Result<bytes::Bytes>>,
    /// Digests of exactly the bytes sent through `chunks`.
    pub digests: tokio::sync::oneshot::Receiver<Digests>,
}

/// A second consumer of an upload's bytes (the blob store), fed by the same single read.
pub type ChunkSink = tokio::sync::mpsc::Sender<std::io::Result<bytes::Bytes>>;

/// A [`ChunkSink`] that can be handed out once (to the first upload attempt; a retry reads
/// the file again and feeds no sink).
#[derive(Clone, Default)]
pub struct TeeSlot(std::sync::Arc<std::sync::Mutex<Option<ChunkSink>>>);

impl TeeSlot {
    /// A slot holding `sink`.
    pub fn new(sink: ChunkSink) -> TeeSlot {
        TeeSlot(std::sync::Arc::new(std::sync::Mutex::new(Some(sink))))
    }

    /// The sink, the first time.
    pub fn take(&self) -> Option<ChunkSink> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

impl std::fmt::Debug for TeeSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TeeSlot")
    }
}

/// A channel for a [`ChunkSink`] (bounded: the reader waits for the slower consumer).
pub fn chunk_channel() -> (ChunkSink, tokio::sync::mpsc::Receiver<std::io::Result<bytes::Bytes>>) {
    tokio::sync::mpsc::channel(STREAM_AHEAD)
}

/// Start reading and hashing `path` (of `size` bytes) for a streamed upload; every chunk
/// also goes to `tee` when given (a consumer that went away is ignored; if the upload goes
/// away first, the tee receives an error instead of the rest).
pub fn hashed_chunks(path: PathBuf, size: u64, tee: Option<ChunkSink>) -> HashedChunks {
    let (tx, chunks) = tokio::sync::mpsc::channel(STREAM_AHEAD);
    let (dtx, digests) = tokio::sync::oneshot::channel();
    tokio::task::spawn_blocking(move || {
        let send = |r: std::io::Result<bytes::Bytes>| {
            if let Some(t) = &tee {
                let copy = match &r {
                    Ok(b) => Ok(b.clone()),
                    Err(e) => Err(std::io::Error::new(e.kind(), e.to_string())),
                };
                let _ = t.blocking_send(copy);
            }
            let sent = tx.blocking_send(r).is_ok();
            if !sent {
                if let Some(t) = &tee {
                    let _ = t.blocking_send(Err(std::io::Error::other("the upload stopped early")));
                }
            }
            sent
        };
        let mut f = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) => {
                send(Err(e));
                return;
            }
        };
        let mut h = DualHasher::default();
        let mut left = size;
        while left > 0 {
            let want = usize::try_from(left).unwrap_or(STREAM_CHUNK_BYTES).min(STREAM_CHUNK_BYTES);
            let mut buf = vec![0u8; want];
            if let Err(e) = f.read_exact(&mut buf) {
                let e = if e.kind() == std::io::ErrorKind::UnexpectedEof {
                    std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "file shrank during upload")
                } else {
                    e
                };
                send(Err(e));
                return;
            }
            count_read(ReadPass::Upload, want as u64);
            h.update(&buf);
            left -= want as u64;
            if !send(Ok(bytes::Bytes::from(buf))) {
                return; // the upload was dropped
            }
        }
        let mut probe = [0u8; 1];
        if !matches!(f.read(&mut probe), Ok(0)) {
            send(Err(std::io::Error::other("file grew during upload")));
            return;
        }
        let _ = dtx.send(h.finish());
    });
    HashedChunks { chunks, digests }
}

/// The in-flight key of (provider, size): groups requests that may carry the same content
/// before its hash is known.
pub fn inflight_size_key(provider: &str, size: u64) -> u64 {
    let mut h = Xxh3::new();
    h.update(provider.as_bytes());
    h.update(&[1]);
    h.update(&size.to_le_bytes());
    h.digest()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[actix_rt::test]
    async fn file_digests_match_one_shot_hashes() {
        let dir = std::env::temp_dir().join(format!("exai-hash-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let data: Vec<u8> = (0..(HASH_BUF_BYTES * 2 + 5)).map(|i| (i % 253) as u8).collect();
        let p = dir.join("f.bin");
        std::fs::write(&p, &data).unwrap();
        let d = hash_file(p).await.unwrap();
        assert_eq!(d.sha256, hex(&Sha256::digest(&data)));
        assert_eq!(d.xxh3, xxhash_rust::xxh3::xxh3_64(&data));
        assert_eq!(d.size, data.len() as u64);
        assert_eq!(hex(&Sha256::digest(b"abc")), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_ne!(inflight_size_key("kimi", d.size), inflight_size_key("glm", d.size));
        assert_ne!(inflight_size_key("kimi", 1), inflight_size_key("kimi", 2));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
