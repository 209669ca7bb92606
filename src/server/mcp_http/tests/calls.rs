//! `tools/call` as JSON and as SSE: results, errors, progress, cancellation, disconnect,
//! per-session limits and shutdown.

use super::*;
use std::time::Duration;

fn json_only(r: TestRequest) -> TestRequest {
    r.insert_header(("accept", "application/json"))
}

fn cancel(id: i64) -> Value {
    json!({"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":id,"reason":"test"}})
}

fn in_use(fx: &Fx) -> usize {
    fx.env.runtime.inflight.in_use()
}

/// Slots in use once aborted calls' tasks have run (an abort drops the call's future the next
/// time the worker polls its task, not inside the cancelling request).
async fn settled_in_use(fx: &Fx) -> usize {
    for _ in 0..100 {
        if in_use(fx) == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    in_use(fx)
}

#[actix_web::test]
async fn version_as_json() {
    let fx = fixture(McpHttpConfig::default());
    let app = app!(fx.http);
    let sid = init!(app);
    let resp = send!(app, json_only(on(&sid, &call_body(5, "version", json!({}), None))));
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers().get("content-type").unwrap(), "application/json");
    let v = body_json(resp).await;
    assert_eq!(v["id"], 5);
    assert_eq!(v["result"]["isError"], false);
    assert!(!v["result"]["content"][0]["text"].as_str().unwrap().is_empty());
}

#[actix_web::test]
async fn version_as_sse() {
    let fx = fixture(McpHttpConfig::default());
    let app = app!(fx.http);
    let sid = init!(app);
    let resp = send!(app, on(&sid, &call_body(6, "version_EXAI-WS", json!({}), Some("t6"))));
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers().get("content-type").unwrap(), "text/event-stream");
    assert_eq!(resp.headers().get("cache-control").unwrap(), "no-cache");
    let msgs = sse_messages(&test::read_body(resp).await);
    let last = msgs.last().unwrap();
    assert_eq!(last["id"], 6);
    assert_eq!(last["result"]["isError"], false);
    assert_eq!(fx.http.inflight_count(), 0);
}

#[actix_web::test]
async fn unknown_tool_and_bad_params_are_protocol_errors() {
    let fx = fixture(McpHttpConfig::default());
    let app = app!(fx.http);
    let sid = init!(app);
    let v = body_json(send!(app, on(&sid, &call_body(1, "no_such_tool", json!({}), None)))).await;
    assert_eq!(v["error"]["code"], -32602);
    assert!(v["error"]["message"].as_str().unwrap().contains("no_such_tool"));
    let no_name = json!({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"arguments":{}}});
    assert_eq!(body_json(send!(app, on(&sid, &no_name))).await["error"]["code"], -32602);
    // Arguments that fail the schema are a tool error, not a protocol error.
    let v = body_json(send!(app, json_only(on(&sid, &call_body(3, "version", json!({"x":1}), None))))).await;
    assert_eq!(v["result"]["isError"], true);
    assert_eq!(v["result"]["structuredContent"]["error"]["code"], "VALIDATION_ERROR");
}

#[actix_web::test]
async fn sse_streams_progress_before_the_response() {
    let fx = fixture(McpHttpConfig::default());
    let app = app!(fx.http);
    let sid = init!(app);
    let body = call_body(7, "debug_sleep", json!({"ms":30,"step_ms":10,"text":"done"}), Some("tok"));
    let msgs = sse_messages(&test::read_body(send!(app, on(&sid, &body))).await);
    let (last, progress) = msgs.split_last().unwrap();
    assert_eq!(last["id"], 7);
    assert_eq!(last["result"]["content"][0]["text"], "done");
    assert!(progress.len() >= 3, "{msgs:?}");
    let mut prev = 0.0;
    for p in progress {
        assert_eq!(p["method"], "notifications/progress");
        assert_eq!(p["params"]["progressToken"], "tok");
        let v = p["params"]["progress"].as_f64().unwrap();
        assert!(v > prev, "progress increases");
        prev = v;
    }
    // Without a token there is no progress, only the response.
    let body = call_body(8, "debug_sleep", json!({"ms":20,"step_ms":10}), None);
    let msgs = sse_messages(&test::read_body(send!(app, on(&sid, &body))).await);
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0]["id"], 8);
}

#[actix_web::test]
async fn cancel_stops_an_sse_call_without_a_response() {
    let fx = fixture(McpHttpConfig::default());
    let app = app!(fx.http);
    let sid = init!(app);
    let body = call_body(9, "debug_sleep", json!({"ms":20000,"step_ms":10}), Some("c"));
    let mut stream = send!(app, on(&sid, &body)).into_body();
    let first = next_chunk(&mut stream).await.unwrap();
    assert!(String::from_utf8_lossy(&first).contains("notifications/progress"));
    assert_eq!(in_use(&fx), 1);
    assert_eq!(send!(app, on(&sid, &cancel(9))).status(), 202);
    let rest = tokio::time::timeout(Duration::from_secs(5), rest(&mut stream)).await.expect("stream ended");
    assert!(!String::from_utf8_lossy(&rest).contains("\"result\""), "no response for a cancelled call");
    assert_eq!(fx.http.inflight_count(), 0);
    assert_eq!(settled_in_use(&fx).await, 0);
    assert_eq!(fx.env.metrics.tool_calls.with_label_values(&["debug_sleep", "cancelled"]).get(), 1);
}

#[actix_web::test]
async fn cancel_stops_a_json_call() {
    let fx = fixture(McpHttpConfig::default());
    let app = app!(fx.http);
    let sid = init!(app);
    let call = test::call_service(
        &app,
        json_only(on(&sid, &call_body(10, "debug_sleep", json!({"ms":20000}), None))).to_request(),
    );
    let cancel = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        send!(app, on(&sid, &cancel(10)))
    };
    let (call, cancelled) = tokio::time::timeout(Duration::from_secs(5), futures_util::future::join(call, cancel))
        .await
        .expect("call ended");
    assert_eq!(cancelled.status(), 202);
    assert_eq!(call.status(), 202, "no JSON-RPC response for a cancelled call");
    assert!(test::read_body(call).await.is_empty());
    assert_eq!(in_use(&fx), 0);
}

#[actix_web::test]
async fn dropping_the_sse_body_is_not_a_cancel_and_get_resumes_after_the_last_event_id() {
    let fx = fixture(McpHttpConfig::default());
    let app = app!(fx.http);
    let sid = init!(app);
    let body = call_body(11, "debug_sleep", json!({"ms":300,"step_ms":100,"text":"kept"}), Some("r"));
    let mut stream = send!(app, on(&sid, &body)).into_body();
    let first = next_chunk(&mut stream).await.unwrap();
    let events = sse_events(&first);
    let (Some(last_id), progress) = &events[0] else { panic!("every event has an id: {events:?}") };
    assert_eq!(progress["method"], "notifications/progress");
    drop(stream);
    assert_eq!(fx.http.inflight_count(), 1, "the call goes on without its stream");
    let resume = |id: &str| {
        TestRequest::get()
            .uri("/mcp")
            .insert_header(("host", "127.0.0.1:8080"))
            .insert_header(("accept", "text/event-stream"))
            .insert_header(("mcp-session-id", sid.as_str()))
            .insert_header(("mcp-protocol-version", "2025-11-25"))
            .insert_header(("last-event-id", id.to_string()))
    };
    let resp = send!(app, resume(last_id));
    assert_eq!(resp.status(), 200);
    let body = tokio::time::timeout(Duration::from_secs(5), test::read_body(resp)).await.expect("stream ended");
    let events = sse_events(&body);
    let (id, last) = events.last().unwrap();
    assert_eq!(last["id"], 11);
    assert_eq!(last["result"]["content"][0]["text"], "kept");
    assert!(id.is_some());
    assert!(
        events.iter().all(|(i, _)| i.as_deref() != Some(last_id.as_str())),
        "nothing up to Last-Event-ID is replayed"
    );
    assert_eq!(fx.env.metrics.tool_calls.with_label_values(&["debug_sleep", "ok"]).get(), 1);
    assert_eq!(fx.http.inflight_count(), 0);
    assert_eq!(send!(app, resume("x")).status(), 400, "a malformed Last-Event-ID is a clear error");
}

#[actix_web::test]
async fn duplicate_ids_and_session_queue() {
    let fx = fixture(McpHttpConfig::default());
    let app = app!(fx.http);
    let sid = init!(app);
    let long = |id| call_body(id, "debug_sleep", json!({"ms":20000}), None);
    let _a = send!(app, on(&sid, &long(1)));
    let v = body_json(send!(app, on(&sid, &long(1)))).await;
    assert_eq!(v["error"]["code"], -32600, "same id twice in flight");
    let _b = send!(app, on(&sid, &long(2)));
    // The fixture runs two calls per session and queues one more; the next is refused.
    let _c = send!(app, on(&sid, &long(3)));
    let v = body_json(send!(app, json_only(on(&sid, &long(4))))).await;
    assert_eq!(v["result"]["isError"], true);
    assert_eq!(v["result"]["structuredContent"]["error"]["code"], "OVER_CAPACITY");
    let msg = v["result"]["content"][0]["text"].as_str().unwrap();
    assert!(msg.contains("session") && !msg.contains("connection"), "{msg}");
    for id in 1..=3 {
        assert_eq!(send!(app, on(&sid, &cancel(id))).status(), 202);
    }
    assert_eq!(fx.http.inflight_count(), 0);
    let v = body_json(send!(app, json_only(on(&sid, &call_body(1, "version", json!({}), None))))).await;
    assert_eq!(v["result"]["isError"], false, "the id is free again");
}

#[actix_web::test]
async fn close_all_answers_calls_with_cancelled() {
    let fx = fixture(McpHttpConfig::default());
    let app = app!(fx.http);
    let sid = init!(app);
    let body = call_body(12, "debug_sleep", json!({"ms":20000,"step_ms":10}), Some("s"));
    let mut stream = send!(app, on(&sid, &body)).into_body();
    next_chunk(&mut stream).await.unwrap();
    fx.http.close_all();
    assert_eq!(fx.http.session_count(), 0);
    let rest = tokio::time::timeout(Duration::from_secs(5), rest(&mut stream)).await.expect("stream ended");
    let last = sse_messages(&rest).pop().unwrap();
    assert_eq!(last["id"], 12);
    assert_eq!(last["result"]["isError"], true);
    assert_eq!(last["result"]["structuredContent"]["error"]["code"], "CANCELLED");
    assert_eq!(settled_in_use(&fx).await, 0);
    assert_eq!(send!(app, on(&sid, &call_body(13, "version", json!({}), None))).status(), 404);
}
