//! `exai bench` from options to report: starts what was asked for (mock, server, RSS sampler,
//! progress) and runs the chosen mode.

use super::closed_loop::{self, ClosedPlan};
use super::open_loop::{self, Kind, OpenPlan};
use super::output::BenchOutput;
use super::progress::{Live, Progress};
use super::rss::{RssSource, Sampler};
use super::wire::Target;
use super::{idle, limits, mock, server, stats, sweep, BenchError, BenchOptions, BenchProtocol};
use serde_json::Value;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

/// Soak preset: calls in all.
pub const SOAK_CALLS: u64 = 1_000_000;
/// Soak preset: connections (unless more are asked for).
pub const SOAK_CONNECTIONS: usize = 64;
/// Soak preset: cap on the measured time, seconds.
pub const SOAK_MAX_SECONDS: f64 = 3600.0;
/// Soak verdict: RSS growth over the second half must stay under this, percent.
pub const SOAK_MAX_GROWTH_PCT: f64 = 10.0;

/// `host:port` of a `ws://` / `wss://` / `http://` URL.
pub fn host_port(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let hp = rest.split(['/', '?']).next()?;
    (!hp.is_empty()).then_some(hp)
}

fn check(o: &BenchOptions, args: &Value) -> Result<(), BenchError> {
    let bad = |m: &str| Err(BenchError::Options(m.into()));
    if !args.is_object() {
        return bad("--args must be a JSON object");
    }
    if o.connections == 0 || !(o.duration > 0.0 || o.idle.is_some() && o.duration == 0.0) {
        return bad("--connections and --duration must be > 0 (--duration may be 0 with --idle)");
    }
    if o.mock && !o.spawn_server {
        return bad("--mock needs --spawn-server (the spawned server is pointed at the mock)");
    }
    if o.direct && o.rate.is_none() {
        return bad("--direct needs --rate (it is an open-loop comparison)");
    }
    if o.direct && !o.mock && o.direct_url.is_none() {
        return bad("--direct needs --mock or --direct-url");
    }
    if [o.sweep, o.soak, o.idle.is_some()].iter().filter(|&&b| b).count() > 1 {
        return bad("--sweep, --soak and --idle are exclusive");
    }
    Ok(())
}

/// Runs the benchmark (blocking; spins up its own runtimes and threads).
pub fn run(o: &BenchOptions) -> Result<BenchOutput, BenchError> {
    let args: Value = serde_json::from_str(&o.args).map_err(|e| BenchError::Options(format!("--args: {e}")))?;
    check(o, &args)?;
    limits::raise_nofile();
    let mock_port = if o.mock { Some(mock::start()?) } else { None };
    let max_conns = o.idle.unwrap_or(0) + o.connections.max(SOAK_CONNECTIONS) + 100;
    let spawned = if o.spawn_server { Some(server::start(max_conns, mock_port)?) } else { None };
    let url = match &spawned {
        Some(s) => format!("ws://{}{}", s.addr, if o.protocol == BenchProtocol::Legacy { "/" } else { "/mcp" }),
        None => o.url.clone(),
    };
    let rss_source = match (o.server_pid, &spawned) {
        (Some(pid), _) => RssSource::Proc(pid),
        (None, Some(s)) => RssSource::Proc(s.pid()),
        (None, None) => RssSource::Metrics(
            host_port(&url).ok_or_else(|| BenchError::Options(format!("no host in {url}")))?.to_string(),
        ),
    };
    // EXAI_BENCH_TOKEN: the variable's older name.
    let token = o.token.clone().or_else(|| std::env::var("EXAI_BENCH_TOKEN").ok().filter(|t| !t.is_empty()));
    let target = Target { url, protocol: o.protocol, tool: o.tool.clone(), args, token };
    let latest = Arc::new(AtomicU64::new(0));
    let sampler = Sampler::start(rss_source.clone(), latest.clone());
    let live = Live::with_rss(latest.clone())?;
    let mut out = BenchOutput::default();
    let open = |rate: f64| OpenPlan {
        rate,
        connections: o.connections,
        threads: o.threads,
        warmup: o.warmup,
        duration: o.duration,
        drain: o.drain,
    };
    if let Some(n) = o.idle {
        out.mode = "idle";
        let _progress = Progress::start("idle", live.clone(), o.quiet);
        out.idle = Some(idle::run(&target, n, o.duration, Some(&rss_source), live)?);
    } else if o.sweep {
        out.mode = "sweep";
        let plan = open(o.sweep_rates.first().copied().unwrap_or(1000.0));
        out.sweep = Some(sweep::run(&Kind::Ws(target), &plan, &o.sweep_rates, latest, o.quiet)?);
    } else if let Some(rate) = o.rate {
        out.mode = "open";
        let progress = Progress::start("open", live.clone(), o.quiet);
        let gateway = open_loop::run(&Kind::Ws(target), &open(rate), live)?;
        drop(progress);
        if o.direct {
            let url = o.direct_url.clone().or(mock_port.map(mock::url)).unwrap_or_default();
            let live = Live::with_rss(latest)?;
            let _progress = Progress::start("direct", live.clone(), o.quiet);
            let direct = open_loop::run(&Kind::Http { url, body: o.direct_body.clone() }, &open(rate), live)?;
            out.added = Some(stats::added(&gateway.latency, &direct.latency));
            out.direct = Some(direct);
        }
        out.run = Some(gateway);
    } else {
        out.mode = if o.soak { "soak" } else { "closed" };
        let plan = if o.soak {
            ClosedPlan {
                connections: o.connections.max(SOAK_CONNECTIONS),
                threads: o.threads,
                warmup: o.warmup,
                duration: SOAK_MAX_SECONDS,
                calls: Some(o.calls.unwrap_or(SOAK_CALLS)),
            }
        } else {
            ClosedPlan {
                connections: o.connections,
                threads: o.threads,
                warmup: o.warmup,
                duration: o.duration,
                calls: o.calls,
            }
        };
        let _progress = Progress::start(out.mode, live.clone(), o.quiet);
        out.run = Some(closed_loop::run(&target, &plan, live)?);
    }
    out.rss = sampler.finish();
    if o.soak {
        out.rss_plateau = out.rss.as_ref().map(|r| r.growth_second_half_pct < SOAK_MAX_GROWTH_PCT);
    }
    drop(spawned);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_of_urls() {
        assert_eq!(host_port("ws://127.0.0.1:8079/mcp"), Some("127.0.0.1:8079"));
        assert_eq!(host_port("ws://localhost:1/"), Some("localhost:1"));
        assert_eq!(host_port("ws://h:2?token=x"), Some("h:2"));
        assert_eq!(host_port("nonsense"), None);
    }

    #[test]
    fn exclusive_modes_and_missing_prerequisites_are_refused() {
        let args = serde_json::json!({});
        let o = BenchOptions { sweep: true, soak: true, ..BenchOptions::default() };
        assert!(check(&o, &args).is_err());
        assert!(check(&BenchOptions { mock: true, ..BenchOptions::default() }, &args).is_err());
        assert!(check(&BenchOptions { direct: true, rate: Some(10.0), ..BenchOptions::default() }, &args).is_err());
        assert!(check(&BenchOptions::default(), &serde_json::json!([])).is_err());
        assert!(check(&BenchOptions::default(), &args).is_ok());
    }
}
