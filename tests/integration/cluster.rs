//! Cluster mode end to end: real `exai serve` nodes sharing one PostgreSQL database (a fresh
//! one per test) and one Redis (`EXAI_TEST_REDIS_URL`, a dedicated db index; every test uses
//! its own key prefix and deletes its keys), with llmock standing in for GLM behind a counting
//! HTTP proxy that measures how many requests are in flight at the provider.
//!
//! Covers: a cluster-wide `max_inflight` over two nodes, a breaker opened on one node stopping
//! the other, the leases of a node killed with SIGKILL coming back within the lease time,
//! clients failing over to the next URL, and concurrent uploads of one content through two
//! nodes making one provider upload.

use crate::ai::{call, err, mcp, ok};
use crate::common::mock::MockProvider;
use crate::common::{ServerOptions, ServerProcess};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const GLM_KEY: &str = "test-glm-key-0123456789";
const MODEL: &str = "glm-4.5";
/// Lease lifetime in these tests (the default is 15 s).
const LEASE_MS: u64 = 2000;

/// `EXAI_TEST_REDIS_URL` (scripts/test.sh sets it).
pub fn redis_url() -> String {
    std::env::var("EXAI_TEST_REDIS_URL")
        .expect("EXAI_TEST_REDIS_URL is not set: run the tests through scripts/test.sh (it starts Redis)")
}

/// A key prefix of its own; its keys are deleted when dropped.
pub struct RedisPrefix(pub String);

impl RedisPrefix {
    pub fn new() -> RedisPrefix {
        RedisPrefix(format!("t-{}", uuid::Uuid::new_v4().simple()))
    }

    /// Every key under the prefix (its hash tag).
    pub fn keys(&self) -> Vec<String> {
        let client = redis::Client::open(redis_url()).unwrap();
        let mut c = client.get_connection().unwrap();
        redis::cmd("KEYS").arg(format!("{{{}}}:*", self.0)).query(&mut c).unwrap()
    }
}

impl Drop for RedisPrefix {
    fn drop(&mut self) {
        let Ok(client) = redis::Client::open(redis_url()) else { return };
        let Ok(mut c) = client.get_connection() else { return };
        let keys: Vec<String> = redis::cmd("KEYS").arg(format!("{{{}}}:*", self.0)).query(&mut c).unwrap_or_default();
        if !keys.is_empty() {
            let _: redis::RedisResult<()> = redis::cmd("DEL").arg(keys).query(&mut c);
        }
    }
}

/// A fresh PostgreSQL database `exai_test_<uuid>`, dropped with the value.
pub struct PgDatabase {
    admin: String,
    name: String,
}

impl PgDatabase {
    pub async fn create() -> PgDatabase {
        use sqlx::Connection;
        let admin = crate::common::tools::postgres_url();
        let name = format!("exai_test_{}", uuid::Uuid::new_v4().simple());
        let mut c = sqlx::PgConnection::connect(&admin).await.unwrap();
        sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut c).await.unwrap();
        c.close().await.unwrap();
        PgDatabase { admin, name }
    }

    pub fn url(&self) -> String {
        let (base, query) = match self.admin.split_once('?') {
            Some((b, q)) => (b, Some(q)),
            None => (self.admin.as_str(), None),
        };
        let root = base.rsplit_once('/').map_or(base, |(r, _)| r);
        match query {
            Some(q) => format!("{root}/{}?{q}", self.name),
            None => format!("{root}/{}", self.name),
        }
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let (admin, name) = (self.admin.clone(), self.name.clone());
        // Drop runs inside the test's runtime: do the async work on a thread of its own.
        let _ = std::thread::spawn(move || {
            actix_rt::System::new().block_on(async move {
                use sqlx::Connection;
                if let Ok(mut c) = sqlx::PgConnection::connect(&admin).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut c).await;
                    let _ = c.close().await;
                }
            })
        })
        .join();
    }
}

/// A counting HTTP proxy in front of the mock: counts chat requests in flight (and the peak)
/// as the provider sees them.
pub struct CountingProxy {
    pub port: u16,
    inflight: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
    total: Arc<AtomicUsize>,
}

struct InflightGuard(Arc<AtomicUsize>);

impl Drop for InflightGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl CountingProxy {
    pub fn start(upstream: String) -> CountingProxy {
        use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
        let inflight = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let total = Arc::new(AtomicUsize::new(0));
        let (i, p, t) = (Arc::clone(&inflight), Arc::clone(&peak), Arc::clone(&total));
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            actix_rt::System::new().block_on(async move {
                let srv = HttpServer::new(move || {
                    let (i, p, t, up) = (Arc::clone(&i), Arc::clone(&p), Arc::clone(&t), upstream.clone());
                    App::new().default_service(web::to(move |req: HttpRequest, body: web::Bytes| {
                        let (i, p, t, up) = (Arc::clone(&i), Arc::clone(&p), Arc::clone(&t), up.clone());
                        async move {
                            let chat = req.path().ends_with("/chat/completions");
                            let _guard = chat.then(|| {
                                t.fetch_add(1, Ordering::SeqCst);
                                let now = i.fetch_add(1, Ordering::SeqCst) + 1;
                                p.fetch_max(now, Ordering::SeqCst);
                                InflightGuard(Arc::clone(&i))
                            });
                            let url = format!("{up}{}", req.uri());
                            let client = awc::Client::builder().timeout(Duration::from_secs(60)).finish();
                            let mut fwd = client.request(req.method().clone(), url);
                            for (k, v) in req.headers() {
                                if k != "host" && k != "content-length" {
                                    fwd = fwd.insert_header((k.clone(), v.clone()));
                                }
                            }
                            match fwd.send_body(body).await {
                                Ok(mut r) => {
                                    let b = r.body().limit(16 * 1024 * 1024).await.unwrap_or_default();
                                    let mut out = HttpResponse::build(r.status());
                                    for (k, v) in r.headers() {
                                        if k != "content-length" && k != "transfer-encoding" && k != "content-encoding"
                                        {
                                            out.insert_header((k.clone(), v.clone()));
                                        }
                                    }
                                    out.body(b)
                                }
                                Err(e) => HttpResponse::BadGateway().body(e.to_string()),
                            }
                        }
                    }))
                })
                .workers(2)
                .disable_signals()
                .bind(("127.0.0.1", 0))
                .unwrap();
                let _ = tx.send(srv.addrs()[0].port());
                let _ = srv.run().await;
            })
        });
        let port = rx.recv().unwrap();
        CountingProxy { port, inflight, peak, total }
    }

    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}/v1", self.port)
    }

    pub fn inflight(&self) -> usize {
        self.inflight.load(Ordering::SeqCst)
    }

    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::SeqCst)
    }

    pub fn total(&self) -> usize {
        self.total.load(Ordering::SeqCst)
    }
}

/// One node of a test cluster.
pub fn node(id: &str, db: &PgDatabase, prefix: &RedisPrefix, glm_url: &str) -> ServerOptions {
    ServerOptions::new()
        .set("storage.database_url", &db.url())
        .set("cluster.redis_url", &redis_url())
        .set("cluster.key_prefix", &prefix.0)
        .set("cluster.node_id", id)
        .set("cluster.lease_ms", &LEASE_MS.to_string())
        .set("cluster.heartbeat_ms", "200")
        .set("providers.glm.base_url", glm_url)
        .set("retry.server_base_ms", "50")
        .set("retry.network_base_ms", "50")
        .env("GLM_API_KEY", GLM_KEY)
}

async fn get_json(url: &str) -> Value {
    let mut r = awc::Client::default().get(url).send().await.unwrap();
    r.json::<Value>().limit(1 << 20).await.unwrap()
}

async fn metric(server: &ServerProcess, line_prefix: &str) -> f64 {
    crate::ai::metric(server, line_prefix).await
}

/// Waits (bounded) until `/api/cluster` on `server` lists `n` nodes; returns the listing.
async fn wait_nodes(server: &ServerProcess, n: usize) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let v = get_json(&server.http_url("/api/cluster")).await;
        if v["nodes"].as_array().map_or(0, Vec::len) == n || Instant::now() > deadline {
            return v;
        }
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    }
}

#[actix_rt::test]
async fn max_inflight_holds_across_two_nodes() {
    let mock = MockProvider::start_llmock(&["--latency-ms", "2000"]);
    let proxy = CountingProxy::start(mock.origin());
    let db = PgDatabase::create().await;
    let prefix = RedisPrefix::new();
    let opts = |id: &str| {
        node(id, &db, &prefix, &proxy.base_url())
            .set("providers.glm.max_inflight", "2")
            .set("limits.provider_queue_wait_ms", "30000")
    };
    let a = ServerProcess::start(opts("node-a"));
    let b = ServerProcess::start(opts("node-b"));

    let listing = wait_nodes(&a, 2).await;
    let ids: Vec<&str> = listing["nodes"].as_array().unwrap().iter().map(|n| n["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["node-a", "node-b"], "{listing}");
    assert_eq!(listing["node_id"], "node-a");
    let me = &listing["nodes"][0];
    assert_eq!(me["self"], true);
    assert_eq!(me["address"], a.addr().to_string());
    assert_eq!(me["version"], env!("CARGO_PKG_VERSION"));

    // 8 concurrent 2-second chats, four through each node.
    let t0 = Instant::now();
    let mut calls = Vec::new();
    for i in 0..8 {
        let server = if i % 2 == 0 { &a } else { &b };
        let url = server.ws_url("/mcp");
        calls.push(async move {
            let mut c = crate::common::ws::WsClient::connect(&url, crate::common::ws::WsOptions::mcp()).await;
            c.mcp_initialize().await;
            c.send_json(&json!({"jsonrpc":"2.0","id":1,"method":"tools/call",
                "params":{"name":"chat","arguments":{"prompt": format!("cluster call {i}"), "model": MODEL}}}))
                .await;
            let (r, _) = c.recv_response(&json!(1), Duration::from_secs(60)).await;
            r["result"].clone()
        });
    }
    let results = futures_util::future::join_all(calls).await;
    let elapsed = t0.elapsed();
    for r in &results {
        ok(r);
    }
    assert_eq!(proxy.total(), 8, "every chat reached the provider once");
    assert_eq!(proxy.peak(), 2, "never more than providers.glm.max_inflight = 2 at the provider, across both nodes");
    // Two at a time, two seconds each: four rounds.
    assert!(elapsed >= Duration::from_millis(7500), "8 calls two at a time take four rounds: {elapsed:?}");
    assert!(metric(&a, "exai_cluster_admit_seconds_count").await >= 4.0);
    assert_eq!(metric(&a, "exai_cluster_leases_held").await, 0.0);
    assert_eq!(metric(&b, "exai_cluster_leases_held").await, 0.0);
}

#[actix_rt::test]
async fn a_breaker_opened_on_one_node_stops_the_other() {
    let mock = MockProvider::start_llmock(&[]);
    let proxy = CountingProxy::start(mock.origin());
    let db = PgDatabase::create().await;
    let prefix = RedisPrefix::new();
    let opts = |id: &str| {
        node(id, &db, &prefix, &proxy.base_url())
            .set("providers.glm.breaker_consecutive_failures", "2")
            .set("providers.glm.breaker_open_secs", "60")
            .set("retry.server_attempts", "1")
    };
    let a = ServerProcess::start(opts("node-a"));
    let b = ServerProcess::start(opts("node-b"));
    wait_nodes(&a, 2).await;
    let mut ca = mcp(&a).await;
    let mut cb = mcp(&b).await;
    let args = json!({"prompt": "breaker", "model": MODEL});
    ok(&call(&mut cb, 1, "chat", args.clone()).await);

    mock.scenario(json!([{"type":"fail","status":500,"times":2}])).await;
    err(&call(&mut ca, 1, "chat", args.clone()).await);
    err(&call(&mut ca, 2, "chat", args.clone()).await);
    assert_eq!(metric(&a, "exai_breaker_state{provider=\"glm\"}").await, 1.0, "open on A");

    // B hears it within a round trip (allow the test machine its scheduling noise).
    let deadline = Instant::now() + Duration::from_secs(2);
    while metric(&b, "exai_breaker_state{provider=\"glm\"}").await != 1.0 {
        assert!(Instant::now() < deadline, "B's breaker did not open");
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
    let before = proxy.total();
    let r = call(&mut cb, 2, "chat", args.clone()).await;
    assert_eq!(err(&r)["code"], "OVER_CAPACITY", "{r}");
    assert!(err(&r)["message"].as_str().unwrap().contains("circuit open"), "{r}");
    assert_eq!(proxy.total(), before, "B sent nothing to the provider");
    assert!(metric(&b, "exai_cluster_breaker_messages_total{direction=\"applied\"}").await >= 1.0);
    assert!(metric(&a, "exai_cluster_breaker_messages_total{direction=\"sent\"}").await >= 1.0);
    assert!(prefix.keys().iter().any(|k| k.ends_with(":brk:glm")), "{:?}", prefix.keys());

    // A node that joins while the breaker is open starts with it open.
    let c = ServerProcess::start(opts("node-c"));
    let deadline = Instant::now() + Duration::from_secs(3);
    while metric(&c, "exai_breaker_state{provider=\"glm\"}").await != 1.0 {
        assert!(Instant::now() < deadline, "a late node did not pick up the open breaker");
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    }
}

#[actix_rt::test]
async fn a_killed_node_leaks_no_permit() {
    let mock = MockProvider::start_llmock(&[]);
    let proxy = CountingProxy::start(mock.origin());
    let db = PgDatabase::create().await;
    let prefix = RedisPrefix::new();
    let opts = |id: &str| {
        node(id, &db, &prefix, &proxy.base_url())
            .set("providers.glm.max_inflight", "1")
            .set("limits.provider_queue_wait_ms", "100")
    };
    let mut a = ServerProcess::start(opts("node-a"));
    let b = ServerProcess::start(opts("node-b"));
    wait_nodes(&b, 2).await;

    // A holds the only cluster-wide GLM permit with a slow call, then dies.
    mock.scenario(json!([{"type":"delay","seconds":20,"times":1}])).await;
    let mut ca = mcp(&a).await;
    ca.send_json(&json!({"jsonrpc":"2.0","id":1,"method":"tools/call",
        "params":{"name":"chat","arguments":{"prompt":"slow", "model": MODEL}}}))
        .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while proxy.inflight() == 0 {
        assert!(Instant::now() < deadline, "A's call never reached the provider");
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
    let mut cb = mcp(&b).await;
    let args = json!({"prompt": "after", "model": MODEL});
    let r = call(&mut cb, 1, "chat", args.clone()).await;
    assert_eq!(err(&r)["code"], "OVER_CAPACITY", "A's lease still holds the limit: {r}");
    assert!(err(&r)["message"].as_str().unwrap().contains("cluster-wide"), "{r}");

    a.kill9();
    let killed = Instant::now();
    // The lease expires within LEASE_MS of A's last renewal; B then gets the permit.
    let mut id = 2;
    let r = loop {
        let r = call(&mut cb, id, "chat", args.clone()).await;
        id += 1;
        if r["isError"] == false {
            break r;
        }
        assert_eq!(err(&r)["code"], "OVER_CAPACITY", "{r}");
        assert!(killed.elapsed() < Duration::from_millis(LEASE_MS + 1500), "the dead node's lease did not expire");
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    };
    ok(&r);
    assert!(killed.elapsed() < Duration::from_millis(LEASE_MS + 1500));
    // And the dead node drops out of the listing.
    let listing = wait_nodes(&b, 1).await;
    assert_eq!(listing["nodes"].as_array().unwrap().len(), 1, "{listing}");
    assert_eq!(listing["nodes"][0]["id"], "node-b");
}

#[test]
fn clients_fail_over_to_the_next_url() {
    use crate::client::stdio::Bridge;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dead = format!("ws://127.0.0.1:{closed}/mcp");
    let mut a = ServerProcess::start(ServerOptions::new());
    let b = ServerProcess::start(ServerOptions::new());

    // `exai call`: the first URL refuses connections, the second answers.
    let out = crate::common::cmd::run_with_timeout(
        std::process::Command::new(env!("CARGO_BIN_EXE_exai"))
            .args(["call", "version", "--connect-timeout", "10", "--url"])
            .arg(format!("{dead},{}", b.ws_url("/mcp")))
            .env_remove("EXAI_TOKEN"),
        Duration::from_secs(60),
    );
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["isError"], false, "{v}");

    // `exai stdio` with repeated --url: connected to A; A dies; the next call goes to B.
    let (ua, ub) = (a.ws_url("/mcp"), b.ws_url("/mcp"));
    let mut bridge = Bridge::start(&["--url", &ua, "--url", &dead, "--url", &ub, "--reconnect-wait", "20"]);
    bridge.initialize();
    let r = bridge.request(json!(1), "tools/call", json!({"name": "version", "arguments": {}}));
    assert!(r.get("result").is_some(), "{r}");
    a.kill9();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut id = 2;
    loop {
        let r = bridge.request(json!(id), "tools/call", json!({"name": "version", "arguments": {}}));
        id += 1;
        if r.get("result").is_some() {
            break;
        }
        assert!(Instant::now() < deadline, "the bridge did not fail over to B: {r}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[actix_rt::test]
async fn concurrent_uploads_of_one_content_through_two_nodes_make_one_provider_upload() {
    let fixtures = json!({"fixtures": []});
    let (kimi, glm) = (MockProvider::start_aimock(&fixtures, &[]), MockProvider::start_aimock(&fixtures, &[]));
    let root = tempfile::tempdir().unwrap();
    let content: String = "cluster upload content\n".repeat(20_000);
    std::fs::write(root.path().join("same.txt"), &content).unwrap();
    let db = PgDatabase::create().await;
    let prefix = RedisPrefix::new();
    let opts = |id: &str| {
        node(id, &db, &prefix, &glm.base_url())
            .set("providers.kimi.base_url", &kimi.base_url())
            .set("files.kimi_purpose", "assistants")
            .set("tools.allowed_roots", &root.path().display().to_string())
            .set("limits.session_max_inflight", "64")
            .env("KIMI_API_KEY", "test-kimi-key-0123456789")
    };
    let a = ServerProcess::start(opts("node-a"));
    let b = ServerProcess::start(opts("node-b"));
    wait_nodes(&a, 2).await;
    let mut clients = Vec::new();
    for server in [&a, &b, &a, &b] {
        clients.push(mcp(server).await);
    }
    let tasks = clients.into_iter().enumerate().map(|(k, mut c)| async move {
        for i in 0..5 {
            let id = (k * 100 + i) as i64;
            c.send_json(&json!({"jsonrpc":"2.0","id":id,"method":"tools/call",
                "params":{"name":"kimi_upload_files","arguments":{"files":["same.txt"]}}}))
                .await;
        }
        let mut out = Vec::new();
        while out.len() < 5 {
            let r = c.recv_json(Duration::from_secs(60)).await;
            if r.get("id").is_some() {
                assert_eq!(r["result"]["isError"], false, "{r}");
                out.push(r["result"]["structuredContent"]["files"][0].clone());
            }
        }
        out
    });
    let results: Vec<Value> = futures_util::future::join_all(tasks).await.into_iter().flatten().collect();
    assert_eq!(results.len(), 20);
    let ids: std::collections::HashSet<&str> =
        results.iter().map(|f| f["provider_file_id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 1, "one provider file: {ids:?}");
    let journal = kimi.journal().await;
    let uploads = journal.iter().filter(|e| e["method"] == "POST" && e["path"] == "/v1/files").count();
    let deletes = journal.iter().filter(|e| e["method"] == "DELETE").count();
    assert_eq!(uploads, 1, "exactly one provider upload across both nodes");
    assert_eq!(deletes, 0, "no duplicate to delete");
    assert_eq!(results.iter().filter(|f| f["dedup_hit"] == false).count(), 1);
    let mut c = mcp(&b).await;
    let list = call(&mut c, 1, "kimi_manage_files", json!({"action": "list"})).await;
    assert_eq!(ok(&list)["files"][0]["reference_count"], 20);
}
