//! `exai stdio`: an MCP server on stdin/stdout for editors (Claude Desktop, VS Code, Cursor)
//! that forwards everything to an exai daemon over MCP-WebSocket through [`Client`].
//!
//! stdin carries newline-delimited JSON-RPC; stdout gets exactly one JSON-RPC message per line
//! and nothing else (logs go to stderr). The editor's `initialize` params are used for the
//! upstream handshake (re-sent on every reconnect) and the daemon's `initialize` result is
//! returned, so the editor sees the daemon's real capabilities. Editor request ids are mapped
//! to upstream ids and back, so any number of concurrent calls work; `notifications/cancelled`
//! and progress are relayed (progress tokens restored). When the daemon restarts, the client
//! reconnects with backoff: calls in flight get a JSON-RPC error (unless `--session-id` named
//! the session and the daemon still has it: then their replies arrive after the reconnect), new
//! calls wait for the reconnection up to `--reconnect-wait`. `--embedded` (or `--embedded-fallback` when no daemon
//! answers: at once when its port refuses the connection, else after `--connect-timeout`)
//! starts an in-process server on 127.0.0.1:0 and bridges to it; without a configured data
//! directory it keeps its data in [`platform_data_dir`], not in the working directory.

use super::{Client, ClientConfig, ClientError, Protocol, RequestId};
use crate::cli::CommonArgs;
use exai_actors::protocol::jsonrpc::{self, Incoming};
use serde_json::{json, Value};
use std::cell::RefCell;
use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::rc::Rc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Implementation-defined JSON-RPC code for "the daemon is unreachable / the call was lost".
pub const UPSTREAM_ERROR: i64 = -32000;

/// `exai stdio` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct StdioArgs {
    /// Daemon WebSocket URL; repeat it or separate URLs with commas to name several cluster
    /// nodes (the next is tried at once when a connection attempt fails).
    #[arg(long, default_value = "ws://127.0.0.1:8079/mcp", value_delimiter = ',', num_args = 1)]
    pub url: Vec<String>,
    /// Daemon token (or EXAI_TOKEN).
    #[arg(long, env = "EXAI_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Start an in-process server (127.0.0.1, any free port) and bridge to it.
    #[arg(long)]
    pub embedded: bool,
    /// Start the in-process server only when no daemon answers within --connect-timeout.
    #[arg(long)]
    pub embedded_fallback: bool,
    /// Seconds to wait for the daemon at `initialize`.
    #[arg(long, default_value_t = 5.0, value_name = "SECS")]
    pub connect_timeout: f64,
    /// Seconds a new call waits for a lost daemon connection to come back.
    #[arg(long, default_value_t = 30.0, value_name = "SECS")]
    pub reconnect_wait: f64,
    /// Name the daemon session (3–64 of `[A-Za-z0-9_-]`) so that it outlives a dropped
    /// connection: calls in flight keep running on the daemon and their replies arrive after the
    /// bridge reconnects. Without it (or when the daemon restarted) they get `-32000`.
    #[arg(long, value_name = "ID")]
    pub session_id: Option<String>,
    /// Most tool calls in flight upstream at once (keep ≤ the daemon's limits.session_max_inflight).
    #[arg(long, default_value_t = 8)]
    pub max_in_flight: usize,
    /// Config, data dir, logging and `--set` overrides (used by the embedded server and logging).
    #[command(flatten)]
    pub server: CommonArgs,
}

/// Errors that end the bridge.
#[derive(Debug, thiserror::Error)]
pub enum StdioError {
    /// Logging could not be set up.
    #[error(transparent)]
    Telemetry(#[from] crate::telemetry::TelemetryError),
    /// The embedded server's config did not load.
    #[error("embedded server config: {0}")]
    Config(String),
    /// The embedded server did not start.
    #[error("embedded server: {0}")]
    Embedded(#[from] crate::app::AppError),
}

/// The embedded server's default data directory: `$XDG_DATA_HOME/exai`, else
/// `$HOME/.local/share/exai` (the XDG base directory rule; relative values are ignored, as
/// the specification says); `None` when neither variable gives an absolute path.
pub fn platform_data_dir(var: impl Fn(&str) -> Option<std::ffi::OsString>) -> Option<std::path::PathBuf> {
    let absolute = |k: &str| var(k).map(std::path::PathBuf::from).filter(|p| p.is_absolute());
    absolute("XDG_DATA_HOME")
        .map(|d| d.join("exai"))
        .or_else(|| absolute("HOME").map(|h| h.join(".local").join("share").join("exai")))
}

/// Open (and drop) a TCP connection to the daemon's address within `wait`: an error when it
/// is refused, unreachable or does not answer in time. A URL it cannot read is not an error
/// here (the client reports it).
async fn probe(url: &str, wait: Duration) -> std::io::Result<()> {
    let Some((host, port)) = ws_host_port(url) else {
        return Ok(());
    };
    match tokio::time::timeout(wait, tokio::net::TcpStream::connect((host.as_str(), port))).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(std::io::Error::new(e.kind(), format!("{host}:{port}: {e}"))),
        Err(_) => {
            Err(std::io::Error::new(std::io::ErrorKind::TimedOut, format!("{host}:{port}: no answer in {wait:?}")))
        }
    }
}

/// Host and port of a `ws://` / `wss://` URL.
fn ws_host_port(url: &str) -> Option<(String, u16)> {
    let (rest, default_port) = match url.split_once("://") {
        Some(("ws" | "http", r)) => (r, 80),
        Some(("wss" | "https", r)) => (r, 443),
        _ => return None,
    };
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    if let Some(v6) = authority.strip_prefix('[') {
        let (h, tail) = v6.split_once(']')?;
        let port = match tail.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None => default_port,
        };
        return Some((h.to_owned(), port));
    }
    match authority.rsplit_once(':') {
        Some((h, p)) => Some((h.to_owned(), p.parse().ok()?)),
        None if !authority.is_empty() => Some((authority.to_owned(), default_port)),
        None => None,
    }
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(if s.is_finite() && s > 0.0 { s } else { 0.001 })
}

/// Run the bridge until stdin closes; returns the exit code.
pub fn run(args: StdioArgs) -> Result<u8, StdioError> {
    let level = args.server.log_level.clone().unwrap_or_else(|| "warn".into());
    let format = args.server.log_format.clone().unwrap_or_else(|| "human".into());
    let ring = crate::telemetry::init(&level, &format, 2000, None)?;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let sys = actix_rt::System::new();
    let code = sys.block_on(async move {
        let (out_tx, out_rx) = mpsc::channel::<String>(OUT_CAPACITY);
        std::thread::spawn(move || write_stdout(out_rx));
        let (in_tx, in_rx) = mpsc::channel::<String>(256);
        std::thread::spawn(move || read_stdin(in_tx));
        let out = out_tx.clone();
        let bridge = Bridge { args, ring, out: out_tx, client: RefCell::new(None), calls: RefCell::default() };
        let result = Rc::new(bridge).serve(in_rx).await;
        // Let the writer thread drain what is queued (bounded), then end the process.
        let until = std::time::Instant::now() + Duration::from_secs(2);
        while out.capacity() < OUT_CAPACITY && std::time::Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        result
    });
    code
}

const OUT_CAPACITY: usize = 1024;

fn read_stdin(tx: mpsc::Sender<String>) {
    let stdin = std::io::stdin();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { break };
        if line.trim().is_empty() {
            continue;
        }
        if tx.blocking_send(line).is_err() {
            break;
        }
    }
}

fn write_stdout(mut rx: mpsc::Receiver<String>) {
    let stdout = std::io::stdout();
    while let Some(line) = rx.blocking_recv() {
        let mut out = stdout.lock();
        if writeln!(out, "{line}").and_then(|_| out.flush()).is_err() {
            break;
        }
    }
}

fn key(id: &RequestId) -> String {
    match id {
        RequestId::Num(n) => format!("n:{n}"),
        RequestId::Str(s) => format!("s:{s}"),
    }
}

struct Bridge {
    args: StdioArgs,
    ring: std::sync::Arc<crate::telemetry::ActivityRing>,
    out: mpsc::Sender<String>,
    client: RefCell<Option<Client>>,
    /// Editor request id key → upstream id.
    calls: RefCell<HashMap<String, RequestId>>,
}

impl Bridge {
    async fn serve(self: Rc<Self>, mut input: mpsc::Receiver<String>) -> Result<u8, StdioError> {
        let mut url = super::split_urls(&self.args.url).first().cloned().unwrap_or_default();
        let mut token = self.args.token.clone();
        if self.args.embedded {
            (url, token) = self.start_embedded().await?;
        }
        let mut embedded = self.args.embedded;
        while let Some(line) = input.recv().await {
            let msg = match jsonrpc::parse(&line) {
                Ok(m) => m,
                Err(e) => {
                    self.emit(e.to_frame()).await;
                    continue;
                }
            };
            match msg {
                Incoming::Request { id, method, params } if method == "initialize" => {
                    let reply = self.initialize(&mut url, &mut token, &mut embedded, params).await?;
                    let frame = match reply {
                        Ok(result) => jsonrpc::result_frame(&id, result),
                        Err(e) => error_frame(&id, &e),
                    };
                    self.emit(frame).await;
                }
                Incoming::Request { id, method, params } => {
                    let client = self.client_for(&url, &token, None);
                    Rc::clone(&self).forward(client, id, method, params).await;
                }
                Incoming::Notification { method, params } => self.notification(&method, params).await,
                Incoming::Response { .. } => {}
            }
        }
        tracing::info!("stdin closed; exiting");
        if let Some(c) = self.client.borrow_mut().take() {
            c.close();
        }
        Ok(0)
    }

    async fn emit(&self, frame: String) {
        let _ = self.out.send(frame).await;
    }

    async fn start_embedded(&self) -> Result<(String, Option<String>), StdioError> {
        let mut opts = self.args.server.clone();
        opts.host = Some("127.0.0.1".into());
        opts.port = Some(0);
        let mut cfg = opts.load().map_err(|e| StdioError::Config(e.to_string()))?;
        // An editor starts the bridge in whatever directory it likes: unless a data directory
        // was chosen (flag, file, environment), use the platform's, not `./data`.
        if !cfg.sources.contains_key("storage.data_dir") {
            if let Some(dir) = platform_data_dir(|k| std::env::var_os(k)) {
                std::fs::create_dir_all(&dir)
                    .map_err(|e| StdioError::Config(format!("cannot create data directory {}: {e}", dir.display())))?;
                tracing::info!(data_dir = %dir.display(), "embedded server data directory");
                cfg.storage.data_dir = dir.display().to_string();
            }
        }
        let token = cfg.server.auth_token.as_ref().map(|t| t.expose().to_string());
        let addr = crate::app::start_embedded(cfg, std::sync::Arc::clone(&self.ring)).await?;
        tracing::info!(%addr, "embedded exai server started");
        Ok((format!("ws://{addr}/mcp"), token))
    }

    /// The client, created on first use with the editor's `initialize` params.
    fn client_for(&self, url: &str, token: &Option<String>, init: Option<Value>) -> Client {
        if let Some(c) = self.client.borrow().as_ref() {
            return c.clone();
        }
        let mut cfg = ClientConfig::new(url, Protocol::Mcp);
        let configured = super::split_urls(&self.args.url);
        if configured.first().map(String::as_str) == Some(url) {
            cfg.fallback_urls = configured[1..].to_vec();
        }
        cfg.token = token.clone();
        cfg.client_name = "exai-stdio".into();
        cfg.initialize_params = init;
        cfg.connect_timeout = secs(self.args.connect_timeout);
        cfg.ready_wait = secs(self.args.reconnect_wait);
        cfg.max_in_flight = self.args.max_in_flight.max(1);
        cfg.session_id = self.args.session_id.clone();
        let client = Client::connect(cfg);
        if let Some(mut notes) = client.take_notifications() {
            let out = self.out.clone();
            actix_rt::spawn(async move {
                while let Some(n) = notes.recv().await {
                    if out.send(n.to_string()).await.is_err() {
                        break;
                    }
                }
            });
        }
        *self.client.borrow_mut() = Some(client.clone());
        client
    }

    async fn initialize(
        &self,
        url: &mut String,
        token: &mut Option<String>,
        embedded: &mut bool,
        params: Option<Value>,
    ) -> Result<Result<Value, ClientError>, StdioError> {
        let wait = secs(self.args.connect_timeout);
        let fallback = self.args.embedded_fallback && !*embedded;
        // A refused connection is known at once: do not wait the whole connect timeout for a
        // daemon that is not there.
        if fallback {
            if let Err(e) = probe(url, wait).await {
                tracing::warn!(error = %e, "no daemon listens; starting an embedded server");
                return self.fall_back(url, token, embedded, params, wait).await;
            }
        }
        let client = self.client_for(url, token, params.clone());
        match client.wait_ready(wait).await {
            Ok(hello) => Ok(Ok(hello)),
            Err(e) if fallback => {
                tracing::warn!(error = %e, "no daemon answered; starting an embedded server");
                self.fall_back(url, token, embedded, params, wait).await
            }
            Err(e) => Ok(Err(e)),
        }
    }

    async fn fall_back(
        &self,
        url: &mut String,
        token: &mut Option<String>,
        embedded: &mut bool,
        params: Option<Value>,
        wait: Duration,
    ) -> Result<Result<Value, ClientError>, StdioError> {
        (*url, *token) = self.start_embedded().await?;
        *embedded = true;
        if let Some(old) = self.client.borrow_mut().take() {
            old.close();
        }
        let client = self.client_for(url, token, params);
        Ok(client.wait_ready(wait).await)
    }

    async fn forward(self: Rc<Self>, client: Client, id: RequestId, method: String, params: Option<Value>) {
        let wants_progress =
            params.as_ref().and_then(|p| p.get("_meta")).and_then(|m| m.get("progressToken")).is_some();
        let progress = if wants_progress {
            let (tx, mut rx) = client.progress_channel();
            let out = self.out.clone();
            actix_rt::spawn(async move {
                while let Some(p) = rx.recv().await {
                    let _ = out.send(jsonrpc::notification_frame("notifications/progress", p)).await;
                }
            });
            Some(tx)
        } else {
            None
        };
        let call = match client.start(&method, params, progress).await {
            Ok(c) => c,
            Err(e) => return self.emit(error_frame(&id, &e)).await,
        };
        let k = key(&id);
        self.calls.borrow_mut().insert(k.clone(), call.id.clone());
        let me = Rc::clone(&self);
        actix_rt::spawn(async move {
            let res = call.outcome().await;
            me.calls.borrow_mut().remove(&k);
            let frame = match res {
                Ok(v) => jsonrpc::result_frame(&id, v),
                // The editor cancelled it: no response, as the spec asks.
                Err(ClientError::Cancelled) => return,
                Err(e) => error_frame(&id, &e),
            };
            me.emit(frame).await;
        });
    }

    async fn notification(&self, method: &str, params: Option<Value>) {
        match method {
            // The upstream handshake already sent its own.
            "notifications/initialized" => {}
            "notifications/cancelled" => {
                let editor = params.as_ref().and_then(|p| p.get("requestId")).and_then(RequestId::from_value);
                let upstream = editor.and_then(|id| self.calls.borrow_mut().remove(&key(&id)));
                let client = self.client.borrow().clone();
                if let (Some(up), Some(c)) = (upstream, client) {
                    let reason = params.as_ref().and_then(|p| p.get("reason")).and_then(Value::as_str);
                    c.cancel(&up, reason.unwrap_or("cancelled by the editor")).await;
                }
            }
            other => {
                let client = self.client.borrow().clone();
                if let Some(c) = client {
                    if let Err(e) = c.notify(other, params).await {
                        tracing::debug!(error = %e, method = other, "notification not forwarded");
                    }
                }
            }
        }
    }
}

fn error_frame(id: &RequestId, e: &ClientError) -> String {
    match e {
        ClientError::Rpc { code, message, data } => jsonrpc::error_frame(Some(id), *code, message, data.clone()),
        other => jsonrpc::error_frame(
            Some(id),
            UPSTREAM_ERROR,
            &format!("exai daemon: {other}"),
            Some(json!({ "retryable": other.is_connection() })),
        ),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::ffi::OsString;
    use std::path::PathBuf;

    #[test]
    fn the_platform_data_dir_follows_xdg_then_home() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| OsString::from(v))
        };
        assert_eq!(platform_data_dir(env(&[("XDG_DATA_HOME", "/x"), ("HOME", "/h")])), Some(PathBuf::from("/x/exai")));
        assert_eq!(platform_data_dir(env(&[("HOME", "/h")])), Some(PathBuf::from("/h/.local/share/exai")));
        // A relative XDG_DATA_HOME is ignored, as the specification says.
        assert_eq!(
            platform_data_dir(env(&[("XDG_DATA_HOME", "rel"), ("HOME", "/h")])),
            Some(PathBuf::from("/h/.local/share/exai"))
        );
        assert_eq!(platform_data_dir(env(&[])), None);
    }

    #[test]
    fn daemon_addresses_come_from_the_url() {
        assert_eq!(ws_host_port("ws://127.0.0.1:8079/mcp"), Some(("127.0.0.1".into(), 8079)));
        assert_eq!(ws_host_port("wss://example.com/mcp?token=x"), Some(("example.com".into(), 443)));
        assert_eq!(ws_host_port("ws://[::1]:9/"), Some(("::1".into(), 9)));
        assert_eq!(ws_host_port("ws://localhost"), Some(("localhost".into(), 80)));
        assert_eq!(ws_host_port("not a url"), None);
        assert_eq!(ws_host_port("ws://h:port/"), None);
    }
}
