//! The provider mock (a separate llmock process) is killed while a chat call waits on it:
//! once after the first streamed chunk and once before any byte of the answer. The caller
//! gets a typed `PROVIDER_ERROR` (no hang, no lost reply), every permit comes back, and once
//! the mock is restarted on the same port the next call is served.

use super::{eventually, metric, ws_health};
use crate::ai::{call, chats, err, mcp, options, Mocks};
use crate::common::mock::MockProvider;
use crate::common::ws::WsClient;
use crate::common::ServerProcess;
use serde_json::json;
use std::time::Duration;

const KIMI: &str = "kimi-k2-0905-preview";
const WAIT: Duration = Duration::from_secs(60);

/// Permits and in-flight slots are all back.
async fn all_permits_back(server: &ServerProcess) {
    eventually(WAIT, "provider permits and call slots return to 0", || async {
        let h = ws_health(server).await;
        h["provider_permits"]["in_use"] == 0
            && h["inflight"]["global"] == 0
            && metric(server, "exai_provider_inflight{provider=\"kimi\"}").await == 0.0
    })
    .await;
}

/// Waits until the server has a Kimi request open at the mock.
async fn kimi_request_open(server: &ServerProcess) {
    eventually(WAIT, "the chat call reached the provider", || async {
        metric(server, "exai_provider_inflight{provider=\"kimi\"}").await == 1.0
    })
    .await;
}

/// The next call served: the breaker may still be open from the failures (it half-opens
/// after `breaker_open_secs`), which is an explicit `OVER_CAPACITY`, never a hang.
async fn served_again(c: &mut WsClient, first_id: i64) {
    for i in 0..300 {
        let r = call(c, first_id + i, "chat", json!({"prompt": "are you back?", "model": KIMI})).await;
        if r["isError"] == false {
            return;
        }
        let code = err(&r)["code"].as_str().unwrap_or_default().to_string();
        assert!(code == "OVER_CAPACITY" || code == "PROVIDER_ERROR", "unexpected error while recovering: {r}");
        actix_rt::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("the restarted provider was never used");
}

#[actix_rt::test]
async fn provider_killed_mid_call_fails_typed_returns_permits_and_recovers_on_restart() {
    let mut m = Mocks::start(&[]);
    let port = m.kimi.port();
    let server = ServerProcess::start(options(&m).set("providers.kimi.breaker_open_secs", "1"));
    let mut c = mcp(&server).await;

    // 1. Killed after the first streamed chunk (the stream stalls after it).
    m.kimi.scenario(json!([{"type":"stream_fault","kind":"stall","after_chunks":3,"stall_seconds":120}])).await;
    c.send_json(&json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"chat",
        "arguments":{"prompt":"stream then die","model":KIMI},"_meta":{"progressToken":"p1"}}}))
        .await;
    let (first, _) =
        c.recv_json_until(WAIT, |v| v["method"] == "notifications/progress" || v.get("result").is_some()).await;
    assert_eq!(first["method"], "notifications/progress", "a chunk streams before the kill: {first}");
    m.kimi.kill();
    let (r, _) = c.recv_response(&json!(1), WAIT).await;
    let e = err(&r["result"]);
    assert_eq!(e["code"], "PROVIDER_ERROR", "{r}");
    assert!(!e["message"].as_str().unwrap_or_default().is_empty(), "{r}");
    all_permits_back(&server).await;

    // The mock comes back on the same port: served again.
    m.kimi = MockProvider::start_llmock_on(port, &[]);
    served_again(&mut c, 10).await;

    // 2. Killed before any byte of the answer (the mock delays it); the retries then meet a
    //    closed port and the caller still gets one typed error.
    m.kimi.scenario(json!([{"type":"delay","seconds":120,"times":1}])).await;
    c.send_json(&json!({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"chat",
        "arguments":{"prompt":"die before answering","model":KIMI}}}))
        .await;
    kimi_request_open(&server).await;
    m.kimi.kill();
    let (r, _) = c.recv_response(&json!(2), WAIT).await;
    assert_eq!(err(&r["result"])["code"], "PROVIDER_ERROR", "{r}");
    assert!(
        metric(&server, "exai_provider_errors_total{class=\"network\",provider=\"kimi\"}").await >= 2.0,
        "the kill and the refused retries are network errors"
    );
    all_permits_back(&server).await;

    m.kimi = MockProvider::start_llmock_on(port, &[]);
    served_again(&mut c, 400).await;
    assert!(!chats(&m.kimi).await.is_empty(), "the restarted mock answered");
    // No reply came twice: nothing but server pings arrives afterwards.
    while let Some(v) = c.try_recv_json(Duration::from_millis(500)).await {
        assert!(v.get("result").is_none() && v.get("error").is_none(), "a stray reply: {v}");
    }
}
