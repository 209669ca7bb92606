//! Every AI tool's schema compiles in the registry and is closed.

use crate::metrics::Metrics;
use crate::tools::ai;
use crate::tools::registry::Registry;
use serde_json::json;

#[test]
fn schemas_compile_and_are_closed() {
    let metrics = Metrics::new().unwrap();
    let tools = ai::all();
    for t in &tools {
        let s = &t.spec().input_schema;
        assert_eq!(s["additionalProperties"], json!(false), "{}", t.spec().name);
        assert!(t.spec().description.len() > 40, "{} needs a useful description", t.spec().name);
    }
    let reg = Registry::new(tools, &[], 50, &metrics).unwrap();
    assert_eq!(
        reg.names(),
        [
            "chat",
            "thinkdeep",
            "analyze",
            "debug",
            "codereview",
            "precommit",
            "refactor",
            "secaudit",
            "testgen",
            "tracer",
            "docgen",
            "planner",
            "consensus",
            "challenge",
            "kimi_chat_with_tools",
            "kimi_intent_analysis",
            "glm_web_search",
            "glm_payload_preview",
        ]
    );
    let debug = reg.get("debug").unwrap();
    let ok = json!({ "step": "s", "step_number": 1, "total_steps": 1, "next_step_required": false, "findings": "" });
    debug.validate(Some(ok.clone())).unwrap();
    let mut unknown = ok.clone();
    unknown["bogus"] = json!(1);
    assert!(debug.validate(Some(unknown)).is_err());
    let mut bad = ok;
    bad["confidence"] = json!("sure");
    assert!(debug.validate(Some(bad)).is_err());
}
