//! PostgreSQL that stops answering: operations, readiness and `exai migrate` fail fast with the
//! connection error instead of waiting the pool's acquire timeout and saying "pool timed out".
//! The database is reached through a [`TcpProxy`]; dropping the proxy closes its port, so new
//! connections are refused and open ones are cut, as when the database goes down.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use exai::store::{self, StoreOptions};

use super::harness::on_postgres;
use super::{conversation, message};
use crate::common::cmd::run_with_timeout;
use crate::common::mock::blocking_get;
use crate::common::proxy::TcpProxy;
use crate::common::{ServerOptions, ServerProcess};

/// The pool would wait this long for a connection; nothing below may come near it.
const ACQUIRE_MS: u64 = 10_000;

/// `host:port` of a `postgres://user@host:port/db` URL.
fn target(url: &str) -> SocketAddr {
    let rest = &url[url.find("://").unwrap() + 3..];
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    let hostport = rest.split(['/', '?']).next().unwrap();
    hostport.parse().unwrap_or_else(|e| panic!("{hostport} (from the PostgreSQL test URL) is not ip:port: {e}"))
}

/// The URL with its `host:port` replaced by the proxy's.
fn via(url: &str, proxy: &TcpProxy) -> String {
    url.replacen(&target(url).to_string(), &proxy.addr().to_string(), 1)
}

/// A port on 127.0.0.1 that nothing listens on.
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_postgres_fails_fast_with_the_connection_error() {
    on_postgres(|url| async move {
        let proxy = TcpProxy::start(target(&url));
        let opts = StoreOptions { acquire_timeout_ms: ACQUIRE_MS, probe_timeout_ms: 300, ..StoreOptions::default() };
        let s = store::open(&via(&url, &proxy), &opts).await.unwrap();
        s.ping().await.unwrap();
        s.create_conversation(&conversation("c1", "cont-1")).await.unwrap();
        drop(proxy);
        tokio::time::sleep(Duration::from_millis(200)).await;

        let started = Instant::now();
        let e = s.ping().await.unwrap_err().to_string();
        assert!(e.to_lowercase().contains("refused"), "the ping names the connection error: {e}");
        let t = Instant::now();
        for i in 0..10 {
            let e = s.get_conversation("cont-1").await.unwrap_err().to_string();
            assert!(e.contains("unreachable") && e.to_lowercase().contains("refused"), "{e}");
            let e = s.append_message(&message("c1", &format!("k{i}"), "hi", 2_000)).await.unwrap_err().to_string();
            assert!(e.contains("unreachable"), "{e}");
        }
        // Twenty operations together take less than one acquire timeout: none waited for it.
        assert!(t.elapsed() < Duration::from_millis(ACQUIRE_MS / 2), "{:?}", t.elapsed());
        assert!(started.elapsed() < Duration::from_millis(ACQUIRE_MS / 2), "{:?}", started.elapsed());
        s.close().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_answers_at_once_while_postgres_is_down() {
    on_postgres(|url| async move {
        let proxy = TcpProxy::start(target(&url));
        let server = ServerProcess::start(
            ServerOptions::new()
                .set("storage.database_url", &via(&url, &proxy))
                .set("storage.acquire_timeout_ms", &ACQUIRE_MS.to_string())
                .set("storage.probe_timeout_ms", "300"),
        );
        let port = server.port();
        let ready = move || blocking_get(port, "/health/ready").unwrap();
        let (status, body) = tokio::task::spawn_blocking(ready).await.unwrap();
        assert_eq!(status, 200, "{body}");
        drop(proxy);
        tokio::time::sleep(Duration::from_millis(200)).await;
        for _ in 0..5 {
            let t = Instant::now();
            let (status, body) = tokio::task::spawn_blocking(ready).await.unwrap();
            assert_eq!(status, 503, "{body}");
            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert_eq!(v["store"]["detail"]["reachable"], false, "{body}");
            let err = v["store"]["detail"]["error"].as_str().unwrap_or_default().to_lowercase();
            assert!(err.contains("refused"), "{body}");
            // The probe's own read timeout is 2 s; the pool would have waited 10 s.
            assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
        }
        assert!(server.stderr_text().contains("database unreachable"), "one warning when the outage is noticed");
    })
    .await;
}

#[test]
fn migrate_against_a_closed_port_names_the_connection_error() {
    let url = format!("postgres://exai@127.0.0.1:{}/exai", closed_port());
    let dir = tempfile::tempdir().unwrap();
    let out = run_with_timeout(
        std::process::Command::new(env!("CARGO_BIN_EXE_exai"))
            .args(["migrate", "--data-dir"])
            .arg(dir.path())
            .args(["--set", &format!("storage.database_url={url}"), "--set", "storage.acquire_timeout_ms=300"])
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default()),
        Duration::from_secs(30),
    );
    assert!(out.status.is_some() && !out.success(), "{}", out.describe());
    let err = out.stderr.to_lowercase();
    assert!(err.contains("connection refused"), "{}", out.describe());
    assert!(!err.contains("pool timed out") && !err.contains("panicked"), "{}", out.describe());
    assert_eq!(out.stderr.lines().filter(|l| !l.trim().is_empty()).count(), 1, "{}", out.describe());
}
