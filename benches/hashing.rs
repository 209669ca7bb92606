//! Hashing throughput (issue 4's benchmark): sha256 (the content identity; `sha2` uses the
//! CPU's SHA extensions when present) and xxh3-64 (the in-memory dedup key) over a 64 MiB
//! buffer, plus the one-pass `hash_file` over a 256 MiB file (page cache warm), reported as
//! GB/s.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use exai_actors::files::hash::{hash_file_blocking, DualHasher};
use sha2::{Digest, Sha256};
use std::io::Write;

fn data(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect()
}

fn bench(c: &mut Criterion) {
    let buf = data(64 << 20);
    let mut g = c.benchmark_group("hash");
    g.throughput(Throughput::Bytes(buf.len() as u64));
    g.sample_size(10);
    g.bench_function("sha256_64MiB", |b| b.iter(|| Sha256::digest(&buf)));
    g.bench_function("xxh3_64MiB", |b| b.iter(|| xxhash_rust::xxh3::xxh3_64(&buf)));
    g.bench_function("sha256+xxh3_64MiB", |b| {
        b.iter(|| {
            let mut h = DualHasher::default();
            h.update(&buf);
            h.finish()
        })
    });
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.bin");
    let mut f = std::fs::File::create(&path).unwrap();
    for _ in 0..4 {
        f.write_all(&buf).unwrap();
    }
    drop(f);
    g.throughput(Throughput::Bytes(4 * buf.len() as u64));
    g.bench_function("hash_file_256MiB", |b| b.iter(|| hash_file_blocking(&path).unwrap()));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
