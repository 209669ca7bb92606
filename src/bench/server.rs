//! `--spawn-server`: runs `exai serve` (this same binary) on a free loopback port with a fresh
//! data dir and limits sized for load (connections, in-flight calls), optionally pointed at
//! the in-process mock. Its pid is what RSS is sampled from; stderr goes to `server.log` in the
//! data dir. Killed and cleaned up on drop.

use super::BenchError;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

/// A running server.
pub struct Spawned {
    child: Child,
    /// `host:port`.
    pub addr: String,
    dir: PathBuf,
}

impl Spawned {
    /// Process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// The `--set` overrides for a load run.
pub fn settings(max_connections: usize, mock_port: Option<u16>) -> Vec<String> {
    let conns = max_connections.max(1000);
    let mut s = vec![
        format!("server.max_connections={conns}"),
        format!("server.max_connections_per_ip={conns}"),
        "limits.session_max_inflight=1024".to_string(),
        "limits.global_max_inflight=65536".to_string(),
    ];
    if let Some(p) = mock_port {
        for v in ["glm", "kimi"] {
            s.push(format!("providers.{v}.base_url=http://127.0.0.1:{p}/v1"));
            s.push(format!("providers.{v}.max_inflight=64"));
        }
        s.push("limits.provider_global_max_inflight=128".to_string());
        s.push("conversations.max_turns=1000".to_string());
    }
    s
}

/// Starts the server and waits for its `EXAI_LISTENING` line.
pub fn start(max_connections: usize, mock_port: Option<u16>) -> Result<Spawned, BenchError> {
    let err = |e: std::io::Error| BenchError::Start(e.to_string());
    let exe = std::env::current_exe().map_err(err)?;
    let dir = std::env::temp_dir().join(format!("exai-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(err)?;
    let log = std::fs::File::create(dir.join("server.log")).map_err(err)?;
    let mut cmd = Command::new(exe);
    cmd.args(["serve", "--host", "127.0.0.1", "--port", "0", "--log-level", "warn", "--data-dir"]).arg(&dir);
    for s in settings(max_connections, mock_port) {
        cmd.arg("--set").arg(s);
    }
    if mock_port.is_some() {
        cmd.env("GLM_API_KEY", "bench-key-0123456789").env("KIMI_API_KEY", "bench-key-0123456789");
    }
    let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(log).spawn().map_err(err)?;
    let Some(stdout) = child.stdout.take() else {
        let _ = child.kill();
        return Err(BenchError::Start("no stdout".into()));
    };
    let mut lines = BufReader::new(stdout).lines();
    let addr = lines.next().and_then(Result::ok).and_then(|l| l.strip_prefix("EXAI_LISTENING ").map(str::to_string));
    let Some(addr) = addr else {
        let _ = child.kill();
        let _ = child.wait();
        let log = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
        return Err(BenchError::Start(format!("server did not start; its log:\n{log}")));
    };
    // Keep draining stdout so the server never blocks on it.
    std::thread::spawn(move || lines.for_each(drop));
    Ok(Spawned { child, addr, dir })
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
