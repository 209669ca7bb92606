//! A TCP connection cut (by a proxy between client and server, so neither side chose it) in
//! the middle of a streamed call: the session resumes and the reply arrives exactly once, the
//! call having run once — with a raw WebSocket client, with the `exai::client` library (which
//! reconnects on its own, both protocols) and through `exai stdio --session-id`. When the
//! server restarted instead, a named session cannot be resumed and the library fails the call
//! at once with `Disconnected` rather than waiting for a reply that will never come.

use super::{eventually, metric, ws_health};
use crate::client::stdio::{text, Bridge};
use crate::common::proxy::TcpProxy;
use crate::common::ws::{WsClient, WsOptions};
use crate::common::{ServerOptions, ServerProcess};
use exai::client::{Client, ClientConfig, ClientError, Protocol};
use serde_json::{json, Value};
use std::time::Duration;

const T: Duration = Duration::from_secs(60);

fn server() -> ServerProcess {
    ServerProcess::start(ServerOptions::new().set("debug.fault_injection", "true"))
}

/// The call ran exactly `n` times to completion and was never cancelled.
async fn ran_once_each(server: &ServerProcess, n: usize) {
    let ok = "exai_tool_calls_total{outcome=\"ok\",tool=\"debug_sleep\"}";
    eventually(T, "the call finished on the server", || async { metric(server, ok).await == n as f64 }).await;
    let cancelled = "exai_tool_calls_total{outcome=\"cancelled\",tool=\"debug_sleep\"}";
    assert_eq!(metric(server, cancelled).await, 0.0, "the cut did not cancel the call");
}

#[actix_rt::test]
async fn raw_mcp_client_resumes_after_a_cut_mid_stream_and_gets_the_reply_once() {
    let server = server();
    let proxy = TcpProxy::start(server.addr());
    let url = proxy.ws_url("/mcp?session_id=cut-raw-1");
    let mut c = WsClient::connect(&url, WsOptions::mcp()).await;
    let init = c.mcp_initialize().await;
    assert_eq!(init["result"]["_meta"]["exai/resumable"], true, "{init}");
    assert_eq!(init["result"]["_meta"]["exai/resumed"], false, "a new session: {init}");
    c.send_json(&json!({"jsonrpc":"2.0","id":"s1","method":"tools/call","params":{"name":"debug_sleep",
        "arguments":{"ms":4000,"step_ms":100,"text":"streamed-and-resumed"},"_meta":{"progressToken":"t1"}}}))
        .await;
    let (p, _) = c.recv_json_until(T, |v| v["method"] == "notifications/progress" || v.get("result").is_some()).await;
    assert_eq!(p["method"], "notifications/progress", "the call is streaming: {p}");
    assert_eq!(proxy.sever(), 1);
    drop(c);
    // The server has let go of the cut connection before the client comes back.
    eventually(T, "the server noticed the cut", || async { ws_health(&server).await["connections"] == 0 }).await;

    let mut c = WsClient::connect(&url, WsOptions::mcp()).await;
    let init = c.mcp_initialize().await;
    assert_eq!(init["result"]["_meta"]["exai/resumed"], true, "the session was still alive: {init}");
    let (r, _) = c.recv_response(&json!("s1"), T).await;
    assert_eq!(r["result"]["content"][0]["text"], "streamed-and-resumed", "{r}");
    ran_once_each(&server, 1).await;
    while let Some(v) = c.try_recv_json(Duration::from_secs(1)).await {
        assert!(v.get("id") != Some(&json!("s1")) || v.get("method").is_some(), "delivered twice: {v}");
    }
    assert_eq!(proxy.accepted(), 2);
}

#[actix_rt::test]
async fn client_library_reconnects_on_its_own_and_gets_the_reply_once() {
    let server = server();
    let proxy = TcpProxy::start(server.addr());
    for (n, protocol) in [Protocol::Mcp, Protocol::Legacy].into_iter().enumerate() {
        let path = if protocol == Protocol::Mcp { "/mcp" } else { "/ws" };
        let mut cfg = ClientConfig::new(proxy.ws_url(path), protocol);
        cfg.session_id = Some(format!("cut-lib-{}", protocol.as_str()));
        cfg.backoff.initial = Duration::from_millis(50);
        cfg.backoff.max = Duration::from_millis(500);
        cfg.ready_wait = T;
        let client = Client::connect(cfg);
        client.wait_ready(T).await.unwrap();
        let mut notes = client.take_notifications().unwrap();
        let (ptx, mut prx) = client.progress_channel();
        let text = format!("library-{}", protocol.as_str());
        let args = json!({ "ms": 4000, "step_ms": 100, "text": text });
        let call = client.call_tool("debug_sleep", args, Some(T), Some(ptx));
        let cutter = async {
            // Cut once the call streams (legacy: its ack may come first).
            loop {
                let p = prx.recv().await.expect("progress before the reply");
                if protocol == Protocol::Mcp || p["op"] == "progress" || p["op"] == "stream_chunk" {
                    break;
                }
            }
            assert_eq!(proxy.sever(), 1, "{protocol:?}: one connection to cut");
        };
        let (r, ()) = futures_util::join!(call, cutter);
        let r = r.unwrap_or_else(|e| panic!("{protocol:?}: the call failed after the cut: {e}"));
        assert!(!r.is_error, "{protocol:?}: {:?}", r.value);
        let got = r.value.get("content").map(|c| c[0]["text"].clone()).unwrap_or_else(|| r.value["text"].clone());
        assert_eq!(got, json!(text), "{protocol:?}: {:?}", r.value);
        assert_eq!(client.status().connects, 2, "{protocol:?}: reconnected once, by itself");
        ran_once_each(&server, n + 1).await;
        // Legacy surfaces a reply to nothing pending as a notification: none may come.
        actix_rt::time::sleep(Duration::from_secs(1)).await;
        while let Ok(v) = notes.try_recv() {
            assert_ne!(v["op"], "call_tool_res", "{protocol:?}: a duplicate reply: {v}");
        }
        client.close();
    }
}

#[actix_rt::test]
async fn client_library_fails_at_once_when_the_named_session_is_gone_after_a_restart() {
    let mut server = server();
    let port = server.port();
    let mut cfg = ClientConfig::new(server.ws_url("/mcp"), Protocol::Mcp);
    cfg.session_id = Some("gone-after-restart".into());
    cfg.backoff.initial = Duration::from_millis(50);
    cfg.backoff.max = Duration::from_millis(500);
    // Longer than the whole test: only the server's "not resumed" can end the call early.
    cfg.ready_wait = Duration::from_secs(600);
    let client = Client::connect(cfg);
    client.wait_ready(T).await.unwrap();
    let call = client.call_tool("debug_sleep", json!({ "ms": 600_000 }), Some(Duration::from_secs(600)), None);
    let restart = async {
        eventually(T, "the call is running", || async { ws_health(&server).await["inflight"]["global"] == 1 }).await;
        server.kill9();
        ServerProcess::start(
            ServerOptions::new().port(port).set("debug.fault_injection", "true").data_dir(server.data_dir()),
        )
    };
    let (r, restarted) = futures_util::join!(call, restart);
    assert!(matches!(r, Err(ClientError::Disconnected)), "{r:?}");
    let hello = client.status().hello.unwrap_or(Value::Null);
    assert_eq!(hello["_meta"]["exai/resumed"], false, "{hello}");
    assert!(!client.call_tool("version", json!({}), Some(T), None).await.unwrap().is_error);
    drop(restarted);
}

#[test]
fn stdio_bridge_with_a_session_id_resumes_after_a_cut() {
    let server = server();
    let proxy = TcpProxy::start(server.addr());
    let url = proxy.ws_url("/mcp");
    let mut b = Bridge::start(&["--url", &url, "--session-id", "cut-stdio-1", "--reconnect-wait", "60"]);
    b.initialize();
    b.send(json!({ "jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": { "name": "debug_sleep",
        "arguments": { "ms": 4000, "step_ms": 100, "text": "bridged-and-resumed" },
        "_meta": { "progressToken": "editor-token" } } }));
    let first = b.next(T).expect("progress from the bridge");
    assert_eq!(first["method"], "notifications/progress", "{first}");
    assert_eq!(proxy.sever(), 1);
    let r = b.response(&json!(7), T, &mut Vec::new());
    assert_eq!(text(&r), "bridged-and-resumed", "{r}\n{}", b.stderr_text());
    let rest = b.drain(Duration::from_secs(1));
    assert!(rest.iter().all(|v| v.get("id") != Some(&json!(7))), "delivered twice: {rest:?}");
    assert!(proxy.accepted() >= 2, "the bridge reconnected");
    actix_rt::System::new().block_on(ran_once_each(&server, 1));
}
