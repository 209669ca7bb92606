//! Process-level behaviour of the real binary: staged shutdown on SIGTERM (and SIGHUP) with
//! a call in flight, supervision (a panicking actor is recreated), the CLI subcommands, and refusing
//! an unsafe bind.

use crate::common::cmd::run_with_timeout;
use crate::common::ws::{WsClient, WsEvent, WsOptions};
use crate::common::{ServerOptions, ServerProcess};
use crate::mcp_ws::reqwest_text;
use serde_json::{json, Value};
use std::process::Command;
use std::time::Duration;

const T: Duration = Duration::from_secs(10);

fn exai() -> Command {
    Command::new(env!("CARGO_BIN_EXE_exai"))
}

#[actix_rt::test]
async fn sigterm_lets_inflight_call_finish_then_exits_zero() {
    let mut server = ServerProcess::start(ServerOptions::new().set("debug.fault_injection", "true"));
    let mut c = WsClient::connect(&server.ws_url("/mcp"), WsOptions::mcp()).await;
    c.mcp_initialize().await;
    c.send_json(&json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"debug_sleep","arguments":{"ms":1500,"text":"finished"}}})).await;
    actix_rt::time::sleep(Duration::from_millis(300)).await;
    server.sigterm();
    let (r, _) = c.recv_response(&json!(1), T).await;
    assert_eq!(r["result"]["isError"], false, "{r}");
    assert_eq!(r["result"]["content"][0]["text"], "finished");
    let mut close = None;
    for _ in 0..5 {
        match c.next_event(T).await {
            WsEvent::Close(code, _) => {
                close = Some(code);
                break;
            }
            WsEvent::Text(_) | WsEvent::Binary(_) | WsEvent::Pong(_) => continue,
            _ => break,
        }
    }
    assert_eq!(close, Some(1001), "sessions close with 1001 on shutdown");
    let status = server.wait_exit(Duration::from_secs(20)).expect("server must exit");
    assert_eq!(status.code(), Some(0), "stderr: {}", server.stderr_text());
}

#[actix_rt::test]
async fn sighup_drains_like_sigterm() {
    let mut server = ServerProcess::start(ServerOptions::new().set("debug.fault_injection", "true"));
    let mut c = WsClient::connect(&server.ws_url("/mcp"), WsOptions::mcp()).await;
    c.mcp_initialize().await;
    c.send_json(&json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"debug_sleep","arguments":{"ms":1200,"text":"finished"}}})).await;
    actix_rt::time::sleep(Duration::from_millis(300)).await;
    server.signal("HUP");
    assert!(server.wait_for_stderr("staged shutdown: draining", T), "{}", server.stderr_text());
    // Draining: a new call is refused while the first one finishes.
    let mut refused = Value::Null;
    for id in 2..40 {
        c.send_json(&json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":{"name":"version"}})).await;
        let (r, _) = c.recv_response(&json!(id), T).await;
        if r["result"]["structuredContent"]["error"]["code"] == "SERVICE_UNAVAILABLE" {
            refused = r;
            break;
        }
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(refused.is_object(), "new calls are refused while draining");
    let (r, _) = c.recv_response(&json!(1), T).await;
    assert_eq!(r["result"]["isError"], false, "{r}");
    assert_eq!(r["result"]["content"][0]["text"], "finished");
    let status = server.wait_exit(Duration::from_secs(20)).expect("server must exit");
    assert_eq!(status.code(), Some(0), "staged shutdown, not death by signal: {status}");
    let stderr = server.stderr_text();
    assert!(stderr.contains("SIGHUP") && stderr.contains("staged shutdown complete"), "{stderr}");
}

#[actix_rt::test]
async fn sigterm_cancels_calls_past_the_deadline_with_an_error() {
    let mut server = ServerProcess::start(
        ServerOptions::new().set("debug.fault_injection", "true").set("timeouts.shutdown_deadline_secs", "1"),
    );
    let mut c = WsClient::connect(&server.ws_url("/mcp"), WsOptions::mcp()).await;
    c.mcp_initialize().await;
    c.send_json(
        &json!({"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"debug_sleep","arguments":{"ms":60000}}}),
    )
    .await;
    actix_rt::time::sleep(Duration::from_millis(200)).await;
    server.sigterm();
    let (r, _) = c.recv_response(&json!(7), T).await;
    assert_eq!(r["result"]["isError"], true);
    assert_eq!(r["result"]["structuredContent"]["error"]["code"], "CANCELLED");
    let status = server.wait_exit(Duration::from_secs(20)).expect("server must exit");
    assert_eq!(status.code(), Some(0));
}

#[actix_rt::test]
async fn panicked_actor_is_recreated_and_server_keeps_serving() {
    let server = ServerProcess::start(ServerOptions::new().set("debug.fault_injection", "true"));
    let url = server.http_url("/admin/debug/crash/toollog");
    let resp = awc::Client::default().post(url).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 202);
    let mut restarted = false;
    for _ in 0..50 {
        actix_rt::time::sleep(Duration::from_millis(100)).await;
        let ready: Value = serde_json::from_str(&reqwest_text(&server.http_url("/health/ready")).await).unwrap();
        let child = ready["actors"].as_array().unwrap().iter().find(|a| a["name"] == "toollog").cloned().unwrap();
        if child["restarts"] == 1 && child["state"] == "running" {
            assert_eq!(ready["status"], "ready");
            restarted = true;
            break;
        }
    }
    assert!(restarted, "toollog was not recreated; stderr: {}", server.stderr_text());
    let metrics = reqwest_text(&server.http_url("/metrics")).await;
    assert!(metrics.contains("exai_actor_restarts_total{actor=\"toollog\"} 1"));
    // Calls still work and still reach the (new) log writer.
    let mut c = WsClient::connect(&server.ws_url("/mcp"), WsOptions::mcp()).await;
    c.mcp_initialize().await;
    let r = c.request(1, "tools/call", json!({"name":"version"})).await;
    assert_eq!(r["result"]["isError"], false);
    let mut logged = false;
    for _ in 0..30 {
        actix_rt::time::sleep(Duration::from_millis(100)).await;
        let r = c.request(2, "tools/call", json!({"name":"toolcall_log_tail","arguments":{"tool":"version"}})).await;
        if r["result"]["structuredContent"]["count"].as_u64().unwrap_or(0) >= 1 {
            logged = true;
            break;
        }
    }
    assert!(logged, "the recreated writer must keep writing the tool-call log");
}

#[test]
fn config_check_redacts_secrets_and_names_bad_keys() {
    let out = run_with_timeout(
        exai()
            .args(["config", "check"])
            .env("EXAI_SERVER__AUTH_TOKEN", "super-secret-token-xyz")
            .env("EXAI_WS_PORT", "9123"),
        Duration::from_secs(20),
    );
    assert!(out.success(), "{}", out.describe());
    assert!(out.stdout.contains("port = 9123"), "{}", out.stdout);
    assert!(!out.stdout.contains("super-secret-token-xyz") && !out.stderr.contains("super-secret-token-xyz"));
    let out = run_with_timeout(exai().args(["config", "check", "--set", "server.port=abc"]), Duration::from_secs(20));
    assert!(!out.success());
    assert!(out.stderr.contains("server.port") && out.stderr.contains("abc"), "{}", out.stderr);
}

#[test]
fn refuses_public_bind_without_token() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_with_timeout(
        exai().args(["serve", "--host", "0.0.0.0", "--port", "0", "--data-dir"]).arg(dir.path()),
        Duration::from_secs(20),
    );
    assert!(!out.success());
    assert!(out.stderr.contains("server.host") && out.stderr.contains("auth_token"), "{}", out.stderr);
}

#[test]
fn migrate_reports_current_schema() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_with_timeout(exai().args(["migrate", "--data-dir"]).arg(dir.path()), Duration::from_secs(30));
    assert!(out.success(), "{}", out.describe());
    let v: Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(v["current"], true);
    assert!(v["applied"].as_array().unwrap().len() >= 3);
}

#[test]
fn serve_on_a_busy_port_fails_with_one_line_naming_the_address() {
    let first = ServerProcess::start(ServerOptions::new());
    let dir = tempfile::tempdir().unwrap();
    let port = first.port().to_string();
    let out = run_with_timeout(
        exai()
            .args(["serve", "--host", "127.0.0.1", "--port", &port, "--data-dir"])
            .arg(dir.path())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default()),
        Duration::from_secs(20),
    );
    assert!(out.status.is_some() && !out.success(), "{}", out.describe());
    let lines: Vec<&str> = out.stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "exactly one line on stderr: {}", out.describe());
    assert!(lines[0].contains(&format!("127.0.0.1:{port}")), "names the address: {}", out.describe());
    assert!(lines[0].contains("in use"), "says why: {}", out.describe());
    assert!(!out.stderr.contains("panicked") && !out.stderr.contains("reactor"), "{}", out.describe());
    // Nothing of the second server was created next to the refused bind.
    assert!(!dir.path().join("exai.db").exists(), "the store is opened only after the bind");
}

#[test]
fn call_into_a_closed_pipe_ends_quietly() {
    use std::io::Read;
    use std::process::Stdio;
    let server = ServerProcess::start(ServerOptions::new());
    for _ in 0..3 {
        // The reading end is closed before the result is written: every write gets EPIPE
        // (what `exai call listmodels | head -c 10` meets when head has already exited).
        let mut child = exai()
            .args(["call", "listmodels", "--url", &server.ws_url("/mcp")])
            .env_remove("EXAI_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let mut stderr = String::new();
        child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(0), "rc {status}; stderr: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}
