//! 10,000 random malformed frames against the running server, over both protocols: every
//! frame gets an error reply (MCP: a JSON-RPC error; legacy: an `error` frame with `op` and
//! `request_id`), the connection stays usable, and the server keeps serving.

use crate::common::ws::{WsClient, WsOptions};
use crate::common::{ServerOptions, ServerProcess};
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use std::time::Duration;

const T: Duration = Duration::from_secs(10);

fn garbage(rng: &mut rand::rngs::StdRng, i: usize) -> String {
    match i % 6 {
        0 => (0..rng.random_range(1..200)).map(|_| rng.random_range(0x20u8..0x7f) as char).collect(),
        1 => format!("{{\"jsonrpc\":\"2.0\",\"id\":{i},\"method\":"),
        2 => format!("[{i}, {{\"op\":1}}]"),
        3 => format!("{{\"id\":{i},\"jsonrpc\":\"1.0\",\"method\":\"ping\"}}"),
        4 => "\u{0}\u{1}{}}}".repeat(rng.random_range(1..5)),
        _ => format!("\"just a string {i}\""),
    }
}

async fn hammer(c: &mut WsClient, n: usize, seed: u64, check: impl Fn(&Value)) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    // Send in windows so the replies can be read as they come.
    let window = 200;
    let mut sent = 0;
    while sent < n {
        let k = window.min(n - sent);
        for i in 0..k {
            c.send_text(&garbage(&mut rng, sent + i)).await;
        }
        for _ in 0..k {
            let v = c.recv_json(T).await;
            check(&v);
        }
        sent += k;
    }
}

#[actix_rt::test]
async fn ten_thousand_malformed_frames_each_get_an_error_and_the_server_keeps_serving() {
    let server = ServerProcess::start(ServerOptions::new());
    let mut m = WsClient::connect(&server.ws_url("/mcp"), WsOptions::mcp()).await;
    m.mcp_initialize().await;
    hammer(&mut m, 5_000, 7, |v| {
        assert!(v["error"]["code"].is_i64(), "MCP error reply expected: {v}");
        assert!(v.as_object().unwrap().contains_key("id"));
    })
    .await;
    assert_eq!(m.request(1, "ping", Value::Null).await["result"], json!({}));

    let mut l = WsClient::connect(&server.ws_url("/"), WsOptions::default()).await;
    l.send_json(&json!({"op":"hello"})).await;
    assert_eq!(l.recv_json(T).await["ok"], true);
    hammer(&mut l, 5_000, 11, |v| {
        assert_eq!(v["op"], "error", "legacy error reply expected: {v}");
        assert!(v.as_object().unwrap().contains_key("request_id"));
    })
    .await;
    l.send_json(&json!({"op":"call_tool","request_id":"after","name":"version"})).await;
    let (r, _) = l.recv_json_until(T, |v| v["op"] == "call_tool_res").await;
    assert_eq!(r["ok"], true);
    let mut fresh = WsClient::connect(&server.ws_url("/mcp"), WsOptions::mcp()).await;
    fresh.mcp_initialize().await;
}
