//! Criterion benchmark of a built-in tool's round trip over WebSocket against the real
//! binary: `version` over MCP (JSON-RPC, subprotocol `mcp`) and over the legacy protocol, one
//! connection, one call at a time. Throughput with many connections is measured by the load
//! driver (`exai bench`), see docs/PERFORMANCE.md.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use criterion::{criterion_group, criterion_main, Criterion};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

type Framed = actix_codec::Framed<awc::BoxedSocket, awc::ws::Codec>;

struct Server(Child, String);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_server() -> Server {
    let dir = std::env::temp_dir().join(format!("exai-wsbench-{}", std::process::id()));
    let mut child = Command::new(env!("CARGO_BIN_EXE_exai"))
        .args(["serve", "--port", "0", "--log-level", "warn", "--data-dir"])
        .arg(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn exai");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).expect("read listening line");
    let addr = line.trim().strip_prefix("EXAI_LISTENING ").expect("listening line").to_string();
    Server(child, addr)
}

async fn recv(ws: &mut Framed) -> Value {
    loop {
        match ws.next().await {
            Some(Ok(awc::ws::Frame::Text(b))) => return serde_json::from_slice(&b).expect("json"),
            Some(Ok(_)) => continue,
            other => panic!("connection ended: {other:?}"),
        }
    }
}

async fn send(ws: &mut Framed, v: Value) {
    ws.send(awc::ws::Message::Text(v.to_string().into())).await.expect("send");
}

fn bench_ws(c: &mut Criterion) {
    let server = start_server();
    let sys = actix_rt::System::new();
    let (mut mcp, mut legacy) = sys.block_on(async {
        let client = awc::Client::default();
        let (_, mut mcp) = client.ws(format!("ws://{}/mcp", server.1)).protocols(["mcp"]).connect().await.expect("mcp");
        send(&mut mcp, json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"bench","version":"1"}}})).await;
        recv(&mut mcp).await;
        send(&mut mcp, json!({"jsonrpc":"2.0","method":"notifications/initialized"})).await;
        let (_, mut legacy) = client.ws(format!("ws://{}/", server.1)).connect().await.expect("legacy");
        send(&mut legacy, json!({"op":"hello"})).await;
        recv(&mut legacy).await;
        (mcp, legacy)
    });
    let mut n = 0u64;
    c.bench_function("ws_mcp_version_roundtrip", |b| {
        b.iter_custom(|iters| {
            sys.block_on(async {
                let t0 = Instant::now();
                for _ in 0..iters {
                    n += 1;
                    send(&mut mcp, json!({"jsonrpc":"2.0","id":n,"method":"tools/call","params":{"name":"version","arguments":{}}})).await;
                    while recv(&mut mcp).await["id"] != json!(n) {}
                }
                t0.elapsed()
            })
        })
    });
    c.bench_function("ws_legacy_version_roundtrip", |b| {
        b.iter_custom(|iters| {
            sys.block_on(async {
                let t0 = Instant::now();
                for _ in 0..iters {
                    n += 1;
                    let rid = n.to_string();
                    send(&mut legacy, json!({"op":"call_tool","request_id":rid,"name":"version","arguments":{}})).await;
                    loop {
                        let v = recv(&mut legacy).await;
                        if v["op"] == "call_tool_res" && v["request_id"] == json!(rid) {
                            break;
                        }
                    }
                }
                t0.elapsed()
            })
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(5)).warm_up_time(Duration::from_secs(1));
    targets = bench_ws
}
criterion_main!(benches);
