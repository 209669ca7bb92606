//! Failure handling against scripted mock faults: each retry class, the circuit breaker's
//! open → half-open → closed cycle, fallback, permits coming back after cancel, disconnect and
//! timeout, no retry once a chunk was streamed, and cancellation reaching the upstream request.

use super::*;
use crate::common::ws::{WsClient, WsOptions};

const KIMI: &str = "kimi-k2.6";

#[actix_rt::test]
async fn each_retry_class_follows_its_policy() {
    let m = Mocks::start(&[]);
    let server = ServerProcess::start(options(&m).set("providers.kimi.first_byte_timeout_secs", "1"));
    let mut c = mcp(&server).await;
    let args = json!({"prompt": "retry me", "model": KIMI});

    // 429 with Retry-After: retried (3 attempts in all), then success.
    m.kimi.scenario(json!([{"type":"fail","status":429,"retry_after":0.2,"times":2}])).await;
    let r = call(&mut c, 1, "chat", args.clone()).await;
    assert_eq!(ok(&r)["metadata"]["attempts"], 3);
    assert_eq!(chats(&m.kimi).await.len(), 3);
    assert_eq!(metric(&server, "exai_provider_retries_total{class=\"rate_limit\",provider=\"kimi\"}").await, 2.0);

    // 5xx: exponential, up to 5 attempts.
    m.kimi.scenario(json!([{"type":"fail","status":500,"times":4}])).await;
    let r = call(&mut c, 2, "chat", args.clone()).await;
    assert_eq!(ok(&r)["metadata"]["attempts"], 5);
    assert_eq!(chats(&m.kimi).await.len(), 8);

    // Auth: never retried.
    m.kimi.scenario(json!([{"type":"fail","status":401,"times":1}])).await;
    let r = call(&mut c, 3, "chat", args.clone()).await;
    assert_eq!(err(&r)["code"], "PROVIDER_ERROR");
    assert!(err(&r)["message"].as_str().unwrap().contains("401"));
    assert_eq!(chats(&m.kimi).await.len(), 9);

    // Timeout: fixed delay, 2 attempts.
    m.kimi.scenario(json!([{"type":"delay","seconds":3,"times":2}])).await;
    let r = call(&mut c, 4, "chat", args.clone()).await;
    assert!(err(&r)["message"].as_str().unwrap().contains("timed out"), "{r}");
    assert_eq!(metric(&server, "exai_provider_retries_total{class=\"timeout\",provider=\"kimi\"}").await, 1.0);
    assert_eq!(metric(&server, "exai_provider_errors_total{class=\"timeout\",provider=\"kimi\"}").await, 2.0);
}

#[actix_rt::test]
async fn network_errors_retry_with_jitter_four_times() {
    let m = Mocks::start(&[]);
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let server =
        ServerProcess::start(options(&m).set("providers.glm.base_url", &format!("http://127.0.0.1:{closed}/v1")));
    let mut c = mcp(&server).await;
    let r = call(&mut c, 1, "chat", json!({"prompt": "x", "model": "glm-4.5"})).await;
    assert_eq!(err(&r)["code"], "PROVIDER_ERROR");
    assert_eq!(metric(&server, "exai_provider_requests_total{provider=\"glm\"}").await, 4.0);
    assert_eq!(metric(&server, "exai_provider_errors_total{class=\"network\",provider=\"glm\"}").await, 4.0);
}

fn breaker_options(m: &Mocks) -> ServerOptions {
    options(m)
        .set("providers.kimi.breaker_consecutive_failures", "2")
        .set("providers.kimi.breaker_open_secs", "1")
        .set("retry.server_attempts", "1")
}

#[actix_rt::test]
async fn breaker_opens_half_opens_and_closes() {
    let m = Mocks::start(&[]);
    let server = ServerProcess::start(breaker_options(&m));
    let mut c = mcp(&server).await;
    let args = json!({"prompt": "b", "model": KIMI});
    m.kimi.scenario(json!([{"type":"fail","status":500,"times":2}])).await;
    call(&mut c, 1, "chat", args.clone()).await;
    call(&mut c, 2, "chat", args.clone()).await;
    assert_eq!(metric(&server, "exai_breaker_state{provider=\"kimi\"}").await, 1.0);
    let before = chats(&m.kimi).await.len();
    let t0 = std::time::Instant::now();
    let r = call(&mut c, 3, "chat", args.clone()).await;
    assert!(t0.elapsed() < Duration::from_millis(500), "an open breaker rejects at once");
    assert_eq!(err(&r)["code"], "OVER_CAPACITY");
    assert!(err(&r)["message"].as_str().unwrap().contains("circuit open"));
    assert_eq!(chats(&m.kimi).await.len(), before, "no request while open");
    actix_rt::time::sleep(Duration::from_millis(1300)).await;
    let r = call(&mut c, 4, "chat", args.clone()).await;
    ok(&r);
    assert_eq!(metric(&server, "exai_breaker_state{provider=\"kimi\"}").await, 0.0);
    for (from, to) in [("closed", "open"), ("open", "half_open"), ("half_open", "closed")] {
        let key = format!("exai_breaker_transitions_total{{from=\"{from}\",provider=\"kimi\",to=\"{to}\"}}");
        assert_eq!(metric(&server, &key).await, 1.0, "{key}");
    }
    // The other provider's breaker is untouched.
    assert_eq!(metric(&server, "exai_breaker_state{provider=\"glm\"}").await, 0.0);
}

#[actix_rt::test]
async fn fallback_serves_after_a_failure_and_while_the_breaker_is_open() {
    let m = Mocks::start(&[]);
    let server = ServerProcess::start(breaker_options(&m).set("providers.kimi.fallback", "glm-4.5-flash"));
    let mut c = mcp(&server).await;
    let args = json!({"prompt": "fb", "model": KIMI});
    m.kimi.scenario(json!([{"type":"fail","status":500,"times":2}])).await;
    // Kimi fails (its retries spent: one attempt here): the fallback answers the same call.
    for id in 1..=2 {
        let r = call(&mut c, id, "chat", args.clone()).await;
        assert_eq!(ok(&r)["metadata"]["fallback_from"], KIMI, "{r}");
    }
    assert_eq!(metric(&server, "exai_breaker_state{provider=\"kimi\"}").await, 1.0, "two failures opened it");
    // Open breaker: straight to the fallback, no request to Kimi.
    let r = call(&mut c, 3, "chat", args.clone()).await;
    let s = ok(&r);
    assert_eq!(s["metadata"]["provider"], "glm");
    assert_eq!(s["metadata"]["model"], "glm-4.5-flash");
    assert_eq!(s["metadata"]["fallback_from"], KIMI);
    assert_eq!(chats(&m.kimi).await.len(), 2);
    assert_eq!(chats(&m.glm).await.len(), 3);
    assert_eq!(metric(&server, "exai_provider_fallbacks_total{provider=\"kimi\"}").await, 3.0);
}

async fn wait_inflight_zero(server: &ServerProcess) {
    for _ in 0..50 {
        if metric(server, "exai_provider_inflight{provider=\"kimi\"}").await == 0.0 {
            return;
        }
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("provider permits did not come back");
}

#[actix_rt::test]
async fn permits_return_after_cancel_disconnect_and_timeout_and_upstream_is_aborted() {
    let m = Mocks::start(&[]);
    // The provider's first-byte phase (2 s here) ends a stalled call; the tool timeout of an AI
    // tool never comes before the provider phases.
    let server = ServerProcess::start(
        options(&m)
            .set("timeouts.simple_tool_secs", "1")
            .set("providers.kimi.first_byte_timeout_secs", "2")
            .set("retry.timeout_attempts", "1"),
    );
    let stall = json!({"type":"stream_fault","kind":"stall","after_chunks":1,"stall_seconds":30});

    // MCP cancel.
    m.kimi.scenario(json!([stall.clone()])).await;
    let mut c = mcp(&server).await;
    c.send_json(&json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"chat",
        "arguments":{"prompt":"slow","model":KIMI},"_meta":{"progressToken":1}}}))
        .await;
    actix_rt::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(metric(&server, "exai_provider_inflight{provider=\"kimi\"}").await, 1.0);
    c.notify("notifications/cancelled", json!({"requestId": 1})).await;
    wait_inflight_zero(&server).await;

    // Client disconnect (legacy protocol).
    m.kimi.scenario(json!([stall.clone()])).await;
    let mut l = WsClient::connect(&server.ws_url("/"), WsOptions::default()).await;
    l.send_json(&json!({"op":"hello"})).await;
    l.recv_json(T).await;
    l.send_json(&json!({"op":"call_tool","request_id":"d1","name":"chat","arguments":{"prompt":"slow","model":KIMI}}))
        .await;
    actix_rt::time::sleep(Duration::from_millis(800)).await;
    drop(l);
    wait_inflight_zero(&server).await;

    // Timeout (the first-byte phase: 2 s here) while the stream stalls.
    m.kimi.scenario(json!([stall])).await;
    c.send_json(&json!({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"chat",
        "arguments":{"prompt":"slow","model":KIMI},"_meta":{"progressToken":2}}}))
        .await;
    let (r, _) = c.recv_response(&json!(2), T).await;
    assert_eq!(err(&r["result"])["code"], "TIMEOUT");
    assert!(err(&r["result"])["message"].as_str().unwrap().contains("phase first_byte"), "{r}");
    wait_inflight_zero(&server).await;

    // Every stalled upstream request was abandoned early, not waited out.
    let aborted: Vec<Value> = chats(&m.kimi).await;
    assert_eq!(aborted.len(), 3, "{aborted:#?}");
    for a in &aborted {
        assert_eq!(a["completed"], false, "{a}");
    }
    for a in &aborted {
        assert!(a["stall_waited"].as_f64().unwrap_or(99.0) < 5.0, "{a}");
    }
}

#[actix_rt::test]
async fn no_retry_after_the_first_streamed_chunk() {
    let m = Mocks::start(&["--stream-chunk-delay-ms", "20"]);
    let server = ServerProcess::start(options(&m));
    let mut c = mcp(&server).await;
    m.kimi.scenario(json!([{"type":"stream_fault","kind":"disconnect","after_chunks":3}])).await;
    c.send_json(&json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"chat",
        "arguments":{"prompt":"stream then break","model":KIMI},"_meta":{"progressToken":"p"}}}))
        .await;
    let (r, before) = c.recv_response(&json!(1), T).await;
    assert_eq!(r["result"]["isError"], true, "{r}");
    assert!(before.iter().any(|n| n["method"] == "notifications/progress"), "chunks reached the client first");
    assert_eq!(chats(&m.kimi).await.len(), 1, "a network error after streamed output is not retried");
}

#[actix_rt::test]
async fn provider_actor_panic_returns_permits_and_the_actor_is_recreated() {
    let m = Mocks::start(&[]);
    let server = ServerProcess::start(options(&m).set("debug.fault_injection", "true"));
    let mut c = mcp(&server).await;
    m.kimi.scenario(json!([{"type":"stream_fault","kind":"stall","after_chunks":1,"stall_seconds":30}])).await;
    c.send_json(&json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"chat",
        "arguments":{"prompt":"slow","model":KIMI},"_meta":{"progressToken":1}}}))
        .await;
    actix_rt::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(metric(&server, "exai_provider_inflight{provider=\"kimi\"}").await, 1.0);
    let resp = awc::Client::default().post(server.http_url("/admin/debug/crash/provider:kimi")).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 202);
    let (r, _) = c.recv_response(&json!(1), T).await;
    assert_eq!(r["result"]["isError"], true, "the caller gets an explicit error: {r}");
    wait_inflight_zero(&server).await;
    // Recreated: the next call is served.
    let mut served = false;
    for i in 0..30 {
        let r = call(&mut c, 10 + i, "chat", json!({"prompt":"again","model":KIMI})).await;
        if r["isError"] == false {
            served = true;
            break;
        }
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(served, "provider actor was not recreated");
    assert_eq!(metric(&server, "exai_actor_restarts_total{actor=\"provider:kimi\"}").await, 1.0);
}
