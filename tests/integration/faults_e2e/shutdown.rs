//! SIGTERM under load: 200 `debug_sleep` calls of 200–800 ms over four MCP and four legacy
//! connections, each connection also holding one call that outlives the drain deadline, then
//! SIGTERM and a second wave of calls. Every request gets exactly one terminal reply — its
//! result, `SERVICE_UNAVAILABLE` for calls that arrive while shutting down, or `CANCELLED`
//! at the deadline — every connection is closed with 1001, and the process exits 0.

use crate::common::ws::{WsClient, WsEvent, WsOptions};
use crate::common::{ServerOptions, ServerProcess};
use futures_util::future::join_all;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::{Duration, Instant};

const CONNS_PER_PROTOCOL: usize = 4;
const FIRST_WAVE: usize = 25;
const SECOND_WAVE: usize = 5;
const T: Duration = Duration::from_secs(30);

struct Conn {
    ws: WsClient,
    legacy: bool,
    name: String,
}

impl Conn {
    async fn open(server: &ServerProcess, legacy: bool, n: usize) -> Conn {
        let name = format!("{}{n}", if legacy { "legacy" } else { "mcp" });
        let ws = if legacy {
            let mut ws = WsClient::connect(&server.ws_url("/"), WsOptions::default()).await;
            ws.send_json(&json!({"op":"hello"})).await;
            assert_eq!(ws.recv_json(T).await["op"], "hello_ack");
            ws
        } else {
            let mut ws = WsClient::connect(&server.ws_url("/mcp"), WsOptions::mcp()).await;
            ws.mcp_initialize().await;
            ws
        };
        Conn { ws, legacy, name }
    }

    fn id(&self, tag: &str, i: usize) -> String {
        format!("{}-{tag}{i}", self.name)
    }

    async fn send_sleep(&mut self, id: &str, ms: u64) {
        self.send_sleep_with(id, ms, "").await;
    }

    /// `debug_sleep` answering `id` followed by `padding` (to make replies large).
    async fn send_sleep_with(&mut self, id: &str, ms: u64, padding: &str) {
        let text = if padding.is_empty() { id.to_string() } else { format!("{id}|{padding}") };
        let args = json!({"ms": ms, "step_ms": 60_000, "text": text});
        let frame = if self.legacy {
            json!({"op":"call_tool","request_id":id,"name":"debug_sleep","arguments":args})
        } else {
            json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":{"name":"debug_sleep","arguments":args}})
        };
        self.ws.send_json(&frame).await;
    }

    /// The long call is admitted before anything else is sent: legacy acks it; on MCP a ping
    /// sent after it is answered only once the frames before it were handled.
    async fn start_long_call(&mut self) {
        let id = self.id("long", 0);
        self.send_sleep(&id, 600_000).await;
        if self.legacy {
            self.ws.recv_json_until(T, |v| v["op"] == "call_tool_ack" && v["request_id"] == id.as_str()).await;
        } else {
            let r = self.ws.request("ping-0", "ping", Value::Null).await;
            assert!(r.get("result").is_some(), "{r}");
        }
    }

    /// Terminal replies by request id until the server closes the connection.
    async fn replies_until_close(mut self) -> (String, HashMap<String, Vec<String>>, Option<u16>) {
        let mut got: HashMap<String, Vec<String>> = HashMap::new();
        let deadline = Instant::now() + Duration::from_secs(120);
        let close = loop {
            match self.ws.next_event(deadline.saturating_duration_since(Instant::now())).await {
                WsEvent::Text(t) => {
                    let v: Value = serde_json::from_str(&t).unwrap();
                    if let Some((id, outcome)) = terminal(&v, self.legacy) {
                        got.entry(id).or_default().push(outcome);
                    }
                }
                WsEvent::Close(code, _) => break Some(code),
                WsEvent::Pong(_) | WsEvent::Binary(_) => {}
                WsEvent::Timeout | WsEvent::Ended | WsEvent::Error(_) => break None,
            }
        };
        (self.name, got, close)
    }
}

/// The reply text belongs to request `id` (see [`Conn::send_sleep_with`]).
fn answers(text: Option<&str>, id: &str) -> bool {
    text.is_some_and(|t| t == id || t.strip_prefix(id).is_some_and(|rest| rest.starts_with('|')))
}

/// `(request id, "ok" or the error code)` of a terminal reply; `None` for anything else.
fn terminal(v: &Value, legacy: bool) -> Option<(String, String)> {
    if legacy {
        if v["op"] != "call_tool_res" {
            return None;
        }
        let id = v["request_id"].as_str()?.to_string();
        let outcome = if v["ok"] == true {
            assert!(answers(v["text"].as_str(), &id), "reply went astray: {v}");
            "ok".to_string()
        } else {
            v["error"]["code"].as_str().unwrap_or("?").to_string()
        };
        return Some((id, outcome));
    }
    let id = v.get("id")?.as_str()?.to_string();
    if id.starts_with("ping-") || v.get("method").is_some() {
        return None;
    }
    let outcome = match (v.get("result"), v.get("error")) {
        (Some(r), _) if r["isError"] == false => {
            assert!(answers(r["content"][0]["text"].as_str(), &id), "reply went astray: {v}");
            "ok".to_string()
        }
        (Some(r), _) => r["structuredContent"]["error"]["code"].as_str().unwrap_or("?").to_string(),
        (None, Some(e)) => format!("rpc {}", e["code"]),
        (None, None) => return None,
    };
    Some((id, outcome))
}

#[actix_rt::test]
async fn sigterm_under_load_answers_every_call_closes_1001_and_exits_zero() {
    sigterm_under_load(ServerOptions::new()).await;
}

/// The same with an outbox of 2 frames: replies queue up in the session core during the
/// drain and must all be written before the 1001 close.
#[actix_rt::test]
async fn sigterm_under_load_with_a_tiny_outbox_still_answers_every_call() {
    sigterm_under_load(ServerOptions::new().set("limits.outbox_capacity", "2")).await;
}

async fn inflight(server: &ServerProcess) -> f64 {
    let Ok(mut resp) = awc::Client::default().get(server.http_url("/metrics")).send().await else { return 0.0 };
    let body = resp.body().await.map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
    body.lines().find_map(|l| l.strip_prefix("exai_inflight_calls ").and_then(|v| v.trim().parse().ok())).unwrap_or(0.0)
}

async fn sigterm_under_load(options: ServerOptions) {
    let mut server = ServerProcess::start(
        options
            .set("debug.fault_injection", "true")
            .set("limits.session_max_inflight", "64")
            .set("timeouts.shutdown_deadline_secs", "10"),
    );
    let mut conns = Vec::new();
    for n in 0..CONNS_PER_PROTOCOL {
        conns.push(Conn::open(&server, false, n).await);
        conns.push(Conn::open(&server, true, n).await);
    }
    // One call per connection that only the drain deadline ends: it keeps every session open
    // through the shutdown, so every frame sent below is read and answered.
    for c in &mut conns {
        c.start_long_call().await;
    }
    let mut expected: Vec<String> = Vec::new();
    for i in 0..FIRST_WAVE {
        for (k, c) in conns.iter_mut().enumerate() {
            let id = c.id("a", i);
            c.send_sleep(&id, 200 + ((i * 97 + k * 31) % 601) as u64).await;
            expected.push(id);
        }
    }
    // Signal only once the server has admitted some of the first wave (beyond the long
    // calls): on a loaded machine it may not have read those frames yet.
    let long_calls = (2 * CONNS_PER_PROTOCOL) as f64;
    let deadline = Instant::now() + Duration::from_secs(10);
    while inflight(&server).await <= long_calls && Instant::now() < deadline {
        actix_rt::time::sleep(Duration::from_millis(5)).await;
    }
    server.sigterm();
    for i in 0..SECOND_WAVE {
        for c in &mut conns {
            let id = c.id("b", i);
            c.send_sleep(&id, 200).await;
            expected.push(id);
        }
    }
    expected.extend(conns.iter().map(|c| c.id("long", 0)));

    let results = join_all(conns.into_iter().map(Conn::replies_until_close)).await;
    let mut outcomes: HashMap<String, String> = HashMap::new();
    for (name, got, close) in results {
        assert_eq!(close, Some(1001), "{name}: closed with 1001 after its replies");
        for (id, list) in got {
            assert_eq!(list.len(), 1, "{id}: exactly one terminal reply, got {list:?}");
            outcomes.insert(id, list[0].clone());
        }
    }
    let missing: Vec<&String> = expected.iter().filter(|id| !outcomes.contains_key(*id)).collect();
    assert!(missing.is_empty(), "{} of {} calls got no reply: {missing:?}", missing.len(), expected.len());
    assert_eq!(outcomes.len(), expected.len(), "no reply to anything not sent");

    let mut tally: HashMap<(char, &str), usize> = HashMap::new();
    for (id, outcome) in &outcomes {
        let wave = if id.contains("-long") {
            'L'
        } else if id.contains("-b") {
            'b'
        } else {
            'a'
        };
        *tally.entry((wave, outcome.as_str())).or_default() += 1;
        match wave {
            'L' => assert_eq!(outcome, "CANCELLED", "{id}: cancelled at the deadline"),
            _ => assert!(outcome == "ok" || outcome == "SERVICE_UNAVAILABLE", "{id}: {outcome}"),
        }
    }
    eprintln!("[faults] SIGTERM under load, outcomes by wave: {tally:?}");
    let first_ok = tally.get(&('a', "ok")).copied().unwrap_or(0);
    assert!(first_ok > 0, "calls admitted before the signal finish: {tally:?}");
    let status = server.wait_exit(Duration::from_secs(60)).expect("the server exits after the drain");
    assert_eq!(status.code(), Some(0), "stderr: {}", server.stderr_text());
}

/// No call outlives the drain here: the session closes when its last call finishes, while the
/// replies of the calls that finished with it may still be queued behind a one-frame outbox.
/// The 1001 close must come after every one of them.
#[actix_rt::test]
async fn sigterm_closes_only_after_queued_replies_are_written() {
    let mut server = ServerProcess::start(
        ServerOptions::new()
            .set("debug.fault_injection", "true")
            .set("limits.session_max_inflight", "256")
            .set("limits.outbox_capacity", "1"),
    );
    let mut conns = vec![Conn::open(&server, false, 0).await, Conn::open(&server, true, 0).await];
    let big = "y".repeat(8_000);
    let mut expected = Vec::new();
    for c in &mut conns {
        for i in 0..100 {
            let id = c.id("a", i);
            // Identical durations: the replies all become ready at about the same moment.
            c.send_sleep_with(&id, 500, &big).await;
            expected.push(id);
        }
        // Admitted before the signal: the frames before this ping were all handled.
        if c.legacy {
            c.ws.send_json(&json!({"op":"ping","request_id":"ping-legacy"})).await;
            c.ws.recv_json_until(T, |v| v["request_id"] == "ping-legacy").await;
        } else {
            c.ws.request("ping-1", "ping", Value::Null).await;
        }
    }
    server.sigterm();
    let results = join_all(conns.into_iter().map(Conn::replies_until_close)).await;
    let mut answered = 0;
    for (name, got, close) in results {
        assert_eq!(close, Some(1001), "{name}");
        for (id, list) in got {
            assert_eq!(list, vec!["ok".to_string()], "{id}: one successful reply");
            answered += 1;
        }
    }
    assert_eq!(answered, expected.len(), "every call admitted before SIGTERM is answered before the close");
    let status = server.wait_exit(Duration::from_secs(60)).expect("the server exits after the drain");
    assert_eq!(status.code(), Some(0));
}
