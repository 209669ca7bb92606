//! A minimal Streamable HTTP MCP client for the tests: `initialize` (keeps the
//! `Mcp-Session-Id`), then one JSON response per POSTed request.

use super::http;
use serde_json::{json, Value};

/// One Streamable HTTP MCP session.
pub struct McpHttpClient {
    url: String,
    session: String,
    token: Option<String>,
}

impl McpHttpClient {
    /// `initialize` + `notifications/initialized` on `url` (…/mcp), with an optional bearer.
    pub async fn open(url: &str, token: Option<&str>) -> McpHttpClient {
        let mut c = McpHttpClient { url: url.to_string(), session: String::new(), token: token.map(str::to_string) };
        let init = json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{
            "protocolVersion": super::ws::MCP_PROTOCOL_VERSION, "capabilities": {},
            "clientInfo": {"name": "exai-integration-tests", "version": "0.0.0"}}});
        let r = c.post(&init).await;
        assert_eq!(r.status, 200, "initialize: {}", r.body);
        c.session = r.header("mcp-session-id").expect("initialize sets Mcp-Session-Id").to_string();
        let r = c.post(&json!({"jsonrpc":"2.0","method":"notifications/initialized"})).await;
        assert_eq!(r.status, 202, "notifications/initialized: {}", r.body);
        c
    }

    async fn post(&self, body: &Value) -> http::Reply {
        let bearer = self.token.as_ref().map(|t| format!("Bearer {t}"));
        let mut headers = vec![("accept", "application/json, text/event-stream")];
        if !self.session.is_empty() {
            headers.push(("mcp-session-id", self.session.as_str()));
            headers.push(("mcp-protocol-version", super::ws::MCP_PROTOCOL_VERSION));
        }
        if let Some(b) = &bearer {
            headers.push(("authorization", b.as_str()));
        }
        http::post_json(&self.url, body, &headers).await
    }

    /// A request and its JSON-RPC response (`params` omitted when `Value::Null`).
    pub async fn request(&self, id: i64, method: &str, params: Value) -> Value {
        let mut m = json!({"jsonrpc": "2.0", "id": id, "method": method});
        if !params.is_null() {
            m["params"] = params;
        }
        let r = self.post(&m).await;
        assert_eq!(r.status, 200, "{method}: {}", r.body);
        r.json()
    }
}
