//! Vendor specifics: Kimi's `$web_search` echo loop, idempotency and reasoning; GLM's
//! thinking / web search / tool streaming fields and its standalone `POST /web_search`.

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use exai::providers::{transport_factory, VendorKind};
use exai_actors::provider::types::{ProviderError, StreamEvent};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};

use super::{config, generous, run_chat, transport, user, TEST_KEY};
use crate::common::mock::{install_crypto, MockProvider};

fn web_search_args() -> Value {
    json!({"search_result": {"search_id": "s-42"}, "usage": {"total_tokens": 17}})
}

#[actix_rt::test]
async fn kimi_web_search_echo_loop_hands_the_arguments_back() {
    let mock = MockProvider::start_llmock(&[]);
    // First answer: a $web_search call (streamed in argument fragments); llmock's auto tool
    // mode then answers in text once the tool result comes back.
    mock.scenario(json!([{"type": "reply", "tool_calls": [{"name": "$web_search", "arguments": web_search_args()}]}]))
        .await;
    let t = transport(&mock, VendorKind::Kimi);
    let mut req = user("What happened in Rust news today?", true);
    req.web_search = true;
    req.idempotency_key = Some("idem-loop".into());
    let run = run_chat(&*t, &req, &generous()).await;
    let answer = run.result.as_ref().unwrap();
    assert_eq!(answer.finish_reason.as_deref(), Some("stop"));
    assert!(answer.tool_calls.is_empty(), "the $web_search calls are handled inside chat");
    assert!(!answer.content.is_empty());
    assert_eq!(run.content_events(), answer.content);

    let journal = mock.journal().await;
    assert_eq!(journal.len(), 2, "one echo round: {journal:?}");
    let first = &journal[0]["body"];
    assert_eq!(first["tools"], json!([{"type": "builtin_function", "function": {"name": "$web_search"}}]));
    assert_eq!(first["tool_choice"], "auto");
    assert!(first.get("stream_options").is_none(), "not sent to Kimi");
    // The echo round is built by the same body rules.
    assert_eq!(journal[1]["body"]["tools"], first["tools"]);
    assert_eq!(journal[1]["body"]["tool_choice"], "auto");
    let messages = journal[1]["body"]["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 3, "{messages:?}");
    let call = &messages[1]["tool_calls"][0];
    assert_eq!(messages[1]["role"], "assistant");
    assert_eq!(call["function"]["name"], "$web_search");
    let arguments = call["function"]["arguments"].as_str().unwrap();
    assert_eq!(serde_json::from_str::<Value>(arguments).unwrap(), web_search_args());
    assert_eq!(
        messages[2],
        json!({"role": "tool", "tool_call_id": call["id"], "name": "$web_search", "content": arguments}),
        "the tool result is the call's arguments, verbatim"
    );
}

#[actix_rt::test]
async fn kimi_web_search_loop_is_bounded() {
    let mock = MockProvider::start_llmock(&[]);
    // A model that asks for $web_search forever (times: null = permanent).
    let always = json!({"type": "reply", "times": null, "tool_calls": [{"name": "$web_search", "arguments": {}}]});
    mock.scenario(json!([always])).await;
    install_crypto();
    let mut cfg = config(mock.base_url(), VendorKind::Kimi);
    cfg.kimi_web_search_max_rounds = 2;
    let t = transport_factory(cfg)();
    let mut req = user("search please", false);
    req.web_search = true;
    let err = run_chat(&*t, &req, &generous()).await.result.unwrap_err();
    assert!(matches!(err, ProviderError::Protocol(_)), "{err:?}");
    assert_eq!(mock.journal().await.len(), 3, "the first call plus two echo rounds");
}

#[actix_rt::test]
async fn kimi_returns_other_tool_calls_to_the_caller_untouched() {
    let mock = MockProvider::start_llmock(&[]);
    mock.scenario(json!([{"type": "reply", "tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}]}]))
        .await;
    let t = transport(&mock, VendorKind::Kimi);
    let mut req = user("weather in Paris?", false);
    req.web_search = true;
    req.tools =
        Some(vec![json!({"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}})]);
    let answer = run_chat(&*t, &req, &generous()).await.result.unwrap();
    assert_eq!(answer.finish_reason.as_deref(), Some("tool_calls"));
    assert_eq!(answer.tool_calls.len(), 1);
    assert_eq!(answer.tool_calls[0]["function"]["name"], "get_weather");
    let args: Value = serde_json::from_str(answer.tool_calls[0]["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args, json!({"city": "Paris"}));
    let journal = mock.journal().await;
    assert_eq!(journal.len(), 1);
    assert_eq!(journal[0]["body"]["tools"].as_array().unwrap().len(), 2, "function tool plus the builtin");
}

#[actix_rt::test]
async fn kimi_sends_idempotency_and_auth_headers_and_parses_reasoning() {
    let fixtures = json!({"fixtures": [{
        "match": {"userMessage": "think"},
        "response": {"content": "The answer is 42.", "reasoning": "Let me think step by step."}
    }]});
    // aimock checks the bearer key (and redacts it in its journal).
    let mock = MockProvider::start_aimock_with_keys(&fixtures, &[TEST_KEY]);
    let t = transport(&mock, VendorKind::Kimi);

    let mut req = user("think", false);
    req.idempotency_key = Some("idem-123".into());
    let answer = run_chat(&*t, &req, &generous()).await.result.unwrap();
    assert_eq!(answer.content, "The answer is 42.");
    assert_eq!(answer.reasoning.as_deref(), Some("Let me think step by step."));

    let run = run_chat(&*t, &user("think", true), &generous()).await;
    let answer = run.result.as_ref().unwrap();
    assert_eq!(answer.reasoning.as_deref(), Some("Let me think step by step."));
    assert_eq!(answer.content, "The answer is 42.");
    let reasoning: String = run
        .events
        .iter()
        .filter_map(|(_, e)| match e {
            StreamEvent::Reasoning(r) => Some(r.as_str()),
            StreamEvent::Content(_) => None,
        })
        .collect();
    assert_eq!(reasoning, "Let me think step by step.");
    assert_eq!(run.content_events(), "The answer is 42.");
    assert!(matches!(run.events.first(), Some((_, StreamEvent::Reasoning(_)))), "reasoning streams first");

    // The same call with a wrong key is refused by the mock.
    let mut wrong = config(mock.base_url(), VendorKind::Kimi);
    wrong.api_key = Some("sk-wrong".into());
    let err = run_chat(&*transport_factory(wrong)(), &user("think", false), &generous()).await.result.unwrap_err();
    assert!(matches!(err, ProviderError::Auth { status: 401, .. }), "{err:?}");

    let journal = mock.journal().await;
    assert_eq!(journal.len(), 2, "aimock journals only the requests it let through");
    assert_eq!(journal[0]["headers"]["idempotency-key"], "idem-123");
    assert!(journal[0]["headers"].get("authorization").is_some());
    assert!(journal[1]["headers"].get("idempotency-key").is_none());
    assert_eq!(journal[1]["body"]["stream"], true);
    assert!(journal[1]["body"].get("stream_options").is_none(), "not sent to Kimi");
}

#[actix_rt::test]
async fn glm_sends_thinking_web_search_and_tool_stream() {
    let mock = MockProvider::start_llmock(&[]);
    let t = transport(&mock, VendorKind::Glm);
    let mut req = user("What is the weather in the city?", true);
    req.thinking = Some(true);
    req.web_search = true;
    let weather = json!({"type": "function", "function": {
        "name": "get_weather",
        "description": "weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    }});
    req.tools = Some(vec![weather.clone()]);
    let answer = run_chat(&*t, &req, &generous()).await.result.unwrap();
    // llmock (tool mode auto) calls the offered function; its arguments arrive in fragments.
    assert_eq!(answer.finish_reason.as_deref(), Some("tool_calls"));
    assert_eq!(answer.tool_calls[0]["function"]["name"], "get_weather");
    let args: Value = serde_json::from_str(answer.tool_calls[0]["function"]["arguments"].as_str().unwrap()).unwrap();
    assert!(args.get("city").is_some_and(Value::is_string), "{args}");

    let journal = mock.journal().await;
    let body = &journal[0]["body"];
    assert_eq!(body["thinking"], json!({"type": "enabled"}));
    assert_eq!(
        body["tools"],
        json!([weather, {"type": "web_search",
                         "web_search": {"enable": true, "search_engine": "search_pro_jina", "search_result": true}}])
    );
    assert_eq!(body["tool_stream"], true);
    assert_eq!(body["stream"], true);
    assert_eq!(body["tool_choice"], "auto", "the injected web_search tool comes with tool_choice auto");
    assert!(body.get("stream_options").is_none(), "not sent to GLM");
}

/// No installable mock serves GLM's `POST /web_search`, so this one runs against a small
/// in-test actix-web fake that records what it received.
#[actix_rt::test]
async fn glm_standalone_web_search_posts_the_params_and_returns_the_body() {
    type Seen = Arc<Mutex<Vec<(Option<String>, Value)>>>;
    let seen: Seen = Arc::default();
    let recorded = seen.clone();
    let server = HttpServer::new(move || {
        let seen = recorded.clone();
        App::new().route(
            "/api/paas/v4/web_search",
            web::post().to(move |req: HttpRequest, body: web::Json<Value>| {
                let seen = seen.clone();
                async move {
                    let auth = req.headers().get("authorization").and_then(|v| v.to_str().ok()).map(str::to_string);
                    let query = body["search_query"].clone();
                    seen.lock().unwrap().push((auth, body.into_inner()));
                    HttpResponse::Ok().json(json!({
                        "id": "ws-1",
                        "search_result": [{"title": "result for", "content": query, "link": "https://example.com"}]
                    }))
                }
            }),
        )
    })
    .workers(1)
    .bind(("127.0.0.1", 0))
    .unwrap();
    let port = server.addrs()[0].port();
    let server = server.run();
    let handle = server.handle();
    actix_rt::spawn(server);

    install_crypto();
    let base = format!("http://127.0.0.1:{port}/api/paas/v4");
    let t = transport_factory(config(base, VendorKind::Glm))();
    let params = json!({"search_engine": "search-prime", "search_query": "actix actors", "count": 3});
    let result = t.web_search(&params, &generous()).await.unwrap();
    assert_eq!(result["search_result"][0]["content"], "actix actors");
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen, vec![(Some(format!("Bearer {TEST_KEY}")), params.clone())]);

    for kind in [VendorKind::Kimi, VendorKind::OpenAiCompatible] {
        let other = transport_factory(config(format!("http://127.0.0.1:{port}/v1"), kind))();
        let err = other.web_search(&params, &generous()).await.unwrap_err();
        assert!(matches!(err, ProviderError::Unsupported(_)), "{kind:?}: {err:?}");
    }
    handle.stop(false).await;
}
