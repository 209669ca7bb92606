//! The file lifecycle end to end on the real binary against aimock's Files API (Kimi and
//! GLM): 50 uploads in every tier, a chat-with-files call whose references end with it,
//! the user references' expiry (`files.reference_ttl_secs`, scaled down), then one
//! `exai cleanup` run that leaves no provider file, no blob and no row behind (SQLite and
//! PostgreSQL). Also: a repeat upload of a large file does not rewrite its blob; 50
//! concurrent uploads against a provider answering 400 make one POST; file types Kimi does
//! not document are refused before anything is sent; Kimi file text goes in a system message;
//! a chat-with-files call that is cancelled, or whose client goes away, gives its
//! references back.

use super::e2e::{fixtures, options, provider_ids, read_bytes, uploads, write, ADMIN};
use crate::ai::{call, err, mcp, ok, T};
use crate::common::mock::{blocking_get, MockProvider};
use crate::common::ServerProcess;
use crate::store::harness::on_each_backend;
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};

/// Every file under the blob store folder (content addresses and temporary files).
fn blob_files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(top) = std::fs::read_dir(dir) else { return out };
    for d in top.flatten() {
        if let Ok(inner) = std::fs::read_dir(d.path()) {
            let tmp = d.file_name() == "tmp";
            out.extend(inner.flatten().map(|f| format!("{}{}", if tmp { "tmp:" } else { "" }, f.path().display())));
        }
    }
    out
}

fn chat_requests(journal: &[Value]) -> Vec<Value> {
    journal.iter().filter(|e| e["path"] == "/v1/chat/completions").map(|e| e["body"].clone()).collect()
}

#[actix_rt::test]
async fn fifty_uploads_then_their_ttl_then_one_cleanup_leaves_no_provider_file_and_no_blob() {
    on_each_backend(|url| async move {
        let (kimi, glm) = (MockProvider::start_aimock(&fixtures(), &[]), MockProvider::start_aimock(&fixtures(), &[]));
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        let mut kimi_files = Vec::new();
        for i in 0..20 {
            kimi_files.push(format!("k-direct-{i}.txt"));
            write(&r.join(&kimi_files[i]), 5_000 + i, &format!("kimi direct {i}\n"));
        }
        for i in 0..8 {
            kimi_files.push(format!("k-gateway-{i}.md"));
            write(&r.join(kimi_files.last().unwrap()), 30_000 + i, &format!("kimi gateway {i}\n"));
        }
        for i in 0..4 {
            kimi_files.push(format!("k-blob-{i}.txt"));
            write(&r.join(kimi_files.last().unwrap()), 250_000 + i, &format!("blob only {i}\n"));
        }
        let mut glm_files = Vec::new();
        for i in 0..18 {
            let (name, len) = if i < 12 {
                (format!("g-direct-{i}.txt"), 6_000 + i)
            } else {
                (format!("g-gateway-{i}.txt"), 40_000 + i)
            };
            write(&r.join(&name), len, &format!("glm file {i}\n"));
            glm_files.push(name);
        }
        std::fs::copy(r.join("k-gateway-0.md"), r.join("k-gateway-0-copy.md")).unwrap();
        write(&r.join("chat-only.txt"), 3_000, "CHAT-ONLY-TEXT line\n");
        let server = ServerProcess::start(
            options(&kimi, &glm, r)
                .set("storage.database_url", &url)
                .set("files.embed_max_bytes", "1000")
                .set("files.gateway_min_bytes", "20000")
                .set("files.kimi_max_bytes", "200000")
                .set("files.glm_max_bytes", "200000")
                .set("files.other_max_bytes", "200000")
                .set("files.max_blob_bytes", "1000000")
                .set("files.reference_ttl_secs", "3")
                .set("cleanup.grace_period_secs", "0")
                .set("cleanup.max_delete_share", "1")
                .set("cleanup.delete_rate_per_sec", "1000"),
        );
        let blobs = server.data_dir().join("blobs");
        let mut c = mcp(&server).await;

        // 50 uploads: 32 to Kimi (direct, gateway, blob-only), 18 to GLM (direct, gateway).
        let mut tiers = std::collections::BTreeMap::<String, usize>::new();
        for (n, batch) in kimi_files.chunks(16).enumerate() {
            let up = call(&mut c, 1 + n as i64, "kimi_upload_files", json!({ "files": batch })).await;
            for f in ok(&up)["files"].as_array().unwrap() {
                *tiers.entry(f["tier"].as_str().unwrap().to_string()).or_default() += 1;
                assert!(f["reference_expires_at_ms"].as_i64().unwrap() > 0, "the user is told when it expires: {f}");
            }
        }
        for (i, name) in glm_files.iter().enumerate() {
            let up = call(&mut c, 10 + i as i64, "glm_upload_file", json!({ "file": name })).await;
            *tiers.entry(ok(&up)["file"]["tier"].as_str().unwrap().to_string()).or_default() += 1;
        }
        let want: std::collections::BTreeMap<String, usize> =
            [("blob_only".to_string(), 4), ("direct".to_string(), 32), ("gateway".to_string(), 14)].into();
        assert_eq!(tiers, want);
        assert_eq!((uploads(&kimi).await, uploads(&glm).await), (28, 18));
        assert_eq!(
            blob_files(&blobs).iter().filter(|p| !p.starts_with("tmp:")).count(),
            18,
            "14 gateway + 4 blob-only"
        );

        // A repeat of a large file: a dedup hit that hashes the file and leaves its blob alone.
        let sha = ok(&call(&mut c, 40, "kimi_upload_files", json!({"files": ["k-gateway-0.md"]})).await)["files"][0]
            ["sha256"]
            .as_str()
            .unwrap()
            .to_string();
        let blob = blobs.join(&sha[..2]).join(&sha);
        let before = std::fs::metadata(&blob).unwrap().modified().unwrap();
        let blob_reads = read_bytes(&blocking_get(server.port(), "/metrics").unwrap().1, "blob");
        let again = call(&mut c, 41, "kimi_upload_files", json!({"files": ["k-gateway-0-copy.md"]})).await;
        assert_eq!(ok(&again)["files"][0]["dedup_hit"], true);
        assert_eq!(ok(&again)["files"][0]["blob_key"], sha);
        assert_eq!(std::fs::metadata(&blob).unwrap().modified().unwrap(), before, "the blob was not rewritten");
        let m = blocking_get(server.port(), "/metrics").unwrap().1;
        assert_eq!(read_bytes(&m, "blob"), blob_reads, "nothing read for the blob store");
        assert_eq!(uploads(&kimi).await, 28);

        // A chat with files holds references only while it runs.
        let res = call(
            &mut c,
            42,
            "kimi_chat_with_files",
            json!({"prompt": "question about files", "files": ["k-direct-0.txt", "chat-only.txt"],
                   "model": "kimi-k2-0905-preview"}),
        )
        .await;
        assert_eq!(ok(&res)["content"], "files answered");
        assert_eq!(ok(&res)["files"][0]["file"]["reference_count"], 2, "the user's and the call's");
        let list = call(&mut c, 43, "kimi_manage_files", json!({"action": "list"})).await;
        let refs = |name: &str| {
            ok(&list)["files"].as_array().unwrap().iter().find(|f| f["filename"] == name).unwrap()["reference_count"]
                .clone()
        };
        assert_eq!(refs("k-direct-0.txt"), 1, "the call's reference was released when it ended");
        assert_eq!(refs("chat-only.txt"), 0, "a file only the call used is a cleanup candidate at once");
        // Kimi's extracted text goes in a system message of its own; the user message is the prompt.
        let chat = chat_requests(&kimi.journal().await).pop().unwrap();
        let msgs = chat["messages"].as_array().unwrap();
        assert_eq!(msgs.len(), 3, "{chat}");
        assert_eq!((msgs[1]["role"].as_str(), msgs[2]["role"].as_str()), (Some("system"), Some("user")));
        assert!(msgs[1]["content"].as_str().unwrap().contains("CHAT-ONLY-TEXT"));
        assert_eq!(msgs[2]["content"], "question about files");

        // Before the references expire, a dry run finds only the chat's file to delete.
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_exai"))
            .args(["cleanup", "--dry-run", "--server", server.http_url("").trim_end_matches('/')])
            .env("EXAI_SERVER__ADMIN_TOKEN", ADMIN)
            .output()
            .unwrap();
        assert!(out.status.success(), "exai cleanup --dry-run: {}", String::from_utf8_lossy(&out.stderr));
        let dry: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(dry["summary"]["validated"], 1, "{dry}");

        // After the TTL, one cleanup run removes everything.
        tokio::time::sleep(Duration::from_millis(3_500)).await;
        let t0 = Instant::now();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_exai"))
            .args(["cleanup", "--server", server.http_url("").trim_end_matches('/')])
            .env("EXAI_SERVER__ADMIN_TOKEN", ADMIN)
            .output()
            .unwrap();
        assert!(out.status.success(), "exai cleanup: {}", String::from_utf8_lossy(&out.stderr));
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        let s = &report["summary"];
        assert_eq!(s["outcome"], "completed", "{report}");
        assert_eq!(s["leases_expired"], 52, "50 uploads + 2 repeats: {s}");
        assert_eq!(s["deleted"], 47, "28 + 1 Kimi files, 18 GLM files: {s}");
        assert_eq!(s["blobs_deleted"], 18, "{s}");
        let items = report["items"].as_array().unwrap();
        assert_eq!(items.iter().filter(|i| i["stage"] == "blob" && i["outcome"] == "deleted").count(), 18);
        assert_eq!(items.iter().filter(|i| i["stage"] == "expire").count(), 46, "one item per row released");
        eprintln!("cleanup of 47 files and 18 blobs: {:?}", t0.elapsed());
        assert!(provider_ids(&kimi).await.is_empty(), "no Kimi file left");
        assert!(provider_ids(&glm).await.is_empty(), "no GLM file left");
        assert_eq!(blob_files(&blobs), Vec::<String>::new(), "no blob left");
        let metrics = blocking_get(server.port(), "/metrics").unwrap().1;
        assert!(metrics.contains("exai_cleanup_items_total{outcome=\"blob_deleted\"} 18"), "blob metric");
        drop(c);
        drop(server);
        let reg =
            exai::store::open(&url, &exai::store::StoreOptions::default()).await.unwrap().file_registry().unwrap();
        assert!(reg.list_file_refs(None, 1000).await.unwrap().is_empty(), "no upload row left");
        assert_eq!(reg.expire_leases(i64::MAX / 2, 1000).await.unwrap().leases, 0, "no lease left");
    })
    .await;
}

#[actix_rt::test]
async fn fifty_concurrent_uploads_against_a_400_make_one_post() {
    let (kimi, glm) = (MockProvider::start_aimock(&fixtures(), &[]), MockProvider::start_aimock(&fixtures(), &[]));
    let root = tempfile::tempdir().unwrap();
    // Large enough that the leader's upload is still running when the last request arrives.
    write(&root.path().join("same.txt"), 8_000_000, "same content\n");
    // Kimi's real purpose is not one aimock accepts: every upload is answered 400.
    let server = ServerProcess::start(options(&kimi, &glm, root.path()).set("files.kimi_purpose", "file-extract"));
    let mut clients = Vec::new();
    for _ in 0..5 {
        clients.push(mcp(&server).await);
    }
    let tasks = clients.into_iter().enumerate().map(|(k, mut c)| async move {
        for i in 0..10 {
            c.send_json(&json!({"jsonrpc":"2.0","id": (k * 100 + i) as i64,"method":"tools/call",
                "params":{"name":"kimi_upload_files","arguments":{"files":["same.txt"]}}}))
                .await;
        }
        let mut out = Vec::new();
        while out.len() < 10 {
            let r = c.recv_json(T).await;
            if r.get("id").is_some() {
                out.push(r["result"].clone());
            }
        }
        out
    });
    let results: Vec<Value> = futures_util::future::join_all(tasks).await.into_iter().flatten().collect();
    assert_eq!(results.len(), 50);
    for r in &results {
        let e = err(r);
        assert_eq!(e["code"], "PROVIDER_ERROR", "{r}");
        assert!(e["message"].as_str().unwrap().contains("HTTP 400"), "the provider's answer is kept: {r}");
    }
    assert_eq!(uploads(&kimi).await, 1, "the waiters shared the leader's 400");
    // The failure is not remembered past its group: the next upload asks again.
    let mut c = mcp(&server).await;
    let e = call(&mut c, 1, "kimi_upload_files", json!({"files": ["same.txt"]})).await;
    assert!(err(&e)["message"].as_str().unwrap().contains("HTTP 400"));
    assert_eq!(uploads(&kimi).await, 2);
    let list = call(&mut c, 2, "kimi_manage_files", json!({"action": "list"})).await;
    assert_eq!(ok(&list)["count"], 0, "nothing uploaded, nothing held");
}

#[actix_rt::test]
async fn kimi_refuses_file_types_it_does_not_document_before_uploading() {
    let (kimi, glm) = (MockProvider::start_aimock(&fixtures(), &[]), MockProvider::start_aimock(&fixtures(), &[]));
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    write(&r.join("tool.exe"), 60_000, "not really a program\n");
    write(&r.join("Makefile"), 60_000, "all:\n\ttrue\n");
    write(&r.join("notes.md"), 60_000, "notes\n");
    let server = ServerProcess::start(options(&kimi, &glm, r));
    let mut c = mcp(&server).await;
    let e = call(&mut c, 1, "kimi_upload_files", json!({"files": ["notes.md", "tool.exe"]})).await;
    let e = err(&e);
    assert_eq!(e["code"], "VALIDATION_ERROR");
    let msg = e["message"].as_str().unwrap();
    assert!(msg.contains("files/1") && msg.contains("a .exe file") && msg.contains(".pdf"), "{msg}");
    let e =
        call(&mut c, 2, "kimi_chat_with_files", json!({"prompt": "question about files", "files": ["Makefile"]})).await;
    assert!(err(&e)["message"].as_str().unwrap().contains("without an extension"), "{e}");
    assert_eq!(uploads(&kimi).await, 1, "only notes.md reached Kimi");
    let list = call(&mut c, 3, "kimi_manage_files", json!({"action": "list"})).await;
    assert_eq!(ok(&list)["files"][0]["reference_count"], 0, "the failed call gave back what it took for notes.md");
    // GLM documents no type list; smart_file_query sends such files to GLM as local text.
    let up = call(&mut c, 4, "glm_upload_file", json!({"file": "tool.exe"})).await;
    let id = ok(&up)["file"]["provider_file_id"].as_str().unwrap().to_string();
    // GLM references have a release path of their own.
    let d = call(&mut c, 6, "kimi_manage_files", json!({"action": "delete", "provider": "glm", "file_id": id})).await;
    assert_eq!(ok(&d)["soft_deleted"], true, "{d}");
    let l = call(&mut c, 7, "kimi_manage_files", json!({"action": "list", "provider": "glm"})).await;
    assert_eq!((ok(&l)["provider"].as_str(), ok(&l)["files"][0]["reference_count"].as_i64()), (Some("glm"), Some(0)));
    let res =
        call(&mut c, 5, "smart_file_query", json!({"prompt": "question about files", "files": ["tool.exe"]})).await;
    assert_eq!(ok(&res)["routing"]["provider"], "glm");
    assert!(ok(&res)["routing"]["reason"].as_str().unwrap().contains("type"), "{res}");
    assert_eq!(uploads(&kimi).await, 1);
}

fn gauge(server: &ServerProcess, name: &str) -> f64 {
    let m = blocking_get(server.port(), "/metrics").unwrap().1;
    m.lines().find_map(|l| l.strip_prefix(name)).and_then(|v| v.trim().parse().ok()).unwrap_or(-1.0)
}

/// The reference count `kimi_manage_files list` shows for `name`, polled until it is `want`.
async fn refs_become(c: &mut crate::common::ws::WsClient, id: &mut i64, name: &str, want: i64) -> i64 {
    let mut got = -1;
    for _ in 0..100 {
        *id += 1;
        let list = call(c, *id, "kimi_manage_files", json!({"action": "list"})).await;
        got = ok(&list)["files"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["filename"] == name)
            .and_then(|f| f["reference_count"].as_i64())
            .unwrap_or(-1);
        if got == want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    got
}

#[actix_rt::test]
async fn a_cancelled_or_abandoned_chat_with_files_gives_its_references_back() {
    // Kimi's Files API on aimock; the chat itself goes to a GLM model on llmock, which is
    // told to stall, so the call is cut off while it holds its file references.
    let kimi = MockProvider::start_aimock(&fixtures(), &[]);
    let glm = MockProvider::start_llmock(&[]);
    let root = tempfile::tempdir().unwrap();
    write(&root.path().join("a.txt"), 60_000, "cancelled call\n");
    write(&root.path().join("b.txt"), 61_000, "abandoned call\n");
    let server = ServerProcess::start(options(&kimi, &glm, root.path()));
    let mut watcher = mcp(&server).await;
    let mut next = 100;
    let ask = |id: i64, file: &str| {
        json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":{"name":"kimi_chat_with_files",
            "arguments":{"prompt":"question about files","files":[file],"model":"glm-4.5-flash"}}})
    };
    let chat_running = || async {
        for _ in 0..200 {
            if gauge(&server, "exai_provider_inflight{provider=\"glm\"}") == 1.0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the chat never reached the provider");
    };

    // MCP cancel while the model is thinking.
    glm.scenario(json!([{"type":"delay","seconds":60,"times":1}])).await;
    let mut c = mcp(&server).await;
    c.send_json(&ask(1, "a.txt")).await;
    chat_running().await;
    assert_eq!(refs_become(&mut watcher, &mut next, "a.txt", 1).await, 1, "held by the running call");
    c.notify("notifications/cancelled", json!({"requestId": 1})).await;
    assert_eq!(refs_become(&mut watcher, &mut next, "a.txt", 0).await, 0, "released by the cancel");

    // The client goes away mid-call.
    glm.scenario(json!([{"type":"delay","seconds":60,"times":1}])).await;
    let mut gone = mcp(&server).await;
    gone.send_json(&ask(1, "b.txt")).await;
    chat_running().await;
    assert_eq!(refs_become(&mut watcher, &mut next, "b.txt", 1).await, 1);
    drop(gone);
    assert_eq!(refs_become(&mut watcher, &mut next, "b.txt", 0).await, 0, "released when the call was dropped");
    assert_eq!(uploads(&kimi).await, 2);
}
