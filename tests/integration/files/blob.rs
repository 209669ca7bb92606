//! Blob stores: content addressing, atomic writes, streaming, listing; S3 against a real
//! S3-compatible server (`moto_server`) started on 127.0.0.1. The cleanup's blob
//! collection on both stores: what no upload row or lease needs is deleted and audited.

use exai::blob::local::LocalBlobStore;
use exai::blob::s3::{S3BlobStore, S3Settings};
use exai::blob::BlobStore;
use exai_actors::files::hash::hex;
use sha2::{Digest, Sha256};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::mock::install_crypto;
use crate::common::tools;
use async_trait::async_trait;
use exai_actors::files::cleanup_run::{run_cleanup, CleanupSettings, ProgressCell};
use exai_actors::files::ports::{LeaseScope, NewFileRef, NewLease, ProviderFiles};

/// No provider file is ever deleted in these tests (no row holds one).
struct NoProviderFiles;

#[async_trait(?Send)]
impl ProviderFiles for NoProviderFiles {
    async fn delete_file(&self, provider: &str, id: &str) -> Result<bool, String> {
        panic!("unexpected provider delete of {provider} {id}");
    }
}

/// Blob collection on `store`: a blob named by a referenced upload row and one under a live
/// lease stay; one nothing names, one whose row failed, and one whose lease expired go —
/// deleted, audited (stage `blob`), dry run first; a grace period protects fresh blobs.
async fn collection(store: &dyn BlobStore, dir: &std::path::Path) {
    let reg = super::registry::registry(&format!("sqlite://{}/gc.db", dir.display())).await;
    let mut keys = Vec::new();
    for i in 0..5u8 {
        let p = dir.join(format!("gc{i}.bin"));
        std::fs::write(&p, data(100_000 + usize::from(i), 40 + i)).unwrap();
        keys.push(store.put_file(&p).await.unwrap());
    }
    let listed = store.list().await.unwrap();
    let mut listed_keys: Vec<&str> = listed.iter().map(|b| b.key.as_str()).collect();
    listed_keys.sort_unstable();
    let mut want: Vec<&str> = keys.iter().map(|k| k.key.as_str()).collect();
    want.sort_unstable();
    assert_eq!(listed_keys, want, "list shows the content addresses only");
    assert!(listed.iter().all(|b| b.size >= 100_000 && b.modified_ms > 0));
    let row = |i: usize| NewFileRef {
        blob_key: Some(keys[i].key.clone()),
        upload_method: "gateway".into(),
        lease: NewLease { scope: LeaseScope::Upload, expires_at_ms: i64::MAX / 4 },
        ..super::registry::new_ref("kimi", &keys[i].sha256, 1_000)
    };
    // 0: a referenced gateway row. 1: a live lease on a blob-only file. 2: nothing.
    // 3: a gateway row whose upload failed. 4: a blob-only lease that has expired.
    reg.acquire_file_ref(&row(0)).await.unwrap();
    let lease = |expires_at_ms| NewLease { scope: LeaseScope::Upload, expires_at_ms };
    reg.add_blob_lease(&keys[1].key, lease(i64::MAX / 4), 1_000).await.unwrap();
    let failed = reg.acquire_file_ref(&row(3)).await.unwrap();
    reg.fail_upload(failed.file.id, failed.lease_id, "HTTP 400", 2_000).await.unwrap();
    reg.add_blob_lease(&keys[4].key, lease(exai_actors::env::now_ms() - 1), 1_000).await.unwrap();

    let settings = |grace_secs| CleanupSettings {
        grace: Duration::from_secs(grace_secs),
        max_delete_share: 1.0,
        delete_rate_per_sec: 1000.0,
        ..CleanupSettings::default()
    };
    let progress = ProgressCell::default();
    let young = run_cleanup(reg.as_ref(), &NoProviderFiles, Some(store), &settings(3600), "cli", false, &progress)
        .await
        .unwrap();
    assert_eq!(young.summary.blobs_deleted, 0, "fresh blobs are inside the grace period: {:?}", young.summary);
    assert_eq!(young.summary.leases_expired, 1, "the expired lease was released");
    assert_eq!(store.list().await.unwrap().len(), 5);

    let dry =
        run_cleanup(reg.as_ref(), &NoProviderFiles, Some(store), &settings(0), "cli", true, &progress).await.unwrap();
    let would: Vec<&str> = dry
        .items
        .iter()
        .filter(|i| i.stage == "blob" && i.outcome == "would_delete")
        .filter_map(|i| i.provider_file_id.as_deref())
        .collect();
    assert_eq!(would.len(), 3, "{:?}", dry.items);
    assert_eq!(store.list().await.unwrap().len(), 5, "a dry run deletes nothing");

    let run =
        run_cleanup(reg.as_ref(), &NoProviderFiles, Some(store), &settings(0), "cli", false, &progress).await.unwrap();
    assert_eq!(run.summary.blobs_deleted, 3, "{:?}", run.summary);
    assert_eq!(run.summary.outcome, "completed", "{:?}", run.summary);
    let mut deleted: Vec<&str> = run
        .items
        .iter()
        .filter(|i| i.stage == "blob" && i.outcome == "deleted" && i.provider == "blob")
        .filter_map(|i| i.provider_file_id.as_deref())
        .collect();
    deleted.sort_unstable();
    let mut gone = vec![keys[2].key.as_str(), keys[3].key.as_str(), keys[4].key.as_str()];
    gone.sort_unstable();
    assert_eq!(deleted, gone, "audited by key");
    for (i, k) in keys.iter().enumerate() {
        assert_eq!(store.exists(&k.sha256).await.unwrap(), i < 2, "blob {i}");
    }
}

fn data(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
}

async fn exercise(store: &dyn BlobStore, dir: &std::path::Path) {
    let bytes = data(6 * 1024 * 1024 + 123, 7);
    let src = dir.join("a.bin");
    std::fs::write(&src, &bytes).unwrap();
    let info = store.put_file(&src).await.unwrap();
    let sha = hex(&Sha256::digest(&bytes));
    assert_eq!(info.sha256, sha);
    assert_eq!(info.size, bytes.len() as u64);
    assert_eq!(info.xxh3, xxhash_rust::xxh3::xxh3_64(&bytes));
    assert!(store.exists(&sha).await.unwrap());
    // Same content under another name: same key, stored once.
    let copy = dir.join("b.bin");
    std::fs::write(&copy, &bytes).unwrap();
    assert_eq!(store.put_file(&copy).await.unwrap().key, info.key);
    let out = dir.join("out.bin");
    assert_eq!(store.get_to_file(&sha, &out).await.unwrap(), bytes.len() as u64);
    assert_eq!(std::fs::read(&out).unwrap(), bytes);
    store.delete(&sha).await.unwrap();
    assert!(!store.exists(&sha).await.unwrap());
    store.delete(&sha).await.unwrap();
    assert!(store.get_to_file(&sha, &out).await.is_err());
    assert!(store.exists("../../etc/passwd").await.is_err(), "keys must be sha256 hex");

    // The chunks of a shared read (a `gateway` upload's tee): same content address.
    let other = data(3 * 1024 * 1024 + 5, 9);
    let other_sha = hex(&Sha256::digest(&other));
    let feed = |bytes: Vec<u8>, extra_error: bool| {
        let (sink, rx) = exai_actors::files::hash::chunk_channel();
        actix_rt::spawn(async move {
            for c in bytes.chunks(256 * 1024) {
                if sink.send(Ok(bytes::Bytes::copy_from_slice(c))).await.is_err() {
                    return;
                }
            }
            if extra_error {
                let _ = sink.send(Err(std::io::Error::other("the upload stopped early"))).await;
            }
        });
        rx
    };
    let streamed = store.put_stream(feed(other.clone(), false), other.len() as u64).await.unwrap();
    assert_eq!(streamed.sha256, other_sha);
    assert_eq!(streamed.size, other.len() as u64);
    assert_eq!(store.get_to_file(&other_sha, &out).await.unwrap(), other.len() as u64);
    assert_eq!(std::fs::read(&out).unwrap(), other);
    store.delete(&other_sha).await.unwrap();
    // A short stream or an error item stores nothing.
    let short = store.put_stream(feed(other[..1000].to_vec(), false), other.len() as u64).await;
    assert!(short.is_err(), "fewer bytes than announced");
    assert!(store.put_stream(feed(other.clone(), true), other.len() as u64).await.is_err());
    assert!(!store.exists(&other_sha).await.unwrap(), "nothing kept from a failed stream");
}

#[actix_rt::test]
async fn local_store_is_content_addressed_and_atomic() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalBlobStore::new(dir.path().join("blobs"));
    exercise(&store, dir.path()).await;
    collection(&store, dir.path()).await;
    // No temporary files are left behind.
    let tmp = dir.path().join("blobs/tmp");
    assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0);
    // A source that cannot be read leaves nothing either.
    assert!(store.put_file(&dir.path().join("missing")).await.is_err());
    assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0);
}

struct Moto {
    child: Child,
    port: u16,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_moto() -> Moto {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = Command::new(tools::moto_server_bin())
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let moto = Moto { child, port };
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(30) {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return moto;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("moto_server did not start");
}

#[actix_rt::test]
async fn s3_store_against_moto_server() {
    install_crypto();
    let moto = start_moto();
    let endpoint = format!("http://127.0.0.1:{}", moto.port);
    // Create the bucket (moto accepts unsigned requests).
    let res = awc::Client::default().put(format!("{endpoint}/exai-blobs")).send().await.unwrap();
    assert!(res.status().is_success(), "{}", res.status());
    let store = S3BlobStore::new(&S3Settings {
        bucket: "exai-blobs".into(),
        endpoint,
        region: "us-east-1".into(),
        access_key_id: "test".into(),
        secret_access_key: "test".into(),
        prefix: "blobs".into(),
        allow_http: true,
    })
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    exercise(&store, dir.path()).await;
    collection(&store, dir.path()).await;
}
