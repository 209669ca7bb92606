//! chat through the shared call path, and the call budget itself.

use crate::settings::CoreSettings;
use crate::tools::ai::chat::Chat;
use crate::tools::ai::common::CallBudget;
use crate::tools::ai::testkit::Harness;
use serde_json::json;

#[test]
fn budget_counts_and_refuses_past_the_cap() {
    let b = CallBudget::with_max(2);
    b.take("t").unwrap();
    b.take("t").unwrap();
    assert_eq!((b.used(), b.remaining()), (2, 0));
    let e = b.take("t").unwrap_err();
    assert!(e.to_string().contains("max_provider_calls_per_invocation"), "{e}");
    assert_eq!(b.used(), 2, "a refused call is not counted");
}

#[actix_rt::test]
async fn chat_makes_one_call_and_keeps_its_model_on_continuation() {
    let h = Harness::echo(CoreSettings::default(), "hello").await;
    let r = h.ok(&Chat::new(), json!({ "prompt": "hi", "model": "kimi-k2" })).await;
    assert_eq!(r["content"], "hello");
    assert_eq!(r["status"], "continuation_available");
    let cid = r["continuation_offer"]["continuation_id"].clone();
    let r = h.ok(&Chat::new(), json!({ "prompt": "again", "continuation_id": cid })).await;
    assert_eq!(r["metadata"]["model"], "kimi-k2.6");
    assert_eq!(r["metadata"]["routing"], "continuation keeps its model");
    let (_, req) = h.script.requests().pop().unwrap();
    assert_eq!(req.messages.len(), 4, "system + previous exchange + new prompt");
    assert_eq!(h.script.calls(), 2);
    let capped =
        Harness::echo(CoreSettings { max_provider_calls_per_invocation: 0, ..CoreSettings::default() }, "x").await;
    assert!(capped.call(&Chat::new(), json!({ "prompt": "hi" })).await.is_err());
    assert_eq!(capped.script.calls(), 0);
}

/// Every `exai call`, and every SDK after a reconnect, starts its request ids at 1: turns of
/// one thread that reuse a request id must all be stored and re-sent, none dropped.
#[actix_rt::test]
async fn turns_that_reuse_a_request_id_are_all_stored_and_resent() {
    let h = Harness::echo(CoreSettings::default(), "answer").await;
    let r = h.ok(&Chat::new(), json!({ "prompt": "turn one" })).await;
    let cid = r["continuation_offer"]["continuation_id"].clone();
    for (n, prompt) in [(2, "turn two"), (3, "turn three")] {
        let r = h.ok(&Chat::new(), json!({ "prompt": prompt, "continuation_id": cid })).await;
        assert_eq!(r["status"], "continuation_available", "turn {n}: {r}");
    }
    let (_, last) = h.script.requests().pop().unwrap();
    let texts: Vec<String> = last.messages.iter().map(|m| m.content.to_string()).collect();
    assert_eq!(texts.len(), 6, "system + two stored exchanges + the new prompt: {texts:?}");
    for needle in ["turn one", "turn two", "turn three"] {
        assert!(texts.iter().any(|t| t.contains(needle)), "{needle} missing from {texts:?}");
    }
    // A fourth turn sees all three exchanges.
    h.ok(&Chat::new(), json!({ "prompt": "turn four", "continuation_id": cid })).await;
    let (_, last) = h.script.requests().pop().unwrap();
    assert_eq!(last.messages.len(), 8, "system + three exchanges + the new prompt");
}
