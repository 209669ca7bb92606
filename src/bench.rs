//! The load driver behind `exai bench`: many WebSocket connections calling one tool in a
//! closed loop, latencies in an HDR histogram, a report of p50/p90/p99/p99.9 and calls/s.
//!
//! It speaks both protocols (MCP JSON-RPC with the `mcp` subprotocol, and the legacy op
//! protocol) with the awc client, one single-threaded actix runtime per `--threads`.
//! Only loopback targets are intended: the run is bounded by `--duration`.

use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde::Serialize;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// Which protocol to drive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
pub enum BenchProtocol {
    /// MCP over WebSocket.
    Mcp,
    /// Legacy EXAI op protocol.
    Legacy,
}

/// What to run.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchOptions {
    /// WebSocket URL, e.g. ws://127.0.0.1:8079/mcp
    #[arg(long, default_value = "ws://127.0.0.1:8079/mcp")]
    pub url: String,
    /// Concurrent connections (each runs calls back to back).
    #[arg(long, default_value_t = 1)]
    pub connections: usize,
    /// Measured seconds.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Warm-up seconds (not measured).
    #[arg(long, default_value_t = 1.0)]
    pub warmup: f64,
    /// Tool to call.
    #[arg(long, default_value = "version")]
    pub tool: String,
    /// Tool arguments (JSON object).
    #[arg(long, default_value = "{}")]
    pub args: String,
    /// Protocol.
    #[arg(long, value_enum, default_value_t = BenchProtocol::Mcp)]
    pub protocol: BenchProtocol,
    /// Client threads (connections are spread across them).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Token (sent as ?token= for MCP and in hello for legacy).
    #[arg(long, env = "EXAI_BENCH_TOKEN")]
    pub token: Option<String>,
}

/// The result.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// Protocol.
    pub protocol: BenchProtocol,
    /// Tool.
    pub tool: String,
    /// Connections.
    pub connections: usize,
    /// Successful calls measured.
    pub calls: u64,
    /// Failed calls (error replies, broken connections).
    pub errors: u64,
    /// Measured wall time, seconds.
    pub seconds: f64,
    /// Throughput.
    pub calls_per_sec: f64,
    /// Latency percentiles, microseconds.
    pub p50_us: u64,
    /// p90.
    pub p90_us: u64,
    /// p99.
    pub p99_us: u64,
    /// p99.9.
    pub p999_us: u64,
    /// Max.
    pub max_us: u64,
}

/// Errors of a bench run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// Bad option.
    #[error("invalid option: {0}")]
    Options(String),
    /// Could not connect or the handshake failed.
    #[error("connect: {0}")]
    Connect(String),
    /// The histogram could not be built.
    #[error("histogram: {0}")]
    Histogram(String),
}

struct ConnResult {
    hist: Histogram<u64>,
    calls: u64,
    errors: u64,
}

type Framed = actix_codec::Framed<awc::BoxedSocket, awc::ws::Codec>;

async fn recv_json(ws: &mut Framed) -> Option<Value> {
    while let Some(frame) = ws.next().await {
        match frame.ok()? {
            awc::ws::Frame::Text(b) | awc::ws::Frame::Binary(b) => return serde_json::from_slice(&b).ok(),
            awc::ws::Frame::Ping(p) => {
                let _ = ws.send(awc::ws::Message::Pong(p)).await;
            }
            awc::ws::Frame::Close(_) => return None,
            _ => {}
        }
    }
    None
}

async fn send_json(ws: &mut Framed, v: &Value) -> bool {
    ws.send(awc::ws::Message::Text(v.to_string().into())).await.is_ok()
}

async fn connect(o: &BenchOptions) -> Result<Framed, BenchError> {
    let client = awc::Client::builder().timeout(Duration::from_secs(10)).finish();
    let mut url = o.url.clone();
    let mut req;
    if o.protocol == BenchProtocol::Mcp {
        if let Some(t) = &o.token {
            url = format!("{url}{}token={t}", if url.contains('?') { '&' } else { '?' });
        }
        req = client.ws(url).protocols(["mcp"]);
    } else {
        req = client.ws(url);
    }
    req = req.max_frame_size(64 * 1024 * 1024);
    let (_, mut ws) = req.connect().await.map_err(|e| BenchError::Connect(e.to_string()))?;
    let hello = match o.protocol {
        BenchProtocol::Mcp => json!({"jsonrpc":"2.0","id":"init","method":"initialize","params":{
            "protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"exai-bench","version":"1"}}}),
        BenchProtocol::Legacy => json!({"op":"hello","token":o.token}),
    };
    if !send_json(&mut ws, &hello).await {
        return Err(BenchError::Connect("handshake send failed".into()));
    }
    let ack = recv_json(&mut ws).await.ok_or_else(|| BenchError::Connect("no handshake reply".into()))?;
    let ok = match o.protocol {
        BenchProtocol::Mcp => ack.get("result").is_some(),
        BenchProtocol::Legacy => ack["ok"] == json!(true),
    };
    if !ok {
        return Err(BenchError::Connect(format!("handshake refused: {ack}")));
    }
    if o.protocol == BenchProtocol::Mcp {
        send_json(&mut ws, &json!({"jsonrpc":"2.0","method":"notifications/initialized"})).await;
    }
    Ok(ws)
}

/// One call; returns true on success.
async fn call_once(ws: &mut Framed, o: &BenchOptions, args: &Value, n: u64) -> Option<bool> {
    let id = n.to_string();
    let req = match o.protocol {
        BenchProtocol::Mcp => {
            json!({"jsonrpc":"2.0","id":n,"method":"tools/call","params":{"name":o.tool,"arguments":args}})
        }
        BenchProtocol::Legacy => json!({"op":"call_tool","request_id":id,"name":o.tool,"arguments":args}),
    };
    if !send_json(ws, &req).await {
        return None;
    }
    loop {
        let v = recv_json(ws).await?;
        match o.protocol {
            BenchProtocol::Mcp => {
                if v.get("method").and_then(Value::as_str) == Some("ping") {
                    let _ = send_json(ws, &json!({"jsonrpc":"2.0","id":v["id"],"result":{}})).await;
                    continue;
                }
                if v["id"] == json!(n) {
                    return Some(v.get("result").is_some_and(|r| r["isError"] != json!(true)));
                }
            }
            BenchProtocol::Legacy => {
                if v["op"] == "call_tool_res" && v["request_id"] == json!(id) {
                    return Some(v["ok"] == json!(true));
                }
            }
        }
    }
}

async fn run_conn(o: BenchOptions, args: Value, warm_until: Instant, end: Instant) -> Result<ConnResult, BenchError> {
    let mut ws = connect(&o).await?;
    let mut hist =
        Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).map_err(|e| BenchError::Histogram(e.to_string()))?;
    let (mut calls, mut errors, mut n) = (0u64, 0u64, 0u64);
    loop {
        let t0 = Instant::now();
        if t0 >= end {
            break;
        }
        n += 1;
        let ok = call_once(&mut ws, &o, &args, n).await;
        let us = t0.elapsed().as_micros() as u64;
        if t0 < warm_until {
            continue;
        }
        match ok {
            Some(true) => {
                calls += 1;
                let _ = hist.record(us.max(1));
            }
            Some(false) => errors += 1,
            None => {
                errors += 1;
                break;
            }
        }
    }
    Ok(ConnResult { hist, calls, errors })
}

/// Run the benchmark (blocking; spins up its own runtimes).
pub fn run(o: &BenchOptions) -> Result<BenchReport, BenchError> {
    let args: Value = serde_json::from_str(&o.args).map_err(|e| BenchError::Options(format!("--args: {e}")))?;
    if !args.is_object() || o.connections == 0 || o.duration <= 0.0 {
        return Err(BenchError::Options("--args must be an object; connections and duration > 0".into()));
    }
    let threads = o.threads.clamp(1, o.connections);
    let start = Instant::now();
    let warm_until = start + Duration::from_secs_f64(o.warmup.max(0.0));
    let end = warm_until + Duration::from_secs_f64(o.duration);
    let mut handles = Vec::new();
    for t in 0..threads {
        let per: Vec<usize> = (0..o.connections).filter(|c| c % threads == t).collect();
        let (o, args) = (o.clone(), args.clone());
        handles.push(std::thread::spawn(move || {
            actix_rt::System::new().block_on(async move {
                let futs = per.iter().map(|_| run_conn(o.clone(), args.clone(), warm_until, end));
                futures_util::future::join_all(futs).await
            })
        }));
    }
    let mut hist =
        Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).map_err(|e| BenchError::Histogram(e.to_string()))?;
    let (mut calls, mut errors) = (0, 0);
    for h in handles {
        let results = h.join().map_err(|_| BenchError::Connect("client thread panicked".into()))?;
        for r in results {
            let r = r?;
            hist.add(&r.hist).map_err(|e| BenchError::Histogram(e.to_string()))?;
            calls += r.calls;
            errors += r.errors;
        }
    }
    let seconds = o.duration;
    Ok(BenchReport {
        protocol: o.protocol,
        tool: o.tool.clone(),
        connections: o.connections,
        calls,
        errors,
        seconds,
        calls_per_sec: calls as f64 / seconds,
        p50_us: hist.value_at_quantile(0.50),
        p90_us: hist.value_at_quantile(0.90),
        p99_us: hist.value_at_quantile(0.99),
        p999_us: hist.value_at_quantile(0.999),
        max_us: hist.max(),
    })
}
