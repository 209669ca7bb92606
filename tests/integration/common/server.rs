//! [`ServerProcess`]: a real `exai serve` child process on a free loopback port, for the
//! integration tests. It waits for the `EXAI_LISTENING <addr>` line, keeps capturing stderr
//! (so tests can inspect logs), sends signals, and kills the process when dropped.
//!
//! Hermetic by design: the child gets a cleared environment (only a few harmless variables are
//! passed through, see [`PASSTHROUGH_ENV`]) plus [`ServerOptions::env`], and a fresh data dir.
//! Plain std threads, no async runtime, so both sync and `#[actix_rt::test]` tests can use it.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// How long `start` waits for the `EXAI_LISTENING` line.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// The line prefix `exai serve --port 0` prints on stdout once it accepts connections.
pub const LISTENING_PREFIX: &str = "EXAI_LISTENING ";
/// Environment variables passed through from the test process (everything else is cleared).
pub const PASSTHROUGH_ENV: &[&str] =
    &["PATH", "HOME", "TMPDIR", "LANG", "LC_ALL", "RUST_BACKTRACE", "RUST_LOG", "LLVM_PROFILE_FILE"];
/// Env var holding the server's auth token (see the CLI contract).
pub const AUTH_TOKEN_ENV: &str = "EXAI_SERVER__AUTH_TOKEN";

/// How to start the server. The harness always adds `serve --port <0 or port> --data-dir <dir>`, and
/// `--host 127.0.0.1` unless `args` already contains `--host`.
#[derive(Debug, Clone, Default)]
pub struct ServerOptions {
    /// Extra CLI arguments after `serve` (e.g. `--set`, `key=value`, `--log-level`, `debug`).
    pub args: Vec<String>,
    /// Environment for the child (on top of [`PASSTHROUGH_ENV`]).
    pub env: Vec<(String, String)>,
    /// Data dir to use; `None` = a fresh temp dir removed with the [`ServerProcess`].
    /// Pass the same dir to two starts to test persistence across restarts.
    pub data_dir: Option<PathBuf>,
    /// Port to listen on; `None` = any free port (`--port 0`). Pass a killed server's port to
    /// restart it where its clients expect it.
    pub port: Option<u16>,
}

impl ServerOptions {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Adds `--set key=value`.
    pub fn set(self, key: &str, value: &str) -> Self {
        self.arg("--set").arg(format!("{key}={value}"))
    }

    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Sets the auth token through `EXAI_SERVER__AUTH_TOKEN`.
    pub fn auth_token(self, token: &str) -> Self {
        self.env(AUTH_TOKEN_ENV, token)
    }

    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.data_dir = Some(dir.into());
        self
    }

    /// Listen on this port instead of a free one.
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }
}

/// Bytes of a pipe collected by a background thread; `done` once the pipe hit EOF.
#[derive(Clone, Default)]
struct Captured {
    bytes: Arc<Mutex<Vec<u8>>>,
    done: Arc<AtomicBool>,
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes.lock().unwrap()).into_owned()
    }

    /// Waits (bounded) until the writer closed the pipe, so the text is complete.
    fn settle(&self, max: Duration) {
        let deadline = Instant::now() + max;
        while !self.done.load(Ordering::SeqCst) && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(10));
        }
    }
}

fn capture_stderr(mut pipe: impl Read + Send + 'static, sink: Captured) {
    thread::spawn(move || {
        let mut buf = [0u8; 8192];
        loop {
            match pipe.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => sink.bytes.lock().unwrap().extend_from_slice(&buf[..n]),
            }
        }
        sink.done.store(true, Ordering::SeqCst);
    });
}

/// Reads stdout line by line into `sink`; the first `EXAI_LISTENING` line goes to `listening`.
/// The channel disconnects at EOF, which `start` treats as "stdout closed".
fn capture_stdout(pipe: impl Read + Send + 'static, sink: Captured, listening: mpsc::Sender<String>) {
    thread::spawn(move || {
        let mut reader = BufReader::new(pipe);
        let mut line = String::new();
        let mut sent = false;
        while matches!(reader.read_line(&mut line), Ok(n) if n > 0) {
            sink.bytes.lock().unwrap().extend_from_slice(line.as_bytes());
            if !sent {
                if let Some(rest) = line.trim_end().strip_prefix(LISTENING_PREFIX) {
                    let _ = listening.send(rest.trim().to_owned());
                    sent = true;
                }
            }
            line.clear();
        }
        sink.done.store(true, Ordering::SeqCst);
    });
}

/// A running `exai serve`. Killed (SIGKILL) on drop if still running; when dropped during a
/// panic it prints the tail of the server's stderr to help diagnose the failure.
pub struct ServerProcess {
    child: Child,
    addr: SocketAddr,
    stdout: Captured,
    stderr: Captured,
    exit: Option<ExitStatus>,
    data_dir: PathBuf,
    _temp_dir: Option<tempfile::TempDir>,
}

impl ServerProcess {
    /// Starts the server and waits up to [`STARTUP_TIMEOUT`] until it listens. Panics (with the
    /// captured stderr) if it exits early, prints a bad address, or never reports listening.
    pub fn start(options: ServerOptions) -> Self {
        let (temp_dir, data_dir) = match options.data_dir {
            Some(dir) => (None, dir),
            None => {
                let temp = tempfile::Builder::new().prefix("exai-test-").tempdir().unwrap();
                let path = temp.path().to_path_buf();
                (Some(temp), path)
            }
        };
        // EXAI_TEST_BIN runs the suite (or one measuring test) against another build of the
        // binary, e.g. the release build for the figures in docs/.
        let bin = std::env::var_os("EXAI_TEST_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_exai").into());
        let mut cmd = Command::new(&bin);
        let port = options.port.unwrap_or(0).to_string();
        cmd.arg("serve").arg("--port").arg(port).arg("--data-dir").arg(&data_dir);
        if !options.args.iter().any(|a| a == "--host" || a.starts_with("--host=")) {
            cmd.arg("--host").arg("127.0.0.1");
        }
        cmd.args(&options.args);
        cmd.env_clear();
        for key in PASSTHROUGH_ENV {
            if let Some(value) = std::env::var_os(key) {
                cmd.env(key, value);
            }
        }
        if std::env::var_os("RUST_BACKTRACE").is_none() {
            cmd.env("RUST_BACKTRACE", "1");
        }
        cmd.envs(options.env.iter().map(|(k, v)| (k, v)));
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        // Not `{cmd:?}`: that would print the environment, which may hold a token.
        let description = format!(
            "{} {}",
            bin.to_string_lossy(),
            cmd.get_args().map(|a| a.to_string_lossy()).collect::<Vec<_>>().join(" ")
        );
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start `{description}`: {e}"));

        let stdout = Captured::default();
        let stderr = Captured::default();
        let (tx, rx) = mpsc::channel();
        capture_stdout(child.stdout.take().unwrap(), stdout.clone(), tx);
        capture_stderr(child.stderr.take().unwrap(), stderr.clone());

        let deadline = Instant::now() + STARTUP_TIMEOUT;
        let addr = loop {
            let problem = match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(text) => match text.parse::<SocketAddr>() {
                    Ok(addr) => break addr,
                    Err(e) => format!("printed `{LISTENING_PREFIX}{text}`, not an address: {e}"),
                },
                Err(RecvTimeoutError::Timeout) => match child.try_wait().unwrap() {
                    Some(status) => format!("exited with {status} before listening"),
                    None if Instant::now() >= deadline => {
                        format!("printed no `{LISTENING_PREFIX}<addr>` line within {STARTUP_TIMEOUT:?}")
                    }
                    None => continue,
                },
                Err(RecvTimeoutError::Disconnected) => {
                    // stdout closed without the line: give the process a moment to exit.
                    let end = Instant::now() + Duration::from_secs(2);
                    let mut status = None;
                    while status.is_none() && Instant::now() < end {
                        status = child.try_wait().unwrap();
                        thread::sleep(Duration::from_millis(20));
                    }
                    match status {
                        Some(status) => format!("exited with {status} before listening"),
                        None => "closed stdout without printing the listening line".to_owned(),
                    }
                }
            };
            let _ = child.kill();
            let _ = child.wait();
            stderr.settle(Duration::from_secs(2));
            stdout.settle(Duration::from_secs(2));
            panic!(
                "exai server `{description}` {problem}\n--- server stdout ---\n{}\n--- server stderr ---\n{}",
                stdout.text(),
                stderr.text()
            );
        };

        ServerProcess { child, addr, stdout, stderr, exit: None, data_dir, _temp_dir: temp_dir }
    }

    /// Address the server listens on (127.0.0.1:<port>).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// `ws://127.0.0.1:<port><path>` (`path` may carry a query, e.g. `/mcp?token=...`).
    pub fn ws_url(&self, path: &str) -> String {
        format!("ws://{}{}", self.addr, with_slash(path))
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn http_url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, with_slash(path))
    }

    /// What the server wrote to stderr so far (its logs), as far as the reader thread has
    /// consumed it. To assert that something is ABSENT from the logs, use
    /// [`Self::stop_and_collect_stderr`], which waits for the complete output.
    pub fn stderr_text(&self) -> String {
        self.stderr.text()
    }

    /// Everything the server wrote to stdout so far (including the listening line).
    pub fn stdout_text(&self) -> String {
        self.stdout.text()
    }

    /// Waits until stderr contains `needle`; false after `timeout`.
    pub fn wait_for_stderr(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.stderr_text().contains(needle) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends a signal by name (`TERM`, `INT`, `HUP`, ...) with `kill(1)`.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .unwrap_or_else(|e| panic!("cannot run kill(1): {e}"));
        assert!(status.success(), "kill -{name} {} failed: {status}", self.pid());
    }

    /// SIGTERM: asks for a graceful shutdown (expected exit code 0).
    pub fn sigterm(&self) {
        self.signal("TERM");
    }

    /// SIGINT: same as Ctrl-C.
    pub fn sigint(&self) {
        self.signal("INT");
    }

    /// Waits up to `timeout` for the process to exit; `None` if it is still running.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_exit_status() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Exit status if the process has exited (non-blocking).
    pub fn try_exit_status(&mut self) -> Option<ExitStatus> {
        if self.exit.is_none() {
            self.exit = self.child.try_wait().unwrap();
            if self.exit.is_some() {
                self.stderr.settle(Duration::from_secs(2));
            }
        }
        self.exit
    }

    pub fn is_running(&mut self) -> bool {
        self.try_exit_status().is_none()
    }

    /// Stops the server (SIGTERM; SIGKILL if it is still running after `grace`) and returns its
    /// complete stderr, read up to end-of-file.
    pub fn stop_and_collect_stderr(&mut self, grace: Duration) -> String {
        if self.is_running() {
            self.sigterm();
            if self.wait_exit(grace).is_none() {
                self.kill9();
            }
        }
        self.stderr.settle(Duration::from_secs(5));
        self.stderr_text()
    }

    /// SIGKILL (no graceful shutdown, e.g. to test crash recovery) and reap.
    pub fn kill9(&mut self) -> ExitStatus {
        if let Some(status) = self.try_exit_status() {
            return status;
        }
        let _ = self.child.kill();
        let status = self.child.wait().unwrap();
        self.exit = Some(status);
        self.stderr.settle(Duration::from_secs(2));
        status
    }
}

fn with_slash(path: &str) -> String {
    if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("/{path}")
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if self.exit.is_none() {
            let _ = self.child.kill();
            self.exit = self.child.wait().ok();
        }
        if thread::panicking() {
            self.stderr.settle(Duration::from_secs(1));
            let text = self.stderr.text();
            let mut start = text.len().saturating_sub(16 * 1024);
            while !text.is_char_boundary(start) {
                start += 1;
            }
            eprintln!(
                "--- exai server (pid {}, {}) stderr, last {} bytes ---\n{}\n--- end of server stderr ---",
                self.child.id(),
                self.addr,
                text.len() - start,
                &text[start..]
            );
        }
    }
}
