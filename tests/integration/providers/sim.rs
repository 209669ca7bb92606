//! The provider simulator itself, driven through the real vendor transport: pacing of streams
//! and silences (scaled), non-streamed answers after a delay, `Retry-After` scaling, vendor
//! error bodies and the request journal with in-flight counts.

use exai::providers::VendorKind;
use exai_actors::provider::types::{ProviderError, StreamEvent};
use std::time::Duration;

use super::{config, generous, run_chat, user};
use crate::common::mock::install_crypto;
use crate::common::sim::{Answer, Reply, Sim};

fn sim_transport(sim: &Sim, kind: VendorKind) -> Box<dyn exai_actors::provider::transport::ProviderTransport> {
    install_crypto();
    exai::providers::transport_factory(config(sim.base_url(), kind))()
}

#[actix_rt::test]
async fn sim_paces_streams_and_silences_on_its_scale() {
    // 0.01: a 40 s stream lasts 0.4 s, a 30 s thinking silence 0.3 s.
    let sim = Sim::start(0.01);
    let t = sim_transport(&sim, VendorKind::OpenAiCompatible);
    sim.push(
        Reply::Answer(Answer {
            text: "abcdefgh".into(),
            reasoning: Some("thinking".into()),
            first_after: Duration::from_secs(30),
            chunks: 4,
            gap: Duration::from_secs(10),
            pause: Some((2, Duration::from_secs(20))),
            ..Answer::default()
        }),
        1,
    );
    let run = run_chat(&*t, &user("pace me", true), &generous()).await;
    let answer = run.result.unwrap();
    assert_eq!(answer.content, "abcdefgh");
    let contents: Vec<Duration> =
        run.events.iter().filter(|(_, e)| matches!(e, StreamEvent::Content(_))).map(|(at, _)| *at).collect();
    assert_eq!(contents.len(), 4, "{:?}", run.events);
    // First token after the 30 s silence (0.3 s), then 10 s gaps with a 20 s pause before #2.
    assert!(contents[0] >= Duration::from_millis(290), "{contents:?}");
    assert!(contents[2] - contents[1] >= Duration::from_millis(290), "pause of 10 + 20 s: {contents:?}");
    assert!(run.elapsed >= Duration::from_millis(790) && run.elapsed < Duration::from_secs(5), "{:?}", run.elapsed);
    assert_eq!(answer.usage.unwrap().prompt_tokens, 11);

    // A plain answer after 50 s arrives after 0.5 s.
    sim.push(Reply::after_secs(50.0), 1);
    let run = run_chat(&*t, &user("slow", false), &generous()).await;
    assert!(run.result.is_ok());
    assert!(run.elapsed >= Duration::from_millis(490), "{:?}", run.elapsed);

    let j = sim.chats();
    assert_eq!(j.len(), 2);
    assert_eq!(j[0].body["messages"][0]["content"], "pace me");
    assert_eq!(j[0].auth.as_deref(), Some(concat!("Bearer ", "sk-test-0123456789-secret")));
    assert!(j[0].done_ms.unwrap() - j[0].at_ms >= 790.0, "{j:?}");
}

#[actix_rt::test]
async fn sim_errors_carry_vendor_bodies_and_scaled_retry_after() {
    let sim = Sim::start(0.1);
    let t = sim_transport(&sim, VendorKind::Glm);
    sim.push(Reply::rate_limited(Some(30.0)), 1);
    match run_chat(&*t, &user("x", false), &generous()).await.result {
        Err(ProviderError::RateLimited { retry_after: Some(d), .. }) => assert_eq!(d, Duration::from_secs(3)),
        other => panic!("{other:?}"),
    }
    sim.push(Reply::zai(429, "1113", "Insufficient balance or no resource package. Please recharge."), 1);
    let err = run_chat(&*t, &user("x", false), &generous()).await.result.unwrap_err();
    // Z.ai's business code decides before the status: an account error, the message kept.
    assert!(
        matches!(&err, ProviderError::Account { status: 429, code, message }
            if code == "1113" && message.contains("Insufficient balance")),
        "{err:?}"
    );
    sim.push(Reply::Cut { chunks: 2, gap: Duration::from_millis(500) }, 1);
    let run = run_chat(&*t, &user("x", true), &generous()).await;
    assert!(matches!(run.result, Err(ProviderError::Network(_))), "{:?}", run.result);
    assert_eq!(run.events.len(), 2);
}

#[actix_rt::test]
async fn sim_journal_counts_requests_in_flight() {
    let sim = Sim::start(0.01);
    sim.set_default(Reply::after_secs(30.0));
    let runs = (0..3).map(|i| {
        let t = sim_transport(&sim, VendorKind::Kimi);
        async move { run_chat(&*t, &user(&format!("q{i}"), false), &generous()).await.result.is_ok() }
    });
    let oks = futures_util::future::join_all(runs).await;
    assert_eq!(oks, vec![true; 3]);
    assert_eq!(sim.max_inflight(), 3);
    assert_eq!(sim.inflight(), 0);
    assert_eq!(sim.chats().iter().map(|r| r.inflight).max(), Some(3));
}

#[actix_rt::test]
async fn a_flowing_stream_outlasts_its_idle_limit_many_times_and_stops_only_at_the_total() {
    let sim = Sim::start(0.01);
    let t = sim_transport(&sim, VendorKind::OpenAiCompatible);
    // 40 s of stream in 1 s pieces (0.4 s, 10 ms apart) against an idle limit of 0.2 s.
    sim.push(Reply::stream_for(40.0, 40), 1);
    let limits = super::timeouts(Duration::from_millis(300), Duration::from_millis(200), Duration::from_secs(5));
    let run = run_chat(&*t, &user("flow", true), &limits).await;
    assert!(run.result.is_ok(), "{:?}", run.result);
    assert_eq!(run.events.len(), 40);
    assert!(run.elapsed > Duration::from_millis(350), "{:?}", run.elapsed);
    // The same stream against a total of 0.2 s is cut in the total phase, chunks delivered.
    sim.push(Reply::stream_for(40.0, 40), 1);
    let limits = super::timeouts(Duration::from_millis(150), Duration::from_millis(150), Duration::from_millis(200));
    let run = run_chat(&*t, &user("flow", true), &limits).await;
    assert_eq!(run.result.unwrap_err(), ProviderError::Timeout { phase: "total", limit: Duration::from_millis(200) });
    assert!(!run.events.is_empty());
    // A thinking silence of 30 s (0.3 s) before the first chunk: first_byte decides.
    sim.push(Reply::Answer(Answer { first_after: Duration::from_secs(30), ..Answer::default() }), 1);
    let limits = super::timeouts(Duration::from_millis(100), Duration::from_secs(5), Duration::from_secs(5));
    let run = run_chat(&*t, &user("think", true), &limits).await;
    assert_eq!(
        run.result.unwrap_err(),
        ProviderError::Timeout { phase: "first_byte", limit: Duration::from_millis(100) }
    );
}
