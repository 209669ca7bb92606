//! The dashboard against the real binary.
//!
//! Without a browser: the page and the JSON API exist, are embedded (CSP, no outside
//! resources), are guarded by Host/Origin checks and the admin token (header or `?token=`),
//! the event stream delivers live overview events, and the routes vanish when disabled.
//! With a browser: `tests/clients/dashboard/check_dashboard.mjs` drives the system's headless
//! Chromium through playwright-core (installed by `scripts/test.sh`): the page loads with no
//! console errors, its numbers change by exactly the test traffic, Resolve and Acknowledge
//! work, nothing overflows horizontally in a 400 px wide window, and a screenshot is taken
//! (copied to `docs/dashboard.png` when `EXAI_UPDATE_SCREENSHOT=1`).

use crate::common::cmd::run_with_timeout;
use crate::common::http;
use crate::common::{tools, ServerOptions, ServerProcess};
use exai::store::{self, StoreOptions};
use exai_actors::env::now_ms;
use exai_actors::ports::NewObservation;
use serde_json::{json, Value};
use std::process::Command;
use std::time::Duration;

const ADMIN: &str = "dashboard-admin-token-0123456789";

fn server() -> ServerProcess {
    ServerProcess::start(
        ServerOptions::new().set("debug.fault_injection", "true").env("EXAI_SERVER__ADMIN_TOKEN", ADMIN),
    )
}

fn bearer() -> String {
    format!("Bearer {ADMIN}")
}

#[actix_rt::test]
async fn page_and_api_are_embedded_and_guarded() {
    let server = server();
    // No token, wrong token: 401. Token as header or query: 200.
    assert_eq!(http::get(&server.http_url("/dashboard"), &[]).await.status, 401);
    assert_eq!(http::get(&server.http_url("/dashboard?token=wrong-token-0123456789"), &[]).await.status, 401);
    let page = http::get(&server.http_url(&format!("/dashboard?token={ADMIN}")), &[]).await;
    assert_eq!(page.status, 200);
    assert!(page.header("content-type").is_some_and(|c| c.starts_with("text/html")));
    let csp = page.header("content-security-policy").unwrap();
    assert!(csp.contains("default-src 'none'") && csp.contains("connect-src 'self'"), "{csp}");
    assert!(page.body.contains("<title>exai dashboard</title>"));
    assert!(page.body.contains("renderOverview") && page.body.contains("--card"), "CSS and JS are inlined");
    assert!(!page.body.contains("@DASHBOARD_"), "every placeholder is replaced");
    for outside in ["http://", "https://", "//cdn", "@import", "fonts.g"] {
        assert!(!page.body.contains(outside), "the page must not reference outside resources ({outside})");
    }
    let auth = bearer();
    let h = [("authorization", auth.as_str())];
    assert_eq!(http::get(&server.http_url("/api/overview"), &[]).await.status, 401);
    let o = http::get(&server.http_url("/api/overview"), &h).await;
    assert_eq!(o.status, 200, "{}", o.body);
    let o = o.json();
    assert_eq!(o["server"]["name"], "exai");
    assert_eq!(o["server"]["store"], "sqlite");
    assert_eq!(o["inflight"]["max"], 512);
    let breakers: Vec<(&str, &str)> = o["breakers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| (b["provider"].as_str().unwrap(), b["state"].as_str().unwrap()))
        .collect();
    assert_eq!(breakers, [("glm", "closed"), ("kimi", "closed")], "every enabled provider's live breaker");
    assert_eq!(o["dedup"], json!({"source": "store", "files": 0, "references": 0, "reused": 0, "bytes_saved": 0}));
    assert_eq!(o["cleanup"]["source"], "store");
    assert_eq!(o["cleanup"]["runs"], 0);
    assert_eq!(o["error_watcher"]["enabled"], true);
    assert_eq!(o["auditor"]["ai"]["enabled"], false);
    let names: Vec<&str> = o["actors"].as_array().unwrap().iter().map(|a| a["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "toollog",
            "conversation-writer",
            "breaker:kimi",
            "provider:kimi",
            "breaker:glm",
            "provider:glm",
            "dedup",
            "cleanup",
            "error_watcher"
        ]
    );

    // DNS rebinding and cross-site requests are refused even with the token.
    let evil_host = [("authorization", auth.as_str()), ("host", "evil.example:8079")];
    assert_eq!(http::get(&server.http_url("/api/overview"), &evil_host).await.status, 403);
    let evil_origin = [("authorization", auth.as_str()), ("origin", "https://evil.example")];
    let r = http::post_json(&server.http_url("/api/errors/1/resolve"), &json!({}), &evil_origin).await;
    assert_eq!(r.status, 403);

    // Every list endpoint answers; unknown ids are 404, bad input 400.
    for path in [
        "/api/timeseries?secs=60",
        "/api/providers",
        "/api/toolcalls?limit=5",
        "/api/errors?resolved=false&limit=5",
        "/api/auditor/observations?acknowledged=false",
    ] {
        let r = http::get(&server.http_url(path), &h).await;
        assert_eq!(r.status, 200, "{path}: {}", r.body);
    }
    let p = http::get(&server.http_url("/api/providers"), &h).await.json();
    assert_eq!(p["configured"], 0, "the test environment sets no provider key: {p}");
    assert_eq!(http::get(&server.http_url("/api/toolcalls?outcome=weird"), &h).await.status, 400);
    assert_eq!(http::get(&server.http_url("/api/errors?resolved=maybe"), &h).await.status, 400);
    let r = http::post_json(&server.http_url("/api/auditor/observations/4242/acknowledge"), &json!({}), &h).await;
    assert_eq!(r.status, 404, "{}", r.body);

    // The live feed: an overview event at once, then one per second.
    let mut resp =
        awc::Client::default().get(server.http_url(&format!("/dashboard/events?token={ADMIN}"))).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.headers().get("content-type").unwrap(), "text/event-stream");
    let mut text = String::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while text.matches("event: overview").count() < 2 && std::time::Instant::now() < deadline {
        use futures_util::StreamExt;
        match actix_rt::time::timeout(Duration::from_secs(5), resp.next()).await {
            Ok(Some(Ok(chunk))) => text.push_str(&String::from_utf8_lossy(&chunk)),
            other => panic!("event stream ended early: {other:?}; got {text}"),
        }
    }
    let first = text.split("\n\n").next().unwrap();
    let data: Value = serde_json::from_str(first.strip_prefix("event: overview\ndata: ").unwrap()).unwrap();
    assert_eq!(data["server"]["name"], "exai");
    let metrics = http::get(&server.http_url("/metrics"), &[]).await.body;
    assert!(metrics.contains("exai_dashboard_streams 1"), "the open stream is counted");
}

#[actix_rt::test]
async fn dashboard_can_be_switched_off() {
    let server = ServerProcess::start(ServerOptions::new().set("monitoring.dashboard_enabled", "false"));
    assert_eq!(http::get(&server.http_url("/dashboard"), &[]).await.status, 404);
    assert_eq!(http::get(&server.http_url("/api/overview"), &[]).await.status, 404);
    let root = http::get(&server.http_url("/"), &[]).await.json();
    assert_eq!(root["dashboard"], Value::Null);
    assert_eq!(http::get(&server.http_url("/metrics"), &[]).await.status, 200);
}

/// The system Chromium the browser test drives (`EXAI_TEST_CHROMIUM`, default `/usr/bin/chromium`).
fn chromium() -> String {
    let path = std::env::var("EXAI_TEST_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        std::path::Path::new(&path).exists(),
        "Chromium not found at {path}: run `scripts/test.sh` (it installs the Debian package `chromium`) or set \
         EXAI_TEST_CHROMIUM"
    );
    path
}

#[actix_rt::test]
async fn dashboard_in_headless_chromium_shows_live_numbers() {
    let (script, node, path) = (tools::dashboard_script(), tools::node_bin_dir().join("node"), tools::path_with_node());
    let browser = chromium();
    let server = server();
    // Seed one auditor observation (no model is wired in this build) so Acknowledge can be clicked.
    let db = format!("sqlite://{}", server.data_dir().join("exai.db").display());
    let st = store::open(&db, &StoreOptions { migrate: false, ..StoreOptions::default() }).await.unwrap();
    st.add_observation(&NewObservation {
        tool_call_ref: None,
        observation: "calls to version are fast and healthy".into(),
        severity: "info".into(),
        category: "latency".into(),
        confidence: Some(0.9),
        recommendation: Some("nothing to do".into()),
        model_used: Some("seeded-by-test".into()),
        created_at_ms: now_ms(),
        metadata: json!({}),
    })
    .await
    .unwrap();
    st.close().await;

    let out_dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(node);
    cmd.arg(&script)
        .arg("--modules")
        .arg(tools::dashboard_dir())
        .args([
            "--base",
            &format!("http://{}", server.addr()),
            "--token",
            ADMIN,
            "--chromium",
            &browser,
            "--calls",
            "7",
            "--out",
        ])
        .arg(out_dir.path())
        .current_dir(script.parent().unwrap())
        .env("PATH", path);
    if std::env::var("EXAI_UPDATE_SCREENSHOT").is_ok_and(|v| v == "1") {
        cmd.arg("--copy-screenshot").arg(tools::repo_root().join("docs/dashboard.png"));
    }
    let run = run_with_timeout(&mut cmd, Duration::from_secs(120));
    let summary: Value = run
        .stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("no JSON summary from the browser test\n{}", run.describe()));
    assert!(
        run.success(),
        "browser test failed: {summary:#}\n{}\n--- server ---\n{}",
        run.describe(),
        server.stderr_text()
    );
    assert_eq!(summary["problems"], json!([]), "{summary:#}");
    let (before, after) = (summary["calls_before"].as_u64().unwrap(), summary["calls_after"].as_u64().unwrap());
    assert_eq!(after, before + 8, "7 good calls and 1 invalid one: {summary:#}");
    assert!(summary["not_ok"].as_u64().unwrap() >= 1);
    assert!(summary["sessions"].as_str().unwrap().contains("mcp-http 1"), "{summary:#}");
    assert!(summary["error_text"].as_str().unwrap().contains("dashboard test error <n> at <path>"), "{summary:#}");
    assert!(summary["observation_text"].as_str().unwrap().contains("calls to version are fast"), "{summary:#}");
    assert!(summary["providers_text"].as_str().unwrap().contains("no providers configured"), "{summary:#}");
    let breakers = summary["breakers_text"].as_str().unwrap();
    assert!(breakers.contains("kimi") && breakers.contains("closed") && breakers.contains("never"), "{summary:#}");
    assert_eq!(summary["actions"], "resolved and acknowledged");
    let narrow = &summary["narrow"];
    // 400 px minus a vertical scrollbar, if the browser draws one.
    let width = narrow["client_width"].as_u64().unwrap();
    assert!((370..=400).contains(&width), "{summary:#}");
    assert!(
        narrow["scroll_width"].as_u64() <= Some(width) && narrow["body_scroll_width"].as_u64() <= Some(width),
        "the page overflows horizontally at 400 px: {narrow}"
    );
    let shot = out_dir.path().join("dashboard.png");
    let png = std::fs::read(&shot).unwrap();
    assert!(png.len() > 10_000 && png.starts_with(b"\x89PNG"), "screenshot {} looks wrong", shot.display());
    // The operator actions reached the store.
    let auth = bearer();
    let h = [("authorization", auth.as_str())];
    let resolved = http::get(&server.http_url("/api/errors?resolved=true"), &h).await.json();
    assert_eq!(resolved["errors"][0]["resolution_notes"], "seen in the browser test");
    let acked = http::get(&server.http_url("/api/auditor/observations?acknowledged=true"), &h).await.json();
    assert_eq!(acked["count"], 1);
}

#[actix_rt::test]
async fn without_an_admin_token_the_auth_token_guards_the_admin_surface() {
    const AUTH: &str = "only-the-auth-token-0123456789";
    let server = ServerProcess::start(ServerOptions::new().auth_token(AUTH).set("debug.fault_injection", "true"));
    let bearer = format!("Bearer {AUTH}");
    let good = [("authorization", bearer.as_str())];
    let wrong = [("authorization", "Bearer wrong-token-0123456789abc")];
    let gets = [
        "/dashboard",
        "/dashboard/events",
        "/api/overview",
        "/api/timeseries?secs=60",
        "/api/providers",
        "/api/toolcalls?limit=5",
        "/api/errors",
        "/api/auditor/observations",
    ];
    for path in gets {
        assert_eq!(http::get(&server.http_url(path), &[]).await.status, 401, "{path} without a token");
        assert_eq!(http::get(&server.http_url(path), &wrong).await.status, 401, "{path} with a wrong token");
    }
    for path in ["/api/errors/1/resolve", "/api/auditor/observations/1/acknowledge"] {
        let r = http::post_json(&server.http_url(path), &json!({}), &[]).await;
        assert_eq!(r.status, 401, "{path} without a token: {}", r.body);
        // With the token the request gets through to the store (no such row).
        let r = http::post_json(&server.http_url(path), &json!({}), &good).await;
        assert_eq!(r.status, 404, "{path} with the token: {}", r.body);
    }
    let debug = http::post_json(&server.http_url("/admin/debug/error"), &json!({"message": "x"}), &[]).await;
    assert_eq!(debug.status, 401, "the fault-injection routes are guarded too");
    // With the token, as header or as ?token= (how the browser opens the page).
    for path in ["/api/overview", "/api/toolcalls?limit=5", "/api/errors"] {
        let r = http::get(&server.http_url(path), &good).await;
        assert_eq!(r.status, 200, "{path}: {}", r.body);
    }
    let page = http::get(&server.http_url(&format!("/dashboard?token={AUTH}")), &[]).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("<title>exai dashboard</title>"));
    let o = http::get(&server.http_url(&format!("/api/overview?token={AUTH}")), &[]).await;
    assert_eq!(o.status, 200);
    assert_eq!(o.json()["server"]["name"], "exai");
    // The refusal says which token is needed, without echoing any.
    let r = http::get(&server.http_url("/api/overview"), &[]).await;
    assert_eq!(r.json()["error"]["code"], "UNAUTHORIZED");
    assert!(r.body.contains("server.auth_token") && !r.body.contains(AUTH), "{}", r.body);
    // Shutdown and cleanup stay off without an admin token.
    assert_eq!(http::post_json(&server.http_url("/admin/shutdown"), &json!({}), &good).await.status, 404);
}

#[actix_rt::test]
async fn an_admin_token_replaces_the_auth_token_on_the_admin_surface() {
    const AUTH: &str = "client-auth-token-0123456789";
    let server = ServerProcess::start(ServerOptions::new().auth_token(AUTH).env("EXAI_SERVER__ADMIN_TOKEN", ADMIN));
    let client = format!("Bearer {AUTH}");
    let admin = bearer();
    for path in ["/dashboard", "/api/overview"] {
        let r = http::get(&server.http_url(path), &[("authorization", client.as_str())]).await;
        assert_eq!(r.status, 401, "{path}: the client token is not the admin token");
        let r = http::get(&server.http_url(path), &[("authorization", admin.as_str())]).await;
        assert_eq!(r.status, 200, "{path}: {}", r.body);
    }
}

#[actix_rt::test]
async fn dedup_and_cleanup_cards_read_the_store_not_this_process() {
    use exai_actors::files::ports::CleanupSummary;
    let server = server();
    // Another node sharing the store (here: the store API on the same database) records
    // uploads and a cleanup run; this process counted none of it.
    let db = format!("sqlite://{}", server.data_dir().join("exai.db").display());
    let st = store::open(&db, &StoreOptions { migrate: false, ..StoreOptions::default() }).await.unwrap();
    let reg = st.file_registry().unwrap();
    let sha = "d".repeat(64);
    let mut id = 0;
    for i in 0..3 {
        let r = reg.acquire_file_ref(&crate::files::registry::new_ref("kimi", &sha, now_ms() + i)).await.unwrap();
        id = r.file.id;
    }
    assert!(reg.complete_upload(id, "file-elsewhere", None, now_ms()).await.unwrap());
    let run = reg.start_cleanup_run("cli", false, now_ms()).await.unwrap();
    let summary =
        CleanupSummary { state: "audit".into(), deleted: 2, outcome: "completed".into(), ..Default::default() };
    reg.finish_cleanup_run(run, &summary, now_ms()).await.unwrap();
    drop(reg);
    st.close().await;
    let auth = bearer();
    let h = [("authorization", auth.as_str())];
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let o = loop {
        let o = http::get(&server.http_url("/api/overview"), &h).await.json();
        if o["dedup"]["files"] == 1 || std::time::Instant::now() > deadline {
            break o;
        }
        actix_rt::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(o["dedup"], json!({"source": "store", "files": 1, "references": 3, "reused": 2, "bytes_saved": 20}));
    assert_eq!(o["cleanup"]["runs"], 1, "{}", o["cleanup"]);
    assert_eq!(o["cleanup"]["items"]["deleted"], 2, "{}", o["cleanup"]);
    assert_eq!(o["cleanup"]["last_run"]["outcome"], "completed", "{}", o["cleanup"]);
    // This process's own counters saw nothing.
    let metrics = http::get(&server.http_url("/metrics"), &[]).await.body;
    assert!(metrics.contains("exai_dedup_hits_total 0"), "the card is not the process counter");
}
