//! The `exai::client` library and the `exai call` / `exai stdio` commands against a real
//! `exai serve`: concurrency on one connection, reconnect after kill -9 and restart on the same
//! port, legacy resend after a dropped connection, `exai call` exit codes, and the stdio bridge
//! ([`stdio`]: two bridges on one daemon, daemon restart, embedded mode, Python SDK client).

pub(crate) mod stdio;

use crate::common::cmd::run_with_timeout;
use crate::common::{ServerOptions, ServerProcess};
use exai::client::{Client, ClientConfig, ConnState, Protocol};
use futures_util::future::join_all;
use serde_json::{json, Value};
use std::process::Command;
use std::time::{Duration, Instant};

const T: Option<Duration> = Some(Duration::from_secs(20));

fn fault_server() -> ServerProcess {
    ServerProcess::start(
        ServerOptions::new().set("debug.fault_injection", "true").set("limits.session_max_inflight", "256"),
    )
}

fn config(server: &ServerProcess, protocol: Protocol) -> ClientConfig {
    let path = if protocol == Protocol::Mcp { "/mcp" } else { "/ws" };
    let mut cfg = ClientConfig::new(server.ws_url(path), protocol);
    cfg.backoff.initial = Duration::from_millis(50);
    cfg.backoff.max = Duration::from_millis(500);
    cfg
}

fn text_of(v: &Value) -> String {
    match v.get("content") {
        Some(c) => c[0]["text"].as_str().unwrap_or_default().to_string(),
        None => v["text"].as_str().unwrap_or_default().to_string(),
    }
}

#[actix_rt::test]
async fn client_multiplexes_concurrent_calls_on_one_connection() {
    let server = fault_server();
    for protocol in [Protocol::Mcp, Protocol::Legacy] {
        let mut cfg = config(&server, protocol);
        cfg.max_in_flight = 200;
        let client = Client::connect(cfg);
        client.wait_ready(Duration::from_secs(10)).await.unwrap();
        let versions = (0..100).map(|_| client.call_tool("version", json!({}), T, None));
        let echoes = (0..100).map(|i| {
            let args = json!({ "ms": (i * 37) % 200, "step_ms": 50, "text": format!("echo-{i}") });
            client.call_tool("debug_sleep", args, T, None)
        });
        let (versions, echoes) = futures_util::join!(join_all(versions), join_all(echoes));
        for r in versions {
            let r = r.unwrap();
            assert!(!r.is_error, "{protocol:?}: {:?}", r.value);
            assert!(text_of(&r.value).contains("exai"), "{protocol:?}: {:?}", r.value);
        }
        for (i, r) in echoes.into_iter().enumerate() {
            let r = r.unwrap();
            assert_eq!(text_of(&r.value), format!("echo-{i}"), "{protocol:?}: reply for call {i} went astray");
        }
        assert_eq!(client.status().connects, 1, "{protocol:?}: all calls on one connection");
        client.close();
    }
}

#[actix_rt::test]
async fn client_reconnects_after_kill9_and_restart_on_same_port() {
    let mut server = fault_server();
    let port = server.port();
    let client = Client::connect(config(&server, Protocol::Mcp));
    client.wait_ready(Duration::from_secs(10)).await.unwrap();
    assert!(!client.call_tool("version", json!({}), T, None).await.unwrap().is_error);

    // A call in flight when the server dies fails explicitly (MCP without resume): no hang.
    let slow = client.call_tool("debug_sleep", json!({ "ms": 5000 }), T, None);
    let killer = async {
        actix_rt::time::sleep(Duration::from_millis(300)).await;
        server.kill9();
    };
    let (slow, ()) = futures_util::join!(slow, killer);
    assert!(matches!(slow, Err(exai::client::ClientError::Disconnected)), "{slow:?}");

    let mut watch = client.watch();
    actix_rt::time::timeout(Duration::from_secs(5), watch.wait_for(|s| s.state != ConnState::Ready))
        .await
        .unwrap()
        .unwrap();
    // Submitted during the outage: waits for the reconnection.
    let pending = client.call_tool("version", json!({}), T, None);
    let restarted = ServerProcess::start(
        ServerOptions::new().port(port).set("debug.fault_injection", "true").data_dir(server.data_dir()),
    );
    let r = pending.await.unwrap();
    assert!(!r.is_error, "{:?}", r.value);
    assert_eq!(client.status().connects, 2);
    assert!(!client.call_tool("version", json!({}), T, None).await.unwrap().is_error);
    drop(restarted);
}

#[actix_rt::test]
async fn client_legacy_resends_after_drop_and_gets_one_reply() {
    let server = fault_server();
    let client = Client::connect(config(&server, Protocol::Legacy));
    client.wait_ready(Duration::from_secs(10)).await.unwrap();
    let mut notes = client.take_notifications().unwrap();
    let session = client.status().session_id.clone().unwrap();

    let started = Instant::now();
    let (ptx, mut prx) = client.progress_channel();
    let call = client.call_tool("debug_sleep", json!({ "ms": 1500, "text": "slept-once" }), T, Some(ptx));
    let dropper = async {
        actix_rt::time::sleep(Duration::from_millis(400)).await;
        client.drop_connection();
    };
    let (r, ()) = futures_util::join!(call, dropper);
    let r = r.unwrap();
    assert!(!r.is_error, "{:?}", r.value);
    assert_eq!(r.value["text"], "slept-once");
    assert!(started.elapsed() >= Duration::from_millis(1400));
    assert_eq!(client.status().connects, 2, "reconnected once");
    assert_eq!(client.status().session_id.as_deref(), Some(session.as_str()), "same legacy session id");
    let mut acks = 0;
    while let Ok(p) = prx.try_recv() {
        acks += usize::from(p["op"] == "call_tool_ack");
    }
    assert!(acks >= 1, "progress frames were routed to the call");

    // Nothing else arrives for that request: no duplicate reply.
    actix_rt::time::sleep(Duration::from_millis(2500)).await;
    while let Ok(n) = notes.try_recv() {
        assert_ne!(n["op"], "call_tool_res", "duplicate reply: {n}");
    }
    client.close();
}

fn exai_call(server: Option<&ServerProcess>, args: &[&str]) -> crate::common::cmd::CmdOutput {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_exai"));
    cmd.arg("call").args(args).env_remove("EXAI_TOKEN");
    if let Some(s) = server {
        if !args.contains(&"--url") {
            cmd.arg("--url").arg(s.ws_url("/mcp"));
        }
    }
    run_with_timeout(&mut cmd, Duration::from_secs(60))
}

#[test]
fn client_exai_call_exit_codes() {
    let server = fault_server();
    let ok = exai_call(Some(&server), &["version"]);
    assert_eq!(ok.code(), Some(0), "{}", ok.describe());
    let v: Value = serde_json::from_str(&ok.stdout).unwrap();
    assert_eq!(v["isError"], false);

    let legacy = exai_call(
        Some(&server),
        &["debug_sleep", "--args", r#"{"ms":300,"step_ms":100,"text":"hi"}"#, "--protocol", "legacy", "--progress"],
    );
    assert_eq!(legacy.code(), Some(0), "{}", legacy.describe());
    let v: Value = serde_json::from_str(&legacy.stdout).unwrap();
    assert_eq!(v["text"], "hi");
    assert!(legacy.stderr.contains("progress"), "{}", legacy.describe());

    let tool_error = exai_call(Some(&server), &["debug_sleep", "--args", r#"{"ms":"soon"}"#]);
    assert_eq!(tool_error.code(), Some(1), "{}", tool_error.describe());
    let v: Value = serde_json::from_str(&tool_error.stdout).unwrap();
    assert_eq!(v["isError"], true);

    let unknown = exai_call(Some(&server), &["no_such_tool"]);
    assert_eq!(unknown.code(), Some(2), "{}", unknown.describe());
    let bad_args = exai_call(Some(&server), &["version", "--args", "{not json"]);
    assert_eq!(bad_args.code(), Some(2), "{}", bad_args.describe());
    let no_server = exai_call(None, &["version", "--url", "ws://127.0.0.1:9/mcp", "--connect-timeout", "1"]);
    assert_eq!(no_server.code(), Some(2), "{}", no_server.describe());
    assert!(no_server.stdout.is_empty());
}

#[test]
fn client_exai_call_with_token() {
    let server = ServerProcess::start(ServerOptions::new().auth_token("s3cret-token-0123456789"));
    let denied = exai_call(Some(&server), &["version", "--connect-timeout", "2"]);
    assert_eq!(denied.code(), Some(2), "{}", denied.describe());
    assert!(denied.stderr.contains("unauthorized"), "{}", denied.describe());
    for protocol in ["mcp", "legacy"] {
        let ok = exai_call(Some(&server), &["version", "--token", "s3cret-token-0123456789", "--protocol", protocol]);
        assert_eq!(ok.code(), Some(0), "{protocol}: {}", ok.describe());
        assert!(!ok.stderr.contains("s3cret-token-0123456789"));
    }
}

#[actix_rt::test]
async fn client_detects_a_frozen_server_and_recovers() {
    let server = fault_server();
    let mut cfg = config(&server, Protocol::Mcp);
    cfg.heartbeat_interval = Duration::from_millis(200);
    cfg.dead_after = Duration::from_secs(1);
    cfg.connect_timeout = Duration::from_secs(1);
    let client = Client::connect(cfg);
    client.wait_ready(Duration::from_secs(10)).await.unwrap();
    // SIGSTOP: the TCP connection stays open but nothing answers any more.
    server.signal("STOP");
    let started = Instant::now();
    let r = client.call_tool("version", json!({}), Some(Duration::from_secs(20)), None).await;
    let waited = started.elapsed();
    server.signal("CONT");
    assert!(matches!(r, Err(exai::client::ClientError::Disconnected)), "{r:?}");
    assert!(waited < Duration::from_secs(5), "dead connection noticed after {waited:?}");
    let r = client.call_tool("version", json!({}), T, None).await.unwrap();
    assert!(!r.is_error);
    assert!(client.status().connects >= 2);
}
