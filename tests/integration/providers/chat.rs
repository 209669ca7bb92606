//! Chat completions, plain and streamed, against llmock.

use exai::providers::VendorKind;
use exai_actors::provider::types::StreamEvent;
use serde_json::json;
use std::time::Duration;

use super::{generous, run_chat, transport, user, MODEL};
use crate::common::mock::MockProvider;

#[actix_rt::test]
async fn plain_chat_parses_the_answer_and_sends_the_openai_body() {
    let mock = MockProvider::start_llmock(&[]);
    let t = transport(&mock, VendorKind::OpenAiCompatible);
    let mut req = user("Say hello to the tests", false);
    req.temperature = Some(0.25);
    req.max_tokens = Some(64);
    req.extra.insert("top_p".into(), json!(0.5));

    let run = run_chat(&*t, &req, &generous()).await;
    let answer = run.result.unwrap();
    assert!(run.events.is_empty(), "a plain call emits no stream events");
    assert!(!answer.content.is_empty());
    assert_eq!(answer.finish_reason.as_deref(), Some("stop"));
    assert_eq!(answer.model, MODEL);
    assert!(answer.tool_calls.is_empty() && answer.reasoning.is_none());
    let usage = answer.usage.expect("usage");
    assert!(usage.completion_tokens > 0);
    assert_eq!(usage.total_tokens, usage.prompt_tokens + usage.completion_tokens);

    let journal = mock.journal().await;
    assert_eq!(journal.len(), 1, "{journal:?}");
    assert_eq!(journal[0]["path"], "/v1/chat/completions");
    assert_eq!(
        journal[0]["body"],
        json!({
            "model": MODEL,
            "messages": [{"role": "user", "content": "Say hello to the tests"}],
            "temperature": 0.25,
            "max_tokens": 64,
            "stream": false,
            "top_p": 0.5
        })
    );
}

#[actix_rt::test]
async fn stream_delivers_chunks_as_they_arrive_and_the_whole_answer_at_the_end() {
    // 150 ms between chunks: the events must arrive spread over the call, not all at its end.
    let mock = MockProvider::start_llmock(&["--stream-chunk-delay-ms", "150"]);
    let t = transport(&mock, VendorKind::OpenAiCompatible);
    let run = run_chat(&*t, &user("Tell me something in a few words", true), &generous()).await;
    let answer = run.result.as_ref().unwrap();

    let contents: Vec<Duration> =
        run.events.iter().filter(|(_, e)| matches!(e, StreamEvent::Content(_))).map(|(at, _)| *at).collect();
    assert!(contents.len() >= 3, "expected several content chunks, got {:?}", run.events);
    let early = contents.iter().filter(|at| **at + Duration::from_millis(250) <= run.elapsed).count();
    assert!(
        early >= 2,
        "chunks must reach the caller while the stream runs: arrivals {contents:?}, call took {:?}",
        run.elapsed
    );
    assert_eq!(run.content_events(), answer.content, "the final answer is the concatenated chunks");
    assert_eq!(answer.finish_reason.as_deref(), Some("stop"));
    let usage = answer.usage.expect("usage from stream_options.include_usage");
    assert!(usage.total_tokens > 0);

    let journal = mock.journal().await;
    assert_eq!(journal[0]["body"]["stream"], true);
    assert_eq!(journal[0]["body"]["stream_options"], json!({"include_usage": true}));
    assert_eq!(journal[0]["completed"], true);
}
