//! Routing: every catalogue model reaches its own vendor's endpoint, never the other one;
//! unknown models are a clear tool error; auto routing; streaming to MCP and legacy clients.

use super::*;
use crate::common::ws::{WsClient, WsOptions};

#[actix_rt::test]
async fn every_catalogue_model_reaches_only_its_provider() {
    let m = Mocks::start(&[]);
    let server = ServerProcess::start(options(&m));
    let mut c = mcp(&server).await;
    let list = call(&mut c, 1, "listmodels", json!({})).await;
    let providers = ok(&list)["providers"].as_array().unwrap().clone();
    let mut id = 10;
    let mut checked = 0;
    for p in providers {
        let provider = p["provider"].as_str().unwrap().to_string();
        for model in p["models"].as_array().unwrap() {
            let name = model["name"].as_str().unwrap();
            let (kimi_before, glm_before) = (chats(&m.kimi).await.len(), chats(&m.glm).await.len());
            id += 1;
            let r = call(&mut c, id, "chat", json!({"prompt": format!("hello {name}"), "model": name})).await;
            let s = ok(&r);
            assert_eq!(s["metadata"]["provider"], provider.as_str(), "{name}");
            assert_eq!(s["metadata"]["model"], name);
            let (kimi_after, glm_after) = (chats(&m.kimi).await, chats(&m.glm).await);
            let (hit, miss, before_hit, before_miss) = if provider == "kimi" {
                (&kimi_after, &glm_after, kimi_before, glm_before)
            } else {
                (&glm_after, &kimi_after, glm_before, kimi_before)
            };
            assert_eq!(hit.len(), before_hit + 1, "{name} did not reach {provider}");
            assert_eq!(miss.len(), before_miss, "{name} reached the wrong provider");
            assert_eq!(hit.last().unwrap()["body"]["model"], name);
            checked += 1;
        }
        // Aliases resolve to the canonical name on the same provider.
        if let Some(alias) = p["models"].as_array().unwrap().iter().find_map(|m| m["aliases"][0].as_str()) {
            id += 1;
            let r = call(&mut c, id, "chat", json!({"prompt": "alias", "model": alias})).await;
            assert_eq!(ok(&r)["metadata"]["provider"], provider.as_str());
        }
    }
    assert!(checked >= 19, "only {checked} models checked");
    let r = call(&mut c, 2, "chat", json!({"prompt": "x", "model": "gpt-9"})).await;
    let e = err(&r);
    assert_eq!(e["code"], "VALIDATION_ERROR");
    assert!(e["message"].as_str().unwrap().contains("glm-4.5-flash"), "{e}");
    // auto routes a simple tool to the GLM speed model.
    let r = call(&mut c, 3, "chat", json!({"prompt": "auto please"})).await;
    assert_eq!(ok(&r)["metadata"]["model"], "glm-4.5-flash");
    assert!(ok(&r)["metadata"]["routing"].as_str().unwrap().starts_with("auto"));
    // The keys never appear in logs.
    let logs = server.stderr_text();
    assert!(!logs.contains(KIMI_KEY) && !logs.contains(GLM_KEY));
}

#[actix_rt::test]
async fn chunks_stream_to_mcp_and_legacy_clients() {
    let m = Mocks::start(&["--stream-chunk-delay-ms", "30", "--response-style", "varied"]);
    let server = ServerProcess::start(options(&m));
    let mut c = mcp(&server).await;
    c.send_json(&json!({"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"chat",
        "arguments":{"prompt":"tell me a story","model":"kimi-k2-0905-preview"},"_meta":{"progressToken":"tok"}}}))
        .await;
    let (r, before) = c.recv_response(&json!(5), T).await;
    let answer = ok(&r["result"])["content"].as_str().unwrap().to_string();
    let streamed: String = before
        .iter()
        .filter(|m| m["method"] == "notifications/progress" && m["params"]["progressToken"] == "tok")
        .filter_map(|m| m["params"]["message"].as_str())
        .collect();
    assert!(before.iter().filter(|m| m["method"] == "notifications/progress").count() >= 2);
    assert_eq!(streamed, answer, "the streamed chunks make up the whole answer");
    assert_eq!(chats(&m.kimi).await.last().unwrap()["body"]["stream"], true);

    let mut l = WsClient::connect(&server.ws_url("/"), WsOptions::default()).await;
    l.send_json(&json!({"op":"hello"})).await;
    l.recv_json(T).await;
    l.send_json(&json!({"op":"call_tool","request_id":"s1","name":"chat_EXAI-WS",
        "arguments":{"prompt":"stream to legacy","model":"glm-4.5"}}))
        .await;
    let (res, before) = l.recv_json_until(T, |v| v["op"] == "call_tool_res").await;
    assert_eq!(res["ok"], true, "{res}");
    let chunks: String =
        before.iter().filter(|f| f["op"] == "stream_chunk").filter_map(|f| f["chunk"].as_str()).collect();
    assert!(!chunks.is_empty());
    let text: Value = serde_json::from_str(res["text"].as_str().unwrap()).unwrap();
    assert_eq!(chunks, text["content"].as_str().unwrap());
    assert!(before.iter().any(|f| f["op"] == "stream_complete"));
    assert!(res["outputs"][0]["metadata"]["latency_metrics"]["provider_name"] == "glm");
}
