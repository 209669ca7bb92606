//! Added latency of the `chat` tool through exai against a zero-delay OpenAI-compatible mock,
//! versus calling the same mock directly (issue 3's benchmark).
//!
//! The mock is an in-process actix-web server answering `POST /v1/chat/completions` at once
//! with a fixed completion. exai (the real release binary) routes `glm-4.5-flash` to it.
//! Measured: criterion means for one direct call and one MCP `tools/call chat` over
//! WebSocket; then HDR p50/p99 over 5,000 sequential calls each (concurrency 1) and calls/s
//! with 64 concurrent clients (`exai bench`'s driver for exai, 64 keep-alive HTTP clients for
//! the mock). Every exai call also stores the exchange in its conversation thread (SQLite),
//! records metrics and a tool-call log row: the figure is the whole gateway, not a subset.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use criterion::{criterion_group, criterion_main, Criterion};
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

type Framed = actix_codec::Framed<awc::BoxedSocket, awc::ws::Codec>;

/// The same in-process zero-delay mock `exai bench --mock` uses.
fn start_mock() -> u16 {
    exai::bench::mock::start().expect("mock")
}

struct Server(Child, String);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_exai(mock: u16) -> Server {
    let dir = std::env::temp_dir().join(format!("exai-chatbench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut child = Command::new(env!("CARGO_BIN_EXE_exai"))
        .args(["serve", "--port", "0", "--log-level", "warn", "--data-dir"])
        .arg(&dir)
        .args(["--set", &format!("providers.glm.base_url=http://127.0.0.1:{mock}/v1")])
        .args(["--set", &format!("providers.kimi.base_url=http://127.0.0.1:{mock}/v1")])
        .env("KIMI_API_KEY", "bench-key-0123456789")
        .args(["--set", "providers.glm.max_inflight=64", "--set", "limits.provider_global_max_inflight=64"])
        .args(["--set", "limits.session_max_inflight=64", "--set", "conversations.max_turns=1000"])
        .args(["--set", "server.max_connections_per_ip=256"])
        .env("GLM_API_KEY", "bench-key-0123456789")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn exai");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("listening line");
    let addr = line.trim().strip_prefix("EXAI_LISTENING ").expect("listening").to_string();
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

async fn mcp_connect(addr: &str) -> Framed {
    let (_, mut ws) =
        awc::Client::default().ws(format!("ws://{addr}/mcp")).protocols(["mcp"]).connect().await.expect("ws");
    let init = json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"bench","version":"1"}}});
    ws.send(awc::ws::Message::Text(init.to_string().into())).await.expect("send");
    recv(&mut ws).await;
    ws
}

async fn chat_via_exai(ws: &mut Framed, n: u64) -> Value {
    call_tool(ws, n, "chat", json!({"prompt":"hi","model":"glm-4.5-flash"})).await
}

/// `kimi_chat_with_tools`: a raw chat with no conversation thread (nothing stored but the
/// tool-call log row), i.e. the gateway path alone.
async fn raw_chat_via_exai(ws: &mut Framed, n: u64) -> Value {
    let args = json!({"messages":[{"role":"user","content":"hi"}],"model":"kimi-k2-turbo-preview"});
    call_tool(ws, n, "kimi_chat_with_tools", args).await
}

async fn call_tool(ws: &mut Framed, n: u64, tool: &str, args: Value) -> Value {
    let req = json!({"jsonrpc":"2.0","id":n,"method":"tools/call","params":{"name":tool,"arguments":args}});
    ws.send(awc::ws::Message::Text(req.to_string().into())).await.expect("send");
    loop {
        let v = recv(ws).await;
        if v["id"] == json!(n) {
            assert_eq!(v["result"]["isError"], false, "{v}");
            return v;
        }
    }
}

const BODY: &str = r#"{"model":"glm-4.5-flash","messages":[{"role":"system","content":"You are a senior engineering collaborator."},{"role":"user","content":"hi"}]}"#;

async fn chat_direct(client: &awc::Client, url: &str) {
    let mut r =
        client.post(url).insert_header(("content-type", "application/json")).send_body(BODY).await.expect("post");
    let _ = r.body().await.expect("body");
}

fn bench(c: &mut Criterion) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mock = start_mock();
    let server = start_exai(mock);
    let url = format!("http://127.0.0.1:{mock}/v1/chat/completions");
    let sys = actix_rt::System::new();
    let client = awc::Client::default();
    let mut ws = sys.block_on(mcp_connect(&server.1));
    let mut n = 0u64;
    c.bench_function("chat_direct_to_mock", |b| {
        b.iter_custom(|iters| {
            sys.block_on(async {
                let t0 = Instant::now();
                for _ in 0..iters {
                    chat_direct(&client, &url).await;
                }
                t0.elapsed()
            })
        })
    });
    c.bench_function("chat_through_exai_mcp_ws", |b| {
        b.iter_custom(|iters| {
            sys.block_on(async {
                let t0 = Instant::now();
                for _ in 0..iters {
                    n += 1;
                    chat_via_exai(&mut ws, n).await;
                }
                t0.elapsed()
            })
        })
    });

    // Percentiles at concurrency 1.
    let mut direct = Histogram::<u64>::new(3).unwrap();
    let mut gateway = Histogram::<u64>::new(3).unwrap();
    let mut raw = Histogram::<u64>::new(3).unwrap();
    let (mut in_tool, mut in_provider) = (0.0f64, 0.0f64);
    // Where the tail is: the server's own time for the call (dispatcher entry to result) and
    // the provider request inside it, per call.
    let mut server_total = Histogram::<u64>::new(3).unwrap();
    let mut server_provider = Histogram::<u64>::new(3).unwrap();
    sys.block_on(async {
        for _ in 0..5000 {
            let t0 = Instant::now();
            chat_direct(&client, &url).await;
            direct.record(t0.elapsed().as_micros() as u64).unwrap();
            n += 1;
            let t0 = Instant::now();
            let v = chat_via_exai(&mut ws, n).await;
            gateway.record(t0.elapsed().as_micros() as u64).unwrap();
            let lm = &v["result"]["_meta"]["latency_metrics"];
            in_tool += lm["processing_ms"].as_f64().unwrap_or(0.0);
            let prov_ms = v["result"]["structuredContent"]["metadata"]["provider_ms"].as_f64().unwrap_or(0.0);
            in_provider += prov_ms;
            server_total.record((lm["total_ms"].as_f64().unwrap_or(0.0) * 1000.0) as u64).unwrap();
            server_provider.record((prov_ms * 1000.0) as u64).unwrap();
            n += 1;
            let t0 = Instant::now();
            raw_chat_via_exai(&mut ws, n).await;
            raw.record(t0.elapsed().as_micros() as u64).unwrap();
        }
    });
    let p = |h: &Histogram<u64>, q| h.value_at_quantile(q);
    println!(
        "mean inside exai: tool {:.0} us, of which provider request {:.0} us",
        in_tool * 1000.0 / 5000.0,
        in_provider * 1000.0 / 5000.0
    );
    println!(
        "inside exai per chat: dispatcher total p50 {} us p99 {} us | provider request p50 {} us p99 {} us",
        p(&server_total, 0.5),
        p(&server_total, 0.99),
        p(&server_provider, 0.5),
        p(&server_provider, 0.99)
    );
    println!(
        "concurrency 1, 5000 calls: direct p50 {} us p99 {} us | exai p50 {} us p99 {} us | added p50 {} us p99 {} us",
        p(&direct, 0.5),
        p(&direct, 0.99),
        p(&gateway, 0.5),
        p(&gateway, 0.99),
        p(&gateway, 0.5) as i64 - p(&direct, 0.5) as i64,
        p(&gateway, 0.99) as i64 - p(&direct, 0.99) as i64
    );
    println!(
        "concurrency 1, 5000 calls: kimi_chat_with_tools (no thread) p50 {} us p99 {} us | added p50 {} us p99 {} us",
        p(&raw, 0.5),
        p(&raw, 0.99),
        p(&raw, 0.5) as i64 - p(&direct, 0.5) as i64,
        p(&raw, 0.99) as i64 - p(&direct, 0.99) as i64
    );

    // Throughput with 64 concurrent clients.
    let out = exai::bench::run(&exai::bench::BenchOptions {
        url: format!("ws://{}/mcp", server.1),
        connections: 64,
        duration: 5.0,
        tool: "chat".into(),
        args: r#"{"prompt":"hi","model":"glm-4.5-flash"}"#.into(),
        quiet: true,
        ..Default::default()
    })
    .expect("bench");
    let report = out.run.expect("closed-loop report");
    let direct_rate = sys.block_on(async {
        let end = Instant::now() + Duration::from_secs(5);
        let tasks = (0..64).map(|_| {
            let (client, url) = (awc::Client::default(), url.clone());
            async move {
                let mut k = 0u64;
                while Instant::now() < end {
                    chat_direct(&client, &url).await;
                    k += 1;
                }
                k
            }
        });
        futures_util::future::join_all(tasks).await.iter().sum::<u64>() as f64 / 5.0
    });
    println!(
        "concurrency 64: exai {:.0} calls/s (p50 {} us, p99 {} us, errors {}) | direct to mock {:.0} calls/s",
        report.calls_per_sec, report.latency.p50_us, report.latency.p99_us, report.errors, direct_rate
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(4)).warm_up_time(Duration::from_secs(1));
    targets = bench
}
criterion_main!(benches);
