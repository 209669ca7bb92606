//! Conversations: a thread continues across a server restart on SQLite and on PostgreSQL
//! (history re-sent to the provider), keeps its model, is scoped to its session, and stops
//! at the turn cap.

use super::*;
use crate::store::harness::on_each_backend;

fn user_texts(req: &Value) -> Vec<String> {
    req["body"]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "user" || m["role"] == "assistant")
        .map(|m| m["content"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[actix_rt::test]
async fn conversation_continues_across_a_restart_on_every_backend() {
    on_each_backend(|url| async move {
        let m = Mocks::start(&[]);
        let dir = tempfile::tempdir().unwrap();
        let opts = || options(&m).data_dir(dir.path()).arg("--database-url").arg(url.clone());
        let mut server = ServerProcess::start(opts());
        let mut c = mcp(&server).await;
        let first = call(&mut c, 1, "chat", json!({"prompt": "remember the word PLUM", "model": "glm-4.5"})).await;
        let s = ok(&first).clone();
        let cid = s["continuation_offer"]["continuation_id"].as_str().unwrap().to_string();
        let answer = s["content"].as_str().unwrap().to_string();
        drop(c);
        server.sigterm();
        assert_eq!(server.wait_exit(Duration::from_secs(20)).and_then(|s| s.code()), Some(0));

        let server = ServerProcess::start(opts());
        let mut c = mcp(&server).await;
        // Same session scope is the MCP session; allow this test's new connection to continue it.
        let r = call(&mut c, 2, "chat", json!({"prompt": "which word?", "continuation_id": cid})).await;
        assert_eq!(err(&r)["code"], "VALIDATION_ERROR", "another session may not continue the thread");
        drop(server);

        let server = ServerProcess::start(opts().set("conversations.cross_session", "true"));
        let mut c = mcp(&server).await;
        let r = call(&mut c, 3, "chat", json!({"prompt": "which word?", "continuation_id": cid})).await;
        let s = ok(&r);
        assert_eq!(s["metadata"]["model"], "glm-4.5", "a continuation keeps its model");
        let last = chats(&m.glm).await.last().cloned().unwrap();
        let texts = user_texts(&last);
        assert_eq!(texts, vec!["remember the word PLUM".to_string(), answer, "which word?".to_string()]);
        assert_eq!(s["continuation_offer"]["continuation_id"], cid.as_str());
    })
    .await;
}

#[actix_rt::test]
async fn turn_cap_stops_a_thread() {
    let m = Mocks::start(&[]);
    let server = ServerProcess::start(options(&m).set("conversations.max_turns", "1"));
    let mut c = mcp(&server).await;
    let r = call(&mut c, 1, "chat", json!({"prompt": "one"})).await;
    let cid = ok(&r)["continuation_offer"]["continuation_id"].as_str().unwrap().to_string();
    assert_eq!(ok(&r)["continuation_offer"]["remaining_turns"], 0);
    let r = call(&mut c, 2, "chat", json!({"prompt": "two", "continuation_id": cid})).await;
    assert!(err(&r)["message"].as_str().unwrap().contains("turn limit"));
    let r = call(&mut c, 3, "chat", json!({"prompt": "x", "continuation_id": "no-such-thread"})).await;
    assert!(err(&r)["message"].as_str().unwrap().contains("unknown continuation_id"));
}
