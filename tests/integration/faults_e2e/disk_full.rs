//! A data directory whose disk fills up and is then freed (a real tmpfs of a few MiB, mounted
//! for the test): while full, new turns fail fast with `SERVICE_UNAVAILABLE` naming the full
//! disk and the provider is never called (nothing billed, nothing lost), readiness reports
//! the store degraded; once space is freed the server stores turns and tool-call log rows
//! again without a restart — including the SQLite writer connection whose COMMIT failed on
//! the full disk.

use crate::ai::{call, chats, err, mcp, ok, options, Mocks};
use crate::common::ServerProcess;
use serde_json::{json, Value};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A tmpfs mounted on a fresh directory, unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size_mib: u32) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size_mib}m"), "tmpfs"])
            .arg(dir.path())
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "this test mounts a small tmpfs and needs root (CI runs as root): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs { dir }
    }
    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.dir.path()).status();
    }
}

/// Fill the file system holding `dir` to the last byte; returns the filler file.
fn fill(dir: &Path) -> PathBuf {
    let path = dir.join("filler.bin");
    let mut f = std::fs::File::create(&path).unwrap();
    let chunk = vec![0u8; 64 * 1024];
    while f.write_all(&chunk).is_ok() {}
    let small = [0u8; 512];
    while f.write_all(&small).is_ok() {}
    let _ = f.sync_all();
    path
}

async fn ready(server: &ServerProcess) -> (u16, Value) {
    let r = crate::common::http::get(&server.http_url("/health/ready"), &[]).await;
    (r.status, r.json())
}

#[actix_rt::test]
async fn a_full_disk_refuses_turns_before_the_provider_and_recovers_when_freed() {
    let fs = Tmpfs::mount(24);
    let m = Mocks::start(&[]);
    let data = fs.path().join("data");
    let server = ServerProcess::start(options(&m).data_dir(&data));
    let mut c = mcp(&server).await;
    let r = call(&mut c, 1, "chat", json!({"prompt": "first turn", "model": "glm-4.5"})).await;
    let cid = ok(&r)["continuation_offer"]["continuation_id"].as_str().unwrap().to_string();
    let first_answer = ok(&r)["content"].as_str().unwrap().to_string();
    assert_eq!(ready(&server).await.0, 200);

    let filler = fill(fs.path());
    // Free space is read at most every 250 ms (one statvfs, not one per call).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = chats(&m.glm).await.len();
    for id in 2..6 {
        let t0 = Instant::now();
        let r = call(&mut c, id, "chat", json!({"prompt": "while full", "continuation_id": cid})).await;
        let e = err(&r);
        assert_eq!(e["code"], "SERVICE_UNAVAILABLE", "{r}");
        let msg = e["message"].as_str().unwrap();
        assert!(msg.contains("disk") && msg.contains("full"), "the error names the full disk: {msg}");
        assert!(t0.elapsed() < Duration::from_secs(5), "fails fast, never hangs: {:?}", t0.elapsed());
    }
    // Plain tools still answer (and their log rows fail to store on the full disk).
    for id in 6..40 {
        let r = call(&mut c, id, "version", json!({})).await;
        assert_eq!(r["isError"], false);
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(chats(&m.glm).await.len(), before, "the provider is not called while turns cannot be stored");
    let (status, body) = ready(&server).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["store"]["status"], "degraded", "{body}");
    assert!(body["store"]["problem"].as_str().unwrap().contains("full"), "{body}");

    std::fs::remove_file(&filler).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while ready(&server).await.0 != 200 {
        assert!(Instant::now() < deadline, "readiness did not recover: {}", ready(&server).await.1);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let r = call(&mut c, 50, "chat", json!({"prompt": "after freeing", "continuation_id": cid})).await;
    let second_answer = ok(&r)["content"].as_str().unwrap().to_string();
    let last = chats(&m.glm).await.last().cloned().unwrap();
    let texts: Vec<&str> =
        last["body"]["messages"].as_array().unwrap().iter().filter_map(|m| m["content"].as_str()).collect();
    assert!(texts.contains(&"first turn") && texts.contains(&first_answer.as_str()), "{texts:?}");
    assert!(!texts.contains(&"while full"), "refused turns were never stored: {texts:?}");

    // Tool-call log rows are stored again (the writer connection recovered on its own).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = call(&mut c, 60, "toolcall_log_tail", json!({"n": 50, "tool": "chat"})).await;
        let calls = r["structuredContent"]["calls"].as_array().cloned().unwrap_or_default();
        if calls.iter().any(|row| row["request_id"] == "50") {
            break;
        }
        assert!(Instant::now() < deadline, "tool-call log rows not stored after recovery: {r}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // The turn stored after recovery survives a restart.
    drop(c);
    drop(server);
    let server = ServerProcess::start(options(&m).data_dir(&data));
    let mut c = mcp(&server).await;
    let r = call(&mut c, 1, "chat", json!({"prompt": "after restart", "continuation_id": cid})).await;
    ok(&r);
    let last = chats(&m.glm).await.last().cloned().unwrap();
    let texts: Vec<&str> =
        last["body"]["messages"].as_array().unwrap().iter().filter_map(|m| m["content"].as_str()).collect();
    assert!(texts.contains(&"after freeing") && texts.contains(&second_answer.as_str()), "{texts:?}");
    drop(server);
}
