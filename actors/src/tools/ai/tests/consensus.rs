//! consensus: one model per invocation, index walking, synthesis within the call cap.

use crate::error::ToolError;
use crate::settings::CoreSettings;
use crate::tools::ai::consensus::Consensus;
use crate::tools::ai::testkit::{answer, Harness};
use serde_json::{json, Value};

async fn harness(settings: CoreSettings) -> Harness {
    Harness::new(settings, |provider, req| {
        let system = req.messages[0].content.as_str().unwrap_or_default();
        let text = if system.contains("synthesise") {
            "SYNTHESIS".to_string()
        } else {
            format!("opinion of {} via {provider}", req.model)
        };
        Ok(answer(&req.model, &text))
    })
    .await
}

fn models() -> Value {
    json!([{ "model": "glm-4.5", "stance": "for" },
           { "model": "kimi-k2-0905-preview", "stance": "against" },
           { "model": "glm-4.6" }])
}

fn step(n: u32, extra: Value) -> Value {
    let mut v = json!({ "step": "Adopt event sourcing for orders?", "step_number": n, "total_steps": 3,
                        "next_step_required": n < 3, "findings": format!("agent view {n}") });
    if let (Value::Object(m), Value::Object(e)) = (&mut v, extra) {
        m.extend(e);
    }
    v
}

#[actix_rt::test]
async fn walks_models_one_per_call_then_synthesises() {
    let h = harness(CoreSettings::default()).await;
    let tool = Consensus::new();
    let r1 = h.ok(&tool, step(1, json!({ "models": models() }))).await;
    assert_eq!(r1["status"], "consulting_next_model");
    assert_eq!(r1["model_consulted"]["index"], 0);
    assert_eq!(r1["model_consulted"]["response"], "opinion of glm-4.5 via glm");
    assert_eq!(r1["next_model_index"], 1);
    assert_eq!(r1["next_model"]["stance"], "against");
    assert_eq!(h.script.calls(), 1);
    let (_, req) = &h.script.requests()[0];
    assert!(req.messages[0].content.as_str().unwrap().contains("supportive"), "stance prompt for 'for'");
    assert!(req.messages[1].content.as_str().unwrap().contains("Adopt event sourcing"));
    let cid = r1["continuation_id"].clone();

    let r2 = h.ok(&tool, step(2, json!({ "continuation_id": cid, "current_model_index": 1 }))).await;
    assert_eq!(r2["status"], "consulting_next_model");
    assert_eq!(r2["model_consulted"]["response"], "opinion of kimi-k2.6 via kimi");
    assert_eq!(r2["next_model_index"], 2);
    assert_eq!(h.script.calls(), 2);

    // No index: the next model not yet consulted; models come from the thread.
    let r3 = h.ok(&tool, step(3, json!({ "continuation_id": cid }))).await;
    assert_eq!(r3["status"], "consensus_workflow_complete");
    assert_eq!(r3["model_consulted"]["index"], 2);
    assert_eq!(r3["responses"].as_array().unwrap().len(), 3);
    assert_eq!(r3["synthesis"]["type"], "model");
    assert_eq!(r3["synthesis"]["content"], "SYNTHESIS");
    assert_eq!(r3["metadata"]["provider_calls"], 2, "last model + synthesis");
    assert_eq!(h.script.calls(), 4);
    let (_, synth) = h.script.requests().pop().unwrap();
    let prompt = synth.messages[1].content.as_str().unwrap().to_string();
    for m in ["opinion of glm-4.5", "opinion of kimi-k2.6", "opinion of glm-4.6", "agent view 3"] {
        assert!(prompt.contains(m), "synthesis lacks {m}");
    }

    let e = h.call(&tool, step(3, json!({ "continuation_id": cid, "current_model_index": 3 }))).await.unwrap_err();
    assert!(matches!(e, ToolError::InvalidArguments { ref field, .. } if field == "current_model_index"), "{e}");
    assert_eq!(h.script.calls(), 4);
}

#[actix_rt::test]
async fn synthesis_is_collected_when_the_cap_leaves_no_call() {
    let h = harness(CoreSettings { max_provider_calls_per_invocation: 1, ..CoreSettings::default() }).await;
    let tool = Consensus::new();
    let r = h
        .ok(
            &tool,
            step(1, json!({ "models": [{ "model": "glm-4.5" }], "total_steps": 1, "next_step_required": false })),
        )
        .await;
    assert_eq!(r["status"], "consensus_workflow_complete");
    assert_eq!(r["synthesis"]["type"], "collected");
    assert!(r["synthesis"]["reason"].as_str().unwrap().contains("max_provider_calls_per_invocation"));
    assert_eq!(h.script.calls(), 1);
}

#[actix_rt::test]
async fn rejects_missing_and_duplicate_models() {
    let h = harness(CoreSettings::default()).await;
    let tool = Consensus::new();
    let e = h.call(&tool, step(1, json!({}))).await.unwrap_err();
    assert!(matches!(e, ToolError::InvalidArguments { ref field, .. } if field == "models"), "{e}");
    let dup = json!([{ "model": "glm-4.5", "stance": "for" }, { "model": "glm-4.5", "stance": "for" }]);
    let e = h.call(&tool, step(1, json!({ "models": dup }))).await.unwrap_err();
    assert!(matches!(e, ToolError::InvalidArguments { ref field, .. } if field == "models/1"), "{e}");
    assert_eq!(h.script.calls(), 0);
}
