//! Conversations: a thread continues across a server restart on SQLite and on PostgreSQL
//! (history re-sent to the provider), keeps its model, belongs to its user (the principal)
//! rather than its connection, and stops at the turn cap.

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

/// Threads belong to the user (the principal), not to a connection: three turns on one
/// continuation_id from three unnamed connections, every one with JSON-RPC id 1 (as every
/// `exai call` and every SDK after a reconnect), with a daemon restart between turns 1 and 2.
/// Every turn succeeds and the provider receives the whole history each time.
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
        let mut expected = vec!["remember the word PLUM".to_string(), s["content"].as_str().unwrap().to_string()];
        drop(c);
        server.sigterm();
        assert_eq!(server.wait_exit(Duration::from_secs(20)).and_then(|s| s.code()), Some(0));

        let server = ServerProcess::start(opts());
        for prompt in ["which word?", "and again?"] {
            let mut c = mcp(&server).await;
            let r = call(&mut c, 1, "chat", json!({"prompt": prompt, "continuation_id": cid})).await;
            let s = ok(&r).clone();
            assert_eq!(s["metadata"]["model"], "glm-4.5", "a continuation keeps its model");
            assert_eq!(s["continuation_offer"]["continuation_id"], cid.as_str());
            let last = chats(&m.glm).await.last().cloned().unwrap();
            expected.push(prompt.to_string());
            assert_eq!(user_texts(&last), expected, "the provider receives the whole history");
            expected.push(s["content"].as_str().unwrap().to_string());
        }
    })
    .await;
}

/// Another token is another user: its callers cannot continue the first one's threads.
#[actix_rt::test]
async fn a_thread_is_not_continued_with_another_token() {
    let m = Mocks::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = ("token-of-user-a-0123456789", "token-of-user-b-0123456789");
    let server = ServerProcess::start(options(&m).data_dir(dir.path()).auth_token(a));
    let mut c = WsClient::connect(&server.ws_url("/mcp"), WsOptions::mcp().bearer(a)).await;
    c.mcp_initialize().await;
    let r = call(&mut c, 1, "chat", json!({"prompt": "secret plans"})).await;
    let cid = ok(&r)["continuation_offer"]["continuation_id"].as_str().unwrap().to_string();
    drop(c);
    drop(server);
    let server = ServerProcess::start(options(&m).data_dir(dir.path()).auth_token(b));
    let mut c = WsClient::connect(&server.ws_url("/mcp"), WsOptions::mcp().bearer(b)).await;
    c.mcp_initialize().await;
    let r = call(&mut c, 1, "chat", json!({"prompt": "tell me", "continuation_id": cid})).await;
    assert_eq!(err(&r)["code"], "VALIDATION_ERROR");
    assert!(err(&r)["message"].as_str().unwrap().contains("belongs to another user"), "{r}");
    drop(server);
    // The first user, back on a third server process, still owns it.
    let server = ServerProcess::start(options(&m).data_dir(dir.path()).auth_token(a));
    let mut c = WsClient::connect(&server.ws_url("/mcp"), WsOptions::mcp().bearer(a)).await;
    c.mcp_initialize().await;
    let r = call(&mut c, 1, "chat", json!({"prompt": "tell me", "continuation_id": cid})).await;
    assert_eq!(ok(&r)["continuation_offer"]["continuation_id"], cid.as_str());
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
