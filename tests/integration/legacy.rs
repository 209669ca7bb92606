//! The legacy EXAI op protocol against the real binary, with a Rust WebSocket client:
//! handshake and its close codes, the full call lifecycle, duplicate request ids, the result
//! cache, real cancellation, capacity errors and the frame-level error shapes.

use crate::common::ws::{WsClient, WsOptions};
use crate::common::{ServerOptions, ServerProcess};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(10);

async fn hello(server: &ServerProcess, token: Option<&str>, session: Option<&str>) -> (WsClient, Value) {
    let mut c = WsClient::connect(&server.ws_url("/"), WsOptions::default()).await;
    c.send_json(&json!({"op":"hello","token":token,"session_id":session})).await;
    let ack = c.recv_json(T).await;
    (c, ack)
}

async fn until_res(c: &mut WsClient, rid: &str) -> (Value, Vec<Value>) {
    let rid = rid.to_string();
    c.recv_json_until(T, move |v| v["op"] == "call_tool_res" && v["request_id"] == json!(rid)).await
}

#[actix_rt::test]
async fn handshake_close_codes() {
    let token = "legacy-token-0123456789";
    let server = ServerProcess::start(ServerOptions::new().auth_token(token));
    let (mut c, ack) = hello(&server, Some("wrong-token-abcdefghijk"), None).await;
    assert_eq!(ack, json!({"op":"hello_ack","ok":false,"error":"unauthorized"}));
    assert_eq!(c.recv_close(T).await.map(|c| c.0), Some(4003));

    let mut c = WsClient::connect(&server.ws_url("/"), WsOptions::default()).await;
    c.send_text("not json at all").await;
    assert_eq!(c.recv_json(T).await["error"], "invalid_hello");
    assert_eq!(c.recv_close(T).await.map(|c| c.0), Some(4000));

    let mut c = WsClient::connect(&server.ws_url("/"), WsOptions::default()).await;
    c.send_json(&json!({"op":"list_tools"})).await;
    assert_eq!(c.recv_json(T).await["error"], "missing_hello");
    assert_eq!(c.recv_close(T).await.map(|c| c.0), Some(4001));

    let (_c, ack) = hello(&server, Some(token), Some("my-session_01")).await;
    assert_eq!(ack["ok"], true);
    assert_eq!(ack["session_id"], "my-session_01");
    let (_c, ack) = hello(&server, Some(token), Some("bad id!")).await;
    assert_eq!(ack["ok"], true);
    assert_ne!(ack["session_id"], "bad id!", "invalid session ids are replaced");
    assert!(!server.stderr_text().contains(token));
}

#[actix_rt::test]
async fn hello_timeout_closes_4002() {
    let server = ServerProcess::start(ServerOptions::new().set("timeouts.hello_secs", "1"));
    let mut c = WsClient::connect(&server.ws_url("/"), WsOptions::default()).await;
    let t0 = Instant::now();
    assert_eq!(c.recv_close(Duration::from_secs(5)).await.map(|c| c.0), Some(4002));
    assert!(t0.elapsed() < Duration::from_secs(4));
}

#[actix_rt::test]
async fn call_lifecycle_and_frames() {
    let server = ServerProcess::start(ServerOptions::new().set("debug.fault_injection", "true"));
    let (mut c, ack) = hello(&server, None, None).await;
    assert_eq!(ack["ok"], true);
    c.send_json(&json!({"op":"list_tools","request_id":"l1"})).await;
    let list = c.recv_json(T).await;
    assert_eq!(list["op"], "list_tools_res");
    assert!(list["tools"].as_array().unwrap().iter().any(|t| t["name"] == "version"));

    // Suffix stripping, ack with timeout, stream_complete, result with latency metrics.
    c.send_json(&json!({"op":"call_tool","request_id":"r1","name":"version_EXAI-WS","arguments":{}})).await;
    let (res, before) = until_res(&mut c, "r1").await;
    let ack = before.iter().find(|f| f["op"] == "call_tool_ack").expect("ack");
    assert_eq!(ack["request_id"], "r1");
    assert!(ack["timeout"].as_u64().unwrap() > 0);
    assert!(before.iter().any(|f| f["op"] == "stream_complete" && f["request_id"] == "r1"));
    assert_eq!(res["ok"], true);
    assert!(res["text"].as_str().unwrap().contains("exai"));
    let lat = &res["outputs"][0]["metadata"]["latency_metrics"];
    for k in ["latency_ms", "global_sem_wait_ms", "provider_sem_wait_ms", "processing_ms"] {
        assert!(lat[k].is_number(), "{k} missing in {lat}");
    }

    // Streaming chunks and progress heartbeats below the interval.
    c.send_json(&json!({"op":"call_tool","request_id":"r2","name":"debug_sleep","arguments":{"ms":300,"step_ms":100,"text":"done"}})).await;
    let (res, before) = until_res(&mut c, "r2").await;
    assert_eq!(res["text"], "done");
    assert!(before.iter().filter(|f| f["op"] == "stream_chunk").count() >= 3);

    // Errors carry op and request_id.
    c.send_json(&json!({"op":"dance","request_id":"x9"})).await;
    let e = c.recv_json(T).await;
    assert_eq!((e["op"].as_str(), e["request_id"].as_str()), (Some("error"), Some("x9")));
    c.send_json(&json!({"op":"call_tool","request_id":"r3","name":"no_such_tool"})).await;
    let (e, _) = until_res(&mut c, "r3").await;
    assert_eq!(e["error"]["code"], "TOOL_NOT_FOUND");
    c.send_json(&json!({"op":"call_tool","request_id":"r4","name":"toolcall_log_tail","arguments":{"n":0}})).await;
    let (e, _) = until_res(&mut c, "r4").await;
    assert_eq!(e["error"]["code"], "VALIDATION_ERROR");
    assert_eq!(e["error"]["details"]["field"], "n");
    c.send_text("{broken").await;
    let e = c.recv_json(T).await;
    assert_eq!(e["op"], "error");
    assert!(e.as_object().unwrap().contains_key("request_id"));

    c.send_json(&json!({"op":"ping","request_id":"p1"})).await;
    assert_eq!(c.recv_json(T).await["op"], "pong");
    c.send_json(&json!({"op":"health","request_id":"h1"})).await;
    let h = c.recv_json(T).await;
    assert_eq!(h["op"], "health_res");
    assert!(h["health"]["tool_count"].as_u64().unwrap() >= 7);
}

#[actix_rt::test]
async fn duplicate_ids_cache_and_cancel() {
    let server = ServerProcess::start(ServerOptions::new().set("debug.fault_injection", "true"));
    let (mut c, _) = hello(&server, None, Some("dup-session")).await;
    c.send_json(&json!({"op":"call_tool","request_id":"d1","name":"debug_sleep","arguments":{"ms":600,"text":"once"}}))
        .await;
    actix_rt::time::sleep(Duration::from_millis(100)).await;
    c.send_json(&json!({"op":"call_tool","request_id":"d1","name":"debug_sleep","arguments":{"ms":600,"text":"once"}}))
        .await;
    let (res, before) = until_res(&mut c, "d1").await;
    assert_eq!(res["text"], "once");
    assert!(before.iter().any(|f| f["op"] == "progress" && f["message"].as_str().unwrap_or("").contains("duplicate")));
    assert!(c.try_recv_json(Duration::from_millis(900)).await.is_none(), "a duplicate must not run twice");
    // A finished id is answered from the cache, identically, without running again.
    c.send_json(&json!({"op":"call_tool","request_id":"d1","name":"debug_sleep","arguments":{"ms":600,"text":"once"}}))
        .await;
    let t0 = Instant::now();
    let replay = c.recv_json(T).await;
    assert!(t0.elapsed() < Duration::from_millis(300));
    assert_eq!(replay, res);

    // Cancel really cancels: terminal CANCELLED reply plus a `cancelled` ack, and no result later.
    c.send_json(&json!({"op":"call_tool","request_id":"c1","name":"debug_sleep","arguments":{"ms":5000}})).await;
    actix_rt::time::sleep(Duration::from_millis(200)).await;
    c.send_json(&json!({"op":"cancel","request_id":"c1"})).await;
    let (res, _) = until_res(&mut c, "c1").await;
    assert_eq!(res["error"]["code"], "CANCELLED");
    let (ack, _) = c.recv_json_until(T, |v| v["op"] == "cancelled").await;
    assert_eq!(ack["was_running"], true);
    let metrics = crate::mcp_ws::reqwest_text(&server.http_url("/metrics")).await;
    assert!(metrics.contains("exai_inflight_calls 0"), "permits must come back after cancel");
}

#[actix_rt::test]
async fn over_capacity_has_retry_after() {
    let server = ServerProcess::start(
        ServerOptions::new()
            .set("debug.fault_injection", "true")
            .set("limits.global_max_inflight", "1")
            .set("limits.session_max_inflight", "1")
            .set("limits.session_queue", "0"),
    );
    let (mut a, _) = hello(&server, None, None).await;
    let (mut b, _) = hello(&server, None, None).await;
    a.send_json(&json!({"op":"call_tool","request_id":"a1","name":"debug_sleep","arguments":{"ms":1500}})).await;
    actix_rt::time::sleep(Duration::from_millis(150)).await;
    // Same session: session limit; other session: global limit. Both immediate.
    for (c, rid) in [(&mut a, "a2"), (&mut b, "b1")] {
        let t0 = Instant::now();
        c.send_json(&json!({"op":"call_tool","request_id":rid,"name":"version"})).await;
        let (res, _) = until_res(c, rid).await;
        assert!(t0.elapsed() < Duration::from_millis(500));
        assert_eq!(res["error"]["code"], "OVER_CAPACITY", "{res}");
        assert!(res["error"]["retry_after"].is_number());
    }
}
