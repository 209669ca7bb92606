//! The operator's surface of the real binary: the container health check as the image runs it
//! (`/bin/sh` of the base image is dash), the Docker build context, and CLI consistency
//! (`config check` output, tokens of `exai cleanup` and `exai bench`, the stdio bridge's data
//! directory and fallback).

use crate::common::cmd::run_with_timeout;
use crate::common::tools::repo_root;
use crate::common::{ServerOptions, ServerProcess};
use std::process::Command;
use std::time::Duration;

const AUTH: &str = "container-auth-token-0123456789";

/// The `CMD` of the Dockerfile's `HEALTHCHECK` (shell form, continuation lines joined).
fn dockerfile_healthcheck() -> String {
    let text = std::fs::read_to_string(repo_root().join("deploy/Dockerfile")).unwrap();
    let joined = text.replace("\\\n", " ");
    let line = joined.lines().find(|l| l.starts_with("HEALTHCHECK")).expect("the Dockerfile has a HEALTHCHECK");
    let cmd = line.split_once(" CMD ").expect("HEALTHCHECK ... CMD <command>").1.trim();
    assert!(!cmd.starts_with('['), "the health check is expected in shell form (run by /bin/sh -c): {cmd}");
    cmd.to_owned()
}

/// `dash -c <the image's health check>` with the container's environment (wildcard bind
/// address, auth token, the port moved through EXAI_SERVER__PORT), from an empty directory.
fn run_healthcheck(port: u16) -> crate::common::cmd::CmdOutput {
    let dash = ["/usr/bin/dash", "/bin/dash"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect("dash is not installed (apt-get install dash): the image's /bin/sh is dash");
    let cmd = dockerfile_healthcheck().replace("/usr/local/bin/exai", env!("CARGO_BIN_EXE_exai"));
    let cwd = tempfile::tempdir().unwrap();
    let mut c = Command::new(dash);
    c.arg("-c")
        .arg(&cmd)
        .current_dir(cwd.path())
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("EXAI_SERVER__HOST", "0.0.0.0")
        .env("EXAI_SERVER__PORT", port.to_string())
        .env("EXAI_SERVER__AUTH_TOKEN", AUTH)
        .env("EXAI_LOGGING__FORMAT", "json");
    run_with_timeout(&mut c, Duration::from_secs(20))
}

#[test]
fn the_image_health_check_passes_under_dash_against_a_running_server() {
    let mut server = ServerProcess::start(ServerOptions::new().auth_token(AUTH));
    let ok = run_healthcheck(server.port());
    assert!(ok.success(), "the health check must pass against a ready server:\n{}", ok.describe());
    assert!(ok.stdout.contains("/health/ready: 200 ready"), "{}", ok.describe());
    let port = server.port();
    server.kill9();
    let down = run_healthcheck(port);
    assert_eq!(down.code(), Some(1), "a stopped server is unhealthy (exit 1):\n{}", down.describe());
    assert!(down.stderr.contains(&format!("127.0.0.1:{port}")), "the failure names the URL:\n{}", down.describe());
    assert!(down.elapsed < Duration::from_secs(5), "a refused connection fails at once: {:?}", down.elapsed);
}

#[test]
fn health_reports_a_not_ready_server_as_unhealthy() {
    let server = ServerProcess::start(ServerOptions::new());
    // Any non-200 answer is unhealthy; /nope is a 404 on a live server.
    let bin = env!("CARGO_BIN_EXE_exai");
    let out = run_with_timeout(
        Command::new(bin).args(["health", "--url", &server.http_url("/nope")]),
        Duration::from_secs(20),
    );
    assert_eq!(out.code(), Some(1), "{}", out.describe());
    assert!(out.stderr.contains("answered 404"), "{}", out.describe());
    let out = run_with_timeout(
        Command::new(bin).args(["health", "--url", &server.http_url("/health/live")]),
        Duration::from_secs(20),
    );
    assert!(out.success(), "{}", out.describe());
    assert!(out.stdout.contains("200 live"), "{}", out.describe());
    let out = run_with_timeout(Command::new(bin).args(["health", "--url", "https://x/"]), Duration::from_secs(20));
    assert_eq!(out.code(), Some(1), "{}", out.describe());
    assert!(out.stderr.contains("expected http://HOST[:PORT][/PATH]"), "{}", out.describe());
}

/// Does a `.dockerignore` pattern exclude this top-level path? (The file uses plain names,
/// `/name` and `**/name`, which is all this needs to understand.)
fn ignored(patterns: &[String], path: &str) -> bool {
    patterns.iter().any(|p| {
        let p = p.trim_start_matches('/').trim_start_matches("**/");
        p == path || (p.starts_with("*.") && path.ends_with(&p[1..]))
    })
}

#[test]
fn the_build_context_excludes_build_output_and_keeps_what_the_image_copies() {
    let text = std::fs::read_to_string(repo_root().join(".dockerignore")).expect(".dockerignore exists");
    let patterns: Vec<String> =
        text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(str::to_owned).collect();
    for heavy in ["target", ".git", "data", "node_modules", "exai.db", ".env", "exai.toml"] {
        assert!(ignored(&patterns, heavy), "{heavy} must not be sent to the Docker daemon");
    }
    let dockerfile = std::fs::read_to_string(repo_root().join("deploy/Dockerfile")).unwrap();
    let mut copied = 0;
    for line in dockerfile.lines().filter(|l| l.starts_with("COPY ") && !l.contains("--from=")) {
        let words: Vec<&str> = line.split_whitespace().skip(1).collect();
        for src in &words[..words.len() - 1] {
            assert!(!ignored(&patterns, src), "the Dockerfile copies {src}, which .dockerignore excludes");
            assert!(repo_root().join(src).exists(), "the Dockerfile copies {src}, which does not exist");
            copied += 1;
        }
    }
    assert!(copied >= 8, "expected the build stage's COPY lines, found {copied} sources");
}

/// `exai <args>` from an empty directory with only PATH/HOME and `env` in its environment.
fn exai_clean(args: &[&str], env: &[(&str, &str)]) -> crate::common::cmd::CmdOutput {
    let cwd = tempfile::tempdir().unwrap();
    let mut c = Command::new(env!("CARGO_BIN_EXE_exai"));
    c.args(args).current_dir(cwd.path()).env_clear().env("PATH", "/usr/bin:/bin").env("HOME", cwd.path());
    for (k, v) in env {
        c.env(k, v);
    }
    run_with_timeout(&mut c, Duration::from_secs(60))
}

const ADMIN: &str = "ops-admin-token-0123456789";

#[test]
fn cleanup_takes_its_token_from_the_flag_the_config_or_exai_token() {
    let server = ServerProcess::start(ServerOptions::new().env("EXAI_SERVER__ADMIN_TOKEN", ADMIN));
    let base = server.http_url("");
    let base = base.trim_end_matches('/');
    let by_flag = exai_clean(&["cleanup", "--dry-run", "--server", base, "--token", ADMIN], &[]);
    assert!(by_flag.success(), "{}", by_flag.describe());
    let report: serde_json::Value = serde_json::from_str(by_flag.stdout.trim()).unwrap();
    assert_eq!(report["dry_run"], true, "{report}");
    assert_eq!(report["summary"]["outcome"], "nothing_to_do", "an empty registry: {report}");
    let by_env = exai_clean(&["cleanup", "--dry-run", "--server", base], &[("EXAI_TOKEN", ADMIN)]);
    assert!(by_env.success(), "{}", by_env.describe());
    let by_config = exai_clean(&["cleanup", "--dry-run", "--server", base], &[("EXAI_SERVER__ADMIN_TOKEN", ADMIN)]);
    assert!(by_config.success(), "{}", by_config.describe());
    // A wrong token is refused by the server; no token at all never reaches it.
    let wrong = exai_clean(&["cleanup", "--server", base, "--token", "wrong-token-0123456789"], &[]);
    assert_eq!(wrong.code(), Some(2), "{}", wrong.describe());
    assert!(wrong.stderr.contains("401"), "{}", wrong.describe());
    let none = exai_clean(&["cleanup", "--server", base], &[]);
    assert_eq!(none.code(), Some(2), "{}", none.describe());
    assert!(none.stderr.contains("--token") && none.stderr.contains("EXAI_TOKEN"), "{}", none.describe());
    // A server without an admin token has no cleanup endpoint, and says so.
    let plain = ServerProcess::start(ServerOptions::new());
    let url = plain.http_url("");
    let out = exai_clean(&["cleanup", "--server", url.trim_end_matches('/'), "--token", ADMIN], &[]);
    assert_eq!(out.code(), Some(2), "{}", out.describe());
    assert!(out.stderr.contains("server.admin_token"), "{}", out.describe());
}

#[test]
fn bench_reads_exai_token_and_still_its_old_name() {
    const AUTH: &str = "bench-auth-token-0123456789";
    let server = ServerProcess::start(ServerOptions::new().auth_token(AUTH));
    let url = server.ws_url("/mcp");
    let args = ["bench", "--url", url.as_str(), "--calls", "20", "--connections", "1", "--quiet"];
    for var in ["EXAI_TOKEN", "EXAI_BENCH_TOKEN"] {
        let out = exai_clean(&args, &[(var, AUTH)]);
        assert!(out.success(), "{var}: {}", out.describe());
        let v: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap();
        assert_eq!(v["run"]["calls"], 20, "{var}: {v}");
        assert_eq!(v["run"]["errors"], 0, "{var}: {v}");
    }
    let out = exai_clean(&args, &[]);
    assert!(!out.success(), "without a token the server refuses: {}", out.describe());
}

#[test]
fn config_check_output_is_a_config_that_loads_back() {
    let env = [("EXAI_SERVER__AUTH_TOKEN", AUTH), ("EXAI_SERVER__PORT", "9400"), ("EXAI_LOGGING__LEVEL", "warn")];
    let first = exai_clean(&["config", "check"], &env);
    assert!(first.success(), "{}", first.describe());
    assert!(!first.stdout.contains(AUTH), "the token is never printed");
    assert!(first.stdout.contains("# auth_token = \"<set>\""), "{}", first.stdout);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("exai.toml");
    std::fs::write(&file, &first.stdout).unwrap();
    let path = file.to_str().unwrap();
    let again = exai_clean(&["config", "check", "--config", path], &[("EXAI_SERVER__AUTH_TOKEN", AUTH)]);
    assert!(again.success(), "the printed config must load as a config file:\n{}", again.describe());
    let a: toml::Table = first.stdout.parse().unwrap();
    let b: toml::Table = again.stdout.parse().unwrap();
    assert_eq!(a, b, "same effective configuration");
    assert_eq!(b["server"]["port"].as_integer(), Some(9400));
}

#[test]
fn unknown_log_levels_fail_config_check_and_start_up_naming_the_key() {
    for (args, bad) in [
        (vec!["config", "check", "--log-level", "warning"], "warning"),
        (vec!["config", "check", "--set", "logging.level=loud"], "loud"),
        (vec!["serve", "--port", "0", "--log-level", "loud"], "loud"),
    ] {
        let out = exai_clean(&args, &[]);
        assert_eq!(out.code(), Some(2), "{args:?}: {}", out.describe());
        let line = out.stderr.trim();
        assert_eq!(line.lines().count(), 1, "one line: {}", out.describe());
        assert!(line.contains("logging.level") && line.contains(&format!("\"{bad}\"")), "{line}");
        assert!(line.contains("trace, debug, info, warn, error, off"), "{line}");
    }
    let out = exai_clean(&["config", "check", "--log-level", "warning"], &[]);
    assert!(out.stderr.contains("did you mean \"warn\"?"), "{}", out.describe());
}

#[actix_rt::test]
async fn over_capacity_says_retry_once_and_reports_the_queue_wait() {
    use crate::ai::{call, err, mcp, options, Mocks};
    use serde_json::json;
    let m = Mocks::start(&[]);
    let server = ServerProcess::start(
        options(&m)
            .set("providers.kimi.max_inflight", "1")
            .set("limits.provider_queue_wait_ms", "500")
            .set("limits.retry_after_secs", "2"),
    );
    // The first call holds Kimi's only permit for 3 s.
    m.kimi.scenario(json!([{"type":"delay","seconds":3,"times":1}])).await;
    let mut slow = mcp(&server).await;
    let slow_args = json!({"prompt": "hold the permit", "model": "kimi-k2-0905-preview"});
    slow.send_json(
        &json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"chat","arguments":slow_args}}),
    )
    .await;
    actix_rt::time::sleep(Duration::from_millis(500)).await;
    let mut c = mcp(&server).await;
    let r = call(&mut c, 2, "chat", json!({"prompt": "queued", "model": "kimi-k2-0905-preview"})).await;
    let e = err(&r);
    assert_eq!(e["code"], "OVER_CAPACITY", "{r}");
    let msg = e["message"].as_str().unwrap();
    assert_eq!(msg.matches("retry after").count(), 1, "{msg}");
    assert!(msg.contains("kimi") && msg.ends_with("retry after 2s"), "{msg}");
    let waited = r["_meta"]["latency_metrics"]["provider_wait_ms"].as_f64().unwrap();
    assert!(waited >= 450.0, "the 500 ms queue wait is provider wait, got {waited} ms: {r}");
}

#[actix_rt::test]
async fn an_oversized_http_body_is_a_json_rpc_error() {
    use crate::common::http;
    use serde_json::json;
    let server = ServerProcess::start(ServerOptions::new().set("server.max_message_bytes", "65536"));
    let big = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"pad": "x".repeat(70_000)}});
    let r = http::post_json(&server.http_url("/mcp"), &big, &[("accept", "application/json, text/event-stream")]).await;
    assert_eq!(r.status, 413, "{}", r.body);
    assert!(r.header("content-type").is_some_and(|c| c.starts_with("application/json")), "{:?}", r.headers);
    let v = r.json();
    assert_eq!(v["jsonrpc"], "2.0", "{v}");
    assert_eq!(v["id"], serde_json::Value::Null, "{v}");
    assert_eq!(v["error"]["code"], -32600, "{v}");
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(msg.contains("65536") && msg.contains("server.max_message_bytes"), "{msg}");
    // A body just under the limit still reaches MCP.
    let ok = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"},
        "pad": "x".repeat(60_000)}});
    let r = http::post_json(&server.http_url("/mcp"), &ok, &[("accept", "application/json, text/event-stream")]).await;
    assert_eq!(r.status, 200, "{}", r.body);
}
