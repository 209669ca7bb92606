//! AI tools end to end: the real binary, real MCP/legacy clients, and an independent
//! OpenAI-compatible mock (llmock) standing in for Kimi and GLM on 127.0.0.1. Covers routing
//! of every catalogue model, each retry class, the circuit breaker, fallback, permits after
//! cancel/timeout/disconnect, no retry after a streamed chunk, cancellation reaching the
//! upstream request, streaming to clients, and conversations across a restart.

mod faults;
mod http_resume;
mod long;
mod routing;
mod tasks;
mod threads;

use crate::common::mock::MockProvider;
use crate::common::ws::{WsClient, WsOptions};
use crate::common::{ServerOptions, ServerProcess};
use serde_json::{json, Value};
use std::time::Duration;

/// Timeout for one call in these tests.
pub const T: Duration = Duration::from_secs(30);
const KIMI_KEY: &str = "test-kimi-key-0123456789";
const GLM_KEY: &str = "test-glm-key-0123456789";

/// Two mocks: one standing in for Kimi, one for GLM.
pub struct Mocks {
    pub kimi: MockProvider,
    pub glm: MockProvider,
}

impl Mocks {
    pub fn start(args: &[&str]) -> Mocks {
        Mocks { kimi: MockProvider::start_llmock(args), glm: MockProvider::start_llmock(args) }
    }
}

/// Server options pointing both vendors at the mocks, with fast retries.
pub fn options(m: &Mocks) -> ServerOptions {
    ServerOptions::new()
        .set("providers.kimi.base_url", &m.kimi.base_url())
        .set("providers.glm.base_url", &m.glm.base_url())
        .set("retry.rate_limit_base_ms", "50")
        .set("retry.server_base_ms", "50")
        .set("retry.timeout_base_ms", "50")
        .set("retry.timeout_max_ms", "50")
        .set("retry.network_base_ms", "50")
        .env("KIMI_API_KEY", KIMI_KEY)
        .env("GLM_API_KEY", GLM_KEY)
}

/// An initialised MCP client.
pub async fn mcp(server: &ServerProcess) -> WsClient {
    let mut c = WsClient::connect(&server.ws_url("/mcp"), WsOptions::mcp()).await;
    c.mcp_initialize().await;
    c
}

/// `tools/call` and its `result` (panics on a JSON-RPC error).
pub async fn call(c: &mut WsClient, id: i64, tool: &str, args: Value) -> Value {
    c.send_json(&json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":{"name":tool,"arguments":args}})).await;
    let (r, _) = c.recv_response(&json!(id), T).await;
    assert!(r.get("result").is_some(), "JSON-RPC error: {r}");
    r["result"].clone()
}

/// The structured result of a successful AI tool call.
pub fn ok(result: &Value) -> &Value {
    assert_eq!(result["isError"], false, "tool failed: {result}");
    &result["structuredContent"]
}

/// The error object of a failed tool call.
pub fn err(result: &Value) -> &Value {
    assert_eq!(result["isError"], true, "tool should have failed: {result}");
    &result["structuredContent"]["error"]
}

/// Chat-completion requests the mock received.
pub async fn chats(m: &MockProvider) -> Vec<Value> {
    m.journal().await.into_iter().filter(|r| r["path"].as_str().unwrap_or("").ends_with("/chat/completions")).collect()
}

/// One metric sample's value, 0 when absent.
pub async fn metric(server: &ServerProcess, line_prefix: &str) -> f64 {
    let text = crate::mcp_ws::reqwest_text(&server.http_url("/metrics")).await;
    text.lines()
        .find(|l| l.starts_with(line_prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}
