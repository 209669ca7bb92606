//! Failures: HTTP errors, timeouts, broken streams and cancellation, scripted through llmock's
//! `POST /_llmock/scenario` and checked against its request journal.

use exai::providers::{transport_factory, VendorKind};
use exai_actors::provider::types::{ProviderError, RequestTimeouts, StreamEvent};
use serde_json::json;
use std::net::TcpListener;
use std::time::{Duration, Instant};

use super::{config, generous, run_chat, timeouts, transport, user, TEST_KEY};
use crate::common::mock::{install_crypto, MockProvider};

#[actix_rt::test]
async fn rate_limit_429_carries_retry_after_and_the_vendor_message() {
    let mock = MockProvider::start_llmock(&[]);
    mock.scenario(json!([
        {"type": "fail", "status": 429, "retry_after": 7, "message": "slow down, please"},
        {"type": "fail", "status": 429, "retry_after": 0.25},
    ]))
    .await;
    let t = transport(&mock, VendorKind::OpenAiCompatible);

    let err = run_chat(&*t, &user("hi", false), &generous()).await.result.unwrap_err();
    assert_eq!(
        err,
        ProviderError::RateLimited { retry_after: Some(Duration::from_secs(7)), message: "slow down, please".into() }
    );
    // A streamed call fails the same way, before any chunk.
    let run = run_chat(&*t, &user("hi", true), &generous()).await;
    match run.result {
        Err(ProviderError::RateLimited { retry_after, .. }) => {
            assert_eq!(retry_after, Some(Duration::from_millis(250)))
        }
        other => panic!("expected RateLimited, got {other:?}"),
    }
    assert!(run.events.is_empty());
    let journal = mock.journal().await;
    assert_eq!(journal.iter().map(|r| r["status"].as_u64()).collect::<Vec<_>>(), vec![Some(429), Some(429)]);
}

#[actix_rt::test]
async fn http_status_errors_map_by_class_without_leaking_the_key() {
    let mock = MockProvider::start_llmock(&[]);
    mock.scenario(json!([
        {"type": "fail", "status": 500, "message": "upstream exploded"},
        {"type": "fail", "status": 503},
        {"type": "fail", "status": 401, "message": "invalid api key"},
        {"type": "fail", "status": 403},
        {"type": "fail", "status": 400, "message": "messages must not be empty"},
    ]))
    .await;
    let t = transport(&mock, VendorKind::OpenAiCompatible);
    let mut errors = Vec::new();
    for _ in 0..5 {
        errors.push(run_chat(&*t, &user("hi", false), &generous()).await.result.unwrap_err());
    }
    assert_eq!(errors[0], ProviderError::Server { status: 500, message: "upstream exploded".into() });
    assert!(matches!(errors[1], ProviderError::Server { status: 503, .. }), "{:?}", errors[1]);
    assert_eq!(errors[2], ProviderError::Auth { status: 401, message: "invalid api key".into() });
    assert!(matches!(errors[3], ProviderError::Auth { status: 403, .. }), "{:?}", errors[3]);
    assert_eq!(errors[4], ProviderError::BadRequest { status: 400, message: "messages must not be empty".into() });
    for e in &errors {
        assert!(!format!("{e:?} {e}").contains(TEST_KEY), "the key leaked into {e:?}");
    }
    assert!(!format!("{:?}", config("http://x".into(), VendorKind::Kimi)).contains(TEST_KEY));
}

#[actix_rt::test]
async fn slow_non_streamed_answer_times_out_in_the_first_byte_phase() {
    let mock = MockProvider::start_llmock(&[]);
    mock.scenario(json!([{"type": "delay", "seconds": 5}])).await;
    let t = transport(&mock, VendorKind::OpenAiCompatible);
    let limits = timeouts(Duration::from_millis(700), Duration::from_secs(20), Duration::from_secs(20));
    let run = run_chat(&*t, &user("hi", false), &limits).await;
    assert_eq!(
        run.result.unwrap_err(),
        ProviderError::Timeout { phase: "first_byte", limit: Duration::from_millis(700) }
    );
    assert!(run.elapsed < Duration::from_secs(3), "took {:?}", run.elapsed);
}

#[actix_rt::test]
async fn connection_refused_is_a_network_error() {
    install_crypto();
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port(); // closed again
    let t = transport_factory(config(format!("http://127.0.0.1:{port}/v1"), VendorKind::Glm))();
    let err = run_chat(&*t, &user("hi", false), &generous()).await.result.unwrap_err();
    assert!(matches!(err, ProviderError::Network(_)), "{err:?}");
}

#[actix_rt::test]
async fn a_tls_handshake_that_never_completes_times_out_in_the_connect_phase() {
    install_crypto();
    // The kernel accepts the TCP connection into the backlog; nobody ever speaks TLS.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let t = transport_factory(config(format!("https://127.0.0.1:{port}/v1"), VendorKind::Kimi))();
    let limits = RequestTimeouts { connect: Duration::from_millis(500), ..generous() };
    let started = Instant::now();
    let err = run_chat(&*t, &user("hi", false), &limits).await.result.unwrap_err();
    assert_eq!(err, ProviderError::Timeout { phase: "connect", limit: Duration::from_millis(500) });
    assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
    drop(silent);
}

#[actix_rt::test]
async fn disconnect_mid_stream_is_a_network_error_after_the_first_chunks() {
    let mock = MockProvider::start_llmock(&[]);
    mock.scenario(json!([{"type": "stream_fault", "kind": "disconnect", "after_chunks": 3}])).await;
    let t = transport(&mock, VendorKind::OpenAiCompatible);
    let run = run_chat(&*t, &user("hello there my friend", true), &generous()).await;
    assert!(matches!(run.result, Err(ProviderError::Network(_))), "{:?}", run.result);
    assert!(!run.events.is_empty(), "the chunks before the drop were delivered");
}

#[actix_rt::test]
async fn truncated_stream_without_finish_or_done_is_a_network_error() {
    let mock = MockProvider::start_llmock(&[]);
    mock.scenario(json!([{"type": "stream_fault", "kind": "truncate", "after_chunks": 3}])).await;
    let t = transport(&mock, VendorKind::OpenAiCompatible);
    let run = run_chat(&*t, &user("hello there my friend", true), &generous()).await;
    assert!(matches!(run.result, Err(ProviderError::Network(_))), "{:?}", run.result);
}

#[actix_rt::test]
async fn malformed_chunk_is_a_protocol_error() {
    let mock = MockProvider::start_llmock(&[]);
    mock.scenario(json!([{"type": "stream_fault", "kind": "malformed", "after_chunks": 2}])).await;
    let t = transport(&mock, VendorKind::OpenAiCompatible);
    let run = run_chat(&*t, &user("hello there my friend", true), &generous()).await;
    assert!(matches!(run.result, Err(ProviderError::Protocol(_))), "{:?}", run.result);
}

#[actix_rt::test]
async fn stall_before_the_first_token_times_out_in_the_first_byte_phase() {
    let mock = MockProvider::start_llmock(&[]);
    // Chunk 0 is the empty role delta; the stall comes before the first content.
    mock.scenario(json!([{"type": "stream_fault", "kind": "stall", "after_chunks": 1, "stall_seconds": 20}])).await;
    let t = transport(&mock, VendorKind::OpenAiCompatible);
    let limits = timeouts(Duration::from_millis(800), Duration::from_secs(10), Duration::from_secs(10));
    let run = run_chat(&*t, &user("hello there my friend", true), &limits).await;
    assert_eq!(
        run.result.unwrap_err(),
        ProviderError::Timeout { phase: "first_byte", limit: Duration::from_millis(800) }
    );
    assert!(run.events.is_empty());
    assert!(run.elapsed < Duration::from_secs(3), "took {:?}", run.elapsed);
}

#[actix_rt::test]
async fn stall_mid_stream_times_out_in_the_idle_phase() {
    let mock = MockProvider::start_llmock(&[]);
    mock.scenario(json!([{"type": "stream_fault", "kind": "stall", "after_chunks": 4, "stall_seconds": 20}])).await;
    let t = transport(&mock, VendorKind::OpenAiCompatible);
    let limits = timeouts(Duration::from_secs(10), Duration::from_millis(1500), Duration::from_secs(10));
    let run = run_chat(&*t, &user("hello there my friend", true), &limits).await;
    assert_eq!(run.result.unwrap_err(), ProviderError::Timeout { phase: "idle", limit: Duration::from_millis(1500) });
    assert!(run.events.len() >= 2, "chunks before the stall arrived: {:?}", run.events);
    assert!(run.elapsed < Duration::from_secs(4), "took {:?}", run.elapsed);
}

#[actix_rt::test]
async fn dropping_the_call_mid_stream_aborts_the_upstream_request() {
    let mock = MockProvider::start_llmock(&[]);
    mock.scenario(json!([{"type": "stream_fault", "kind": "stall", "after_chunks": 3, "stall_seconds": 30}])).await;
    let t = transport(&mock, VendorKind::OpenAiCompatible);
    let req = user("hello there my friend", true);
    let limits = generous();
    let mut received = Vec::new();
    let mut on_event = |e: StreamEvent| received.push(e);
    let started = Instant::now();
    let outcome = tokio::time::timeout(Duration::from_millis(1500), t.chat(&req, &limits, &mut on_event)).await;
    assert!(outcome.is_err(), "the call was still streaming when it was dropped");
    assert!(!received.is_empty(), "chunks arrived before the drop");

    // llmock records how long the client sat through the scripted stall: a dropped call must
    // close the connection at once, not after the 30 s stall.
    let journal = mock.journal().await;
    assert_eq!(journal.len(), 1, "{journal:?}");
    assert_eq!(journal[0]["completed"], false);
    let waited = journal[0]["stall_waited"].as_f64().expect("the mock saw the client go away");
    assert!(waited < 5.0, "the upstream stream stayed open {waited}s after the drop");
    assert!(started.elapsed() < Duration::from_secs(10));
}
