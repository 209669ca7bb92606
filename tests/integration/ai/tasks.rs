//! MCP Tasks end to end: a task-augmented `chat` answers at once and runs detached from its
//! connection; a task that finishes during a SIGTERM drain, while its client is gone, is read
//! after the restart from a new session of the same principal; the drain deadline fails a task
//! that is still running, with a clear error; cancel, list, TTL expiry (and removal by the
//! maintenance tick), refusals; another principal sees nothing; and the official TypeScript
//! SDK's `callToolStream` over Streamable HTTP, read back after a restart by a new client, and
//! the Python SDK's `call_tool_as_task` from a client that leaves before the task finishes.

use super::*;
use crate::common::mcp_http::McpHttpClient;
use crate::common::tools;
use crate::store::harness::Raw;
use std::process::Command;
use std::time::Instant;

/// A task-augmented `tools/call`; returns the JSON-RPC response.
async fn call_task(c: &mut WsClient, id: i64, tool: &str, args: Value, ttl: i64) -> Value {
    c.request(id, "tools/call", json!({"name": tool, "arguments": args, "task": {"ttl": ttl}})).await
}

fn task_id(created: &Value) -> String {
    assert_eq!(created["result"]["task"]["status"], "working", "{created}");
    created["result"]["task"]["taskId"].as_str().unwrap().to_string()
}

fn rpc_code(r: &Value) -> i64 {
    r["error"]["code"].as_i64().unwrap_or_else(|| panic!("expected a JSON-RPC error: {r}"))
}

fn sigterm_and_wait(server: &mut ServerProcess) {
    server.sigterm();
    let status = server.wait_exit(Duration::from_secs(30));
    assert_eq!(status.and_then(|s| s.code()), Some(0), "drain: {}", server.stderr_text());
}

#[actix_rt::test]
async fn a_task_finished_during_a_drain_is_read_after_a_restart_from_a_new_session() {
    let m = Mocks::start(&[]);
    m.glm.scenario(json!([{"type":"delay","seconds":2,"times":1}])).await;
    let dir = tempfile::tempdir().unwrap();
    let opts = || options(&m).data_dir(dir.path());
    let mut server = ServerProcess::start(opts());
    let mut c = WsClient::connect(&server.ws_url("/mcp"), WsOptions::mcp()).await;
    let init = c.mcp_initialize().await;
    let caps = &init["result"]["capabilities"]["tasks"];
    assert!(caps["requests"]["tools"]["call"].is_object() && caps["list"].is_object() && caps["cancel"].is_object());
    let tools = c.request(1, "tools/list", Value::Null).await;
    let support = |name: &str| {
        tools["result"]["tools"].as_array().unwrap().iter().find(|t| t["name"] == name).unwrap()["execution"]
            ["taskSupport"]
            .clone()
    };
    assert_eq!(support("chat"), "optional");
    assert_eq!(support("version"), "forbidden");

    let created = call_task(&mut c, 2, "chat", json!({"prompt": "say PLUM", "model": "glm-4.5"}), 120_000).await;
    let id = task_id(&created);
    let t = &created["result"]["task"];
    assert_eq!(t["ttl"], 120_000);
    assert!(t["createdAt"].as_str().unwrap().ends_with('Z'));
    // The client goes away; the task keeps running, and the drain waits for it.
    drop(c);
    sigterm_and_wait(&mut server);
    assert!(server.stderr_text().contains("task finished"), "{}", server.stderr_text());

    let server = ServerProcess::start(opts());
    let mut c = mcp(&server).await;
    let got = c.request(1, "tasks/get", json!({"taskId": id})).await;
    assert_eq!(got["result"]["status"], "completed", "{got}");
    assert_eq!(got["result"]["taskId"], id.as_str());
    let res = c.request(2, "tasks/result", json!({"taskId": id})).await;
    let r = &res["result"];
    assert!(!ok(r)["content"].as_str().unwrap().is_empty(), "{r}");
    assert_eq!(r["_meta"]["io.modelcontextprotocol/related-task"]["taskId"], id.as_str());
    let list = c.request(3, "tasks/list", json!({})).await;
    assert!(list["result"]["tasks"].as_array().unwrap().iter().any(|t| t["taskId"] == id.as_str()), "{list}");
    // And from the other transport, a new HTTP session of the same (local) principal.
    let h = McpHttpClient::open(&server.http_url("/mcp"), None).await;
    let res = h.request(4, "tasks/result", json!({"taskId": id})).await;
    assert_eq!(res["result"]["content"], r["content"]);
}

#[actix_rt::test]
async fn the_drain_deadline_fails_a_running_task_and_another_principal_cannot_see_it() {
    let m = Mocks::start(&[]);
    m.glm.scenario(json!([{"type":"delay","seconds":30,"times":1}])).await;
    let dir = tempfile::tempdir().unwrap();
    let opts = || options(&m).data_dir(dir.path()).set("timeouts.shutdown_deadline_secs", "1");
    let mut server = ServerProcess::start(opts());
    let mut c = mcp(&server).await;
    let id = task_id(&call_task(&mut c, 1, "chat", json!({"prompt": "slow", "model": "glm-4.5"}), 120_000).await);
    let started = Instant::now();
    sigterm_and_wait(&mut server);
    assert!(started.elapsed() < Duration::from_secs(15), "the drain waited past its deadline");
    drop(c);

    let server = ServerProcess::start(opts());
    let mut c = mcp(&server).await;
    let got = c.request(1, "tasks/get", json!({"taskId": id})).await;
    assert_eq!(got["result"]["status"], "failed", "{got}");
    let msg = got["result"]["statusMessage"].as_str().unwrap();
    assert!(msg.contains("shut down before the task finished"), "{msg}");
    let res = c.request(2, "tasks/result", json!({"taskId": id})).await;
    assert_eq!(err(&res["result"])["code"], "CANCELLED");
    drop(c);
    drop(server);

    // The same task id under another principal (a token) does not exist.
    let token = "token-of-someone-else-0123456789";
    let server = ServerProcess::start(opts().auth_token(token));
    let mut c = WsClient::connect(&server.ws_url("/mcp"), WsOptions::mcp().bearer(token)).await;
    c.mcp_initialize().await;
    for (i, method) in ["tasks/get", "tasks/result", "tasks/cancel"].into_iter().enumerate() {
        let r = c.request(i as i64 + 1, method, json!({"taskId": id})).await;
        assert_eq!(rpc_code(&r), -32602, "{method}: {r}");
    }
    let list = c.request(9, "tasks/list", Value::Null).await;
    assert_eq!(list["result"]["tasks"], json!([]));
}

#[actix_rt::test]
async fn tasks_cancel_list_expire_and_refuse_bad_requests() {
    let m = Mocks::start(&[]);
    m.glm.scenario(json!([{"type":"delay","seconds":30,"times":1}])).await;
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(options(&m).data_dir(dir.path()));
    let mut c = mcp(&server).await;
    let slow = task_id(&call_task(&mut c, 1, "chat", json!({"prompt": "slow", "model": "glm-4.5"}), 600_000).await);
    let list = c.request(2, "tasks/list", Value::Null).await;
    assert_eq!(list["result"]["tasks"][0]["taskId"], slow.as_str());
    assert_eq!(list["result"]["tasks"][0]["status"], "working");
    let cancelled = c.request(3, "tasks/cancel", json!({"taskId": slow})).await;
    assert_eq!(cancelled["result"]["status"], "cancelled", "{cancelled}");
    assert_eq!(rpc_code(&c.request(4, "tasks/cancel", json!({"taskId": slow})).await), -32602);
    let res = c.request(5, "tasks/result", json!({"taskId": slow})).await;
    assert_eq!(err(&res["result"])["code"], "CANCELLED");

    // Refusals: a built-in cannot be a task; unknown ids, bad params and bad cursors.
    let r = call_task(&mut c, 6, "version", json!({}), 60_000).await;
    assert_eq!(rpc_code(&r), -32601, "{r}");
    let r = c
        .request(7, "tools/call", json!({"name": "chat", "arguments": {"prompt": "x"}, "task": {"ttl": "soon"}}))
        .await;
    assert_eq!(rpc_code(&r), -32602, "{r}");
    let unknown = "0193f7a4-0000-4000-8000-000000000000";
    for (i, method) in ["tasks/get", "tasks/result", "tasks/cancel"].into_iter().enumerate() {
        assert_eq!(rpc_code(&c.request(10 + i as i64, method, json!({"taskId": unknown})).await), -32602);
    }
    assert_eq!(rpc_code(&c.request(13, "tasks/get", json!({})).await), -32602);
    assert_eq!(rpc_code(&c.request(14, "tasks/list", json!({"cursor": "page-1"})).await), -32602);

    // TTL: a finished task is kept for its TTL, then it is gone and the maintenance tick
    // removes its row.
    let short = task_id(&call_task(&mut c, 20, "chat", json!({"prompt": "quick", "model": "glm-4.5"}), 1_500).await);
    // The connection that created it is told when it finishes.
    let (note, _) = c
        .recv_json_until(T, |v| v["method"] == "notifications/tasks/status" && v["params"]["taskId"] == short.as_str())
        .await;
    assert_eq!(note["params"]["status"], "completed", "{note}");
    let res = c.request(21, "tasks/result", json!({"taskId": short})).await;
    assert!(ok(&res["result"])["content"].is_string(), "{res}");
    let db = Raw::open(&format!("sqlite://{}/exai.db", dir.path().display())).await;
    assert_eq!(db.count("tasks").await, 2);
    let deadline = Instant::now() + Duration::from_secs(15);
    while db.count("tasks").await != 1 {
        assert!(Instant::now() < deadline, "the expired task's row was not removed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(rpc_code(&c.request(22, "tasks/get", json!({"taskId": short})).await), -32602);
    assert!(c.request(23, "tasks/get", json!({"taskId": slow})).await["result"]["status"] == "cancelled");
    db.close().await;
}

fn run_sdk(args: &[&str]) -> Value {
    let node = tools::node_bin_dir().join("node");
    let out = Command::new(node)
        .arg(tools::client_script("sdk/tasks.mjs"))
        .arg("--modules")
        .arg(tools::sdk_dir())
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "tasks.mjs {args:?} failed: {}\n{stdout}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("tasks.mjs output is not JSON ({e}): {stdout}"))
}

/// Done-when of issue 12: the official TypeScript SDK runs `chat` as a task over Streamable
/// HTTP; after a SIGTERM restart a new client reads the result with tasks/get + tasks/result.
#[actix_rt::test]
async fn ts_sdk_runs_chat_as_a_task_and_a_new_client_reads_it_after_a_restart() {
    let m = Mocks::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let opts = || options(&m).data_dir(dir.path());
    let mut server = ServerProcess::start(opts());
    let url = server.http_url("/mcp");
    let args = json!({"prompt": "say PLUM", "model": "glm-4.5"}).to_string();
    let out = run_sdk(&["--url", &url, "--mode", "stream", "--tool", "chat", "--args", &args, "--ttl", "300000"]);
    assert_eq!(out["isToolTask"], true, "chat is listed with taskSupport optional: {out}");
    assert_eq!(out["error"], Value::Null, "{out}");
    let types: Vec<&str> = out["types"].as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect();
    assert_eq!(types.first(), Some(&"taskCreated"), "{out}");
    assert_eq!(types.last(), Some(&"result"), "{out}");
    assert_eq!(out["statuses"].as_array().unwrap().last().unwrap(), "completed");
    let result = &out["result"];
    assert!(!ok(result)["content"].as_str().unwrap().is_empty(), "{out}");
    let id = out["taskId"].as_str().unwrap().to_string();
    sigterm_and_wait(&mut server);

    let server = ServerProcess::start(opts());
    let read = run_sdk(&["--url", &server.http_url("/mcp"), "--mode", "read", "--task", &id]);
    assert_eq!(read["task"]["status"], "completed", "{read}");
    assert_eq!(read["task"]["taskId"], id.as_str());
    assert_eq!(read["result"]["content"], result["content"]);
    assert_eq!(read["result"]["structuredContent"], result["structuredContent"]);
}

fn run_python(args: &[&str]) -> Value {
    let out = Command::new(tools::python()).arg(tools::client_script("sdk_tasks.py")).args(args).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "sdk_tasks.py {args:?} failed: {}\n{stdout}", String::from_utf8_lossy(&out.stderr));
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|e| panic!("sdk_tasks.py output is not JSON ({e}): {stdout}"))
}

/// The Python SDK starts a task and leaves; the task finishes while no client is connected;
/// after a SIGTERM restart a new Python session polls it and reads the result.
#[actix_rt::test]
async fn python_sdk_task_finishes_while_its_client_is_away() {
    let m = Mocks::start(&[]);
    m.glm.scenario(json!([{"type":"delay","seconds":1,"times":1}])).await;
    let dir = tempfile::tempdir().unwrap();
    let opts = || options(&m).data_dir(dir.path());
    let mut server = ServerProcess::start(opts());
    let args = json!({"prompt": "say PLUM", "model": "glm-4.5"}).to_string();
    let started = run_python(&[&server.http_url("/mcp"), "start", "chat", &args, "300000"]);
    assert_eq!(started["status"], "working", "{started}");
    let id = started["taskId"].as_str().unwrap().to_string();
    assert!(server.wait_for_stderr("task finished", Duration::from_secs(20)), "{}", server.stderr_text());
    sigterm_and_wait(&mut server);

    let server = ServerProcess::start(opts());
    let read = run_python(&[&server.http_url("/mcp"), "read", &id]);
    assert_eq!(read["status"], "completed", "{read}");
    assert_eq!(read["result"]["isError"], false, "{read}");
    assert!(!read["result"]["structuredContent"]["content"].as_str().unwrap().is_empty(), "{read}");
}
