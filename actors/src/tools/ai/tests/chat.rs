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
    assert_eq!(r["metadata"]["model"], "kimi-k2-0905-preview");
    assert_eq!(r["metadata"]["routing"], "continuation keeps its model");
    let (_, req) = h.script.requests().pop().unwrap();
    assert_eq!(req.messages.len(), 4, "system + previous exchange + new prompt");
    assert_eq!(h.script.calls(), 2);
    let capped =
        Harness::echo(CoreSettings { max_provider_calls_per_invocation: 0, ..CoreSettings::default() }, "x").await;
    assert!(capped.call(&Chat::new(), json!({ "prompt": "hi" })).await.is_err());
    assert_eq!(capped.script.calls(), 0);
}
