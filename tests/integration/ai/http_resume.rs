//! Streamable HTTP resumability with a real streamed `chat`: a POST stream that drops is not
//! a cancel, and `GET` with `Last-Event-ID` on that session delivers the result.

use super::{options, Mocks, T};
use futures_util::StreamExt;
use serde_json::{json, Value};
use std::time::Duration;

const KIMI: &str = "kimi-k2-0905-preview";

fn client() -> awc::Client {
    awc::Client::builder().timeout(Duration::from_secs(60)).finish()
}

/// The events (id, JSON) complete in `buf` so far.
fn events(buf: &str) -> Vec<(Option<String>, Value)> {
    buf.split("\n\n")
        .filter(|e| e.contains("data: "))
        .filter_map(|e| {
            let id = e.lines().find_map(|l| l.strip_prefix("id: ")).map(str::to_string);
            let data = e.lines().find_map(|l| l.strip_prefix("data: "))?;
            Some((id, serde_json::from_str(data).ok()?))
        })
        .collect()
}

#[actix_rt::test]
async fn a_dropped_post_stream_still_finishes_upstream_and_get_with_last_event_id_delivers_the_result() {
    // 150 ms between streamed chunks: the call outlives the first event by a good margin.
    let m = Mocks::start(&["--stream-chunk-delay-ms", "150"]);
    let server = crate::common::ServerProcess::start(options(&m));
    let url = server.http_url("/mcp");
    let init = json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{
        "protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"resume-test","version":"1"}}});
    let resp = client()
        .post(&url)
        .insert_header(("content-type", "application/json"))
        .insert_header(("accept", "application/json, text/event-stream"))
        .send_body(init.to_string())
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let sid = resp.headers().get("mcp-session-id").unwrap().to_str().unwrap().to_string();
    let on = |req: awc::ClientRequest| {
        req.insert_header(("mcp-session-id", sid.as_str())).insert_header(("mcp-protocol-version", "2025-11-25"))
    };

    let call = json!({"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"chat",
        "arguments":{"prompt":"Tell me something in a few words","model":KIMI},"_meta":{"progressToken":"p7"}}});
    let mut resp = on(client().post(&url))
        .insert_header(("content-type", "application/json"))
        .insert_header(("accept", "application/json, text/event-stream"))
        .send_body(call.to_string())
        .await
        .unwrap();
    assert_eq!(resp.headers().get("content-type").unwrap(), "text/event-stream");
    // Read up to the first event, then drop the stream (and its connection).
    let mut buf = String::new();
    let first = loop {
        let chunk = tokio::time::timeout(T, resp.next()).await.expect("first event").expect("stream open").unwrap();
        buf.push_str(std::str::from_utf8(&chunk).unwrap());
        if let Some(e) = events(&buf).into_iter().next() {
            break e;
        }
    };
    drop(resp);
    let (Some(last_id), progress) = first else { panic!("the first event has no id: {buf}") };
    assert!(progress["method"].as_str().is_some_and(|m| m.starts_with("notifications/")), "{progress}");

    // The upstream request runs to its end although the client went away.
    let deadline = std::time::Instant::now() + T;
    loop {
        let journal = super::chats(&m.kimi).await;
        if journal.first().is_some_and(|r| r["completed"] == true) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "upstream never completed: {journal:?}");
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    }

    // Resume: what came after the last event seen, ending with the result.
    let mut resp = on(client().get(&url))
        .insert_header(("accept", "text/event-stream"))
        .insert_header(("last-event-id", last_id.as_str()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body = tokio::time::timeout(T, resp.body().limit(8 << 20)).await.expect("resumed stream ended").unwrap();
    let replayed = events(std::str::from_utf8(&body).unwrap());
    let (id, last) = replayed.last().expect("replayed events");
    assert!(id.is_some(), "replayed events carry ids");
    assert_eq!(last["id"], 7, "{last}");
    let text = last["result"]["content"][0]["text"].as_str().unwrap_or_default();
    assert_eq!(last["result"]["isError"], false, "{last}");
    assert!(!text.is_empty());
    assert!(replayed.iter().all(|(i, _)| i.as_deref() != Some(last_id.as_str())), "nothing before it is replayed");
    assert_eq!(super::chats(&m.kimi).await.len(), 1, "one upstream request: the call was not repeated");
}
