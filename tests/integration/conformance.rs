//! The official MCP conformance suite (`@modelcontextprotocol/conformance`, run on Node 22)
//! against exai's Streamable HTTP endpoint `/mcp`, one test per scenario. A scenario passes when
//! the suite exits 0 AND its `checks.json` has at least one SUCCESS and no FAILURE.
//!
//! `checks.json` (written to `<out>/server-<scenario>-<timestamp>/`) is an array of
//! `{id, name, description, status: SUCCESS|FAILURE|WARNING|INFO, errorMessage?, details?, ...}`.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::common::cmd::{run_with_timeout, CmdOutput};
use crate::common::{tools, ServerOptions, ServerProcess};

const SCENARIO_LIMIT: Duration = Duration::from_secs(180);

/// Reads `checks.json` of the single result folder the suite wrote for `scenario`.
fn read_checks(out_dir: &Path, scenario: &str, run: &CmdOutput) -> Vec<Value> {
    let prefix = format!("server-{scenario}-");
    let dirs: Vec<_> = std::fs::read_dir(out_dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(&prefix)))
        .collect();
    assert_eq!(
        dirs.len(),
        1,
        "expected one result folder `{prefix}*` in {}, found {dirs:?}\n{}",
        out_dir.display(),
        run.describe()
    );
    let file = dirs[0].join("checks.json");
    let text = std::fs::read_to_string(&file)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}\n{}", file.display(), run.describe()));
    match serde_json::from_str::<Value>(&text) {
        Ok(Value::Array(checks)) => checks,
        other => panic!("{} is not a JSON array: {other:?}", file.display()),
    }
}

fn summarize(checks: &[Value]) -> String {
    checks
        .iter()
        .map(|c| {
            let field = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
            let error = field("errorMessage");
            let mut line = format!("  [{}] {}: {}", field("status"), field("id"), field("description"));
            if !error.is_empty() {
                line.push_str(&format!(" -- {error}"));
            }
            if let Some(details) = c.get("details").filter(|_| field("status") != "SUCCESS") {
                line.push_str(&format!("\n      details: {details}"));
            }
            line
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn run_scenario(scenario: &str) {
    // Resolve the tools first: a missing install fails fast with the "run scripts/test.sh" hint.
    let (bin, path) = (tools::conformance_bin(), tools::path_with_node());
    let server = ServerProcess::start(ServerOptions::new());
    let out_dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(bin);
    cmd.arg("server")
        .args(["--url", &server.http_url("/mcp"), "--scenario", scenario, "-o"])
        .arg(out_dir.path())
        .current_dir(out_dir.path())
        .env("PATH", path)
        .env("NO_COLOR", "1");
    let run = run_with_timeout(&mut cmd, SCENARIO_LIMIT);
    let checks = read_checks(out_dir.path(), scenario, &run);
    let status_count = |s: &str| checks.iter().filter(|c| c["status"] == s).count();
    let (passed, failed) = (status_count("SUCCESS"), status_count("FAILURE"));
    assert!(
        run.success() && failed == 0 && passed > 0,
        "conformance scenario `{scenario}`: {passed} passed, {failed} failed\n{}\n\n{}\n--- server stderr ---\n{}",
        summarize(&checks),
        run.describe(),
        server.stderr_text()
    );
    let warnings = status_count("WARNING");
    if warnings > 0 {
        eprintln!("conformance `{scenario}` passed with {warnings} warning(s):\n{}", summarize(&checks));
    }
}

#[test]
fn conformance_server_initialize() {
    run_scenario("server-initialize");
}

#[test]
fn conformance_ping() {
    run_scenario("ping");
}

#[test]
fn conformance_tools_list() {
    run_scenario("tools-list");
}

#[test]
fn conformance_logging_set_level() {
    run_scenario("logging-set-level");
}

#[test]
fn conformance_dns_rebinding_protection() {
    run_scenario("dns-rebinding-protection");
}
