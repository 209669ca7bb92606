//! Session resume and backpressure against the real binary: a dropped connection's calls keep
//! running and their replies reach the client that resumes the session, in order, exactly
//! once; a session the client did not name is not kept; a client that stops reading is
//! closed with 1013 without disturbing others, and its replies wait for it.

use crate::common::ws::{WsClient, WsEvent, WsOptions};
use crate::common::{ServerOptions, ServerProcess};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(10);

fn server() -> ServerProcess {
    ServerProcess::start(ServerOptions::new().set("debug.fault_injection", "true"))
}

async fn legacy(server: &ServerProcess, session: &str) -> WsClient {
    let mut c = WsClient::connect(&server.ws_url("/"), WsOptions::default()).await;
    c.send_json(&json!({"op":"hello","session_id":session})).await;
    let ack = c.recv_json(T).await;
    assert_eq!(ack["ok"], true, "{ack}");
    assert_eq!(ack["session_id"], session);
    c
}

/// Every terminal reply received within `wait`, by request id.
async fn terminal_replies(c: &mut WsClient, wait: Duration) -> HashMap<String, Vec<Value>> {
    let mut out: HashMap<String, Vec<Value>> = HashMap::new();
    let end = Instant::now() + wait;
    while let Some(v) = c.try_recv_json(end.saturating_duration_since(Instant::now())).await {
        if v["op"] == "call_tool_res" {
            out.entry(v["request_id"].as_str().unwrap_or_default().to_string()).or_default().push(v);
        }
    }
    out
}

/// Terminal replies until the connection has been quiet for `quiet` (at most `max` in all).
async fn replies_until_quiet(c: &mut WsClient, quiet: Duration, max: Duration) -> HashMap<String, Vec<Value>> {
    let mut out: HashMap<String, Vec<Value>> = HashMap::new();
    let end = Instant::now() + max;
    while let Some(v) = c.try_recv_json(quiet.min(end.saturating_duration_since(Instant::now()))).await {
        if v["op"] == "call_tool_res" {
            out.entry(v["request_id"].as_str().unwrap_or_default().to_string()).or_default().push(v);
        }
    }
    out
}

#[actix_rt::test]
async fn legacy_replies_reach_the_resumed_session_exactly_once() {
    let server = server();
    let mut c = legacy(&server, "resume-legacy-1").await;
    // r1 finishes while the client is away; r2 is still running when it comes back.
    c.send_json(&json!({"op":"call_tool","request_id":"r1","name":"debug_sleep","arguments":{"ms":300,"text":"one"}}))
        .await;
    c.send_json(&json!({"op":"call_tool","request_id":"r2","name":"debug_sleep","arguments":{"ms":2500,"text":"two"}}))
        .await;
    actix_rt::time::sleep(Duration::from_millis(150)).await;
    drop(c);
    actix_rt::time::sleep(Duration::from_millis(800)).await;
    // While the client is away its finished reply (stream_complete + call_tool_res) waits.
    let h: Value =
        serde_json::from_str(&crate::mcp_ws::reqwest_text(&server.http_url("/health/websocket")).await).unwrap();
    assert_eq!(h["resume"]["buffered_replies"], 2, "{h}");
    assert!(h["resume"]["sessions"].as_u64().unwrap() >= 1, "{h}");

    let mut c = legacy(&server, "resume-legacy-1").await;
    let got = terminal_replies(&mut c, Duration::from_secs(4)).await;
    assert_eq!(got.get("r1").map(Vec::len), Some(1), "r1 exactly once: {got:?}");
    assert_eq!(got.get("r2").map(Vec::len), Some(1), "r2 exactly once: {got:?}");
    assert_eq!(got["r1"][0]["text"], "one");
    assert_eq!(got["r2"][0]["text"], "two");
    // Each call ran once.
    let metrics = crate::mcp_ws::reqwest_text(&server.http_url("/metrics")).await;
    assert!(metrics.contains("exai_tool_calls_total{outcome=\"ok\",tool=\"debug_sleep\"} 2"), "{metrics}");
}

#[actix_rt::test]
async fn mcp_session_resumes_with_its_session_id() {
    let server = server();
    let url = server.ws_url("/mcp?session_id=resume-mcp-1");
    let mut c = WsClient::connect(&url, WsOptions::mcp()).await;
    let init = c.mcp_initialize().await;
    assert_eq!(init["result"]["_meta"]["exai/session_id"], "resume-mcp-1");
    c.send_json(&json!({"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"debug_sleep","arguments":{"ms":1200,"text":"late"}}})).await;
    actix_rt::time::sleep(Duration::from_millis(200)).await;
    drop(c);
    let mut c = WsClient::connect(&url, WsOptions::mcp()).await;
    c.mcp_initialize().await;
    let (r, _) = c.recv_response(&json!(7), T).await;
    assert_eq!(r["result"]["content"][0]["text"], "late");
    assert!(c.try_recv_json(Duration::from_millis(800)).await.is_none(), "delivered once");
}

#[actix_rt::test]
async fn unnamed_sessions_are_not_kept_and_their_calls_stop() {
    let server = server();
    let mut c = WsClient::connect(&server.ws_url("/"), WsOptions::default()).await;
    c.send_json(&json!({"op":"hello"})).await;
    c.recv_json(T).await;
    c.send_json(&json!({"op":"call_tool","request_id":"x","name":"debug_sleep","arguments":{"ms":5000}})).await;
    actix_rt::time::sleep(Duration::from_millis(200)).await;
    drop(c);
    let mut cancelled = false;
    for _ in 0..30 {
        actix_rt::time::sleep(Duration::from_millis(100)).await;
        let m = crate::mcp_ws::reqwest_text(&server.http_url("/metrics")).await;
        if m.contains("exai_tool_calls_total{outcome=\"cancelled\",tool=\"debug_sleep\"} 1") {
            cancelled = true;
            break;
        }
    }
    assert!(cancelled, "a disconnect cancels the calls of a session nobody can resume");
}

#[actix_rt::test]
async fn a_stalled_client_is_closed_1013_without_disturbing_others() {
    let server = ServerProcess::start(
        ServerOptions::new()
            .set("debug.fault_injection", "true")
            .set("limits.outbox_capacity", "8")
            .set("limits.session_max_inflight", "512")
            .set("limits.resume_buffer_replies", "5000")
            .set("timeouts.stall_close_secs", "1")
            .set("timeouts.heartbeat_interval_secs", "1"),
    );
    let mut stalled = legacy(&server, "stalled-1").await;
    let big = "x".repeat(10_000);
    let n = 400;
    for i in 0..n {
        let call =
            json!({"op":"call_tool","request_id":format!("s{i}"),"name":"debug_sleep","arguments":{"ms":0,"text":big}});
        // On a loaded machine the server may close the stalled connection before all calls
        // are written; the unsent ones are sent again after the resume below.
        if stalled.try_send_json(&call).await.is_err() {
            break;
        }
    }
    // Another client keeps being served promptly while the stalled one is not read.
    let mut busy = legacy(&server, "busy-1").await;
    for i in 0..20 {
        let t0 = Instant::now();
        busy.send_json(&json!({"op":"call_tool","request_id":format!("b{i}"),"name":"version"})).await;
        let (r, _) = busy.recv_json_until(T, |v| v["op"] == "call_tool_res").await;
        assert_eq!(r["ok"], true);
        assert!(t0.elapsed() < Duration::from_secs(2), "busy client slowed down by the stalled one");
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    }
    // Wait for the stall close itself before reading (reading earlier would un-stall it).
    let mut closed = false;
    for _ in 0..100 {
        let m = crate::mcp_ws::reqwest_text(&server.http_url("/metrics")).await;
        if m.contains("exai_outbox_shed_total{kind=\"stalled_close\"} 1") {
            closed = true;
            break;
        }
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(closed, "the stalled connection was closed");
    // The stalled connection was closed with 1013 (read what its socket still holds).
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut close = None;
    loop {
        match stalled.next_event(T).await {
            WsEvent::Text(t) => {
                let v: Value = serde_json::from_str(&t).unwrap();
                if v["op"] == "call_tool_res" {
                    *seen.entry(v["request_id"].as_str().unwrap().to_string()).or_default() += 1;
                }
            }
            WsEvent::Close(code, _) => {
                close = Some(code);
                break;
            }
            WsEvent::Pong(_) | WsEvent::Binary(_) => {}
            _ => break,
        }
    }
    assert_eq!(close, Some(1013), "stalled client closed with 1013");
    // Resume: the kept replies arrive; anything still missing is answered from the result
    // cache when resent — nothing runs twice and nothing is lost.
    let mut c = legacy(&server, "stalled-1").await;
    for (k, v) in replies_until_quiet(&mut c, Duration::from_secs(2), Duration::from_secs(30)).await {
        *seen.entry(k).or_default() += v.len();
    }
    let missing: Vec<String> = (0..n).map(|i| format!("s{i}")).filter(|k| !seen.contains_key(k)).collect();
    for k in &missing {
        c.send_json(&json!({"op":"call_tool","request_id":k,"name":"debug_sleep","arguments":{"ms":0,"text":big}}))
            .await;
    }
    for (k, v) in replies_until_quiet(&mut c, Duration::from_secs(2), Duration::from_secs(30)).await {
        *seen.entry(k).or_default() += v.len();
    }
    assert_eq!(seen.len(), n, "every call answered");
    assert!(seen.values().all(|c| *c == 1), "each reply once");
    let metrics = crate::mcp_ws::reqwest_text(&server.http_url("/metrics")).await;
    assert!(
        metrics.contains(&format!("exai_tool_calls_total{{outcome=\"ok\",tool=\"debug_sleep\"}} {n}")),
        "ran once each"
    );
}

#[actix_rt::test]
async fn a_second_connection_of_the_same_principal_takes_a_named_session_over_and_the_first_is_closed_4004() {
    let server = ServerProcess::start(ServerOptions::new());
    let url = server.ws_url("/mcp?session_id=taken-over-1");
    let mut first = WsClient::connect(&url, WsOptions::mcp()).await;
    first.mcp_initialize().await;
    let mut second = WsClient::connect(&url, WsOptions::mcp()).await;
    let init = second.mcp_initialize().await;
    assert_eq!(init["result"]["_meta"]["exai/resumed"], true, "{init}");
    let (code, reason) = first.recv_close(Duration::from_secs(10)).await.expect("the replaced connection is closed");
    assert_eq!(code, 4004, "{reason}");
    // The session carries on on the newer connection.
    let r = second.request(2, "tools/call", json!({"name":"version"})).await;
    assert_eq!(r["result"]["isError"], false, "{r}");
}

/// The server's peak resident memory so far, bytes (`VmHWM`).
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kb * 1024
}

#[actix_rt::test]
async fn a_socket_that_stops_reading_is_closed_at_the_stall_timeout_and_costs_bounded_memory() {
    const BUDGET: u64 = 4 << 20;
    let server = ServerProcess::start(
        ServerOptions::new()
            .set("debug.fault_injection", "true")
            // Few calls at once, so the calls' own working set stays small next to the budget.
            .set("limits.session_max_inflight", "4")
            .set("limits.session_queue", "1000")
            .set("limits.resume_buffer_bytes", &BUDGET.to_string())
            .set("limits.resume_buffer_global_bytes", &(2 * BUDGET).to_string())
            .set("timeouts.stall_close_secs", "2")
            .set("timeouts.heartbeat_interval_secs", "1"),
    );
    let mut warm = WsClient::connect(&server.ws_url("/mcp"), WsOptions::mcp()).await;
    warm.mcp_initialize().await;
    // Small requests, 200 KB replies.
    let big = json!({"ms":0,"text":"x".repeat(1000),"repeat":200});
    // Warm the allocator with the same work on a client that reads.
    for i in 0..40 {
        let r = warm.request(i, "tools/call", json!({"name":"debug_sleep","arguments":big})).await;
        assert_eq!(r["result"]["isError"], false);
    }
    let before = peak_rss(server.pid());
    // 600 replies of 200 KB (120 MB) for a client that never reads.
    let mut stalled = WsClient::connect(&server.ws_url("/mcp?session_id=stalled-rss"), WsOptions::mcp()).await;
    stalled
        .send_json(&json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{
        "protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"stalled","version":"1"}}}))
        .await;
    for i in 1..=600 {
        let call = json!({"jsonrpc":"2.0","id":i,"method":"tools/call",
                          "params":{"name":"debug_sleep","arguments":big}});
        if stalled.try_send_json(&call).await.is_err() {
            break;
        }
    }
    let sent = Instant::now();
    let mut closed_after = None;
    for _ in 0..150 {
        let m = crate::mcp_ws::reqwest_text(&server.http_url("/metrics")).await;
        if m.contains("exai_outbox_shed_total{kind=\"stalled_close\"} 1") {
            closed_after = Some(sent.elapsed());
            break;
        }
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    }
    let closed_after = closed_after.expect("the stalled socket was closed");
    assert!(closed_after < Duration::from_secs(10), "closed {closed_after:?} after the last call (stall 2 s)");
    let rise = peak_rss(server.pid()).saturating_sub(before);
    // The session's budget, plus what sits below the outbox (the WebSocket library's queue of
    // at most 32 frames), the calls being parsed and run, and allocator slack — far below the
    // 120 MB the replies take (a count-bounded outbox alone would hold up to 1024 of them).
    let allowed = BUDGET + 32 * 200_000 + (16 << 20);
    assert!(rise <= allowed, "peak RSS rose by {rise} bytes (allowed {allowed})");
    // Another client is still served.
    let r = warm.request(999, "tools/call", json!({"name":"version"})).await;
    assert_eq!(r["result"]["isError"], false);
}
