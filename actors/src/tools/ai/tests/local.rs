//! planner, docgen and challenge: no provider calls, state in the thread.

use crate::error::ToolError;
use crate::settings::CoreSettings;
use crate::tools::ai::challenge::Challenge;
use crate::tools::ai::docgen::Docgen;
use crate::tools::ai::planner::Planner;
use crate::tools::ai::testkit::Harness;
use serde_json::{json, Value};

fn plan_step(n: u32, text: &str, more: bool, extra: Value) -> Value {
    let mut v = json!({ "step": text, "step_number": n, "total_steps": 4, "next_step_required": more });
    if let (Value::Object(m), Value::Object(e)) = (&mut v, extra) {
        m.extend(e);
    }
    v
}

#[actix_rt::test]
async fn planner_builds_revises_and_branches_across_calls() {
    let h = Harness::echo(CoreSettings::default(), "x").await;
    let tool = Planner::new();
    let r = h.ok(&tool, plan_step(1, "migrate the DB", true, json!({}))).await;
    assert_eq!(r["status"], "pause_for_planner");
    let cid = r["continuation_id"].clone();
    let c = json!({ "continuation_id": cid });
    let with = |mut a: Value, b: Value| {
        if let (Value::Object(m), Value::Object(e)) = (&mut a, b) {
            m.extend(e);
        }
        a
    };
    h.ok(&tool, plan_step(2, "dual-write", true, with(c.clone(), json!({ "is_branch_point": true })))).await;
    let r = h
        .ok(
            &tool,
            plan_step(
                3,
                "big-bang cutover",
                true,
                with(c.clone(), json!({ "branch_from_step": 2, "branch_id": "cutover" })),
            ),
        )
        .await;
    assert_eq!(r["step_recorded"]["kind"], "branch_step");
    assert_eq!(r["branches"], json!(["cutover"]));
    let r = h
        .ok(
            &tool,
            plan_step(
                4,
                "migrate orders DB",
                true,
                with(
                    c.clone(),
                    json!({ "is_step_revision": true, "revises_step_number": 1, "more_steps_needed": true }),
                ),
            ),
        )
        .await;
    assert_eq!(r["total_steps"], 5, "more_steps_needed extends the plan");
    let e = h
        .call(
            &tool,
            plan_step(5, "x", true, with(c.clone(), json!({ "is_step_revision": true, "revises_step_number": 9 }))),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, ToolError::InvalidArguments { ref field, .. } if field == "revises_step_number"), "{e}");
    let r = h.ok(&tool, plan_step(5, "verify and switch reads", false, c.clone())).await;
    assert_eq!(r["status"], "planning_complete");
    let main: Vec<&str> =
        r["plan"]["main"].as_array().unwrap().iter().map(|e| e["content"].as_str().unwrap()).collect();
    assert_eq!(main, vec!["migrate orders DB", "dual-write", "verify and switch reads"]);
    assert_eq!(r["plan"]["branches"]["cutover"]["from_step"], 2);
    assert!(r["plan_summary"].as_str().unwrap().contains("Branch cutover"));
    assert_eq!(h.script.calls(), 0);
}

fn doc_step(n: u32, more: bool, done: u32, total: u32, extra: Value) -> Value {
    let mut v = json!({ "step": "document the parser", "step_number": n, "total_steps": 4, "next_step_required": more,
                        "findings": "", "num_files_documented": done, "total_files_to_document": total });
    if let (Value::Object(m), Value::Object(e)) = (&mut v, extra) {
        m.extend(e);
    }
    v
}

#[actix_rt::test]
async fn docgen_counts_files_and_refuses_to_finish_early() {
    let h = Harness::echo(CoreSettings::default(), "x").await;
    let tool = Docgen::new();
    let r = h.ok(&tool, doc_step(1, true, 0, 0, json!({}))).await;
    assert_eq!(r["status"], "pause_for_docgen");
    assert!(r["required_actions"].to_string().contains("total_files_to_document"));
    let c = r["continuation_id"].clone();
    let r = h.ok(&tool, doc_step(2, true, 0, 2, json!({ "continuation_id": c, "document_complexity": false }))).await;
    let actions = r["required_actions"].to_string();
    assert!(actions.contains("call flow") && !actions.contains("Big O"), "{actions}");
    let e = h.call(&tool, doc_step(3, false, 1, 2, json!({ "continuation_id": c }))).await.unwrap_err();
    assert!(matches!(e, ToolError::InvalidArguments { ref field, .. } if field == "next_step_required"), "{e}");
    let e = h.call(&tool, doc_step(3, true, 3, 2, json!({ "continuation_id": c }))).await.unwrap_err();
    assert!(matches!(e, ToolError::InvalidArguments { ref field, .. } if field == "num_files_documented"), "{e}");
    let r = h.ok(&tool, doc_step(3, false, 2, 2, json!({ "continuation_id": c }))).await;
    assert_eq!(r["status"], "docgen_complete");
    assert_eq!(r["documentation_progress"]["remaining"], 0);
    assert_eq!(h.script.calls(), 0);
}

#[actix_rt::test]
async fn challenge_wraps_the_statement() {
    let h = Harness::echo(CoreSettings::default(), "x").await;
    let r = h.ok(&Challenge::new(), json!({ "prompt": "the cache is never stale" })).await;
    assert_eq!(r["status"], "challenge_created");
    assert_eq!(r["original_statement"], "the cache is never stale");
    let p = r["challenge_prompt"].as_str().unwrap();
    assert!(p.contains("\"the cache is never stale\"") && p.contains("do not agree by default"), "{p}");
    assert!(h.call(&Challenge::new(), json!({ "prompt": "  " })).await.is_err());
    assert_eq!(h.script.calls(), 0);
}
