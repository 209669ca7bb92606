//! `exai stdio` bridges as child processes: newline-delimited JSON-RPC on their stdin/stdout.

use crate::common::cmd::run_with_timeout;
use crate::common::{tools, ServerOptions, ServerProcess};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// A running `exai stdio`.
pub(crate) struct Bridge {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    stderr: Arc<Mutex<String>>,
}

impl Bridge {
    pub(crate) fn start(args: &[&str]) -> Bridge {
        Bridge::start_with(args, |_| {})
    }

    /// Like [`Bridge::start`], with `setup` adjusting the command (directory, environment).
    pub(crate) fn start_with(args: &[&str], setup: impl FnOnce(&mut Command)) -> Bridge {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_exai"));
        cmd.arg("stdio").args(args).env_remove("EXAI_TOKEN").env("RUST_LOG", "info");
        setup(&mut cmd);
        let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let stdin = child.stdin.take().unwrap();
        let (tx, lines) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let (sink, mut err) = (Arc::clone(&stderr), child.stderr.take().unwrap());
        thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Bridge { child, stdin: Some(stdin), lines, stderr }
    }

    pub(crate) fn send(&mut self, v: Value) {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{v}").unwrap();
        stdin.flush().unwrap();
    }

    /// The next stdout line, which must be one JSON-RPC message.
    pub(crate) fn next(&self, timeout: Duration) -> Option<Value> {
        let line = self.lines.recv_timeout(timeout).ok()?;
        let v: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {line}\nstderr:\n{}", self.stderr_text()));
        assert_eq!(v["jsonrpc"], "2.0", "not JSON-RPC: {line}");
        Some(v)
    }

    /// Every message that arrives within `window`.
    pub(crate) fn drain(&self, window: Duration) -> Vec<Value> {
        let deadline = Instant::now() + window;
        let mut all = Vec::new();
        while let Some(v) = self.next(deadline.saturating_duration_since(Instant::now())) {
            all.push(v);
        }
        all
    }

    pub(crate) fn stderr_text(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits for the response with `id`, collecting notifications seen meanwhile.
    pub(crate) fn response(&self, id: &Value, timeout: Duration, notes: &mut Vec<Value>) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let v = self.next(left).unwrap_or_else(|| {
                panic!("no response to id {id} within {timeout:?}\nstderr:\n{}", self.stderr_text())
            });
            if v.get("id") == Some(id) && v.get("method").is_none() {
                return v;
            }
            notes.push(v);
        }
    }

    pub(crate) fn request(&mut self, id: Value, method: &str, params: Value) -> Value {
        self.send(json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params }));
        self.response(&id, Duration::from_secs(30), &mut Vec::new())
    }

    pub(crate) fn initialize(&mut self) -> Value {
        let params = json!({ "protocolVersion": "2025-06-18", "capabilities": {},
                             "clientInfo": { "name": "bridge-test", "version": "1" } });
        let r = self.request(json!(0), "initialize", params);
        self.send(json!({ "jsonrpc": "2.0", "method": "notifications/initialized" }));
        r
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn text(resp: &Value) -> &str {
    resp["result"]["content"][0]["text"].as_str().unwrap_or_default()
}

#[test]
fn client_two_stdio_bridges_share_one_daemon() {
    let server = ServerProcess::start(ServerOptions::new().set("debug.fault_injection", "true"));
    let url = server.ws_url("/mcp");
    let mut bridges = [Bridge::start(&["--url", &url]), Bridge::start(&["--url", &url])];
    for b in &mut bridges {
        let init = b.initialize();
        assert_eq!(init["result"]["protocolVersion"], "2025-06-18", "{init}");
        assert!(init["result"]["capabilities"]["tools"].is_object(), "daemon capabilities forwarded: {init}");
        assert!(init["result"]["serverInfo"]["name"].is_string());
    }
    // 20 interleaved calls per bridge, with the same ids on both bridges.
    for i in 0..20 {
        for (n, b) in bridges.iter_mut().enumerate() {
            let params = if i % 3 == 0 {
                json!({ "name": "version", "arguments": {} })
            } else {
                json!({ "name": "debug_sleep", "arguments": { "ms": (i * 53 + n * 17) % 400, "step_ms": 100,
                        "text": format!("bridge{n}-call{i}") }, "_meta": { "progressToken": format!("tok-{i}") } })
            };
            b.send(json!({ "jsonrpc": "2.0", "id": i, "method": "tools/call", "params": params }));
        }
    }
    for (n, b) in bridges.iter().enumerate() {
        let mut seen: HashMap<i64, Value> = HashMap::new();
        let mut progress_tokens = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        while seen.len() < 20 {
            let left = deadline.saturating_duration_since(Instant::now());
            let v = b.next(left).unwrap_or_else(|| panic!("bridge {n}: only {} of 20 replies", seen.len()));
            if v["method"] == "notifications/progress" {
                progress_tokens.push(v["params"]["progressToken"].as_str().unwrap().to_string());
                continue;
            }
            let id = v["id"].as_i64().unwrap_or_else(|| panic!("bridge {n}: unexpected {v}"));
            assert!(seen.insert(id, v).is_none(), "bridge {n}: two replies for id {id}");
        }
        for (i, v) in &seen {
            if i % 3 == 0 {
                assert!(text(v).contains("exai"), "bridge {n} id {i}: {v}");
            } else {
                assert_eq!(text(v), format!("bridge{n}-call{i}"), "bridge {n} id {i}: reply went astray: {v}");
            }
        }
        assert!(progress_tokens.iter().all(|t| t.starts_with("tok-")), "editor tokens restored: {progress_tokens:?}");
        assert!(!progress_tokens.is_empty(), "bridge {n}: progress relayed");
    }
}

#[test]
fn client_stdio_bridge_relays_cancel_and_survives_daemon_restart() {
    let mut server = ServerProcess::start(ServerOptions::new().set("debug.fault_injection", "true"));
    let port = server.port();
    let mut b = Bridge::start(&["--url", &server.ws_url("/mcp"), "--reconnect-wait", "30"]);
    b.initialize();
    assert!(text(&b.request(json!("a"), "tools/call", json!({ "name": "version" }))).contains("exai"));

    // Cancel: no response for the cancelled id; the bridge keeps serving.
    b.send(json!({ "jsonrpc": "2.0", "id": "c", "method": "tools/call",
                   "params": { "name": "debug_sleep", "arguments": { "ms": 2000 } } }));
    thread::sleep(Duration::from_millis(300));
    b.send(json!({ "jsonrpc": "2.0", "method": "notifications/cancelled", "params": { "requestId": "c" } }));
    assert_eq!(b.request(json!("d"), "ping", json!({}))["result"], json!({}));
    let quiet = b.drain(Duration::from_millis(2500));
    assert!(quiet.iter().all(|v| v.get("id") != Some(&json!("c"))), "cancelled call answered: {quiet:?}");

    // A call in flight when the daemon dies gets a JSON-RPC error, not silence.
    b.send(json!({ "jsonrpc": "2.0", "id": "slow", "method": "tools/call",
                   "params": { "name": "debug_sleep", "arguments": { "ms": 5000 } } }));
    thread::sleep(Duration::from_millis(300));
    server.kill9();
    let lost = b.response(&json!("slow"), Duration::from_secs(10), &mut Vec::new());
    assert_eq!(lost["error"]["code"], -32000, "{lost}");

    // A call made during the outage waits for the daemon to come back.
    b.send(json!({ "jsonrpc": "2.0", "id": "during", "method": "tools/call", "params": { "name": "version" } }));
    thread::sleep(Duration::from_millis(500));
    let _restarted = ServerProcess::start(
        ServerOptions::new().port(port).set("debug.fault_injection", "true").data_dir(server.data_dir()),
    );
    let during = b.response(&json!("during"), Duration::from_secs(30), &mut Vec::new());
    assert!(text(&during).contains("exai"), "{during}");
    assert!(text(&b.request(json!("after"), "tools/call", json!({ "name": "version" }))).contains("exai"));
}

#[test]
fn client_stdio_embedded_without_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let variants: [&[&str]; 2] = [
        &["--embedded", "--data-dir", data],
        &["--url", "ws://127.0.0.1:9/mcp", "--embedded-fallback", "--connect-timeout", "1", "--data-dir", data],
    ];
    for args in variants {
        let mut b = Bridge::start(args);
        let init = b.initialize();
        assert!(init["result"]["capabilities"]["tools"].is_object(), "{args:?}: {init}\n{}", b.stderr_text());
        let tools = b.request(json!(1), "tools/list", json!({}));
        assert!(tools["result"]["tools"].as_array().is_some_and(|t| !t.is_empty()), "{tools}");
        let v = b.request(json!(2), "tools/call", json!({ "name": "version", "arguments": {} }));
        assert!(text(&v).contains("exai"), "{args:?}: {v}");
        // Closing stdin ends the bridge cleanly.
        drop(b.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut status = None;
        while status.is_none() && Instant::now() < deadline {
            status = b.child.try_wait().unwrap();
            thread::sleep(Duration::from_millis(50));
        }
        assert!(status.is_some_and(|s| s.success()), "{args:?}: exit {status:?}\n{}", b.stderr_text());
    }
}

#[test]
fn client_stdio_embedded_uses_the_platform_data_dir_not_the_working_directory() {
    let home = tempfile::tempdir().unwrap();
    let cwd = tempfile::tempdir().unwrap();
    let xdg = tempfile::tempdir().unwrap();
    for (xdg_data_home, expected) in
        [(None, home.path().join(".local/share/exai")), (Some(xdg.path()), xdg.path().join("exai"))]
    {
        let mut b = Bridge::start_with(&["--embedded"], |c| {
            c.current_dir(cwd.path()).env("HOME", home.path()).env_remove("XDG_DATA_HOME");
            if let Some(x) = xdg_data_home {
                c.env("XDG_DATA_HOME", x);
            }
        });
        let init = b.initialize();
        assert!(init["result"]["capabilities"]["tools"].is_object(), "{init}\n{}", b.stderr_text());
        let v = b.request(json!(1), "tools/call", json!({ "name": "version", "arguments": {} }));
        assert!(text(&v).contains("exai"), "{v}");
        assert!(expected.join("exai.db").exists(), "no database in {}:\n{}", expected.display(), b.stderr_text());
        assert!(!cwd.path().join("data").exists(), "the bridge wrote ./data into the editor's working directory");
    }
}

#[test]
fn client_stdio_fallback_starts_at_once_when_the_daemon_port_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("ws://127.0.0.1:{port}/mcp");
    let data = dir.path().to_str().unwrap();
    let started = Instant::now();
    let mut b = Bridge::start(&["--url", &url, "--embedded-fallback", "--connect-timeout", "20", "--data-dir", data]);
    let init = b.initialize();
    assert!(init["result"]["capabilities"]["tools"].is_object(), "{init}\n{}", b.stderr_text());
    // The refused connection is known at once; waiting the 20 s connect timeout would fail this.
    assert!(started.elapsed() < Duration::from_secs(10), "initialize took {:?}", started.elapsed());
    assert!(b.stderr_text().contains("no daemon listens"), "{}", b.stderr_text());
}

#[test]
fn client_stdio_bridge_with_python_sdk_stdio_client() {
    let python = tools::python();
    let server = ServerProcess::start(ServerOptions::new());
    let mut cmd = Command::new(python);
    cmd.arg(tools::client_script("stdio_bridge_probe.py"))
        .arg(env!("CARGO_BIN_EXE_exai"))
        .arg(server.ws_url("/mcp"))
        .env("PYTHONUNBUFFERED", "1");
    let out = run_with_timeout(&mut cmd, Duration::from_secs(90));
    assert!(out.success() && out.stdout.contains("BRIDGE OK"), "{}", out.describe());
}
