//! `exai cleanup [--dry-run] [--token T]`: asks the running server (`POST /admin/cleanup`)
//! to run one staged cleanup, draws a progress bar on stderr from
//! `GET /admin/cleanup` while it runs, and prints the report as JSON on stdout. Exit code
//! 0 when the run completed (or was a dry run or had nothing to do), 1 when it was aborted
//! or had failures, 2 when it could not run.
//!
//! The admin token: `--token`, else `server.admin_token` of the configuration this command
//! loads (the server's own file and `EXAI_SERVER__ADMIN_TOKEN`), else `EXAI_TOKEN` (the
//! variable `exai call`, `exai stdio` and `exai bench` read).

use crate::cli::CommonArgs;
use crate::config::Config;
use clap::Args;
use serde_json::Value;
use std::io::Write;
use std::time::Duration;

/// Flags of `exai cleanup`.
#[derive(Debug, Args, Clone, Default)]
pub struct CleanupArgs {
    /// Report what would be deleted; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Server base URL (default: http://<server.host>:<server.port>).
    #[arg(long, value_name = "URL")]
    pub server: Option<String>,
    /// The server's admin token (default: server.admin_token from the configuration, else
    /// the EXAI_TOKEN environment variable).
    #[arg(long, value_name = "TOKEN")]
    pub token: Option<String>,
    /// Config flags.
    #[command(flatten)]
    pub common: CommonArgs,
}

/// Why `exai cleanup` failed.
#[derive(Debug, thiserror::Error)]
pub enum CleanupCliError {
    /// No admin token given or configured.
    #[error(
        "no admin token: pass --token, set server.admin_token (EXAI_SERVER__ADMIN_TOKEN), or set EXAI_TOKEN; \
         the cleanup endpoint needs the server's admin token"
    )]
    NoToken,
    /// The server has no cleanup endpoint (it runs without an admin token).
    #[error("{0}/admin/cleanup does not exist: the server runs without server.admin_token, which the endpoint needs")]
    NoEndpoint(String),
    /// HTTP failure.
    #[error("cleanup request failed: {0}")]
    Http(String),
    /// The server refused.
    #[error("server answered {status}: {body}")]
    Refused {
        /// Status.
        status: u16,
        /// Body.
        body: String,
    },
}

fn base_url(cfg: &Config, explicit: Option<&str>) -> String {
    if let Some(u) = explicit {
        return u.trim_end_matches('/').to_string();
    }
    let host = match cfg.server.host.as_str() {
        "0.0.0.0" | "" => "127.0.0.1".to_string(),
        "::" => "[::1]".to_string(),
        h if h.contains(':') => format!("[{h}]"),
        h => h.to_string(),
    };
    format!("http://{host}:{}", cfg.server.port)
}

fn draw(p: &Value) {
    let (done, total) = (p["done"].as_u64().unwrap_or(0), p["total"].as_u64().unwrap_or(0));
    let width = 30usize;
    let filled = if total == 0 { 0 } else { (done.min(total) as usize * width) / total as usize };
    let mut err = std::io::stderr().lock();
    let _ = write!(
        err,
        "\r[{}{}] {:<16} {done}/{total}   ",
        "#".repeat(filled),
        " ".repeat(width - filled),
        p["stage"].as_str().unwrap_or("")
    );
    let _ = err.flush();
}

/// Run it; returns the exit code.
pub fn run(args: &CleanupArgs, cfg: &Config) -> Result<i32, CleanupCliError> {
    let token = args
        .token
        .clone()
        .or_else(|| cfg.server.admin_token.as_ref().map(|t| t.expose().to_string()))
        .or_else(|| std::env::var("EXAI_TOKEN").ok())
        .filter(|t| !t.is_empty())
        .ok_or(CleanupCliError::NoToken)?;
    let base = base_url(cfg, args.server.as_deref());
    let _ = rustls::crypto::ring::default_provider().install_default();
    let sys = actix_rt::System::new();
    sys.block_on(async move {
        let client = awc::Client::builder().timeout(Duration::from_secs(24 * 3600)).finish();
        let url = format!("{base}/admin/cleanup?dry_run={}&trigger=cli", args.dry_run);
        let post = client.post(url).bearer_auth(&token).send();
        tokio::pin!(post);
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        let mut res = loop {
            tokio::select! {
                r = &mut post => break r.map_err(|e| CleanupCliError::Http(e.to_string()))?,
                _ = tick.tick() => {
                    if let Ok(mut r) = client.get(format!("{base}/admin/cleanup")).bearer_auth(&token).send().await {
                        if let Ok(p) = r.json::<Value>().await {
                            draw(&p);
                        }
                    }
                }
            }
        };
        eprintln!();
        let status = res.status().as_u16();
        let body = res.body().limit(64 << 20).await.map_err(|e| CleanupCliError::Http(e.to_string()))?;
        let text = String::from_utf8_lossy(&body).into_owned();
        if status == 404 {
            return Err(CleanupCliError::NoEndpoint(base));
        }
        if status != 200 {
            return Err(CleanupCliError::Refused { status, body: text });
        }
        crate::term::out_line(&text);
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let outcome = v["summary"]["outcome"].as_str().unwrap_or("");
        eprintln!("cleanup run {}: {outcome} ({})", v["run_id"], v["summary"]["notes"].as_str().unwrap_or(""));
        Ok(if matches!(outcome, "completed" | "dry_run" | "nothing_to_do") { 0 } else { 1 })
    })
}
