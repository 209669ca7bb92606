//! `/metrics` against the real binary: counters and histograms move by exactly the traffic
//! sent, every family the docs promise is there (at zero where nothing happened yet), and
//! `promtool check metrics` accepts the scrape when promtool is installed (`.ci/run`
//! installs it and also runs it against a scrape).

use crate::common::cmd::run_with_timeout;
use crate::common::http;
use crate::common::ws::{WsClient, WsOptions};
use crate::common::{ServerOptions, ServerProcess};
use serde_json::json;
use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

/// A parsed scrape: (name, sorted labels) → value.
struct Scrape(BTreeMap<(String, Vec<(String, String)>), f64>);

impl Scrape {
    fn parse(text: &str) -> Scrape {
        let mut out = BTreeMap::new();
        for line in text.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
            let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("bad line {line:?}"));
            let value: f64 = match value {
                "+Inf" => f64::INFINITY,
                v => v.parse().unwrap_or_else(|_| panic!("bad value in {line:?}")),
            };
            let (name, labels) = match series.split_once('{') {
                None => (series.to_string(), Vec::new()),
                Some((n, rest)) => {
                    let mut labels: Vec<(String, String)> = rest
                        .trim_end_matches('}')
                        .split("\",")
                        .filter(|p| !p.is_empty())
                        .map(|p| {
                            let (k, v) = p.split_once("=\"").unwrap_or_else(|| panic!("bad labels in {line:?}"));
                            (k.to_string(), v.trim_end_matches('"').to_string())
                        })
                        .collect();
                    labels.sort();
                    (n.to_string(), labels)
                }
            };
            out.insert((name, labels), value);
        }
        Scrape(out)
    }

    fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let mut l: Vec<(String, String)> = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        l.sort();
        self.0.get(&(name.to_string(), l)).copied()
    }

    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels).unwrap_or_else(|| panic!("{name}{labels:?} missing from the scrape"))
    }

    fn names(&self) -> Vec<&str> {
        self.0.keys().map(|(n, _)| n.as_str()).collect()
    }
}

async fn scrape(server: &ServerProcess) -> (String, Scrape) {
    let r = http::get(&server.http_url("/metrics"), &[]).await;
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").is_some_and(|c| c.starts_with("text/plain")), "{:?}", r.headers);
    let parsed = Scrape::parse(&r.body);
    (r.body, parsed)
}

fn server() -> ServerProcess {
    // A long heartbeat so that no server ping frame lands between the two scrapes.
    ServerProcess::start(ServerOptions::new().set("timeouts.heartbeat_interval_secs", "50"))
}

#[actix_rt::test]
async fn counters_and_histograms_move_by_exactly_the_traffic() {
    let server = server();
    let mut c = WsClient::connect(&server.ws_url("/mcp"), WsOptions::mcp()).await;
    c.mcp_initialize().await;
    assert_eq!(c.request(1, "ping", serde_json::Value::Null).await["result"], json!({}));
    let (_, before) = scrape(&server).await;

    for id in 0..5 {
        let r = c.request(10 + id, "tools/call", json!({"name": "version", "arguments": {}})).await;
        assert_eq!(r["result"]["isError"], false, "{r}");
    }
    let r = c.request(20, "tools/call", json!({"name": "version", "arguments": {"surprise": 1}})).await;
    assert_eq!(r["result"]["isError"], true, "a validation error: {r}");
    let (_, after) = scrape(&server).await;

    let delta =
        |name: &str, labels: &[(&str, &str)]| after.value(name, labels) - before.get(name, labels).unwrap_or(0.0);
    assert_eq!(delta("exai_tool_calls_total", &[("tool", "version"), ("outcome", "ok")]), 5.0);
    assert_eq!(delta("exai_tool_calls_total", &[("tool", "version"), ("outcome", "error")]), 1.0);
    assert_eq!(delta("exai_tool_calls_total", &[("tool", "version"), ("outcome", "timeout")]), 0.0);
    assert_eq!(delta("exai_tool_call_duration_seconds_count", &[("tool", "version")]), 6.0);
    assert_eq!(
        delta("exai_tool_call_duration_seconds_bucket", &[("tool", "version"), ("le", "+Inf")]),
        6.0,
        "the +Inf bucket counts every call"
    );
    // Validation fails before the global slot is taken: only the 5 good calls waited for it.
    assert_eq!(delta("exai_global_wait_seconds_count", &[]), 5.0);
    assert_eq!(delta("exai_ws_frames_total", &[("direction", "in")]), 6.0);
    // Six replies, and the failed call's `notifications/message` (level error) to the session.
    assert_eq!(delta("exai_ws_frames_total", &[("direction", "out")]), 7.0);
    assert!(delta("exai_tool_call_duration_seconds_sum", &[("tool", "version")]) > 0.0);

    // Sessions and connections by protocol.
    assert_eq!(after.value("exai_sessions_active", &[("protocol", "mcp-ws")]), 1.0);
    assert_eq!(after.value("exai_sessions_active", &[("protocol", "legacy-ws")]), 0.0);
    assert_eq!(after.value("exai_sessions_active", &[("protocol", "mcp-http")]), 0.0);
    assert_eq!(after.value("exai_connections_total", &[("protocol", "mcp-ws")]), 1.0);
    assert_eq!(after.value("exai_connections_active", &[("protocol", "mcp-ws")]), 1.0);
    assert_eq!(after.value("exai_connections_open", &[]), 1.0);
    assert_eq!(after.value("exai_inflight_calls", &[]), 0.0);
    assert_eq!(after.value("exai_inflight_limit", &[]), 512.0);

    c.close(1000, "bye").await;
    let mut closed = false;
    for _ in 0..50 {
        let (_, now) = scrape(&server).await;
        // The session gauge drops when the session stops, the connection count a moment later
        // when the session is dropped (on its worker thread, while the scrape runs on another).
        if now.value("exai_sessions_active", &[("protocol", "mcp-ws")]) == 0.0
            && now.value("exai_connections_open", &[]) == 0.0
        {
            closed = true;
            break;
        }
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(closed, "the session gauge and the open connections must drop back to 0 after the client closes");
}

#[actix_rt::test]
async fn every_documented_family_is_exported_with_bounded_labels() {
    let server = server();
    let (_, s) = scrape(&server).await;
    // Registered at zero before anything happened.
    for (name, labels) in [
        ("exai_dedup_hits_total", vec![]),
        ("exai_dedup_misses_total", vec![]),
        ("exai_dedup_bytes_saved_total", vec![]),
        ("exai_cleanup_runs_total", vec![("outcome", "completed")]),
        ("exai_cleanup_runs_total", vec![("outcome", "error")]),
        ("exai_cleanup_items_total", vec![("outcome", "deleted")]),
        ("exai_error_events_total", vec![]),
        ("exai_error_events_dropped_total", vec![]),
        ("exai_error_groups_created_total", vec![]),
        ("exai_error_analyses_total", vec![("outcome", "over_budget")]),
        ("exai_auditor_analyses_total", vec![("outcome", "ok")]),
        ("exai_auditor_observations_total", vec![("severity", "high")]),
        ("exai_actor_restarts_total", vec![("actor", "toollog")]),
        ("exai_actor_restarts_total", vec![("actor", "error_watcher")]),
        ("exai_mailbox_rejections_total", vec![("actor", "coordinator")]),
        ("exai_dashboard_streams", vec![]),
        ("exai_connections_total", vec![("protocol", "legacy-ws")]),
        ("exai_connections_active", vec![("protocol", "mcp-http")]),
        ("exai_connections_rejected_total", vec![("reason", "per_ip")]),
        ("exai_ws_frames_total", vec![("direction", "in")]),
        ("exai_toollog_rows_dropped_total", vec![("reason", "queue_full")]),
        ("exai_outbox_shed_total", vec![("kind", "terminal")]),
    ] {
        assert_eq!(s.value(name, &labels), 0.0, "{name}{labels:?}");
    }
    let names = s.names();
    for family in [
        "exai_process_cpu_seconds_total",
        "exai_process_resident_memory_bytes",
        "exai_process_open_fds",
        "exai_uptime_seconds",
        "exai_toollog_queue_rows",
        "exai_global_wait_seconds_bucket",
        "exai_tool_call_duration_seconds_bucket",
    ] {
        assert!(names.contains(&family), "{family} missing");
    }
    // Bounded label values: nothing that looks like an id, a path or a uuid.
    for (_, labels) in s.0.keys() {
        for (k, v) in labels {
            assert!(v.len() <= 40 && !v.contains('/') && !v.contains(' '), "unbounded-looking label {k}={v}");
        }
    }
}

#[actix_rt::test]
async fn promtool_accepts_the_scrape_when_installed() {
    let server = server();
    let mut c = WsClient::connect(&server.ws_url("/mcp"), WsOptions::mcp()).await;
    c.mcp_initialize().await;
    c.request(1, "tools/call", json!({"name": "version"})).await;
    let (text, _) = scrape(&server).await;
    let Some(promtool) =
        ["/usr/bin/promtool", "/usr/local/bin/promtool"].into_iter().find(|p| std::path::Path::new(p).exists())
    else {
        eprintln!("promtool is not installed: skipping its check here (.ci/run installs it and runs it)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("scrape.txt");
    std::fs::write(&file, &text).unwrap();
    let out = run_with_timeout(
        Command::new("sh").arg("-c").arg(format!("{promtool} check metrics < {}", file.display())),
        Duration::from_secs(30),
    );
    assert!(out.success(), "promtool check metrics failed:\n{}", out.describe());
    assert!(out.stdout.trim().is_empty() && out.stderr.trim().is_empty(), "promtool warnings:\n{}", out.describe());
}

#[actix_rt::test]
async fn a_metrics_token_guards_the_scrape() {
    const AUTH: &str = "client-auth-token-0123456789";
    const METRICS: &str = "prometheus-scrape-token-0123456789";
    // Without a metrics token /metrics stays open, even with an auth token set.
    let open = ServerProcess::start(ServerOptions::new().auth_token(AUTH));
    assert_eq!(http::get(&open.http_url("/metrics"), &[]).await.status, 200);
    let server = ServerProcess::start(ServerOptions::new().auth_token(AUTH).env("EXAI_SERVER__METRICS_TOKEN", METRICS));
    let r = http::get(&server.http_url("/metrics"), &[]).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    assert!(r.body.contains("server.metrics_token") && !r.body.contains(METRICS), "{}", r.body);
    let client = format!("Bearer {AUTH}");
    assert_eq!(http::get(&server.http_url("/metrics"), &[("authorization", client.as_str())]).await.status, 401);
    // As Prometheus sends it (`authorization: {credentials: ...}` = a bearer header).
    let bearer = format!("Bearer {METRICS}");
    let r = http::get(&server.http_url("/metrics"), &[("authorization", bearer.as_str())]).await;
    assert_eq!(r.status, 200);
    assert!(r.body.contains("exai_uptime_seconds"));
    // Health stays open for probes.
    assert_eq!(http::get(&server.http_url("/health/live"), &[]).await.status, 200);
}

/// A documented label: its name and the values the docs list (`None` when the list is
/// open-ended or refers elsewhere).
type DocLabel = (String, Option<Vec<String>>);

/// The rows of the metrics table in docs/OBSERVABILITY.md: family and labels.
fn documented_families() -> Vec<(String, Vec<DocLabel>)> {
    let text = std::fs::read_to_string(crate::common::tools::repo_root().join("docs/OBSERVABILITY.md")).unwrap();
    let ticked = |s: &str| -> Vec<String> {
        s.split('`').enumerate().filter(|(i, _)| i % 2 == 1).map(|(_, t)| t.to_string()).collect()
    };
    let mut out = Vec::new();
    for line in text.lines().filter(|l| l.starts_with("| `exai_")) {
        let cells: Vec<&str> = line.split(" | ").collect();
        let name = cells[0].trim_start_matches("| ").trim_matches('`').to_string();
        let mut labels = Vec::new();
        let mut rest = cells[2];
        // `name` (`value`, `value`), `name`, ...
        while let Some(start) = rest.find('`') {
            let after = &rest[start + 1..];
            let Some(end) = after.find('`') else { break };
            let label = after[..end].to_string();
            rest = &after[end + 1..];
            let mut values = None;
            if let Some(stripped) = rest.trim_start().strip_prefix('(') {
                let close = stripped.find(')').unwrap_or(stripped.len());
                let inside = &stripped[..close];
                let listed = ticked(inside);
                if !inside.contains('…') && !listed.is_empty() {
                    values = Some(listed);
                }
                rest = stripped.get(close + 1..).unwrap_or("");
            }
            labels.push((label, values));
        }
        out.push((name, labels));
    }
    out
}

#[actix_rt::test]
async fn the_docs_list_exactly_the_families_a_scrape_has() {
    let server = server();
    let (text, s) = scrape(&server).await;
    let mut families: BTreeMap<String, BTreeMap<String, std::collections::BTreeSet<String>>> = BTreeMap::new();
    for line in text.lines().filter(|l| l.starts_with("# TYPE ")) {
        families.entry(line.split_whitespace().nth(2).unwrap().to_string()).or_default();
    }
    for (series, labels) in s.0.keys() {
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| series.strip_suffix(suffix).filter(|f| families.contains_key(*f)))
            .unwrap_or(series);
        let entry = families.get_mut(family).unwrap_or_else(|| panic!("{series} has no # TYPE line"));
        for (k, v) in labels.iter().filter(|(k, _)| k != "le") {
            entry.entry(k.clone()).or_default().insert(v.clone());
        }
    }
    let docs = documented_families();
    let documented = |family: &str| {
        docs.iter().any(|(d, _)| d == family || d.strip_suffix('*').is_some_and(|prefix| family.starts_with(prefix)))
    };
    let missing: Vec<&String> = families.keys().filter(|f| !documented(f)).collect();
    assert!(missing.is_empty(), "families in the scrape but not in docs/OBSERVABILITY.md: {missing:?}");
    for (name, labels) in &docs {
        if name.ends_with('*') {
            assert!(families.keys().any(|f| f.starts_with(name.trim_end_matches('*'))), "{name}: nothing matches");
            continue;
        }
        // Cluster families exist only in cluster mode (tests/integration/cluster.rs runs it).
        if name.starts_with("exai_cluster_") && !families.contains_key(name) {
            continue;
        }
        let scraped = families.get(name).unwrap_or_else(|| panic!("{name} is documented but not in the scrape"));
        let names: Vec<&String> = labels.iter().map(|(l, _)| l).collect();
        let got: Vec<&String> = scraped.keys().collect();
        let mut want = names.clone();
        want.sort();
        assert_eq!(got, want, "{name}: label names in the scrape vs the docs");
        for (label, values) in labels {
            for v in values.iter().flatten() {
                assert!(scraped[label].contains(v), "{name}: documented {label}=\"{v}\" is not exported (at zero)");
            }
        }
    }
    // Provider series are there at zero before any provider request.
    for (name, labels) in [
        ("exai_provider_errors_total", vec![("provider", "kimi"), ("class", "server")]),
        ("exai_provider_retries_total", vec![("provider", "glm"), ("class", "rate_limit")]),
        ("exai_provider_fallbacks_total", vec![("provider", "kimi")]),
        ("exai_provider_requests_total", vec![("provider", "glm")]),
        ("exai_protocol_errors_total", vec![("protocol", "mcp-ws"), ("code", "-32602")]),
    ] {
        assert_eq!(s.value(name, &labels), 0.0, "{name}{labels:?}");
    }
}

/// JSON-RPC errors count under the documented transport labels, never an undocumented one:
/// a bad request over WebSocket moves `protocol="mcp-ws"`, a bad frame too.
#[actix_rt::test]
async fn protocol_errors_count_under_the_documented_labels() {
    let server = server();
    let mut c = WsClient::connect(&server.ws_url("/mcp"), WsOptions::mcp()).await;
    c.mcp_initialize().await;
    let (_, before) = scrape(&server).await;
    let r = c.request(5, "tools/list", json!({"cursor": "bogus"})).await;
    assert_eq!(r["error"]["code"], -32602, "{r}");
    c.send_text("{not json").await;
    let parse_error = c.recv_json(Duration::from_secs(10)).await;
    assert_eq!(parse_error["error"]["code"], -32700, "{parse_error}");
    let (text, after) = scrape(&server).await;
    let delta = |labels: &[(&str, &str)]| {
        after.value("exai_protocol_errors_total", labels)
            - before.get("exai_protocol_errors_total", labels).unwrap_or(0.0)
    };
    assert_eq!(delta(&[("protocol", "mcp-ws"), ("code", "-32602")]), 1.0);
    assert_eq!(delta(&[("protocol", "mcp-ws"), ("code", "-32700")]), 1.0);
    assert!(!text.contains("protocol=\"mcp\""), "no undocumented protocol label");
}
