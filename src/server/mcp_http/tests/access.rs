//! Host (DNS rebinding), Origin and bearer-token checks.

use super::*;
use exai_actors::access::AccessPolicy;

#[actix_web::test]
async fn foreign_origin_is_403_with_a_jsonrpc_body() {
    let fx = fixture(McpHttpConfig {
        access: AccessPolicy { allowed_origins: vec!["https://app.example.com".into()], ..AccessPolicy::default() },
        ..McpHttpConfig::default()
    });
    let app = app!(fx.http);
    let resp = send!(app, rpc(&init_body()).insert_header(("origin", "http://evil.example.com")));
    assert_eq!(resp.status(), 403);
    let v = body_json(resp).await;
    assert_eq!(v["id"], Value::Null);
    assert_eq!(v["error"]["code"], -32600);
    assert_eq!(send!(app, rpc(&init_body()).insert_header(("origin", "null"))).status(), 403);
    assert_eq!(send!(app, rpc(&init_body()).insert_header(("origin", "file://localhost"))).status(), 403);
    for ok in ["http://localhost:5173", "https://127.0.0.1", "http://[::1]:8080", "https://app.example.com"] {
        assert_eq!(send!(app, rpc(&init_body()).insert_header(("origin", ok))).status(), 200, "{ok}");
    }
}

#[actix_web::test]
async fn foreign_host_is_403() {
    let fx = fixture(McpHttpConfig {
        access: AccessPolicy { allowed_hosts: vec!["mcp.internal".into()], ..AccessPolicy::default() },
        ..McpHttpConfig::default()
    });
    let app = app!(fx.http);
    // What the conformance scenario dns-rebinding-protection sends.
    let evil = rpc(&init_body())
        .insert_header(("host", "evil.example.com"))
        .insert_header(("origin", "http://evil.example.com"));
    let resp = send!(app, evil);
    assert_eq!(resp.status(), 403);
    assert_eq!(body_json(resp).await["error"]["code"], -32600);
    assert_eq!(send!(app, rpc(&init_body()).insert_header(("host", "evil.example.com"))).status(), 403);
    for ok in ["localhost", "127.0.0.1:39999", "[::1]:8080", "mcp.internal:9000", "MCP.internal"] {
        let req = rpc(&init_body()).insert_header(("host", ok)).insert_header(("origin", format!("http://{ok}")));
        let status = send!(app, req).status();
        // A configured host is allowed as Host, but its origin is not a loopback one.
        let expect = if ok.to_ascii_lowercase().starts_with("mcp.internal") { 403 } else { 200 };
        assert_eq!(status, expect, "{ok}");
        assert_eq!(send!(app, rpc(&init_body()).insert_header(("host", ok))).status(), 200, "{ok}");
    }
    // The same checks guard GET and DELETE.
    let get = TestRequest::get()
        .uri("/mcp")
        .insert_header(("host", "evil.example.com"))
        .insert_header(("accept", "text/event-stream"));
    assert_eq!(send!(app, get).status(), 403);
    let del = TestRequest::delete()
        .uri("/mcp")
        .insert_header(("host", "evil.example.com"))
        .insert_header(("mcp-session-id", "x"));
    assert_eq!(send!(app, del).status(), 403);
}

#[actix_web::test]
async fn bearer_token_is_required_when_configured() {
    let fx = fixture(McpHttpConfig { auth_token: Some("s3cret-token".into()), ..McpHttpConfig::default() });
    let app = app!(fx.http);
    let resp = send!(app, rpc(&init_body()));
    assert_eq!(resp.status(), 401);
    assert_eq!(resp.headers().get("www-authenticate").unwrap(), "Bearer");
    let v = body_json(resp).await;
    assert!(!v.to_string().contains("s3cret"), "the token is never echoed");
    assert_eq!(send!(app, rpc(&init_body()).insert_header(("authorization", "Bearer wrong"))).status(), 401);
    assert_eq!(send!(app, rpc(&init_body()).insert_header(("authorization", "Basic s3cret-token"))).status(), 401);
    let resp = send!(app, rpc(&init_body()).insert_header(("authorization", "Bearer s3cret-token")));
    assert_eq!(resp.status(), 200);
    let sid = resp.headers().get("mcp-session-id").unwrap().to_str().unwrap().to_string();
    let list = json!({"jsonrpc":"2.0","id":1,"method":"tools/list"});
    assert_eq!(send!(app, on(&sid, &list)).status(), 401, "every request needs the token");
    assert_eq!(send!(app, on(&sid, &list).insert_header(("authorization", "bearer s3cret-token"))).status(), 200);
}
