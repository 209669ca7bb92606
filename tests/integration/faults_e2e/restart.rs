//! kill -9 and restart on the same SQLite data dir: a conversation started before the kill
//! continues after it in the same (named) session — no `conversations.cross_session` — with
//! every turn re-sent to the provider, and the dedup references are intact: the same file
//! uploaded again is a dedup hit (no second provider upload) and its reference count carries on.

use crate::ai::{call, chats, ok};
use crate::common::mock::MockProvider;
use crate::common::ws::{WsClient, WsOptions};
use crate::common::{ServerOptions, ServerProcess};
use serde_json::{json, Value};
use std::path::Path;

const SESSION: &str = "kill9-restart-1";

fn options(kimi: &MockProvider, glm: &MockProvider, root: &Path, data: &Path) -> ServerOptions {
    ServerOptions::new()
        .data_dir(data)
        .set("providers.kimi.base_url", &kimi.base_url())
        .set("providers.glm.base_url", &glm.base_url())
        .set("files.kimi_purpose", "assistants")
        .set("tools.allowed_roots", &root.display().to_string())
        .env("KIMI_API_KEY", "test-kimi-key-0123456789")
        .env("GLM_API_KEY", "test-glm-key-0123456789")
}

async fn named_session(server: &ServerProcess) -> WsClient {
    let mut c = WsClient::connect(&server.ws_url(&format!("/mcp?session_id={SESSION}")), WsOptions::mcp()).await;
    let init = c.mcp_initialize().await;
    assert_eq!(init["result"]["_meta"]["exai/session_id"], SESSION);
    c
}

async fn provider_uploads(m: &MockProvider) -> usize {
    m.journal().await.iter().filter(|e| e["method"] == "POST" && e["path"] == "/v1/files").count()
}

fn dialogue(req: &Value) -> Vec<String> {
    let messages = req["body"]["messages"].as_array().cloned().unwrap_or_default();
    messages
        .iter()
        .filter(|m| m["role"] == "user" || m["role"] == "assistant")
        .map(|m| m["content"].as_str().unwrap_or_default().to_string())
        .collect()
}

async fn upload(c: &mut WsClient, id: i64) -> Value {
    let r = call(c, id, "kimi_upload_files", json!({"files": ["same.txt"]})).await;
    ok(&r)["files"][0].clone()
}

#[actix_rt::test]
async fn conversation_and_dedup_survive_kill9_and_restart() {
    let kimi = MockProvider::start_aimock(&json!({"fixtures": []}), &[]);
    let glm = MockProvider::start_llmock(&[]);
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("same.txt"), "same content\n".repeat(2000)).unwrap();
    let data = tempfile::tempdir().unwrap();
    let mut server = ServerProcess::start(options(&kimi, &glm, root.path(), data.path()));
    let mut c = named_session(&server).await;

    let first = call(&mut c, 1, "chat", json!({"prompt": "remember the word PLUM", "model": "glm-4.5"})).await;
    let cid = ok(&first)["continuation_offer"]["continuation_id"].as_str().unwrap().to_string();
    let answer = ok(&first)["content"].as_str().unwrap().to_string();
    let second = call(&mut c, 2, "chat", json!({"prompt": "and the colour BLUE", "continuation_id": cid})).await;
    let answer2 = ok(&second)["content"].as_str().unwrap().to_string();
    let up = upload(&mut c, 3).await;
    assert_eq!(up["dedup_hit"], false, "{up}");
    let file_id = up["provider_file_id"].as_str().unwrap().to_string();
    assert_eq!(upload(&mut c, 4).await["dedup_hit"], true);
    assert_eq!(provider_uploads(&kimi).await, 1);

    // No graceful shutdown: whatever was answered must already be stored.
    server.kill9();
    drop(c);
    let server = ServerProcess::start(options(&kimi, &glm, root.path(), data.path()));
    let mut c = named_session(&server).await;

    let third = call(&mut c, 5, "chat", json!({"prompt": "which word and colour?", "continuation_id": cid})).await;
    let s = ok(&third);
    assert_eq!(s["metadata"]["model"], "glm-4.5", "the thread keeps its model");
    assert_eq!(s["continuation_offer"]["continuation_id"], cid.as_str());
    let last = chats(&glm).await.last().cloned().unwrap();
    let expected = ["remember the word PLUM", &answer, "and the colour BLUE", &answer2, "which word and colour?"];
    assert_eq!(dialogue(&last), expected.map(String::from).to_vec(), "every turn before the kill was kept");

    let again = upload(&mut c, 6).await;
    assert_eq!(again["dedup_hit"], true, "dedup state survived: {again}");
    assert_eq!(again["provider_file_id"], file_id.as_str());
    assert_eq!(provider_uploads(&kimi).await, 1, "no second provider upload after the restart");
    let list = call(&mut c, 7, "kimi_manage_files", json!({"action": "list"})).await;
    assert_eq!(ok(&list)["files"][0]["reference_count"], 3, "{list}");
}

async fn post_admin(server: &ServerProcess, path: &str) -> Value {
    let mut resp = awc::Client::default().post(server.http_url(path)).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 202, "{path}");
    resp.json().await.unwrap()
}

async fn metric(server: &ServerProcess, name: &str) -> f64 {
    let mut resp = awc::Client::default().get(server.http_url("/metrics")).send().await.unwrap();
    let body = String::from_utf8(resp.body().await.unwrap().to_vec()).unwrap();
    body.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
        .unwrap_or_else(|| panic!("{name} missing from /metrics"))
}

/// Write-behind (the SQLite default): turns answered while the writer is stuck exist only in
/// the journal; after kill -9 the restart applies them before serving, so the thread goes on.
#[actix_rt::test]
async fn turns_only_in_the_journal_survive_kill9() {
    let kimi = MockProvider::start_aimock(&json!({"fixtures": []}), &[]);
    let glm = MockProvider::start_llmock(&[]);
    let root = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let opts = || options(&kimi, &glm, root.path(), data.path()).set("debug.fault_injection", "true");
    let mut server = ServerProcess::start(opts());
    let mut c = named_session(&server).await;
    let paused = post_admin(&server, "/admin/debug/conversation-writer/pause").await;
    assert_eq!(paused["conversation_writer"], "pause");

    let first = call(&mut c, 1, "chat", json!({"prompt": "remember the word FIG", "model": "glm-4.5"})).await;
    let cid = ok(&first)["continuation_offer"]["continuation_id"].as_str().unwrap().to_string();
    let answer = ok(&first)["content"].as_str().unwrap().to_string();
    // A second thread, answered and journaled, never stored before the kill either.
    let other = call(&mut c, 2, "chat", json!({"prompt": "a second thread", "model": "glm-4.5"})).await;
    let other_cid = ok(&other)["continuation_offer"]["continuation_id"].as_str().unwrap().to_string();
    assert_eq!(metric(&server, "exai_conversation_journal_pending").await, 2.0, "nothing reached the store");

    server.kill9();
    drop(c);
    let server = ServerProcess::start(options(&kimi, &glm, root.path(), data.path()));
    assert_eq!(metric(&server, "exai_conversation_journal_replayed_total").await, 2.0);
    assert_eq!(metric(&server, "exai_conversation_journal_pending").await, 0.0);
    let mut c = named_session(&server).await;
    let next = call(&mut c, 3, "chat", json!({"prompt": "which word?", "continuation_id": cid})).await;
    assert_eq!(ok(&next)["metadata"]["model"], "glm-4.5", "the thread's record came back with its turn");
    let last = chats(&glm).await.last().cloned().unwrap();
    let expected = ["remember the word FIG", &answer, "which word?"];
    assert_eq!(dialogue(&last), expected.map(String::from).to_vec(), "the journaled turn was replayed");
    let more = call(&mut c, 4, "chat", json!({"prompt": "and here?", "continuation_id": other_cid})).await;
    assert_eq!(ok(&more)["continuation_offer"]["remaining_turns"], 18, "{more}");
}

/// The conversation writer is a supervised child: crashed while a turn waits, it is recreated,
/// and the turn (its queue outlives the actor) still reaches the store.
#[actix_rt::test]
async fn a_crashed_conversation_writer_is_recreated_and_loses_nothing() {
    let kimi = MockProvider::start_aimock(&json!({"fixtures": []}), &[]);
    let glm = MockProvider::start_llmock(&[]);
    let root = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let server =
        ServerProcess::start(options(&kimi, &glm, root.path(), data.path()).set("debug.fault_injection", "true"));
    let mut c = named_session(&server).await;
    post_admin(&server, "/admin/debug/conversation-writer/pause").await;
    let first = call(&mut c, 1, "chat", json!({"prompt": "remember the word KIWI", "model": "glm-4.5"})).await;
    let cid = ok(&first)["continuation_offer"]["continuation_id"].as_str().unwrap().to_string();
    let answer = ok(&first)["content"].as_str().unwrap().to_string();
    assert_eq!(metric(&server, "exai_conversation_journal_pending").await, 1.0);

    post_admin(&server, "/admin/debug/crash/conversation-writer").await;
    let mut restarted = 0.0;
    for _ in 0..50 {
        restarted = metric(&server, "exai_actor_restarts_total{actor=\"conversation-writer\"}").await;
        if restarted >= 1.0 {
            break;
        }
        actix_rt::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(restarted, 1.0, "the coordinator recreated the writer");
    post_admin(&server, "/admin/debug/conversation-writer/resume").await;

    let next = call(&mut c, 2, "chat", json!({"prompt": "which word?", "continuation_id": cid})).await;
    ok(&next);
    let last = chats(&glm).await.last().cloned().unwrap();
    let expected = ["remember the word KIWI", &answer, "which word?"];
    assert_eq!(dialogue(&last), expected.map(String::from).to_vec(), "the queued turn survived the crash");
    // The second turn is itself queued for a moment (group commit), then applied.
    let mut pending = 1.0;
    for _ in 0..50 {
        pending = metric(&server, "exai_conversation_journal_pending").await;
        if pending == 0.0 {
            break;
        }
        actix_rt::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(pending, 0.0);
}
