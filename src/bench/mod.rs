//! The load driver behind `exai bench`.
//!
//! Modes (chosen by flags, see [`BenchOptions`]):
//! - closed loop (default): N connections each calling back to back ([`closed_loop`]);
//! - open loop (`--rate`): calls sent on a fixed schedule regardless of replies, latency measured
//!   from the scheduled send time so a slow server cannot hide its stalls ([`open_loop`]);
//! - sweep (`--sweep`): open-loop steps of rising rate and the throughput frontier ([`sweep`]);
//! - soak (`--soak`): a million closed-loop calls over 64 connections with an RSS plateau check;
//! - idle (`--idle`): thousands of idle MCP WebSocket connections and server RSS per connection
//!   ([`idle`]).
//!
//! Any mode can start the server itself (`--spawn-server`, optionally pointed at an in-process
//! zero-delay OpenAI-compatible mock with `--mock`) so that the server's RSS is sampled from
//! `/proc`; otherwise RSS comes from the server's `/metrics`. `--direct` (open loop with
//! `--mock`) also drives the mock directly at the same rate and reports the latency exai adds.
//! Progress goes to stderr once a second; the report is one JSON object on stdout.

pub mod closed_loop;
pub mod direct;
pub mod idle;
pub mod limits;
pub mod mock;
pub mod open_loop;
pub mod output;
pub mod pacer;
pub mod progress;
pub mod rss;
pub mod run;
pub mod schedule;
pub mod server;
pub mod stats;
pub mod sweep;
pub mod wire;

pub use output::{BenchOutput, RunReport};
pub use run::run;

use serde::Serialize;

/// The `--sweep-rates` default (keep in step with the clap default string).
pub const DEFAULT_SWEEP_RATES: [f64; 10] =
    [1000.0, 2000.0, 5000.0, 10000.0, 15000.0, 20000.0, 25000.0, 30000.0, 35000.0, 40000.0];

/// Which protocol to drive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
pub enum BenchProtocol {
    /// MCP over WebSocket.
    Mcp,
    /// Legacy EXAI op protocol.
    Legacy,
}

/// What to run.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchOptions {
    /// WebSocket URL, e.g. ws://127.0.0.1:8079/mcp (ignored with --spawn-server).
    #[arg(long, default_value = "ws://127.0.0.1:8079/mcp")]
    pub url: String,
    /// Concurrent connections (closed loop: each runs calls back to back; open loop: the
    /// schedule is spread over them, several calls in flight per connection).
    #[arg(long, default_value_t = 1)]
    pub connections: usize,
    /// Measured seconds (per step with --sweep; a cap with --soak).
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Warm-up seconds (not measured).
    #[arg(long, default_value_t = 1.0)]
    pub warmup: f64,
    /// Tool to call.
    #[arg(long, default_value = "version")]
    pub tool: String,
    /// Tool arguments (JSON object).
    #[arg(long, default_value = "{}")]
    pub args: String,
    /// Protocol.
    #[arg(long, value_enum, default_value_t = BenchProtocol::Mcp)]
    pub protocol: BenchProtocol,
    /// Client threads (connections are spread across them).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Token (sent as ?token= for MCP and in hello for legacy); or EXAI_TOKEN, as for `exai
    /// call`, `exai stdio` and `exai cleanup` (EXAI_BENCH_TOKEN is still read when neither is set).
    #[arg(long, env = "EXAI_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Open loop: offered calls per second over all connections.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Open loop: seconds to wait for outstanding replies after the last send.
    #[arg(long, default_value_t = 5.0)]
    pub drain: f64,
    /// Closed loop: stop after this many measured calls (over all connections).
    #[arg(long)]
    pub calls: Option<u64>,
    /// Sweep the offered rate (open loop) and report the throughput frontier.
    #[arg(long)]
    pub sweep: bool,
    /// Rates for --sweep, calls/s, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "1000,2000,5000,10000,15000,20000,25000,30000,35000,40000")]
    pub sweep_rates: Vec<f64>,
    /// Soak preset: 1,000,000 closed-loop calls over 64 connections (override with --calls /
    /// --connections), RSS sampled; passes when RSS grew under 10 % in the second half.
    #[arg(long)]
    pub soak: bool,
    /// Idle preset: hold this many idle MCP WebSocket connections (default 10000) for
    /// --duration seconds and report server RSS per connection.
    #[arg(long, num_args = 0..=1, default_missing_value = "10000")]
    pub idle: Option<usize>,
    /// Start `exai serve` (this binary) on a free loopback port for the run.
    #[arg(long)]
    pub spawn_server: bool,
    /// With --spawn-server: start an in-process zero-delay OpenAI-compatible mock and point
    /// the server's providers at it (for `chat`-like tools).
    #[arg(long)]
    pub mock: bool,
    /// Open loop: also drive the provider endpoint directly at the same rate and report the
    /// latency exai adds (needs --mock, or --direct-url).
    #[arg(long)]
    pub direct: bool,
    /// Direct-call URL (default: the --mock's chat completions URL).
    #[arg(long)]
    pub direct_url: Option<String>,
    /// Direct-call body (JSON posted to --direct-url).
    #[arg(long, default_value = mock::DIRECT_BODY)]
    pub direct_body: String,
    /// Sample the RSS of this server process from /proc (default: the spawned server, else
    /// the server's /metrics).
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// No progress lines on stderr.
    #[arg(long)]
    pub quiet: bool,
}

impl Default for BenchOptions {
    fn default() -> Self {
        BenchOptions {
            url: "ws://127.0.0.1:8079/mcp".into(),
            connections: 1,
            duration: 10.0,
            warmup: 1.0,
            tool: "version".into(),
            args: "{}".into(),
            protocol: BenchProtocol::Mcp,
            threads: 1,
            token: None,
            rate: None,
            drain: 5.0,
            calls: None,
            sweep: false,
            sweep_rates: DEFAULT_SWEEP_RATES.to_vec(),
            soak: false,
            idle: None,
            spawn_server: false,
            mock: false,
            direct: false,
            direct_url: None,
            direct_body: mock::DIRECT_BODY.into(),
            server_pid: None,
            quiet: false,
        }
    }
}

/// Errors of a bench run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// Bad option.
    #[error("invalid option: {0}")]
    Options(String),
    /// Could not connect or the handshake failed.
    #[error("connect: {0}")]
    Connect(String),
    /// The histogram could not be built or merged.
    #[error("histogram: {0}")]
    Histogram(String),
    /// Starting the server or the mock failed.
    #[error("start: {0}")]
    Start(String),
    /// A client thread panicked.
    #[error("client thread panicked")]
    Thread,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use clap::Parser;

    #[test]
    fn cli_defaults_match_the_library_defaults() {
        let cli = crate::cli::Cli::try_parse_from(["exai", "bench"]).unwrap();
        let crate::cli::Command::Bench(o) = cli.command else { panic!("not bench") };
        let d = BenchOptions::default();
        assert_eq!(o.sweep_rates, d.sweep_rates);
        assert_eq!((o.connections, o.duration, o.warmup, o.drain), (d.connections, d.duration, d.warmup, d.drain));
        assert_eq!((o.url, o.tool, o.direct_body), (d.url, d.tool, d.direct_body));
    }

    #[test]
    fn idle_flag_defaults_to_ten_thousand() {
        let cli = crate::cli::Cli::try_parse_from(["exai", "bench", "--idle"]).unwrap();
        let crate::cli::Command::Bench(o) = cli.command else { panic!("not bench") };
        assert_eq!(o.idle, Some(10_000));
    }
}
