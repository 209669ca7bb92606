//! The `exai` binary: parses the command line and runs the chosen subcommand.

use clap::Parser;
use exai::cli::{Cli, Command, ConfigCommand};
use exai::term;
use std::process::ExitCode;

/// jemalloc: thread caches without glibc's bin consolidation. A tool call allocates and frees
/// a few hundred small JSON values and strings; with glibc's allocator that was about a fifth
/// of a worker's CPU time per call. jemalloc also holds idle connections in less memory than
/// glibc or mimalloc did (docs/PERFORMANCE.md, session 5).
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => args.load().and_then(|cfg| exai::app::serve(cfg).map_err(Into::into)),
        Command::Migrate(args) => args.load().and_then(|cfg| exai::app::migrate(cfg).map_err(Into::into)),
        Command::Bench(opts) => exai::bench::run(&opts).map_err(Into::into).map(|out| {
            for line in out.lines() {
                term::err_line(&line);
            }
            term::out_line(&serde_json::to_string(&out).unwrap_or_default());
            i32::from(out.failed())
        }),
        Command::Call(args) => Ok(i32::from(exai::client::call::run(&args))),
        Command::Stdio(args) => exai::client::stdio::run(*args).map(i32::from).map_err(Into::into),
        Command::Cleanup(args) => {
            args.common.load().and_then(|cfg| exai::cleanup_cli::run(&args, &cfg).map_err(Into::into))
        }
        Command::Health(args) => Ok(exai::health_cli::run(&args)),
        Command::Config { command: ConfigCommand::Check(args) } => args.load().map(|cfg| {
            for w in &cfg.warnings {
                term::err_line(&format!("warning: {w}"));
            }
            term::out_line(&cfg.render_redacted());
            term::err_line("configuration is valid");
            0
        }),
    };
    match result {
        Ok(code) => ExitCode::from(code as u8),
        Err(e) => {
            term::err_line(&format!("exai: {e}"));
            ExitCode::from(2)
        }
    }
}
