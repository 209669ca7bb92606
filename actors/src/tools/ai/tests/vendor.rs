//! kimi_chat_with_tools, kimi_intent_analysis, glm_web_search, glm_payload_preview.

use crate::error::ToolError;
use crate::settings::CoreSettings;
use crate::tools::ai::glm::{GlmPayloadPreview, GlmWebSearch};
use crate::tools::ai::kimi::{KimiChatWithTools, KimiIntentAnalysis};
use crate::tools::ai::testkit::{answer, Harness};
use serde_json::json;

#[actix_rt::test]
async fn kimi_chat_with_tools_routes_to_kimi_and_returns_tool_calls() {
    let h = Harness::new(CoreSettings::default(), |_, req| {
        let mut a = answer(&req.model, "");
        if req.tools.is_some() {
            a.tool_calls =
                vec![json!({ "id": "c1", "type": "function", "function": { "name": "lookup", "arguments": "{}" } })];
            a.finish_reason = Some("tool_calls".into());
        }
        Ok(a)
    })
    .await;
    let tool = KimiChatWithTools::new();
    let tools = json!([{ "type": "function", "function": { "name": "lookup", "parameters": { "type": "object" } } }]);
    let r = h
        .ok(
            &tool,
            json!({ "messages": [{ "role": "user", "content": "find x" }], "tools": tools, "use_websearch": true }),
        )
        .await;
    assert_eq!(r["status"], "success");
    assert_eq!(r["tool_calls"][0]["function"]["name"], "lookup");
    assert_eq!(r["finish_reason"], "tool_calls");
    assert_eq!(r["usage"]["total_tokens"], 15);
    let (provider, req) = h.script.requests().pop().unwrap();
    assert_eq!(
        (provider.as_str(), req.model.as_str()),
        ("kimi", "kimi-k2.7-code-highspeed"),
        "auto = Kimi speed model"
    );
    assert!(req.web_search);
    assert_eq!(req.tools.as_ref().unwrap().len(), 1);

    let e = h
        .call(&tool, json!({ "messages": [{ "role": "user", "content": "x" }], "model": "glm-4.6" }))
        .await
        .unwrap_err();
    assert!(
        matches!(e, ToolError::InvalidArguments { ref field, ref message } if field == "model" && message.contains("Kimi")),
        "{e}"
    );
    assert_eq!(h.script.calls(), 1, "a non-Kimi model is refused before any call");
}

#[actix_rt::test]
async fn intent_analysis_parses_or_fails_clearly() {
    let h = Harness::new(CoreSettings::default(), |_, req| {
        let user = req.messages[1].content.as_str().unwrap_or_default();
        let text = if user.contains("weather") {
            "```json\n{\"needs_websearch\": true, \"complexity\": \"simple\", \"recommended_provider\": \"glm\", \
             \"recommended_model\": \"glm-4.5-flash\", \"reasoning\": \"current data\"}\n```"
        } else {
            "I think this is complex."
        };
        Ok(answer(&req.model, text))
    })
    .await;
    let tool = KimiIntentAnalysis::new();
    let r = h.ok(&tool, json!({ "prompt": "weather in Oslo today?" })).await;
    assert_eq!(r["intent"]["needs_websearch"], true);
    assert_eq!(r["intent"]["recommended_model"], "glm-4.5-flash");
    assert_eq!(r["recommended_model_known"], true);
    let (provider, req) = h.script.requests().pop().unwrap();
    assert_eq!(provider, "kimi");
    assert!(req.messages[1].content.as_str().unwrap().contains("[Web search available: yes]"));
    let e = h.call(&tool, json!({ "prompt": "prove P != NP" })).await.unwrap_err();
    assert!(matches!(e, ToolError::Execution(ref m) if m.contains("not the expected JSON")), "{e}");
}

#[actix_rt::test]
async fn glm_web_search_sends_the_vendor_body() {
    let h = Harness::echo(CoreSettings::default(), "x").await;
    let r =
        h.ok(&GlmWebSearch::new(), json!({ "search_query": "rust actix", "search_recency_filter": "oneWeek" })).await;
    assert_eq!(r["status"], "success");
    assert_eq!(r["result_count"], 1);
    assert_eq!(r["metadata"]["provider_calls"], 1);
    assert_eq!(
        h.script.searches(),
        vec![
            json!({ "search_query": "rust actix", "count": 10, "search_engine": "search-prime", "search_recency_filter": "oneWeek" })
        ]
    );
    let capped =
        Harness::echo(CoreSettings { max_provider_calls_per_invocation: 0, ..CoreSettings::default() }, "x").await;
    assert!(capped.call(&GlmWebSearch::new(), json!({ "search_query": "q" })).await.is_err());
    assert!(capped.script.searches().is_empty());
}

#[actix_rt::test]
async fn glm_payload_preview_shows_the_body_without_network() {
    let h = Harness::echo(CoreSettings::default(), "x").await;
    let tool = GlmPayloadPreview::new();
    let r = h
        .ok(
            &tool,
            json!({ "prompt": "hi", "model": "glm-4.6", "thinking_mode": "high", "use_websearch": true,
                           "temperature": 0.2, "system_prompt": "be brief" }),
        )
        .await;
    let p = &r["payload"];
    assert_eq!(p["model"], "glm-4.6");
    assert_eq!(p["thinking"], json!({ "type": "enabled" }));
    assert_eq!(p["tools"][0]["type"], "web_search");
    assert_eq!(p["messages"][0], json!({ "role": "system", "content": "be brief" }));
    assert_eq!(p["temperature"], 0.2);
    assert_eq!(r["endpoint"], "http://127.0.0.1:9/glm/chat/completions");
    assert_eq!(r["notes"], json!([]));
    let r = h.ok(&tool, json!({ "prompt": "hi", "thinking_mode": "max" })).await;
    assert_eq!(r["model"], "glm-4.5-flash", "auto = the default GLM model");
    assert!(r["notes"][0].as_str().unwrap().contains("no thinking mode"));
    let e = h.call(&tool, json!({ "prompt": "hi", "model": "kimi-k2" })).await.unwrap_err();
    assert!(matches!(e, ToolError::InvalidArguments { ref field, .. } if field == "model"), "{e}");
    assert_eq!(h.script.calls(), 0);
}
