//! Sessions: initialize, header rules, DELETE, expiry, limits, the GET stream, framing errors.

use super::*;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

fn tools_list() -> Value {
    json!({"jsonrpc":"2.0","id":1,"method":"tools/list"})
}

#[actix_web::test]
async fn initialize_creates_a_session() {
    let fx = fixture(McpHttpConfig::default());
    let app = app!(fx.http);
    let resp = send!(app, rpc(&init_body()));
    assert_eq!(resp.status(), 200);
    let sid = resp.headers().get("mcp-session-id").unwrap().to_str().unwrap().to_string();
    assert_eq!(sid.len(), 36);
    assert_eq!(resp.headers().get("content-type").unwrap(), "application/json");
    let v = body_json(resp).await;
    assert_eq!(v["id"], 0);
    assert_eq!(v["result"]["protocolVersion"], "2025-11-25");
    assert!(v["result"]["capabilities"]["logging"].is_object());
    assert_eq!(fx.http.session_count(), 1);
    assert_eq!(fx.env.runtime.sessions_http.load(Ordering::Relaxed), 1);
    assert_eq!(fx.env.metrics.connections_active.with_label_values(&["mcp-http"]).get(), 1);
    // Another initialize is another session with another id.
    let other = init!(app);
    assert_ne!(other, sid);
    assert_eq!(fx.http.session_count(), 2);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let rows = fx.store.sessions.lock().unwrap().clone();
    let row = rows.iter().find(|r| r.id == sid).expect("session row");
    assert_eq!(row.protocol, "mcp-http");
    assert_eq!(row.client_name.as_deref(), Some("http-test"));
    assert_eq!(row.closed_at_ms, None);
}

#[actix_web::test]
async fn session_header_missing_is_400_and_unknown_is_404() {
    let fx = fixture(McpHttpConfig::default());
    let app = app!(fx.http);
    let resp = send!(app, rpc(&tools_list()));
    assert_eq!(resp.status(), 400);
    let v = body_json(resp).await;
    assert_eq!(v["error"]["code"], -32600);
    assert_eq!(v["id"], Value::Null);
    let resp = send!(app, on("no-such-session", &tools_list()));
    assert_eq!(resp.status(), 404);
}

#[actix_web::test]
async fn ping_list_and_unknown_method() {
    let fx = fixture(McpHttpConfig::default());
    let app = app!(fx.http);
    let sid = init!(app);
    let v = body_json(send!(app, on(&sid, &json!({"jsonrpc":"2.0","id":"p","method":"ping"})))).await;
    assert_eq!(v, json!({"jsonrpc":"2.0","id":"p","result":{}}));
    let resp = send!(app, on(&sid, &tools_list()));
    assert_eq!(resp.headers().get("content-type").unwrap(), "application/json");
    let v = body_json(resp).await;
    let names: Vec<&str> = v["result"]["tools"].as_array().unwrap().iter().filter_map(|t| t["name"].as_str()).collect();
    assert!(names.contains(&"version") && names.contains(&"debug_sleep"), "{names:?}");
    let v = body_json(send!(app, on(&sid, &json!({"jsonrpc":"2.0","id":2,"method":"server/discover"})))).await;
    assert_eq!(v["error"]["code"], -32601);
    let v = body_json(send!(
        app,
        on(&sid, &json!({"jsonrpc":"2.0","id":3,"method":"tools/list","params":{"cursor":"zz"}}))
    ))
    .await;
    assert_eq!(v["error"]["code"], -32602);
}

#[actix_web::test]
async fn notifications_and_responses_get_202() {
    let fx = fixture(McpHttpConfig::default());
    let app = app!(fx.http);
    let sid = init!(app);
    let resp = send!(app, on(&sid, &json!({"jsonrpc":"2.0","method":"notifications/initialized"})));
    assert_eq!(resp.status(), 202);
    assert!(test::read_body(resp).await.is_empty());
    let resp = send!(app, on(&sid, &json!({"jsonrpc":"2.0","id":"srv-1","result":{}})));
    assert_eq!(resp.status(), 202);
    // A cancel for an id that is not in flight is tolerated.
    let cancel = json!({"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":99}});
    assert_eq!(send!(app, on(&sid, &cancel)).status(), 202);
}

#[actix_web::test]
async fn set_level_validates_the_level() {
    let fx = fixture(McpHttpConfig::default());
    let app = app!(fx.http);
    let sid = init!(app);
    let bad = json!({"jsonrpc":"2.0","id":1,"method":"logging/setLevel","params":{"level":"loud"}});
    let v = body_json(send!(app, on(&sid, &bad))).await;
    assert_eq!(v["error"]["code"], -32602);
    let good = json!({"jsonrpc":"2.0","id":2,"method":"logging/setLevel","params":{"level":"warning"}});
    let v = body_json(send!(app, on(&sid, &good))).await;
    assert_eq!(v["result"], json!({}));
}

#[actix_web::test]
async fn protocol_version_header_must_be_supported() {
    let fx = fixture(McpHttpConfig::default());
    let app = app!(fx.http);
    let sid = init!(app);
    let req = rpc(&tools_list()).insert_header(("mcp-session-id", sid.as_str()));
    assert_eq!(send!(app, req).status(), 200, "absent header means 2025-03-26 and is accepted");
    let req = rpc(&tools_list())
        .insert_header(("mcp-session-id", sid.as_str()))
        .insert_header(("mcp-protocol-version", "1999-01-01"));
    let resp = send!(app, req);
    assert_eq!(resp.status(), 400);
    assert_eq!(body_json(resp).await["error"]["code"], -32600);
    let req = rpc(&tools_list())
        .insert_header(("mcp-session-id", sid.as_str()))
        .insert_header(("mcp-protocol-version", "2025-06-18"));
    assert_eq!(send!(app, req).status(), 200);
}

#[actix_web::test]
async fn delete_ends_the_session() {
    let fx = fixture(McpHttpConfig::default());
    let app = app!(fx.http);
    let sid = init!(app);
    let del = || {
        TestRequest::delete()
            .uri("/mcp")
            .insert_header(("host", "localhost"))
            .insert_header(("mcp-session-id", sid.as_str()))
    };
    assert_eq!(send!(app, del()).status(), 204);
    assert_eq!(send!(app, on(&sid, &tools_list())).status(), 404);
    assert_eq!(send!(app, del()).status(), 404);
    let no_header = TestRequest::delete().uri("/mcp").insert_header(("host", "localhost"));
    assert_eq!(send!(app, no_header).status(), 400);
    assert_eq!(fx.http.session_count(), 0);
    assert_eq!(fx.env.runtime.sessions_http.load(Ordering::Relaxed), 0);
    assert_eq!(fx.env.metrics.connections_active.with_label_values(&["mcp-http"]).get(), 0);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let rows = fx.store.sessions.lock().unwrap().clone();
    assert!(rows.iter().find(|r| r.id == sid).unwrap().closed_at_ms.is_some());
}

#[actix_web::test]
async fn idle_sessions_expire() {
    let fx = fixture(McpHttpConfig { session_idle_secs: 60, ..McpHttpConfig::default() });
    let app = app!(fx.http);
    let sid = init!(app);
    assert_eq!(fx.http.sessions.expire(Instant::now()), 0, "fresh session is not idle");
    assert_eq!(fx.http.sessions.expire(Instant::now() + Duration::from_secs(61)), 1);
    assert_eq!(fx.http.session_count(), 0);
    assert_eq!(fx.env.runtime.sessions_http.load(Ordering::Relaxed), 0);
    assert_eq!(send!(app, on(&sid, &tools_list())).status(), 404);
}

#[actix_web::test]
async fn max_sessions_and_shutdown_refuse_initialize() {
    let fx = fixture(McpHttpConfig { max_sessions: 1, ..McpHttpConfig::default() });
    let app = app!(fx.http);
    let _sid = init!(app);
    let resp = send!(app, rpc(&init_body()));
    assert_eq!(resp.status(), 503);
    assert!(resp.headers().get("retry-after").is_some());
    assert!(resp.headers().get("mcp-session-id").is_none());
    assert_eq!(body_json(resp).await["error"]["code"], -32001);
    fx.http.close_all();
    fx.env.runtime.shutting_down.store(true, Ordering::Release);
    let resp = send!(app, rpc(&init_body()));
    assert_eq!(resp.status(), 503);
    assert_eq!(body_json(resp).await["error"]["code"], -32002);
}

#[actix_web::test]
async fn framing_errors() {
    let fx = fixture(McpHttpConfig::default());
    let app = app!(fx.http);
    let resp = send!(app, rpc(&json!(null)).set_payload("{nope"));
    assert_eq!(resp.status(), 400);
    assert_eq!(body_json(resp).await["error"]["code"], -32700);
    let resp = send!(app, rpc(&json!([init_body()])));
    assert_eq!(resp.status(), 400);
    assert_eq!(body_json(resp).await["error"]["code"], -32600);
    let resp = send!(app, rpc(&init_body()).insert_header(("content-type", "text/plain")));
    assert_eq!(resp.status(), 415);
    let resp = send!(app, rpc(&init_body()).insert_header(("accept", "text/html")));
    assert_eq!(resp.status(), 406);
    // No Accept at all is taken as "JSON is fine".
    let req =
        TestRequest::post().uri("/mcp").insert_header(("host", "localhost:1")).set_payload(init_body().to_string());
    assert_eq!(send!(app, req).status(), 200);
}

#[actix_web::test]
async fn sse_only_clients_get_sse_for_every_request() {
    let fx = fixture(McpHttpConfig::default());
    let app = app!(fx.http);
    let resp = send!(app, rpc(&init_body()).insert_header(("accept", "text/event-stream")));
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers().get("content-type").unwrap(), "text/event-stream");
    assert!(resp.headers().get("mcp-session-id").is_some());
    let msgs = sse_messages(&test::read_body(resp).await);
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0]["result"]["protocolVersion"], "2025-11-25");
}

#[actix_web::test]
async fn get_stream_rules() {
    let fx = fixture(McpHttpConfig::default());
    let app = app!(fx.http);
    let sid = init!(app);
    let get = || {
        TestRequest::get()
            .uri("/mcp")
            .insert_header(("host", "127.0.0.1"))
            .insert_header(("mcp-session-id", sid.as_str()))
    };
    let resp = send!(app, get());
    assert_eq!(resp.status(), 405);
    assert!(resp.headers().get("allow").is_some());
    let resp = send!(app, get().insert_header(("accept", "text/event-stream")));
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers().get("content-type").unwrap(), "text/event-stream");
    let mut stream = resp.into_body();
    assert_eq!(send!(app, get().insert_header(("accept", "text/event-stream"))).status(), 409);
    let unknown = TestRequest::get()
        .uri("/mcp")
        .insert_header(("host", "127.0.0.1"))
        .insert_header(("accept", "text/event-stream"))
        .insert_header(("mcp-session-id", "nope"));
    assert_eq!(send!(app, unknown).status(), 404);
    // An open stream keeps the session from expiring.
    assert_eq!(fx.http.sessions.expire(Instant::now() + Duration::from_secs(7200)), 0);
    // DELETE ends the stream.
    let del = TestRequest::delete()
        .uri("/mcp")
        .insert_header(("host", "127.0.0.1"))
        .insert_header(("mcp-session-id", sid.as_str()));
    assert_eq!(send!(app, del).status(), 204);
    let rest = tokio::time::timeout(Duration::from_secs(5), rest(&mut stream)).await.expect("stream ended");
    assert!(rest.is_empty());
}

#[actix_web::test]
async fn closed_stream_can_be_reopened() {
    let fx = fixture(McpHttpConfig::default());
    let app = app!(fx.http);
    let sid = init!(app);
    let get = || {
        TestRequest::get()
            .uri("/mcp")
            .insert_header(("host", "127.0.0.1"))
            .insert_header(("accept", "text/event-stream"))
            .insert_header(("mcp-session-id", sid.as_str()))
    };
    let first = send!(app, get());
    assert_eq!(first.status(), 200);
    drop(first);
    assert_eq!(send!(app, get()).status(), 200, "the dropped stream released its slot");
}
