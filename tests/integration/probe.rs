//! Acceptance through an independent client: the official MCP Python SDK's WebSocket client
//! (`tests/clients/mcp_ws_probe.py`: initialize → ping → tools/list → tools/call) against a real
//! `exai serve`, calling the built-in `version` tool.

use std::process::Command;
use std::time::Duration;

use crate::common::cmd::{run_with_timeout, CmdOutput};
use crate::common::{tools, ServerOptions, ServerProcess};

/// The probe caps itself at 4 × `--timeout` (20 s); this is only a backstop.
const PROBE_LIMIT: Duration = Duration::from_secs(120);

/// The probe command without URL/tool; resolved BEFORE starting a server so that a missing
/// client install fails fast with the "run scripts/test.sh" message.
fn probe_command() -> Command {
    let mut cmd = Command::new(tools::python());
    cmd.arg(tools::client_script("mcp_ws_probe.py"));
    cmd
}

fn run_probe(mut cmd: Command, server: &ServerProcess, url: &str, extra: &[&str]) -> CmdOutput {
    cmd.arg(url)
        .arg("version")
        .args(["--expect-text", "exai", "--timeout", "20"])
        .args(extra)
        .env("PYTHONUNBUFFERED", "1");
    let out = run_with_timeout(&mut cmd, PROBE_LIMIT);
    assert!(
        out.success() && out.stdout.contains("PROBE OK"),
        "mcp_ws_probe.py failed (exit codes: 1 MCP failure, 2 environment, 3 cannot connect, 4 timeout)\n{}\n--- server stderr ---\n{}",
        out.describe(),
        server.stderr_text()
    );
    out
}

#[test]
fn python_sdk_ws_client_calls_version_tool() {
    let cmd = probe_command();
    let server = ServerProcess::start(ServerOptions::new());
    run_probe(cmd, &server, &server.ws_url("/mcp"), &[]);
}

#[test]
fn python_sdk_ws_client_calls_version_tool_with_progress_token() {
    let cmd = probe_command();
    let server = ServerProcess::start(ServerOptions::new());
    run_probe(cmd, &server, &server.ws_url("/mcp"), &["--progress"]);
}

#[test]
fn python_sdk_ws_client_authenticates_with_query_token() {
    let cmd = probe_command();
    let token = format!("probe-token-{}", uuid::Uuid::new_v4().simple());
    let mut server = ServerProcess::start(ServerOptions::new().auth_token(&token));
    let url = server.ws_url(&format!("/mcp?token={token}"));
    run_probe(cmd, &server, &url, &[]);
    let logs = server.stop_and_collect_stderr(Duration::from_secs(10));
    let leaks: Vec<String> =
        logs.lines().filter(|line| line.contains(&token)).map(|line| line.replace(&token, "<THE-TOKEN>")).collect();
    assert!(leaks.is_empty(), "the auth token appeared in the server's logs:\n{}", leaks.join("\n"));
}

/// The Python SDK 1.30 checks a result's `structuredContent` against the tool's
/// `outputSchema`: the typed tools' derived schemas hold for what they return.
#[test]
fn python_sdk_accepts_the_typed_tools_structured_results() {
    let server = ServerProcess::start(ServerOptions::new().set("storage.toollog_flush_ms", "50"));
    let url = server.ws_url("/mcp");
    for (tool, args) in [
        ("version", "{}"),
        ("version", "{}"),
        ("toolcall_log_tail", r#"{"n": 5}"#),
        ("activity", r#"{"lines": 20, "level": "info"}"#),
    ] {
        let mut cmd = probe_command();
        cmd.arg(&url).arg(tool).args(["--args", args, "--timeout", "20"]).env("PYTHONUNBUFFERED", "1");
        let out = run_with_timeout(&mut cmd, PROBE_LIMIT);
        assert!(
            out.success() && out.stdout.contains("PROBE OK"),
            "{tool}: {}\n--- server stderr ---\n{}",
            out.describe(),
            server.stderr_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
