//! MCP prompts over WebSocket and Streamable HTTP: one prompt per tool plus `continue`,
//! paginated like `tools/list`; `prompts/get` returns one user message naming the tool (and
//! the model of a `tool:model` name); unknown prompts and models are -32602.

use crate::common::mcp_http::McpHttpClient;
use crate::common::ws::{WsClient, WsOptions};
use crate::common::{ServerOptions, ServerProcess};
use serde_json::{json, Value};

/// One transport to list prompts on.
enum Via<'a> {
    Ws(&'a mut WsClient),
    Http(&'a McpHttpClient),
}

/// Every prompt name, following `nextCursor`.
async fn all_names(mut via: Via<'_>) -> Vec<String> {
    let mut names = Vec::new();
    let mut cursor: Option<String> = None;
    for id in 1..100 {
        let params = cursor.as_ref().map(|c| json!({"cursor": c})).unwrap_or(json!({}));
        let r = match &mut via {
            Via::Ws(c) => c.request(id, "prompts/list", params).await,
            Via::Http(h) => h.request(id, "prompts/list", params).await,
        };
        let page = r["result"]["prompts"].as_array().unwrap_or_else(|| panic!("prompts/list: {r}")).clone();
        assert!(page.len() <= 3, "page size is tools.page_size");
        for p in &page {
            assert!(p["description"].as_str().is_some_and(|d| !d.is_empty()), "{p}");
            names.push(p["name"].as_str().unwrap().to_string());
        }
        match r["result"]["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return names,
        }
    }
    panic!("prompts/list never ended");
}

fn text(r: &Value) -> &str {
    let msgs = r["result"]["messages"].as_array().unwrap_or_else(|| panic!("prompts/get: {r}"));
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0]["role"], "user");
    msgs[0]["content"]["text"].as_str().unwrap()
}

#[actix_rt::test]
async fn prompts_over_websocket_and_http() {
    let server = ServerProcess::start(ServerOptions::new().set("tools.page_size", "3"));
    let mut c = WsClient::connect(&server.ws_url("/mcp"), WsOptions::mcp()).await;
    let init = c.mcp_initialize().await;
    assert!(init["result"]["capabilities"]["prompts"].is_object(), "{init}");
    let h = McpHttpClient::open(&server.http_url("/mcp"), None).await;

    // The listing is every tool plus `continue`, on both transports.
    let mut tools = Vec::new();
    let mut cursor: Option<String> = None;
    for id in 100.. {
        let params = cursor.as_ref().map(|c| json!({"cursor": c})).unwrap_or(json!({}));
        let r = c.request(id, "tools/list", params).await;
        tools.extend(r["result"]["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap().to_string()));
        match r["result"]["nextCursor"].as_str() {
            Some(n) => cursor = Some(n.to_string()),
            None => break,
        }
    }
    let mut want = tools.clone();
    want.push("continue".to_string());
    assert_eq!(all_names(Via::Ws(&mut c)).await, want);
    let http_names = all_names(Via::Http(&h)).await;
    assert_eq!(http_names, want);

    // prompts/get: the tool, a pre-selected model, `continue`, the request argument.
    let r = c.request(200, "prompts/get", json!({"name": "chat"})).await;
    assert!(text(&r).contains("`chat` tool"), "{r}");
    let r =
        c.request(201, "prompts/get", json!({"name": "chat:glm-4.6", "arguments": {"request": "explain WAL"}})).await;
    let t = text(&r);
    assert!(t.contains("`chat` tool") && t.contains("`glm-4.6`") && t.ends_with("explain WAL"), "{t}");
    assert_eq!(r["result"]["_meta"]["exai/model"], "glm-4.6");
    let r = h.request(202, "prompts/get", json!({"name": "continue:glm-4.5"})).await;
    let t = text(&r);
    assert!(t.contains("continuation_id") && t.contains("`glm-4.5`"), "{t}");
    let r = h.request(203, "prompts/get", json!({"name": "thinkdeep"})).await;
    assert!(text(&r).contains("`thinkdeep` tool"), "{r}");

    // Unknown prompt, unknown model, a model on a built-in, bad arguments, bad cursor: -32602.
    for (i, params) in [
        json!({"name": "no-such-tool"}),
        json!({"name": "chat:no-such-model"}),
        json!({"name": "version:glm-4.6"}),
        json!({"name": "chat:"}),
        json!({"name": "chat", "arguments": {"request": 5}}),
        json!({}),
    ]
    .into_iter()
    .enumerate()
    {
        let r = c.request(300 + i as i64, "prompts/get", params.clone()).await;
        assert_eq!(r["error"]["code"], -32602, "{params}: {r}");
        let r = h.request(400 + i as i64, "prompts/get", params.clone()).await;
        assert_eq!(r["error"]["code"], -32602, "{params}: {r}");
    }
    let r = c.request(500, "prompts/list", json!({"cursor": "page-999"})).await;
    assert_eq!(r["error"]["code"], -32602, "{r}");
}
