//! `exai call TOOL --args JSON`: one tool call for scripts. The result JSON goes to stdout,
//! progress (with `--progress`) and errors to stderr. Exit codes: 0 success, 1 tool error
//! (`isError: true` / legacy `ok: false`), 2 usage or connection error (bad `--args`, server
//! unreachable, JSON-RPC error such as an unknown tool, timeout). A closed stdout or stderr
//! (`exai call listmodels | head -c 10`) ends the command quietly, never with a panic.

use super::{Client, ClientConfig, ClientError, Protocol};
use serde_json::Value;
use std::time::Duration;

/// `exai call` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct CallArgs {
    /// Tool name.
    pub tool: String,
    /// Tool arguments (a JSON object).
    #[arg(long, default_value = "{}", value_name = "JSON")]
    pub args: String,
    /// Server WebSocket URL; repeat it or separate URLs with commas to name several nodes
    /// (tried in order when a connection attempt fails).
    #[arg(long, default_value = "ws://127.0.0.1:8079/mcp", value_delimiter = ',', num_args = 1)]
    pub url: Vec<String>,
    /// Wire protocol.
    #[arg(long, value_enum, default_value = "mcp")]
    pub protocol: Protocol,
    /// Server token (or EXAI_TOKEN).
    #[arg(long, env = "EXAI_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Seconds to wait for the result.
    #[arg(long, default_value_t = 300.0, value_name = "SECS")]
    pub timeout: f64,
    /// Seconds to wait for a connection.
    #[arg(long, default_value_t = 5.0, value_name = "SECS")]
    pub connect_timeout: f64,
    /// Print progress notifications to stderr.
    #[arg(long)]
    pub progress: bool,
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(if s.is_finite() && s > 0.0 { s } else { 0.001 })
}

/// Run the command; returns the exit code.
pub fn run(a: &CallArgs) -> u8 {
    let arguments: Value = match serde_json::from_str(&a.args) {
        Ok(v @ Value::Object(_)) => v,
        Ok(_) => {
            crate::term::err_line("exai call: --args must be a JSON object");
            return 2;
        }
        Err(e) => {
            crate::term::err_line(&format!("exai call: --args is not valid JSON: {e}"));
            return 2;
        }
    };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let sys = actix_rt::System::new();
    sys.block_on(async move {
        let mut urls = super::split_urls(&a.url).into_iter();
        let mut cfg = ClientConfig::new(urls.next().unwrap_or_default(), a.protocol);
        cfg.fallback_urls = urls.collect();
        cfg.token = a.token.clone();
        cfg.client_name = "exai-call".into();
        cfg.connect_timeout = secs(a.connect_timeout);
        cfg.ready_wait = secs(a.connect_timeout);
        let client = Client::connect(cfg);
        if let Err(e) = client.wait_ready(secs(a.connect_timeout)).await {
            crate::term::err_line(&format!("exai call: {e}"));
            return 2;
        }
        let progress = if a.progress {
            let (tx, mut rx) = client.progress_channel();
            actix_rt::spawn(async move {
                while let Some(p) = rx.recv().await {
                    crate::term::err_line(&format!("progress: {p}"));
                }
            });
            Some(tx)
        } else {
            None
        };
        let res = client.call_tool(&a.tool, arguments, Some(secs(a.timeout)), progress).await;
        client.close();
        match res {
            Ok(r) => {
                // A reader that stopped early (`| head`) is not an error of the call.
                crate::term::out_line(&serde_json::to_string_pretty(&r.value).unwrap_or_default());
                u8::from(r.is_error)
            }
            Err(e) => {
                if let ClientError::Rpc { data: Some(d), .. } = &e {
                    crate::term::err_line(&format!("exai call: {e} ({d})"));
                } else {
                    crate::term::err_line(&format!("exai call: {e}"));
                }
                2
            }
        }
    })
}
