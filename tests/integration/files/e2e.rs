//! File tools end to end on the real binary against aimock's byte-exact Files API: every
//! policy tier (embed, direct, gateway with both ids, blob-only said clearly, refusals
//! naming size, limit and setting), file text reaching the model for Kimi and GLM, a marker
//! that appears in no log line even at trace level, 50 concurrent identical uploads making
//! one provider upload (SQLite and PostgreSQL), dry run and a kill -9 in the middle of a
//! cleanup run, and the resident-memory growth of a 100 MB upload.

use crate::ai::{call, err, mcp, ok, T};
use crate::common::mock::{install_crypto, MockProvider};
use crate::common::{ServerOptions, ServerProcess};
use crate::store::harness::on_each_backend;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::time::{Duration, Instant};

pub(super) const KIMI_KEY: &str = "test-kimi-key-0123456789";
pub(super) const GLM_KEY: &str = "test-glm-key-0123456789";
pub(super) const ADMIN: &str = "admin-token-0123456789abcdef";
const MARKER: &str = "ZEBRA-MARKER-7f3a9c";

pub(super) fn fixtures() -> Value {
    json!({"fixtures": [{ "match": {"userMessage": "question about files"}, "response": {"content": "files answered"} }]})
}

pub(super) fn options(kimi: &MockProvider, glm: &MockProvider, root: &Path) -> ServerOptions {
    ServerOptions::new()
        .set("providers.kimi.base_url", &kimi.base_url())
        .set("providers.glm.base_url", &glm.base_url())
        .set("files.kimi_purpose", "assistants")
        .set("files.glm_purpose", "batch")
        .set("tools.allowed_roots", &root.display().to_string())
        .set("limits.session_max_inflight", "64")
        .set("retry.server_base_ms", "50")
        .env("KIMI_API_KEY", KIMI_KEY)
        .env("GLM_API_KEY", GLM_KEY)
        .env("EXAI_SERVER__ADMIN_TOKEN", ADMIN)
}

pub(super) fn write(path: &Path, len: usize, fill: &str) {
    let mut s = String::with_capacity(len + fill.len());
    while s.len() < len {
        s.push_str(fill);
    }
    s.truncate(len);
    std::fs::write(path, s).unwrap();
}

pub(super) async fn uploads(m: &MockProvider) -> usize {
    m.journal().await.iter().filter(|e| e["method"] == "POST" && e["path"] == "/v1/files").count()
}

pub(super) async fn provider_ids(m: &MockProvider) -> Vec<String> {
    let v = m.get_json("/v1/files").await;
    v["data"].as_array().unwrap().iter().map(|f| f["id"].as_str().unwrap().to_string()).collect()
}

fn chat_bodies(journal: &[Value]) -> String {
    journal
        .iter()
        .filter(|e| e["path"].as_str().unwrap_or("").ends_with("/chat/completions"))
        .map(|e| e["body"].to_string())
        .collect()
}

#[actix_rt::test]
async fn policy_tiers_text_to_models_and_no_file_content_in_logs() {
    let (kimi, glm) = (MockProvider::start_aimock(&fixtures(), &[]), MockProvider::start_aimock(&fixtures(), &[]));
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    let marker_line = format!("{MARKER} secret line\n");
    write(&r.join("small.txt"), 1_000, &marker_line); // embed
    write(&r.join("mid.txt"), 100_000, &marker_line); // direct
    write(&r.join("direct2.txt"), 52_000, &marker_line); // direct, small enough for the mock's journal
    write(&r.join("gw.txt"), 250_000, "gateway text line\n"); // gateway (provider + blob)
    write(&r.join("huge.txt"), 400_000, "blob only line\n"); // above every provider limit
    write(&r.join("toolarge.txt"), 1_100_000, "x"); // above max_blob_bytes
    let opts = options(&kimi, &glm, r)
        .set("files.gateway_min_bytes", "150000")
        .set("files.kimi_max_bytes", "300000")
        .set("files.glm_max_bytes", "200000")
        .set("files.other_max_bytes", "200000")
        .set("files.max_blob_bytes", "1000000")
        .arg("--log-level")
        .arg("trace");
    let mut server = ServerProcess::start(opts);
    let mut c = mcp(&server).await;

    let up =
        call(&mut c, 1, "kimi_upload_files", json!({"files": ["small.txt", "mid.txt", "gw.txt", "huge.txt"]})).await;
    let files = ok(&up)["files"].as_array().unwrap().clone();
    let tiers: Vec<&str> = files.iter().map(|f| f["tier"].as_str().unwrap()).collect();
    assert_eq!(tiers, ["direct", "direct", "gateway", "blob_only"], "upload tools upload small files too");
    assert!(files[2]["provider_file_id"].is_string() && files[2]["blob_key"].is_string(), "both ids: {}", files[2]);
    assert!(files[3]["provider_file_id"].is_null() && files[3]["blob_key"].is_string());
    assert!(files[3]["note"].as_str().unwrap().contains("blob store only"), "{}", files[3]);
    let blob = server.data_dir().join("blobs").join(&files[2]["sha256"].as_str().unwrap()[..2]);
    assert!(blob.join(files[2]["sha256"].as_str().unwrap()).exists(), "gateway file kept in the blob store");
    assert_eq!(uploads(&kimi).await, 3);

    let e = call(&mut c, 2, "kimi_upload_files", json!({"files": ["toolarge.txt"]})).await;
    let msg = err(&e)["message"].as_str().unwrap().to_string();
    assert!(msg.contains("1100000") && msg.contains("1000000") && msg.contains("files.max_blob_bytes"), "{msg}");
    let e = call(&mut c, 3, "glm_upload_file", json!({"file": "gw.txt"})).await;
    let msg = err(&e)["message"].as_str().unwrap().to_string();
    assert!(msg.contains("250000") && msg.contains("200000") && msg.contains("files.glm_max_bytes"), "{msg}");
    // Outside the roots: the same refusal whether the file exists or not.
    let e = call(&mut c, 4, "kimi_upload_files", json!({"files": ["/etc/passwd"]})).await;
    let exists = err(&e)["message"].as_str().unwrap().to_string();
    let e = call(&mut c, 4, "kimi_upload_files", json!({"files": ["/etc/no-such-file-here"]})).await;
    let missing = err(&e)["message"].as_str().unwrap().to_string();
    assert!(exists.contains("not a readable regular file under the allowed roots"), "{exists}");
    assert_eq!(exists.replace("/etc/passwd", "<p>"), missing.replace("/etc/no-such-file-here", "<p>"));

    // Kimi: small is embedded, mid and gw come back as extracted text, huge is not sent.
    let res = call(&mut c, 5, "kimi_chat_with_files",
        json!({"prompt": "question about files", "files": ["small.txt", "mid.txt", "gw.txt", "huge.txt"], "model": "kimi-k2-0905-preview"})).await;
    let v = ok(&res);
    assert_eq!(v["content"], "files answered");
    let sent: Vec<bool> = v["files"].as_array().unwrap().iter().map(|f| f["sent"].as_bool().unwrap()).collect();
    assert_eq!(sent, [true, true, true, false]);
    assert_eq!(v["files"][0]["file"]["tier"], "embed");
    assert!(v["files"][1]["file"]["dedup_hit"].as_bool().unwrap(), "mid.txt reuses the earlier upload");
    // aimock's journal keeps bodies up to 64 KB: this one is summarised with its size, which
    // holds the three sent files (351 000 bytes) but not the blob-only one (400 000).
    let journal = kimi.journal().await;
    let chat = journal.iter().rev().find(|e| e["path"] == "/v1/chat/completions").unwrap();
    let size = chat["body"]["originalByteSize"].as_u64().unwrap();
    assert!((351_000..700_000).contains(&size), "chat body of {size} bytes");
    // A direct upload small enough for the journal: its extracted text is in the chat body.
    let res = call(
        &mut c,
        8,
        "kimi_chat_with_files",
        json!({"prompt": "question about files", "files": ["direct2.txt"], "model": "kimi-k2-0905-preview"}),
    )
    .await;
    assert_eq!(ok(&res)["files"][0]["file"]["tier"], "direct");
    assert!(chat_bodies(&kimi.journal().await).contains(MARKER), "Kimi's extracted text reached the model");
    assert_eq!(uploads(&kimi).await, 4, "only direct2.txt was new: dedup");

    // GLM: text extracted locally and sent.
    let res = call(
        &mut c,
        6,
        "glm_multi_file_chat",
        json!({"prompt": "question about files", "files": ["small.txt"], "model": "glm-4.5-flash"}),
    )
    .await;
    assert_eq!(ok(&res)["content"], "files answered");
    assert!(chat_bodies(&glm.journal().await).contains(MARKER), "file text reached GLM");
    assert_eq!(uploads(&glm).await, 0);

    // smart_file_query picks Kimi (configured, fits) and says why.
    let res =
        call(&mut c, 7, "smart_file_query", json!({"prompt": "question about files", "files": ["mid.txt"]})).await;
    assert_eq!(ok(&res)["routing"]["provider"], "kimi");

    let stderr = server.stop_and_collect_stderr(Duration::from_secs(10));
    assert!(stderr.contains("TRACE") || stderr.contains("trace"), "trace logging was on");
    assert!(!stderr.contains(MARKER), "file content leaked into the log");
    assert!(!server.stdout_text().contains(MARKER));
}

#[actix_rt::test]
async fn fifty_concurrent_identical_uploads_make_one_provider_upload() {
    on_each_backend(|url| async move {
        let (kimi, glm) = (MockProvider::start_aimock(&fixtures(), &[]), MockProvider::start_aimock(&fixtures(), &[]));
        let root = tempfile::tempdir().unwrap();
        write(&root.path().join("same.txt"), 300_000, "same content\n");
        let server = ServerProcess::start(options(&kimi, &glm, root.path()).set("storage.database_url", &url));
        let mut clients = Vec::new();
        for _ in 0..5 {
            clients.push(mcp(&server).await);
        }
        let tasks = clients.into_iter().enumerate().map(|(k, mut c)| async move {
            for i in 0..10 {
                let id = (k * 100 + i) as i64;
                c.send_json(&json!({"jsonrpc":"2.0","id":id,"method":"tools/call",
                    "params":{"name":"kimi_upload_files","arguments":{"files":["same.txt"]}}}))
                    .await;
            }
            let mut out = Vec::new();
            while out.len() < 10 {
                let r = c.recv_json(T).await;
                if r.get("id").is_some() {
                    assert_eq!(r["result"]["isError"], false, "{r}");
                    out.push(r["result"]["structuredContent"]["files"][0].clone());
                }
            }
            out
        });
        let results: Vec<Value> = futures_util::future::join_all(tasks).await.into_iter().flatten().collect();
        assert_eq!(results.len(), 50);
        let ids: std::collections::HashSet<&str> =
            results.iter().map(|f| f["provider_file_id"].as_str().unwrap()).collect();
        assert_eq!(ids.len(), 1, "one provider file");
        assert_eq!(results.iter().filter(|f| f["dedup_hit"] == false).count(), 1);
        assert_eq!(uploads(&kimi).await, 1, "exactly one provider upload");
        let mut c = mcp(&server).await;
        let list = call(&mut c, 1, "kimi_manage_files", json!({"action": "list"})).await;
        assert_eq!(ok(&list)["files"][0]["reference_count"], 50);
        let metrics = crate::common::mock::blocking_get(server.port(), "/metrics").unwrap().1;
        assert!(metrics.contains("exai_dedup_hits_total 49"), "dedup hits");
        assert!(metrics.contains("exai_dedup_misses_total 1"));
        assert!(metrics.contains(&format!("exai_dedup_bytes_saved_total {}", 49 * 300_000)));
    })
    .await;
}

pub(super) fn read_bytes(metrics: &str, pass: &str) -> u64 {
    let key = format!("exai_file_read_bytes_total{{pass=\"{pass}\"}} ");
    metrics.lines().find_map(|l| l.strip_prefix(&key)).and_then(|v| v.trim().parse().ok()).unwrap_or(u64::MAX)
}

#[actix_rt::test]
async fn a_new_file_is_read_once_a_repeat_is_only_hashed_and_a_same_size_file_is_not_confused() {
    use sha2::Digest;
    let (kimi, glm) = (MockProvider::start_aimock(&fixtures(), &[]), MockProvider::start_aimock(&fixtures(), &[]));
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    write(&r.join("a.txt"), 300_000, "alpha content line\n");
    write(&r.join("a-copy.txt"), 300_000, "alpha content line\n");
    write(&r.join("b.txt"), 300_000, "bravo content line\n"); // same size, other bytes
    write(&r.join("g.txt"), 500_000, "gateway content line\n"); // gateway tier: provider + blob
    let sha = |name: &str| format!("{:x}", sha2::Sha256::digest(std::fs::read(r.join(name)).unwrap()));
    let server = ServerProcess::start(options(&kimi, &glm, r).set("files.gateway_min_bytes", "400000"));
    let metrics = || crate::common::mock::blocking_get(server.port(), "/metrics").unwrap().1;
    let mut c = mcp(&server).await;
    let up = |id: i64, name: &str| (id, json!({"files": [name]}));

    // New content: one read, streamed to the provider and hashed on the way.
    let (id, args) = up(1, "a.txt");
    let first = ok(&call(&mut c, id, "kimi_upload_files", args).await)["files"][0].clone();
    assert_eq!(first["dedup_hit"], false);
    assert_eq!(first["sha256"], sha("a.txt"), "the identity is the sha256 of the bytes sent");
    let m = metrics();
    assert_eq!(read_bytes(&m, "upload"), 300_000, "read once, for the upload");
    assert_eq!(read_bytes(&m, "hash"), 0, "no separate hashing pass for new content");

    // The same bytes under another name: hashed (one read), no upload.
    let (id, args) = up(2, "a-copy.txt");
    let again = ok(&call(&mut c, id, "kimi_upload_files", args).await)["files"][0].clone();
    assert_eq!(again["dedup_hit"], true);
    assert_eq!(again["provider_file_id"], first["provider_file_id"]);
    let m = metrics();
    assert_eq!(read_bytes(&m, "hash"), 300_000);
    assert_eq!(read_bytes(&m, "upload"), 300_000);

    // Other bytes of the same size: hashed first (a possible hit), then a real upload.
    let (id, args) = up(3, "b.txt");
    let other = ok(&call(&mut c, id, "kimi_upload_files", args).await)["files"][0].clone();
    assert_eq!(other["dedup_hit"], false);
    assert_eq!(other["sha256"], sha("b.txt"));
    assert_ne!(other["provider_file_id"], first["provider_file_id"]);
    let m = metrics();
    assert_eq!(read_bytes(&m, "hash"), 600_000);
    assert_eq!(read_bytes(&m, "upload"), 600_000);
    assert_eq!(uploads(&kimi).await, 2, "two distinct contents, two provider uploads");

    // Gateway tier, new content: one read feeds the provider upload and the blob store.
    let (id, args) = up(4, "g.txt");
    let gw = ok(&call(&mut c, id, "kimi_upload_files", args).await)["files"][0].clone();
    assert_eq!(gw["tier"], "gateway");
    assert_eq!(gw["sha256"], sha("g.txt"));
    assert!(gw["provider_file_id"].is_string(), "{gw}");
    assert_eq!(gw["blob_key"], sha("g.txt"), "kept in the blob store under its sha256: {gw}");
    let kept = server.data_dir().join("blobs").join(&sha("g.txt")[..2]).join(sha("g.txt"));
    assert!(std::fs::read(&kept).unwrap() == std::fs::read(r.join("g.txt")).unwrap(), "the blob holds the file");
    let m = metrics();
    assert_eq!(read_bytes(&m, "upload"), 1_100_000, "read once, for the upload");
    assert_eq!(read_bytes(&m, "blob"), 0, "the blob store took the same read");
    assert_eq!(read_bytes(&m, "hash"), 600_000);
    assert_eq!(uploads(&kimi).await, 3);
}

async fn admin_cleanup(server: &ServerProcess, dry_run: bool) -> Value {
    install_crypto();
    let mut res = awc::Client::default()
        .post(server.http_url(&format!("/admin/cleanup?dry_run={dry_run}")))
        .bearer_auth(ADMIN)
        .timeout(Duration::from_secs(60))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.json().limit(16 << 20).await.unwrap()
}

#[actix_rt::test]
async fn dry_run_then_kill_9_mid_cleanup_and_the_next_run_finishes() {
    let (kimi, glm) = (MockProvider::start_aimock(&fixtures(), &[]), MockProvider::start_aimock(&fixtures(), &[]));
    let root = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let names: Vec<String> = (0..8).map(|i| format!("f{i}.txt")).collect();
    for (i, n) in names.iter().enumerate() {
        write(&root.path().join(n), 60_000 + i, &format!("file {i}\n"));
    }
    let opts = || {
        options(&kimi, &glm, root.path())
            .data_dir(data.path())
            .set("cleanup.grace_period_secs", "0")
            .set("cleanup.max_delete_share", "1")
            .set("cleanup.delete_rate_per_sec", "2")
    };
    let mut server = ServerProcess::start(opts());
    let mut c = mcp(&server).await;
    let up = call(&mut c, 1, "kimi_upload_files", json!({"files": names})).await;
    let ids: Vec<String> = ok(&up)["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["provider_file_id"].as_str().unwrap().to_string())
        .collect();
    // Unauthenticated admin calls are refused.
    let status = awc::Client::default().post(server.http_url("/admin/cleanup")).send().await.unwrap().status();
    assert_eq!(status, 401);
    // Referenced files are never candidates.
    let r = admin_cleanup(&server, true).await;
    assert_eq!(r["summary"]["outcome"], "nothing_to_do");
    for (i, id) in ids.iter().enumerate() {
        let d = call(&mut c, 10 + i as i64, "kimi_manage_files", json!({"action": "delete", "file_id": id})).await;
        assert_eq!(ok(&d)["soft_deleted"], true);
    }
    assert_eq!(provider_ids(&kimi).await.len(), 8, "soft delete keeps the provider file");
    let r = admin_cleanup(&server, true).await;
    assert_eq!((r["summary"]["outcome"].as_str(), r["summary"]["validated"].as_i64()), (Some("dry_run"), Some(8)));
    assert_eq!(provider_ids(&kimi).await.len(), 8, "dry run deletes nothing");

    // A real run at 2 deletes/s; kill -9 after about three deletes.
    let url = server.http_url("/admin/cleanup?dry_run=false");
    std::thread::spawn(move || {
        let mut s = std::net::TcpStream::connect(url.trim_start_matches("http://").split('/').next().unwrap()).unwrap();
        let path = &url[url.find("/admin").unwrap()..];
        let _ =
            write!(s, "POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN}\r\nContent-Length: 0\r\n\r\n");
        let _ = s.read(&mut [0u8; 64]);
    });
    let t0 = Instant::now();
    while provider_ids(&kimi).await.len() > 6 && t0.elapsed() < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.kill9();
    let left_at_provider = provider_ids(&kimi).await;
    assert!(left_at_provider.len() < 8 && !left_at_provider.is_empty(), "killed mid-run: {}", left_at_provider.len());

    // No usable row points at a deleted file.
    let db = format!("sqlite://{}/exai.db", data.path().display());
    let reg = exai::store::open(&db, &exai::store::StoreOptions::default()).await.unwrap().file_registry().unwrap();
    let rows = reg.list_file_refs(Some("kimi"), 100).await.unwrap();
    for row in &rows {
        if let Some(id) = &row.provider_file_id {
            if !left_at_provider.contains(id) {
                assert!(
                    row.claimed && !row.is_ready(),
                    "row {} points at deleted file {id} and is not claimed",
                    row.id
                );
            }
        }
    }
    drop(reg);

    // Restart; `exai cleanup` finishes the job.
    let server = ServerProcess::start(opts());
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_exai"))
        .args(["cleanup", "--server", server.http_url("").trim_end_matches('/')])
        .env("EXAI_SERVER__ADMIN_TOKEN", ADMIN)
        .output()
        .unwrap();
    assert!(out.status.success(), "exai cleanup: {}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["summary"]["outcome"], "completed", "{report}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("provider_cleanup")
            || report["summary"]["deleted"].as_i64() > Some(0)
    );
    assert!(provider_ids(&kimi).await.is_empty(), "every file removed at the provider");
    let mut c = mcp(&server).await;
    let list = call(&mut c, 1, "kimi_manage_files", json!({"action": "list"})).await;
    assert_eq!(ok(&list)["count"], 0);
    drop(server);
    let reg = exai::store::open(&db, &exai::store::StoreOptions::default()).await.unwrap().file_registry().unwrap();
    assert!(reg.list_file_refs(Some("kimi"), 100).await.unwrap().is_empty(), "no rows left");
}

/// A Files API sink: drains each upload (counting bytes) and answers a file object.
fn start_sink() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            std::thread::spawn(move || sink_one(s));
        }
    });
    port
}

fn sink_one(mut s: std::net::TcpStream) {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if s.read(&mut b).unwrap_or(0) == 0 {
            return;
        }
        head.push(b[0]);
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    let len: u64 = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:").map(|v| v.trim().parse().unwrap_or(0)))
        .unwrap_or(0);
    let mut left = len;
    let mut buf = vec![0u8; 1 << 16];
    while left > 0 {
        let n = s.read(&mut buf[..(left.min(1 << 16)) as usize]).unwrap_or(0);
        if n == 0 {
            return;
        }
        left -= n as u64;
    }
    let body =
        format!(r#"{{"id":"file-big","object":"file","filename":"big.txt","bytes":{len},"purpose":"assistants"}}"#);
    let _ = write!(
        s,
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

fn rss_kb(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

#[actix_rt::test]
async fn a_100_mb_upload_raises_resident_memory_by_at_most_32_mb() {
    let port = start_sink();
    let glm = MockProvider::start_aimock(&fixtures(), &[]);
    let root = tempfile::tempdir().unwrap();
    let big = root.path().join("big.txt");
    {
        let mut f = std::fs::File::create(&big).unwrap();
        let chunk: Vec<u8> = (0..1 << 20).map(|i| (i * 7 % 251) as u8).collect();
        for _ in 0..100 {
            f.write_all(&chunk).unwrap();
        }
    }
    let opts = ServerOptions::new()
        .set("providers.kimi.base_url", &format!("http://127.0.0.1:{port}/v1"))
        .set("providers.glm.base_url", &glm.base_url())
        .set("providers.kimi.first_byte_timeout_secs", "300")
        .set("tools.allowed_roots", &root.path().display().to_string())
        .env("KIMI_API_KEY", KIMI_KEY)
        .env("GLM_API_KEY", GLM_KEY);
    let server = ServerProcess::start(opts);
    let mut c = mcp(&server).await;
    // Warm up (first call allocates pools, caches, TLS config).
    let _ = call(&mut c, 1, "listmodels", json!({})).await;
    let pid = server.pid();
    let before = rss_kb(pid);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (stop2, peak) = (std::sync::Arc::clone(&stop), std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0)));
    let peak2 = std::sync::Arc::clone(&peak);
    let sampler = std::thread::spawn(move || {
        while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
            peak2.fetch_max(rss_kb(pid), std::sync::atomic::Ordering::Relaxed);
            std::thread::sleep(Duration::from_millis(5));
        }
    });
    let t0 = Instant::now();
    c.send_json(&json!({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"kimi_upload_files","arguments":{"files":["big.txt"]}}})).await;
    let (r, _) = c.recv_response(&json!(2), Duration::from_secs(300)).await;
    let wall = t0.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    sampler.join().unwrap();
    let f = &r["result"]["structuredContent"]["files"][0];
    assert_eq!(f["tier"], "gateway", "{r}");
    assert_eq!(f["size"], 100 * 1024 * 1024);
    assert_eq!(f["provider_file_id"], "file-big");
    let growth_mb = (peak.load(std::sync::atomic::Ordering::Relaxed).saturating_sub(before)) as f64 / 1024.0;
    eprintln!(
        "[files] 100 MB upload (blob store + provider): wall {:.2}s, RSS before {} KB, peak growth {growth_mb:.1} MB",
        wall.as_secs_f64(),
        before
    );
    assert!(growth_mb <= 32.0, "resident memory grew by {growth_mb:.1} MB");
}
