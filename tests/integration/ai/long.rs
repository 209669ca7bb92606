//! Real-vendor behaviour through the provider simulator ([`crate::common::sim`]): long
//! thinking silences and long streams within the phase timeouts (one test on the real
//! defaults, in real time), each phase named in TIMEOUT, keep-alive progress while a provider
//! is silent, `Retry-After` beyond the budget, fallback after a failed candidate, the vendors'
//! account errors, and secrets masked in what is relayed and logged.

use super::*;
use crate::common::sim::{Answer, Reply, Sim};
use std::time::Instant;

/// Both vendors on one simulator (scaled by `scale`), keys set, fast retries.
fn sim_options(sim: &Sim) -> ServerOptions {
    ServerOptions::new()
        .set("providers.kimi.base_url", &sim.base_url())
        .set("providers.glm.base_url", &sim.base_url())
        .set("retry.rate_limit_base_ms", "50")
        .set("retry.server_base_ms", "50")
        .set("retry.timeout_base_ms", "50")
        .set("retry.timeout_max_ms", "50")
        .set("retry.network_base_ms", "50")
        .env("KIMI_API_KEY", KIMI_KEY)
        .env("GLM_API_KEY", GLM_KEY)
}

async fn call_wait(
    c: &mut WsClient,
    id: i64,
    tool: &str,
    args: Value,
    progress: bool,
    wait: Duration,
) -> (Value, Vec<Value>) {
    let mut params = json!({"name": tool, "arguments": args});
    if progress {
        params["_meta"] = json!({"progressToken": id});
    }
    c.send_json(&json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":params})).await;
    let (r, notes) = c.recv_response(&json!(id), wait).await;
    (r["result"].clone(), notes)
}

/// On the shipped defaults, in real time: a thinking model answering a plain call after 40 s,
/// and a 40 s stream, both on one connection at once, both succeed (the old `chat` ended both
/// in TIMEOUT at 30 s). The streamed one sees its chunks and keep-alive progress.
#[actix_rt::test]
async fn chat_answering_after_40s_and_streaming_for_40s_succeed_on_default_timeouts() {
    let sim = Sim::start(1.0);
    sim.push(Reply::after_secs(40.0), 1);
    sim.set_default(Reply::stream_for(40.0, 20));
    let server = ServerProcess::start(sim_options(&sim));
    let mut slow = mcp(&server).await;
    let mut streamed = mcp(&server).await;
    let t0 = Instant::now();
    let wait = Duration::from_secs(90);
    let (a, b) = futures_util::join!(
        call_wait(&mut slow, 1, "chat", json!({"prompt": "think hard", "model": "glm-4.5"}), false, wait),
        async {
            actix_rt::time::sleep(Duration::from_millis(300)).await;
            call_wait(&mut streamed, 2, "chat", json!({"prompt": "stream long", "model": "kimi-k2.6"}), true, wait)
                .await
        }
    );
    assert!(t0.elapsed() >= Duration::from_secs(40), "{:?}", t0.elapsed());
    assert_eq!(ok(&a.0)["content"], "simulated answer");
    let s = ok(&b.0);
    assert_eq!(s["content"].as_str().unwrap().split_whitespace().count(), 20, "{s}");
    let chunks: Vec<&str> =
        b.1.iter().filter_map(|n| n["params"]["message"].as_str()).filter(|m| m.starts_with('w')).collect();
    assert_eq!(chunks.len(), 20, "every chunk reached the client as progress: {:?}", b.1);
    assert_eq!(chunks.concat(), s["content"].as_str().unwrap());
}

#[actix_rt::test]
async fn each_phase_is_named_in_the_timeout_error_and_the_tool_timeout_does_not_cut_provider_calls() {
    let sim = Sim::start(0.05);
    let server = ServerProcess::start(
        sim_options(&sim)
            // The old cut: simple tools at 1 s. A 3 s answer must still come through.
            .set("timeouts.simple_tool_secs", "1")
            .set("providers.glm.first_byte_timeout_secs", "4")
            .set("providers.glm.idle_timeout_secs", "1")
            .set("providers.glm.total_timeout_secs", "6")
            .set("retry.timeout_attempts", "1"),
    );
    let mut c = mcp(&server).await;
    let glm = |p: &str| json!({"prompt": p, "model": "glm-4.5"});
    // 60 s of thinking, scaled: 3 s, above the 1 s tool timeout, below the 4 s first byte.
    sim.push(Reply::after_secs(60.0), 1);
    let (r, _) = call_wait(&mut c, 1, "chat", glm("slow"), false, T).await;
    ok(&r);
    // 100 s of silence (5 s) against 4 s to the first byte.
    sim.push(Reply::after_secs(100.0), 1);
    let (r, _) = call_wait(&mut c, 2, "chat", glm("silent"), false, T).await;
    let e = err(&r);
    assert_eq!(e["code"], "TIMEOUT", "{e}");
    let m = e["message"].as_str().unwrap();
    assert!(m.contains("phase first_byte (limit 4s)"), "{m}");
    assert!(m.contains("connect 10s, first_byte 4s, idle 1s, total 6s"), "{m}");
    assert_eq!(e["provider"], "glm");
    // A stream with a 40 s pause (2 s) after its first chunk: idle.
    sim.push(Reply::Answer(Answer { chunks: 3, pause: Some((1, Duration::from_secs(40))), ..Answer::default() }), 1);
    let (r, _) = call_wait(&mut c, 3, "chat", glm("pause"), true, T).await;
    assert!(err(&r)["message"].as_str().unwrap().contains("phase idle (limit 1s)"), "{r}");
    // A flowing 160 s stream (8 s, chunks 0.4 s apart) against a 6 s total.
    sim.push(Reply::stream_for(160.0, 20), 1);
    let (r, _) = call_wait(&mut c, 4, "chat", glm("flow"), true, T).await;
    assert!(err(&r)["message"].as_str().unwrap().contains("phase total (limit 6s)"), "{r}");
    // The TIMEOUT rows carry the provider.
    assert_eq!(metric(&server, "exai_tool_calls_total{outcome=\"timeout\",tool=\"chat\"}").await, 3.0);
}

#[actix_rt::test]
async fn keep_alive_progress_flows_while_a_thinking_model_is_silent() {
    let sim = Sim::start(0.1);
    let server = ServerProcess::start(sim_options(&sim).set("timeouts.progress_interval_secs", "1"));
    let mut c = mcp(&server).await;
    // 40 s of silence before the first token (4 s scaled).
    sim.push(Reply::Answer(Answer { first_after: Duration::from_secs(40), ..Answer::default() }), 1);
    let (r, notes) = call_wait(&mut c, 7, "chat", json!({"prompt": "think", "model": "glm-4.5"}), true, T).await;
    ok(&r);
    let keepalives: Vec<&Value> = notes
        .iter()
        .filter(|n| n["params"]["message"].as_str().is_some_and(|m| m.starts_with("waiting for glm (glm-4.5)")))
        .collect();
    assert!(keepalives.len() >= 2, "{notes:#?}");
    let values: Vec<f64> = notes.iter().filter_map(|n| n["params"]["progress"].as_f64()).collect();
    assert!(values.windows(2).all(|w| w[1] > w[0]), "progress increases: {values:?}");
}

#[actix_rt::test]
async fn retry_after_beyond_the_budget_fails_at_once_with_retry_after() {
    let sim = Sim::start(1.0);
    let server = ServerProcess::start(
        sim_options(&sim)
            .set("providers.glm.first_byte_timeout_secs", "20")
            .set("providers.glm.idle_timeout_secs", "20")
            .set("providers.glm.total_timeout_secs", "20"),
    );
    let mut c = mcp(&server).await;
    // 120 s exceeds both the 60 s honoured and the 20 s budget: no wait, no retry.
    sim.push(Reply::rate_limited(Some(120.0)), 1);
    let t0 = Instant::now();
    let (r, _) = call_wait(&mut c, 1, "chat", json!({"prompt": "x", "model": "glm-4.5"}), false, T).await;
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    let e = err(&r);
    assert_eq!(e["code"], "PROVIDER_ERROR");
    assert_eq!(e["retry_after"], 120);
    assert!(e["message"].as_str().unwrap().contains("Your account reached its RPM limit"), "{e}");
    // 15 s is within the 60 s honoured but not within what is left of 20 s after a first wait.
    sim.push(Reply::rate_limited(Some(0.2)), 1);
    sim.push(Reply::rate_limited(Some(25.0)), 1);
    let t0 = Instant::now();
    let (r, _) = call_wait(&mut c, 2, "chat", json!({"prompt": "y", "model": "glm-4.5"}), false, T).await;
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    assert_eq!(err(&r)["retry_after"], 25);
    assert_eq!(sim.chats().len(), 3, "one request, then one retry after 0.2 s, then the error");
}

#[actix_rt::test]
async fn account_errors_keep_the_vendor_message_are_never_retried_and_fall_back() {
    let sim = Sim::start(1.0);
    let server = ServerProcess::start(sim_options(&sim).set("providers.glm.fallback", "kimi-k2.6"));
    let mut c = mcp(&server).await;
    let balance = "Insufficient balance or no resource package. Please recharge.";
    sim.push(Reply::zai(429, "1113", balance), 1);
    sim.push(Reply::moonshot(429, "exceeded_current_quota_error", "Your account org-1 is suspended"), 1);
    let (r, _) = call_wait(&mut c, 1, "chat", json!({"prompt": "x", "model": "glm-4.5"}), false, T).await;
    let e = err(&r);
    // GLM's 429/1113 went to the fallback at once; Kimi's quota error ends the call.
    assert_eq!(e["code"], "PROVIDER_ERROR");
    assert_eq!(e["provider"], "kimi");
    let m = e["message"].as_str().unwrap();
    assert!(
        m.contains("account problem") && m.contains("exceeded_current_quota_error") && m.contains("suspended"),
        "{m}"
    );
    let chats = sim.chats();
    assert_eq!(chats.len(), 2, "no retry of an account error: {chats:?}");
    assert_eq!(chats[0].body["model"], "glm-4.5");
    assert_eq!(chats[1].body["model"], "kimi-k2.6");
    assert_eq!(metric(&server, "exai_provider_errors_total{class=\"account\",provider=\"glm\"}").await, 1.0);
    assert_eq!(metric(&server, "exai_provider_errors_total{class=\"account\",provider=\"kimi\"}").await, 1.0);
    drop(server);
    // Without a fallback the Z.ai message reaches the caller as the vendor wrote it.
    let server = ServerProcess::start(sim_options(&sim));
    let mut c = mcp(&server).await;
    sim.push(Reply::zai(429, "1112", "Your account has been locked, please contact customer service"), 1);
    let (r, _) = call_wait(&mut c, 2, "chat", json!({"prompt": "y", "model": "glm-4.5"}), false, T).await;
    let m = err(&r)["message"].as_str().unwrap().to_string();
    assert!(m.contains("code 1112") && m.contains("Your account has been locked, please contact"), "{m}");
    assert!(!m.contains("rate limited"), "{m}");
    assert_eq!(sim.chats().len(), 3);
}

#[actix_rt::test]
async fn secrets_echoed_by_a_vendor_never_reach_the_client_or_the_log() {
    let sim = Sim::start(1.0);
    let mut server = ServerProcess::start(sim_options(&sim).arg("--log-level").arg("debug"));
    let mut c = mcp(&server).await;
    let echo = format!("Invalid Authorization: Bearer {GLM_KEY} (key {GLM_KEY} unknown; also Bearer sk-proxy-777)");
    sim.push(Reply::status(401, json!({"error": {"message": echo}})), 1);
    let (r, _) = call_wait(&mut c, 1, "chat", json!({"prompt": "x", "model": "glm-4.5"}), false, T).await;
    let text = r.to_string();
    assert!(text.contains("Bearer ***") && text.contains("key *** unknown"), "{text}");
    assert!(!text.contains(GLM_KEY) && !text.contains("sk-proxy-777"), "{text}");
    assert_eq!(sim.chats()[0].auth.as_deref(), Some(format!("Bearer {GLM_KEY}").as_str()), "the key was sent");
    let log = server.stop_and_collect_stderr(Duration::from_secs(10));
    assert!(log.contains("Bearer ***"), "the error was logged");
    assert!(!log.contains(GLM_KEY) && !log.contains("sk-proxy-777"), "{log}");
}

/// `kimi-k2.6` is served, a model added only in the config file is accepted and routed to its
/// vendor, and `listmodels` shows windows and prices (catalogue and config).
#[actix_rt::test]
async fn current_and_config_added_models_are_served_and_listed_with_prices_and_windows() {
    let sim = Sim::start(1.0);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("exai.toml");
    std::fs::write(
        &file,
        "[[providers.kimi.models]]\nname = \"kimi-k2.8-preview\"\ncontext_window = 524288\n\
         max_output_tokens = 65536\ninput_price = 1.25\noutput_price = 5.0\ntools = true\n",
    )
    .unwrap();
    let server = ServerProcess::start(sim_options(&sim).arg("--config").arg(file.to_str().unwrap()));
    let mut c = mcp(&server).await;
    for (id, model) in [(1, "kimi-k2.6"), (2, "kimi-k2.8-preview"), (3, "glm-5.1")] {
        let (r, _) = call_wait(&mut c, id, "chat", json!({"prompt": "hi", "model": model}), false, T).await;
        assert_eq!(ok(&r)["metadata"]["model"], model);
    }
    let models: Vec<String> = sim.chats().iter().map(|r| r.body["model"].as_str().unwrap().to_string()).collect();
    assert_eq!(models, ["kimi-k2.6", "kimi-k2.8-preview", "glm-5.1"]);
    let list = call(&mut c, 4, "listmodels", json!({})).await;
    let all: Vec<Value> = ok(&list)["providers"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["models"].as_array().unwrap().clone())
        .collect();
    let find = |n: &str| all.iter().find(|m| m["name"] == n).cloned().unwrap_or_else(|| panic!("{n} not listed"));
    let k = find("kimi-k2.6");
    assert_eq!(k["context_window"], 262_144);
    assert_eq!(k["price_per_million_tokens"], json!({"input": 0.6, "output": 2.5, "currency": "USD"}));
    assert!(k["aliases"].as_array().unwrap().contains(&json!("kimi-k2-0905-preview")), "retired ids alias it");
    let added = find("kimi-k2.8-preview");
    assert_eq!(added["context_window"], 524_288);
    assert_eq!(added["price_per_million_tokens"]["input"], 1.25);
    assert_eq!(find("glm-5.1")["context_window"], 200_000);
    // Token usage per provider, catalogue model and kind (the simulator reports 11 + 7).
    assert_eq!(
        metric(&server, "exai_provider_tokens_total{kind=\"prompt\",model=\"kimi-k2.6\",provider=\"kimi\"}").await,
        11.0
    );
    assert_eq!(
        metric(
            &server,
            "exai_provider_tokens_total{kind=\"completion\",model=\"kimi-k2.8-preview\",provider=\"kimi\"}"
        )
        .await,
        7.0
    );
    let text = crate::mcp_ws::reqwest_text(&server.http_url("/metrics")).await;
    assert!(
        text.contains("exai_provider_tokens_total{kind=\"prompt\",model=\"glm-4.7\",provider=\"glm\"} 0"),
        "pre-registered"
    );
}

/// The smaller vendor fixes, seen at the simulator: GLM's in-chat `web_search` tool carries
/// `enable: true`; GLM thinking is turned off for thinking_mode minimal/low; `status` shows each
/// provider's breaker; PROVIDER_ERROR rows count per provider in `/api/providers`.
#[actix_rt::test]
async fn glm_bodies_breaker_state_and_provider_error_counts() {
    let sim = Sim::start(1.0);
    let server = ServerProcess::start(sim_options(&sim).set("retry.server_attempts", "1"));
    let mut c = mcp(&server).await;
    let args = json!({"prompt": "news?", "model": "glm-4.5", "use_websearch": true, "thinking_mode": "low"});
    let (r, _) = call_wait(&mut c, 1, "chat", args, false, T).await;
    ok(&r);
    let body = &sim.chats()[0].body;
    assert_eq!(body["thinking"], json!({"type": "disabled"}), "{body}");
    let search = body["tools"].as_array().unwrap().iter().find(|t| t["type"] == "web_search").unwrap();
    assert_eq!(search["web_search"]["enable"], true, "{search}");
    let (r, _) =
        call_wait(&mut c, 2, "chat", json!({"prompt": "deep", "model": "glm-4.5", "thinking_mode": "high"}), false, T)
            .await;
    ok(&r);
    assert_eq!(sim.chats()[1].body["thinking"], json!({"type": "enabled"}));

    sim.push(Reply::status(500, json!({"error": {"code": "500", "message": "internal"}})), 2);
    for id in 3..=4 {
        let (r, _) = call_wait(&mut c, id, "chat", json!({"prompt": "x", "model": "glm-4.5"}), false, T).await;
        assert_eq!(err(&r)["code"], "PROVIDER_ERROR");
        assert_eq!(err(&r)["provider"], "glm");
    }
    let status = call(&mut c, 5, "status", json!({})).await;
    let providers = ok(&status)["providers"].as_array().unwrap().clone();
    let glm = providers.iter().find(|p| p["name"] == "glm").unwrap();
    assert_eq!(glm["breaker"]["state"], "closed", "{glm}");
    assert_eq!(glm["breaker"]["transitions"], 0);
    // The tool-call log is written behind: wait for the rows.
    let url = server.http_url("/api/providers");
    let mut errors = 0;
    for _ in 0..50 {
        let v: Value = serde_json::from_str(&crate::mcp_ws::reqwest_text(&url).await).unwrap();
        let row = v["providers"].as_array().unwrap().iter().find(|p| p["name"] == "glm").cloned().unwrap_or_default();
        errors = row["errors"].as_u64().unwrap_or(0);
        if errors == 2 {
            break;
        }
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(errors, 2, "PROVIDER_ERROR rows carry their provider");
}

/// A custom OpenAI-compatible provider without `api_key_env` (Ollama, vLLM) is usable and is
/// called without an `Authorization` header.
#[actix_rt::test]
async fn a_custom_provider_without_a_key_is_called_without_authorization() {
    let sim = Sim::start(1.0);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("exai.toml");
    std::fs::write(
        &file,
        format!(
            "[[providers.custom]]\nname = \"local\"\nbase_url = \"{}\"\n\n[[providers.custom.models]]\nname = \"local-llm\"\n",
            sim.base_url()
        ),
    )
    .unwrap();
    let server = ServerProcess::start(ServerOptions::new().arg("--config").arg(file.to_str().unwrap()));
    let mut c = mcp(&server).await;
    let (r, _) = call_wait(&mut c, 1, "chat", json!({"prompt": "hi", "model": "local-llm"}), false, T).await;
    assert_eq!(ok(&r)["metadata"]["provider"], "local");
    let chats = sim.chats();
    assert_eq!(chats.len(), 1);
    assert_eq!(chats[0].auth, None, "no Authorization header");
}

/// Three turns on one `continuation_id`, each from a new unnamed connection with JSON-RPC id 1,
/// and a daemon restart between turns 1 and 2: every turn succeeds and the provider receives
/// the whole history. (Uses `conversations.cross_session=true` until threads belong to the
/// principal.)
#[actix_rt::test]
async fn three_turns_with_reused_ids_across_a_restart_keep_the_whole_history() {
    let sim = Sim::start(1.0);
    let dir = tempfile::tempdir().unwrap();
    let opts = || sim_options(&sim).data_dir(dir.path()).set("conversations.cross_session", "true");
    let mut server = ServerProcess::start(opts());
    let mut cid = String::new();
    for (turn, word) in ["PLUM", "PEAR", "FIG"].iter().enumerate() {
        if turn == 1 {
            server.sigterm();
            assert_eq!(server.wait_exit(Duration::from_secs(20)).and_then(|s| s.code()), Some(0));
            server = ServerProcess::start(opts());
        }
        sim.push(Reply::text(&format!("noted {word}")), 1);
        let mut c = mcp(&server).await;
        let mut args = json!({"prompt": format!("remember {word}"), "model": "glm-4.5"});
        if !cid.is_empty() {
            args["continuation_id"] = json!(cid);
        }
        let (r, _) = call_wait(&mut c, 1, "chat", args, false, T).await;
        let s = ok(&r);
        assert_eq!(s["content"], format!("noted {word}"));
        if cid.is_empty() {
            cid = s["continuation_offer"]["continuation_id"].as_str().unwrap().to_string();
        }
    }
    let last = sim.chats().last().unwrap().body["messages"].clone();
    let texts: Vec<String> = last
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] != "system")
        .map(|m| m["content"].as_str().unwrap_or_default().to_string())
        .collect();
    let joined = texts.join(" | ");
    for needle in ["remember PLUM", "noted PLUM", "remember PEAR", "noted PEAR", "remember FIG"] {
        assert!(joined.contains(needle), "{needle} missing from the history sent: {joined}");
    }
}
