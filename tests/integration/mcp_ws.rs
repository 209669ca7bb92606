//! MCP over WebSocket against the real binary: handshake, listing, calls, progress,
//! concurrency on one connection, cancellation, limits and every protocol error path.

use crate::common::ws::{WsClient, WsEvent, WsOptions};
use crate::common::{ServerOptions, ServerProcess};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(10);

fn fault_server() -> ServerProcess {
    ServerProcess::start(ServerOptions::new().set("debug.fault_injection", "true"))
}

async fn mcp(server: &ServerProcess) -> WsClient {
    let mut c = WsClient::connect(&server.ws_url("/mcp"), WsOptions::mcp()).await;
    c.mcp_initialize().await;
    c
}

fn text_of(result: &Value) -> String {
    result["content"]
        .as_array()
        .map(|a| a.iter().filter_map(|b| b["text"].as_str()).collect::<Vec<_>>().join("\n"))
        .unwrap_or_default()
}

#[actix_rt::test]
async fn handshake_listing_and_version() {
    let server = ServerProcess::start(ServerOptions::new().set("tools.page_size", "3"));
    let mut c = WsClient::connect(&server.ws_url("/mcp"), WsOptions::mcp()).await;
    assert_eq!(c.protocol(), Some("mcp"), "subprotocol must be echoed");
    let init = c.mcp_initialize().await;
    assert_eq!(init["result"]["protocolVersion"], "2025-11-25");
    assert_eq!(init["result"]["serverInfo"]["name"], "exai");
    assert!(init["result"]["capabilities"]["tools"].is_object());
    assert_eq!(c.request(1, "ping", Value::Null).await["result"], json!({}));

    let mut names = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let params = cursor.as_ref().map(|c| json!({ "cursor": c })).unwrap_or(Value::Null);
        let r = c.request(10 + pages, "tools/list", params).await;
        pages += 1;
        for t in r["result"]["tools"].as_array().unwrap() {
            assert!(t["inputSchema"].is_object());
            names.push(t["name"].as_str().unwrap().to_string());
        }
        match r["result"]["nextCursor"].as_str() {
            Some(n) => cursor = Some(n.to_string()),
            None => break,
        }
    }
    assert!(pages >= 3, "page size 3 must paginate, got {pages} pages");
    for t in ["version", "listmodels", "status", "health", "activity", "toolcall_log_tail", "provider_capabilities"] {
        assert!(names.contains(&t.to_string()), "{t} missing from {names:?}");
    }
    let bad = c.request(99, "tools/list", json!({ "cursor": "bogus" })).await;
    assert_eq!(bad["error"]["code"], -32602);

    let r = c.request(2, "tools/call", json!({ "name": "version", "arguments": {} })).await;
    assert_eq!(r["result"]["isError"], false);
    assert!(text_of(&r["result"]).contains("exai"));
    let lat = &r["result"]["_meta"]["latency_metrics"];
    for k in ["total_ms", "global_wait_ms", "provider_wait_ms", "processing_ms"] {
        assert!(lat[k].is_number(), "latency metric {k} missing: {lat}");
    }
    // Version negotiation: an unknown version gets our latest.
    let mut c2 = WsClient::connect(&server.ws_url("/mcp"), WsOptions::mcp()).await;
    let r = c2
        .request(
            0,
            "initialize",
            json!({"protocolVersion":"1999-01-01","capabilities":{},"clientInfo":{"name":"x","version":"1"}}),
        )
        .await;
    assert_eq!(r["result"]["protocolVersion"], "2025-11-25");
    let r = c2
        .request(
            1,
            "initialize",
            json!({"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"x","version":"1"}}),
        )
        .await;
    assert_eq!(r["result"]["protocolVersion"], "2025-06-18");
}

#[actix_rt::test]
async fn protocol_errors() {
    let server = ServerProcess::start(ServerOptions::new());
    let mut c = mcp(&server).await;
    c.send_text("{not json").await;
    let v = c.recv_json(T).await;
    assert_eq!(v["error"]["code"], -32700);
    assert_eq!(v["id"], Value::Null);
    c.send_text(r#"{"jsonrpc":"2.0","id":5}"#).await;
    assert_eq!(c.recv_json(T).await["error"]["code"], -32600);
    assert_eq!(c.request(3, "no/such/method", Value::Null).await["error"]["code"], -32601);
    assert_eq!(c.request(4, "tools/call", json!({"arguments":{}})).await["error"]["code"], -32602);
    assert_eq!(c.request(5, "tools/call", json!({"name":"nope"})).await["error"]["code"], -32602);
    assert_eq!(c.request(6, "logging/setLevel", json!({"level":"loud"})).await["error"]["code"], -32602);
    assert_eq!(c.request(7, "logging/setLevel", json!({"level":"debug"})).await["result"], json!({}));
    // Bad arguments are a tool error naming the field.
    let r = c.request(8, "tools/call", json!({"name":"toolcall_log_tail","arguments":{"n":"many"}})).await;
    assert_eq!(r["result"]["isError"], true);
    assert_eq!(r["result"]["structuredContent"]["error"]["field"], "n");
    let r = c.request(9, "tools/call", json!({"name":"version","arguments":{"surprise":1}})).await;
    assert_eq!(r["result"]["isError"], true);
    assert!(text_of(&r["result"]).contains("surprise"));
    // The connection still works.
    assert_eq!(c.request(10, "ping", Value::Null).await["result"], json!({}));
}

#[actix_rt::test]
async fn concurrent_calls_progress_and_cancel() {
    let server = fault_server();
    let mut c = mcp(&server).await;
    let t0 = Instant::now();
    for id in [1, 2] {
        c.send_json(&json!({"jsonrpc":"2.0","id":id,"method":"tools/call",
            "params":{"name":"debug_sleep","arguments":{"ms":800,"step_ms":200},"_meta":{"progressToken":format!("p{id}")}}})).await;
    }
    // A ping is answered while both calls run.
    let (pong, _) = {
        c.send_json(&json!({"jsonrpc":"2.0","id":3,"method":"ping"})).await;
        c.recv_response(&json!(3), T).await
    };
    assert_eq!(pong["result"], json!({}));
    assert!(t0.elapsed() < Duration::from_millis(700), "ping waited for the calls");
    let (r1, mut seen) = c.recv_response(&json!(1), T).await;
    let (r2, more) = c.recv_response(&json!(2), T).await;
    seen.extend(more);
    assert_eq!(r1["result"]["isError"], false);
    assert_eq!(r2["result"]["isError"], false);
    assert!(t0.elapsed() < Duration::from_millis(1500), "calls on one connection must run concurrently");
    let progress: Vec<&Value> = seen.iter().filter(|m| m["method"] == "notifications/progress").collect();
    assert!(progress.iter().any(|m| m["params"]["progressToken"] == "p1"));
    let p1: Vec<f64> = progress
        .iter()
        .filter(|m| m["params"]["progressToken"] == "p1")
        .map(|m| m["params"]["progress"].as_f64().unwrap())
        .collect();
    assert!(p1.windows(2).all(|w| w[1] > w[0]), "progress must increase: {p1:?}");

    // Cancel mid-call: no response for the cancelled id, and the call is recorded as cancelled.
    c.send_json(
        &json!({"jsonrpc":"2.0","id":20,"method":"tools/call","params":{"name":"debug_sleep","arguments":{"ms":5000}}}),
    )
    .await;
    actix_rt::time::sleep(Duration::from_millis(200)).await;
    c.notify("notifications/cancelled", json!({"requestId":20,"reason":"test"})).await;
    assert_eq!(c.request(21, "ping", Value::Null).await["result"], json!({}));
    let late = c.try_recv_json(Duration::from_millis(800)).await;
    assert!(late.is_none() || late.as_ref().is_some_and(|v| v["id"] != 20), "cancelled call answered: {late:?}");
    let metrics = reqwest_text(&server.http_url("/metrics")).await;
    assert!(
        metrics.lines().any(|l| l.starts_with("exai_tool_calls_total{outcome=\"cancelled\",tool=\"debug_sleep\"} 1")),
        "{metrics}"
    );
    assert!(metrics.contains("exai_inflight_calls 0"), "permits must come back after cancel");
}

pub(crate) async fn reqwest_text(url: &str) -> String {
    let mut r = awc::Client::default().get(url).send().await.unwrap();
    String::from_utf8(r.body().limit(8 << 20).await.unwrap().to_vec()).unwrap()
}

#[actix_rt::test]
async fn over_capacity_is_immediate() {
    // No queue: a call beyond the two running is refused at once.
    let server = ServerProcess::start(
        ServerOptions::new()
            .set("debug.fault_injection", "true")
            .set("limits.session_max_inflight", "2")
            .set("limits.session_queue", "0"),
    );
    let mut c = mcp(&server).await;
    for id in [1, 2] {
        c.send_json(&json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":{"name":"debug_sleep","arguments":{"ms":1500}}})).await;
    }
    actix_rt::time::sleep(Duration::from_millis(100)).await;
    let t0 = Instant::now();
    let r = c.request(3, "tools/call", json!({"name":"version"})).await;
    assert!(t0.elapsed() < Duration::from_millis(500));
    assert_eq!(r["result"]["isError"], true);
    assert_eq!(r["result"]["structuredContent"]["error"]["code"], "OVER_CAPACITY");
    assert!(r["result"]["structuredContent"]["error"]["retry_after"].is_number());
    // Duplicate in-flight id is refused.
    let d = c.request(1, "tools/call", json!({"name":"version"})).await;
    assert_eq!(d["error"]["code"], -32600);
}

#[actix_rt::test]
async fn oversized_frame_closes_1009() {
    let server = ServerProcess::start(ServerOptions::new().set("server.max_message_bytes", "70000"));
    let mut c = mcp(&server).await;
    let big = "x".repeat(100_000);
    c.send_json(
        &json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"version","arguments":{"pad":big}}}),
    )
    .await;
    let close = c.recv_close(T).await;
    assert_eq!(close.map(|c| c.0), Some(1009));
    // The server keeps serving others.
    let mut c2 = mcp(&server).await;
    assert_eq!(c2.request(1, "ping", Value::Null).await["result"], json!({}));
}

/// Browsers apply no CORS to WebSocket upgrades: a web page the user visits could otherwise
/// call every tool. A foreign Origin and a rebinding Host are refused on every upgrade path;
/// clients that send no Origin (editors, SDKs) and loopback origins connect.
#[actix_rt::test]
async fn upgrades_refuse_foreign_origin_and_rebinding_host() {
    let server = ServerProcess::start(ServerOptions::new().set("server.allowed_origins", "https://app.example.com"));
    for path in ["/mcp", "/", "/ws"] {
        for opts in [WsOptions::mcp(), WsOptions::default()] {
            let evil = opts.clone().header("Origin", "https://evil.example");
            let err =
                WsClient::try_connect(&server.ws_url(path), evil).await.err().expect("foreign Origin must be refused");
            assert_eq!(err.status(), Some(403), "{path}: {err}");
            let rebind = opts.clone().header("Host", "rebind.evil.example:8079");
            let err = WsClient::try_connect(&server.ws_url(path), rebind)
                .await
                .err()
                .expect("rebinding Host must be refused");
            assert_eq!(err.status(), Some(403), "{path}: {err}");
            let null = opts.clone().header("Origin", "null");
            assert_eq!(
                WsClient::try_connect(&server.ws_url(path), null).await.err().and_then(|e| e.status()),
                Some(403)
            );
        }
    }
    // No Origin, a loopback Origin, a configured Origin: MCP sessions work.
    for origin in [None, Some("http://localhost:5173"), Some("http://127.0.0.1"), Some("https://app.example.com")] {
        let mut opts = WsOptions::mcp();
        if let Some(o) = origin {
            opts = opts.header("Origin", o);
        }
        let mut c = WsClient::connect(&server.ws_url("/mcp"), opts).await;
        c.mcp_initialize().await;
        assert_eq!(c.request(1, "ping", Value::Null).await["result"], json!({}), "{origin:?}");
    }
    let scrape = reqwest_text(&server.http_url("/metrics")).await;
    assert!(scrape.contains("exai_connections_rejected_total{reason=\"forbidden\"} 18"), "refusals counted");
}

#[actix_rt::test]
async fn auth_token_required() {
    let token = "a-very-secret-token-123";
    let server = ServerProcess::start(ServerOptions::new().auth_token(token));
    let err = WsClient::try_connect(&server.ws_url("/mcp"), WsOptions::mcp()).await.err().expect("must refuse");
    assert_eq!(err.status(), Some(401));
    let err = WsClient::try_connect(&server.ws_url("/mcp"), WsOptions::mcp().bearer("wrong-token-000000000"))
        .await
        .err()
        .expect("must refuse");
    assert_eq!(err.status(), Some(401));
    let mut ok = WsClient::connect(&server.ws_url(&format!("/mcp?token={token}")), WsOptions::mcp()).await;
    ok.mcp_initialize().await;
    let mut ok2 = WsClient::connect(&server.ws_url("/mcp"), WsOptions::mcp().bearer(token)).await;
    ok2.mcp_initialize().await;
    // JSON-RPC without the subprotocol and without a token is refused too.
    let mut raw = WsClient::connect(&server.ws_url("/"), WsOptions::default()).await;
    raw.send_json(&json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{}})).await;
    let mut code = None;
    for _ in 0..3 {
        if let WsEvent::Close(c, _) = raw.next_event(T).await {
            code = Some(c);
            break;
        }
    }
    assert_eq!(code, Some(4003));
    assert!(!server.stderr_text().contains(token), "token leaked into logs");
}

#[actix_rt::test]
async fn connection_limit_per_ip_closes_1008() {
    let server = ServerProcess::start(ServerOptions::new().set("server.max_connections_per_ip", "2"));
    let _a = mcp(&server).await;
    let _b = mcp(&server).await;
    let mut c = WsClient::connect(&server.ws_url("/mcp"), WsOptions::mcp()).await;
    let close = c.recv_close(T).await.expect("third connection must be closed");
    assert_eq!(close.0, 1008);
    assert!(close.1.contains("too many connections"), "{close:?}");
}

#[actix_rt::test]
async fn a_burst_of_100_pipelined_calls_is_queued_not_refused_and_each_is_answered_once() {
    let server = ServerProcess::start(ServerOptions::new());
    let mut c = mcp(&server).await;
    let ids: Vec<i64> = (1000..1100).collect();
    let mut burst = String::new();
    for id in &ids {
        // Sent back to back, without waiting for any reply.
        burst = json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":{"name":"version"}}).to_string();
        c.send_text(&burst).await;
    }
    assert!(!burst.is_empty());
    let mut answered = std::collections::HashMap::new();
    while answered.len() < ids.len() {
        let v = c.recv_json(T).await;
        let Some(id) = v["id"].as_i64() else { continue };
        assert_eq!(v["result"]["isError"], false, "a burst is not an overload: {v}");
        *answered.entry(id).or_insert(0) += 1;
    }
    assert!(ids.iter().all(|id| answered.get(id) == Some(&1)), "every request answered exactly once");
    // Nothing more arrives: no second answer to any of them.
    assert!(c.try_recv_json(Duration::from_millis(300)).await.is_none_or(|v| v["id"].as_i64().is_none()));
}

#[actix_rt::test]
async fn an_mcp_socket_that_says_nothing_is_closed_at_the_hello_timeout() {
    let server = ServerProcess::start(ServerOptions::new().set("timeouts.hello_secs", "1"));
    let mut c = WsClient::connect(&server.ws_url("/mcp"), WsOptions::mcp()).await;
    let t0 = Instant::now();
    let (code, _) = c.recv_close(Duration::from_secs(10)).await.expect("closed by the server");
    assert_eq!(code, 4002);
    assert!(t0.elapsed() < Duration::from_secs(5));
}

#[actix_rt::test]
async fn an_invalid_session_id_is_a_clear_error_and_bad_utf8_closes_1007() {
    let server = ServerProcess::start(ServerOptions::new());
    let refused = WsClient::try_connect(&server.ws_url("/mcp?session_id=a%20b"), WsOptions::mcp()).await;
    let Err(e) = refused else { panic!("an invalid session_id must be refused") };
    assert_eq!(e.status(), Some(400), "{e:?}");
    let mut c = mcp(&server).await;
    c.send_binary(vec![0xff, 0xfe, 0x7b]).await;
    let (code, _) = c.recv_close(T).await.expect("closed");
    assert_eq!(code, 1007);
}
