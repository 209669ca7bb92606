//! The command line: `exai serve`, `exai migrate`, `exai config check`, `exai bench`,
//! `exai call`, `exai stdio`, `exai cleanup [--dry-run]`, `exai health [--url URL]`,
//! `exai --version`.
//!
//! Every subcommand loads the same layered config (defaults < file < `EXAI_*` env < flags);
//! the flags here become the highest-precedence overrides.

use crate::config::{Config, LoadOptions};
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// exai: an MCP gateway for AI providers.
#[derive(Debug, Parser)]
#[command(name = "exai", version, about, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (WebSocket + Streamable HTTP + health + metrics on one port).
    Serve(CommonArgs),
    /// Apply database migrations and report their state.
    Migrate(CommonArgs),
    /// Load driver: call a tool over many WebSocket connections and report latency and calls/s.
    Bench(crate::bench::BenchOptions),
    /// Call one tool on a running server and print the result JSON (exit 0 ok, 1 tool error, 2 usage/connection error).
    Call(crate::client::call::CallArgs),
    /// Stdio MCP server for editors, forwarding to a running daemon (or an embedded server).
    Stdio(Box<crate::client::stdio::StdioArgs>),
    /// Run one staged cleanup of unreferenced provider files on the running server.
    Cleanup(crate::cleanup_cli::CleanupArgs),
    /// Check a health endpoint once (exit 0 when it answers 200, else 1); for container health checks.
    Health(crate::health_cli::HealthArgs),
    /// Configuration tools.
    Config {
        /// Which config tool.
        #[command(subcommand)]
        command: ConfigCommand,
    },
}

/// `exai config …`.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Load and validate the configuration, then print it with secrets redacted.
    Check(CommonArgs),
}

/// Flags shared by every subcommand (each maps to a config key).
#[derive(Debug, Args, Clone, Default)]
pub struct CommonArgs {
    /// Config file (TOML). Default: ./exai.toml when present.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// server.host
    #[arg(long)]
    pub host: Option<String>,
    /// server.port (0 = any free port)
    #[arg(long)]
    pub port: Option<u16>,
    /// storage.data_dir
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// storage.database_url (sqlite:… or postgres://…)
    #[arg(long, value_name = "URL")]
    pub database_url: Option<String>,
    /// logging.level (tracing filter, e.g. info or info,exai=debug)
    #[arg(long)]
    pub log_level: Option<String>,
    /// logging.format: human or json
    #[arg(long)]
    pub log_format: Option<String>,
    /// Any other key: --set section.key=value (repeatable)
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

/// Errors turning flags into overrides.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// `--set` without `=`.
    #[error("--set expects KEY=VALUE, got '{0}'")]
    BadSet(String),
}

impl CommonArgs {
    /// The load options these flags describe.
    pub fn load_options(&self) -> Result<LoadOptions, CliError> {
        let mut o: Vec<(String, String)> = Vec::new();
        if let Some(h) = &self.host {
            o.push(("server.host".into(), h.clone()));
        }
        if let Some(p) = self.port {
            o.push(("server.port".into(), p.to_string()));
        }
        if let Some(d) = &self.data_dir {
            o.push(("storage.data_dir".into(), d.display().to_string()));
        }
        if let Some(u) = &self.database_url {
            o.push(("storage.database_url".into(), u.clone()));
        }
        if let Some(l) = &self.log_level {
            o.push(("logging.level".into(), l.clone()));
        }
        if let Some(f) = &self.log_format {
            o.push(("logging.format".into(), f.clone()));
        }
        for s in &self.set {
            let (k, v) = s.split_once('=').ok_or_else(|| CliError::BadSet(s.clone()))?;
            o.push((k.trim().to_string(), v.to_string()));
        }
        Ok(LoadOptions { config_file: self.config.clone(), overrides: o, env: None })
    }

    /// Load the config these flags describe.
    pub fn load(&self) -> Result<Config, Box<dyn std::error::Error>> {
        Ok(Config::load(&self.load_options()?)?)
    }
}
