//! Fault tests of issue 6 against the real binary, on 127.0.0.1 only, bounded in time:
//! the provider mock killed mid-call ([`provider`]), SIGTERM under load ([`shutdown`]),
//! kill -9 and restart on the same SQLite data dir ([`restart`]), and a TCP connection cut
//! in the middle of a streamed call with the session resumed — by a raw client, by the
//! `exai::client` library and by `exai stdio` ([`resume`]).
//!
//! Related coverage elsewhere (not repeated here): resume after a client-side drop and the
//! stalled client (`resume.rs`), SIGTERM with one call (`lifecycle.rs`), the library after
//! kill -9 without resume (`client.rs`), scripted provider faults (`ai/faults.rs`), a
//! conversation across a graceful restart (`ai/threads.rs`).

mod disk_full;
mod provider;
mod restart;
mod resume;
mod shutdown;

use crate::common::ServerProcess;
use serde_json::Value;
use std::time::{Duration, Instant};

/// `GET /health/websocket` as JSON (it answers 503 while draining, still with the body).
pub async fn ws_health(server: &ServerProcess) -> Value {
    let text = crate::mcp_ws::reqwest_text(&server.http_url("/health/websocket")).await;
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("/health/websocket is not JSON ({e}): {text}"))
}

/// One Prometheus sample (the line starting with `prefix`), 0 when absent.
pub async fn metric(server: &ServerProcess, prefix: &str) -> f64 {
    crate::ai::metric(server, prefix).await
}

/// Polls `check` every 100 ms until it holds; panics with `what` after `max`.
pub async fn eventually<F, Fut>(max: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + max;
    while !check().await {
        assert!(Instant::now() < deadline, "not within {max:?}: {what}");
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    }
}
