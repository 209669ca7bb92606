//! Runs an external program (a test client) with a hard time limit, capturing its output, so
//! that a hung client fails the test instead of hanging it.

use std::io::Read;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// What a finished (or killed) command produced.
#[derive(Debug)]
pub struct CmdOutput {
    /// Program and arguments, for messages.
    pub command: String,
    /// Exit status; `None` when the command hit its time limit and was killed.
    pub status: Option<ExitStatus>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl CmdOutput {
    /// Exited by itself with status 0.
    pub fn success(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }

    /// Exit code, if it exited normally.
    pub fn code(&self) -> Option<i32> {
        self.status.and_then(|s| s.code())
    }

    /// Multi-line report (command, status, stdout, stderr) for assertion messages.
    pub fn describe(&self) -> String {
        let status = match self.status {
            Some(s) => s.to_string(),
            None => format!("KILLED after the time limit ({:.1?})", self.elapsed),
        };
        format!(
            "$ {}\n{} in {:.1?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.command,
            status,
            self.elapsed,
            strip_ansi(&self.stdout),
            strip_ansi(&self.stderr)
        )
    }
}

fn spawn_reader(mut pipe: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        let _ = tx.send(String::from_utf8_lossy(&buf).into_owned());
    });
    rx
}

fn collect(rx: &mpsc::Receiver<String>) -> String {
    // The pipe closes when the process exits; a grandchild could keep it open, so bound the wait.
    rx.recv_timeout(Duration::from_secs(5))
        .unwrap_or_else(|_| "<output not collected: pipe still open 5s after exit>".to_owned())
}

fn wait_with_deadline(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// Runs `cmd` (stdin closed, stdout/stderr captured) for at most `timeout`; kills it after that.
/// Panics only if the program cannot be started at all.
pub fn run_with_timeout(cmd: &mut Command, timeout: Duration) -> CmdOutput {
    let command = format!("{cmd:?}");
    let started = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {command}: {e}"));
    let out_rx = spawn_reader(child.stdout.take().unwrap());
    let err_rx = spawn_reader(child.stderr.take().unwrap());
    let status = wait_with_deadline(&mut child, timeout);
    CmdOutput { command, status, stdout: collect(&out_rx), stderr: collect(&err_rx), elapsed: started.elapsed() }
}

/// Removes ANSI colour/style escapes (`ESC [ ... letter`) from tool output.
pub fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            chars.next();
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
