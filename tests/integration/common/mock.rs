//! [`MockProvider`]: an independent OpenAI-compatible mock server as a child process on a free
//! 127.0.0.1 port, for the provider transport tests. Two mocks, installed by `scripts/test.sh`:
//!
//! - `llmock` (PyPI 0.2.2): scripted faults through `POST /_llmock/scenario` (HTTP errors
//!   with `Retry-After`, delays, stream disconnect / truncate / stall / malformed, scripted
//!   replies and tool calls) and a journal of request bodies at `GET /_llmock/requests`;
//! - `@copilotkit/aimock` (npm 1.43.0): JSON fixtures (reasoning, tool calls), the full Files
//!   API stored byte-exact, and a journal with request headers at `GET /__aimock/journal`.
//!
//! `start_*` waits until the mock answers its health URL; dropping the value kills it. Its
//! output goes to files in a temp dir, shown when start-up fails.

use serde_json::Value;
use std::fs::File;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use super::tools;

/// How long a mock may take to answer its health URL.
pub const MOCK_STARTUP_TIMEOUT: Duration = Duration::from_secs(40);

/// Which mock is running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MockKind {
    Llmock,
    Aimock,
}

/// A running mock provider; killed on drop.
pub struct MockProvider {
    child: Child,
    port: u16,
    kind: MockKind,
    dir: tempfile::TempDir,
    /// Key for the control API when the mock checks keys.
    control_key: Option<String>,
}

/// Installs the rustls crypto provider awc needs (as `app.rs` does at start-up).
pub fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl MockProvider {
    /// `llmock serve --host 127.0.0.1 --port <free> --log-level warning <args>`.
    pub fn start_llmock(args: &[&str]) -> MockProvider {
        Self::start(MockKind::Llmock, args, None, &[])
    }

    /// `llmock` on a given port (e.g. where a killed mock listened, to test recovery).
    pub fn start_llmock_on(port: u16, args: &[&str]) -> MockProvider {
        Self::start_on(MockKind::Llmock, Some(port), args, None, &[])
    }

    /// `node aimock/dist/cli.js --host 127.0.0.1 --port <free> -f <fixtures.json> <args>`;
    /// `fixtures` is the fixture file's JSON (`{"fixtures": [...]}`).
    pub fn start_aimock(fixtures: &Value, args: &[&str]) -> MockProvider {
        Self::start(MockKind::Aimock, args, Some(fixtures), &[])
    }

    /// aimock that accepts only these API keys (`AIMOCK_API_KEYS`): other requests get 401.
    pub fn start_aimock_with_keys(fixtures: &Value, keys: &[&str]) -> MockProvider {
        Self::start(MockKind::Aimock, &[], Some(fixtures), &[("AIMOCK_API_KEYS", keys.join(","))])
    }

    fn start(kind: MockKind, args: &[&str], fixtures: Option<&Value>, env: &[(&str, String)]) -> MockProvider {
        Self::start_on(kind, None, args, fixtures, env)
    }

    fn start_on(
        kind: MockKind,
        fixed_port: Option<u16>,
        args: &[&str],
        fixtures: Option<&Value>,
        env: &[(&str, String)],
    ) -> MockProvider {
        let mut dir = tempfile::tempdir().unwrap();
        let mut last_failure = String::new();
        // The free port could be taken between probing and binding: retry a few times.
        for _ in 0..3 {
            let port = fixed_port.unwrap_or_else(free_port);
            let mut cmd = match kind {
                MockKind::Llmock => {
                    let mut c = Command::new(tools::llmock_bin());
                    c.args(["serve", "--host", "127.0.0.1", "--port", &port.to_string(), "--log-level", "warning"]);
                    c
                }
                MockKind::Aimock => {
                    let fixture_file = dir.path().join("fixtures.json");
                    let json = fixtures.cloned().unwrap_or_else(|| serde_json::json!({"fixtures": []}));
                    std::fs::write(&fixture_file, serde_json::to_vec_pretty(&json).unwrap()).unwrap();
                    let mut c = Command::new(tools::node_bin_dir().join("node"));
                    c.arg(tools::aimock_cli())
                        .args(["--host", "127.0.0.1", "--port", &port.to_string(), "--log-level", "warn", "-f"])
                        .arg(&fixture_file);
                    c
                }
            };
            let out = File::create(dir.path().join("mock.log")).unwrap();
            let err = out.try_clone().unwrap();
            cmd.args(args).stdin(Stdio::null()).stdout(out).stderr(err);
            for (k, v) in env {
                cmd.env(k, v);
            }
            let child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {kind:?}: {e}"));
            let control_key = env.iter().find(|(k, _)| *k == "AIMOCK_API_KEYS").and_then(|(_, v)| v.split(',').next());
            let control_key = control_key.map(str::to_string);
            let mut mock = MockProvider { child, port, kind, dir, control_key };
            match mock.wait_ready() {
                Ok(()) => return mock,
                Err(why) => {
                    last_failure = format!("{why}\n--- mock output ---\n{}", mock.log());
                    let _ = mock.child.kill();
                    let _ = mock.child.wait();
                    dir = std::mem::replace(&mut mock.dir, tempfile::tempdir().unwrap());
                }
            }
        }
        panic!("{kind:?} did not start: {last_failure}");
    }

    fn health_path(&self) -> &'static str {
        match self.kind {
            MockKind::Llmock => "/health",
            MockKind::Aimock => "/health", // the one path aimock serves without a key
        }
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let started = Instant::now();
        while started.elapsed() < MOCK_STARTUP_TIMEOUT {
            if let Some(status) = self.child.try_wait().map_err(|e| e.to_string())? {
                return Err(format!("exited during start-up with {status}"));
            }
            if let Ok((200, _)) = blocking_get(self.port, self.health_path()) {
                return Ok(());
            }
            thread::sleep(Duration::from_millis(100));
        }
        Err(format!("no healthy answer within {MOCK_STARTUP_TIMEOUT:?}"))
    }

    /// What the mock printed so far.
    pub fn log(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = File::open(self.dir.path().join("mock.log")) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:<port>`.
    pub fn origin(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The provider base URL to configure: `http://127.0.0.1:<port>/v1`.
    pub fn base_url(&self) -> String {
        format!("{}/v1", self.origin())
    }

    /// A scratch directory that lives as long as the mock.
    pub fn scratch(&self) -> &Path {
        self.dir.path()
    }

    fn control(&self, req: awc::ClientRequest) -> awc::ClientRequest {
        let req = req.timeout(Duration::from_secs(10));
        match &self.control_key {
            Some(key) => req.insert_header(("authorization", format!("Bearer {key}"))),
            None => req,
        }
    }

    /// POSTs JSON to a control path (e.g. `/_llmock/scenario`) and returns the JSON answer.
    pub async fn post_json(&self, path: &str, body: &Value) -> Value {
        install_crypto();
        let mut res = self
            .control(awc::Client::default().post(format!("{}{path}", self.origin())))
            .send_json(body)
            .await
            .unwrap_or_else(|e| panic!("POST {path}: {e}"));
        assert!(res.status().is_success(), "POST {path} -> {}: {:?}", res.status(), res.body().await);
        res.json().limit(64 << 20).await.unwrap()
    }

    /// GETs a control path and returns the JSON answer.
    pub async fn get_json(&self, path: &str) -> Value {
        install_crypto();
        let mut res = self
            .control(awc::Client::default().get(format!("{}{path}", self.origin())))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        assert!(res.status().is_success(), "GET {path} -> {}", res.status());
        res.json().limit(64 << 20).await.unwrap()
    }

    /// llmock: queues scripted behaviours (`{"type": "fail", "status": 429, ...}`).
    pub async fn scenario(&self, behaviors: Value) {
        assert_eq!(self.kind, MockKind::Llmock);
        self.post_json("/_llmock/scenario", &serde_json::json!({ "behaviors": behaviors })).await;
    }

    /// The journal: llmock's `requests` records (with `body`), or aimock's entries (with
    /// `headers` and `body`), oldest first.
    pub async fn journal(&self) -> Vec<Value> {
        match self.kind {
            MockKind::Llmock => {
                let v = self.get_json("/_llmock/requests").await;
                v["requests"].as_array().cloned().unwrap_or_default()
            }
            MockKind::Aimock => self.get_json("/__aimock/journal").await.as_array().cloned().unwrap_or_default(),
        }
    }
}

impl MockProvider {
    /// SIGKILL the mock (its open connections drop at once) and reap it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for MockProvider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal blocking `GET` (HTTP/1.0, so no chunked answer) for readiness probes.
pub fn blocking_get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
    let mut raw = String::new();
    s.read_to_string(&mut raw)?;
    let status = raw.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = raw.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    Ok((status, body))
}
