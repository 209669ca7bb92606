//! Content hashing: sha256 (the identity) and xxh3-64 (the fast in-memory key) computed
//! together in one streaming pass with a fixed buffer, on the blocking pool — never on an
//! actor thread.

use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};
use xxhash_rust::xxh3::Xxh3;

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

/// The in-flight key of (provider, sha256): xxh3 over both.
pub fn inflight_key(provider: &str, sha256: &str) -> u64 {
    let mut h = Xxh3::new();
    h.update(provider.as_bytes());
    h.update(&[0]);
    h.update(sha256.as_bytes());
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
        assert_ne!(inflight_key("kimi", &d.sha256), inflight_key("glm", &d.sha256));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
