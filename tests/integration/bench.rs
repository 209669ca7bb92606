//! `exai bench` against a real `exai serve`: a short open-loop run at a low rate and a small
//! idle-connections run, checking the JSON report's fields are present and consistent (no
//! timing assertions: speed claims live in docs/PERFORMANCE.md).

use crate::common::cmd::run_with_timeout;
use crate::common::{ServerOptions, ServerProcess};
use serde_json::Value;
use std::process::Command;
use std::time::Duration;

fn bench(server: &ServerProcess, args: &[&str]) -> (Value, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_exai"));
    cmd.arg("bench").arg("--url").arg(server.ws_url("/mcp")).args(args);
    let out = run_with_timeout(&mut cmd, Duration::from_secs(120));
    assert!(out.success(), "{}", out.describe());
    let json = serde_json::from_str(out.stdout.trim()).unwrap_or_else(|e| panic!("{e}: {}", out.describe()));
    (json, out.stderr)
}

#[test]
fn open_loop_run_reports_latency_rate_and_rss() {
    let server = ServerProcess::start(ServerOptions::new().set("limits.session_max_inflight", "256"));
    let args = ["--rate", "100", "--connections", "2", "--duration", "2", "--warmup", "0.5", "--drain", "30"];
    let (v, stderr) = bench(&server, &args);
    assert_eq!(v["mode"], "open", "{v}");
    let r = &v["run"];
    assert_eq!((r["mode"].as_str(), r["offered_rate"].as_f64()), (Some("open"), Some(100.0)), "{v}");
    // 2.5 s at 100/s: 250 calls sent, the 200 after the warm-up measured, all answered.
    assert_eq!(r["sent"], 250, "{v}");
    assert_eq!((r["calls"].as_u64(), r["errors"].as_u64(), r["lost"].as_u64()), (Some(200), Some(0), Some(0)), "{v}");
    let p = |k: &str| r[k].as_u64().unwrap_or_else(|| panic!("{k} missing: {v}"));
    assert!(
        p("p50_us") > 0 && p("p50_us") <= p("p99_us") && p("p99_us") <= p("p999_us") && p("p999_us") <= p("max_us")
    );
    assert!(r["calls_per_sec"].as_f64().is_some_and(|c| c > 0.0), "{v}");
    assert!(r["send_lag"]["p99_us"].is_u64(), "{v}");
    // RSS came from the server's /metrics (the bench did not start it).
    let rss = &v["rss"];
    assert!(rss["source"]["Metrics"].is_string(), "{v}");
    assert!(rss["series"].as_array().is_some_and(|s| !s.is_empty()), "{v}");
    assert!(rss["start_bytes"].as_u64().is_some_and(|b| b > 1_000_000), "{v}");
    assert!(rss["growth_second_half_pct"].is_f64(), "{v}");
    assert!(stderr.contains("[open "), "progress lines on stderr:\n{stderr}");
    assert!(stderr.contains("rss MB per second:"), "{stderr}");
}

#[test]
fn idle_preset_holds_connections_and_reports_rss_per_connection() {
    let server = ServerProcess::start(ServerOptions::new());
    let pid = server.pid().to_string();
    let (v, _) = bench(&server, &["--idle", "20", "--duration", "0", "--server-pid", &pid]);
    assert_eq!(v["mode"], "idle", "{v}");
    let i = &v["idle"];
    assert_eq!(
        (i["requested"].as_u64(), i["established"].as_u64(), i["failed"].as_u64()),
        (Some(20), Some(20), Some(0))
    );
    assert!(i["rss_before_bytes"].as_u64().is_some_and(|b| b > 0), "{v}");
    assert!(i["rss_per_connection_bytes"].is_f64(), "{v}");
    assert!(i["nofile_limit"].is_u64(), "{v}");
}
