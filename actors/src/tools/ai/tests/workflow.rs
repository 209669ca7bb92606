//! The workflow engine: step bookkeeping, statuses, no provider call on intermediate steps,
//! exactly one on the final step, skips, the per-invocation cap.

use crate::error::ToolError;
use crate::settings::CoreSettings;
use crate::tools::ai::steps::{recorded, StepRecord};
use crate::tools::ai::testkit::Harness;
use crate::tools::ai::workflow::WorkflowTool;
use crate::tools::ai::workflow_defs::{DEBUG, REFACTOR, THINKDEEP};
use serde_json::{json, Value};

fn step(n: u32, total: u32, more: bool, findings: &str) -> Value {
    json!({ "step": format!("step {n} text"), "step_number": n, "total_steps": total,
            "next_step_required": more, "findings": findings })
}

fn with(mut v: Value, extra: Value) -> Value {
    if let (Value::Object(m), Value::Object(e)) = (&mut v, extra) {
        m.extend(e);
    }
    v
}

#[actix_rt::test]
async fn intermediate_steps_make_no_call_and_final_makes_one() {
    let h = Harness::echo(CoreSettings::default(), "EXPERT VERDICT").await;
    let tool = WorkflowTool::new(&DEBUG);
    let code = h.file("lib.rs", "fn buggy() { /* off by one */ }");

    let r1 = h.ok(&tool, with(step(1, 3, true, "crash on empty input"), json!({ "confidence": "exploring" }))).await;
    assert_eq!(r1["status"], "pause_for_debug");
    assert_eq!(r1["step_number"], 1);
    assert_eq!(r1["next_step_required"], true);
    let cid = r1["continuation_id"].as_str().unwrap().to_string();
    assert_eq!(r1["next_call"]["arguments"]["step_number"], 2);
    assert_eq!(r1["next_call"]["arguments"]["continuation_id"], cid.as_str());
    assert!(!r1["required_actions"].as_array().unwrap().is_empty());
    assert_eq!(r1["metadata"]["provider_calls"], 0);
    assert_eq!(h.script.calls(), 0);

    let r2 = h
        .ok(
            &tool,
            with(
                step(2, 3, true, "index computed as len, not len-1"),
                json!({ "continuation_id": cid, "confidence": "high", "hypothesis": "off-by-one in buggy()",
                        "relevant_files": [code], "files_checked": [code],
                        "issues_found": [{ "severity": "high", "description": "off by one", "location": "lib.rs:1" }] }),
            ),
        )
        .await;
    assert_eq!(r2["status"], "debug_in_progress", "confidence high: wrapping up");
    assert_eq!(r2["continuation_id"], cid.as_str());
    assert_eq!(r2["debug_status"]["steps_recorded"], 2);
    assert_eq!(r2["debug_status"]["issues_by_severity"]["high"], 1);
    assert_eq!(h.script.calls(), 0, "intermediate steps make no provider call");

    let r3 = h
        .ok(
            &tool,
            with(step(3, 3, false, "fix: use len-1"), json!({ "continuation_id": cid, "confidence": "very_high" })),
        )
        .await;
    assert_eq!(r3["status"], "debug_complete");
    assert_eq!(r3["expert_analysis"]["content"], "EXPERT VERDICT");
    assert_eq!(r3["expert_analysis"]["status"], "analysis_complete");
    assert_eq!(r3["file_context"]["files_embedded"], 1);
    assert_eq!(r3["metadata"]["provider_calls"], 1);
    assert_eq!(r3["work_summary"]["steps_taken"], 3);
    assert_eq!(h.script.calls(), 1, "exactly one call on the final step");

    // The expert prompt consolidates every step and embeds the relevant file.
    let (provider, req) = h.script.requests().pop().unwrap();
    assert_eq!(provider, "glm", "auto routing: debug final step goes to the GLM quality model");
    assert_eq!(req.model, "glm-4.6");
    let prompt = req.messages.last().unwrap().content.as_str().unwrap().to_string();
    for needle in [
        "crash on empty input",
        "index computed as len",
        "fix: use len-1",
        "off-by-one in buggy()",
        "off by one",
        "/* off by one */",
    ] {
        assert!(prompt.contains(needle), "expert prompt lacks {needle:?}:\n{prompt}");
    }
    assert_eq!(req.messages.len(), 2, "own step messages are consolidated, not replayed");
    assert_eq!(req.messages[0].role, "system");

    // The thread holds all three steps (a restart would lose nothing).
    let thread = h.ctx.env.conversations.open(Some(&cid), "session-1", "local", "debug").await.unwrap();
    let steps: Vec<StepRecord> = recorded(&thread, "debug");
    assert_eq!(steps.iter().map(|s| s.step_number).collect::<Vec<_>>(), vec![1, 2, 3]);
    assert!(thread.record.model.is_none(), "workflow threads do not lock a model");
}

#[actix_rt::test]
async fn skips_expert_when_certain_or_disabled() {
    let h = Harness::echo(CoreSettings::default(), "x").await;
    let tool = WorkflowTool::new(&DEBUG);
    let r = h.ok(&tool, with(step(1, 1, false, "obvious"), json!({ "confidence": "certain" }))).await;
    assert_eq!(r["status"], "local_work_complete");
    assert_eq!(r["expert_analysis"]["status"], "skipped");
    let r = h.ok(&tool, with(step(1, 1, false, "f"), json!({ "use_assistant_model": false }))).await;
    assert_eq!(r["status"], "local_work_complete");
    assert_eq!(h.script.calls(), 0);

    let off = CoreSettings { expert_analysis: false, ..CoreSettings::default() };
    let h = Harness::echo(off, "x").await;
    let r = h.ok(&tool, step(1, 1, false, "f")).await;
    assert_eq!(r["status"], "local_work_complete");
    assert!(r["expert_analysis"]["reason"].as_str().unwrap().contains("expert_analysis"));
    assert_eq!(h.script.calls(), 0);
    let r = h.ok(&tool, with(step(1, 1, false, "f"), json!({ "use_assistant_model": true }))).await;
    assert_eq!(r["status"], "debug_complete", "the argument overrides the setting");
    assert_eq!(h.script.calls(), 1);
}

#[actix_rt::test]
async fn call_cap_is_an_error_never_a_call() {
    let capped = CoreSettings { max_provider_calls_per_invocation: 0, ..CoreSettings::default() };
    let h = Harness::echo(capped, "x").await;
    let tool = WorkflowTool::new(&THINKDEEP);
    let e = h.call(&tool, step(1, 1, false, "f")).await.unwrap_err();
    assert!(matches!(e, ToolError::Execution(ref m) if m.contains("max_provider_calls_per_invocation")), "{e}");
    assert_eq!(h.script.calls(), 0);
}

#[actix_rt::test]
async fn backtracking_drops_steps_from_the_consolidation() {
    let h = Harness::echo(CoreSettings::default(), "ok").await;
    let tool = WorkflowTool::new(&THINKDEEP);
    let r = h.ok(&tool, step(1, 3, true, "first idea")).await;
    let cid = r["continuation_id"].clone();
    h.ok(&tool, with(step(2, 3, true, "dead end"), json!({ "continuation_id": cid }))).await;
    let r = h
        .ok(
            &tool,
            with(
                step(3, 3, false, "better path"),
                json!({ "continuation_id": cid, "backtrack_from_step": 2, "problem_context": "latency budget 5ms" }),
            ),
        )
        .await;
    assert_eq!(r["status"], "thinkdeep_complete");
    assert_eq!(r["work_summary"]["steps_taken"], 2);
    let (provider, req) = h.script.requests().pop().unwrap();
    assert_eq!(
        (provider.as_str(), req.model.as_str()),
        ("kimi", "kimi-thinking-preview"),
        "thinkdeep routes to quality Kimi"
    );
    let prompt = req.messages.last().unwrap().content.as_str().unwrap().to_string();
    assert!(prompt.contains("first idea") && prompt.contains("better path") && !prompt.contains("dead end"));
    assert!(prompt.contains("problem_context: latency budget 5ms"), "own fields reach the expert");
}

#[actix_rt::test]
async fn files_outside_roots_are_rejected_at_the_step() {
    let h = Harness::echo(CoreSettings::default(), "ok").await;
    let tool = WorkflowTool::new(&REFACTOR);
    let e = h.call(&tool, with(step(1, 2, true, "f"), json!({ "relevant_files": ["/etc/passwd"] }))).await.unwrap_err();
    assert!(matches!(e, ToolError::InvalidArguments { ref field, .. } if field == "relevant_files/0"), "{e}");
    // `files` named at an earlier step and the refactor style guide reach the expert, read from the roots.
    let notes = h.file("notes.md", "NOTES MARKER");
    let r = h.ok(&tool, with(step(1, 2, true, "f"), json!({ "files": [notes] }))).await;
    let guide = h.file("style.rs", "// STYLE GUIDE MARKER");
    let r = h
        .ok(
            &tool,
            with(
                step(2, 2, false, "f"),
                json!({ "continuation_id": r["continuation_id"], "style_guide_examples": [guide] }),
            ),
        )
        .await;
    assert_eq!(r["file_context"]["files_embedded"], 2);
    let (_, req) = h.script.requests().pop().unwrap();
    let prompt = req.messages.last().unwrap().content.as_str().unwrap().to_string();
    assert!(prompt.contains("STYLE GUIDE MARKER") && prompt.contains("NOTES MARKER"));
}

#[actix_rt::test]
async fn later_step_without_continuation_warns() {
    let h = Harness::echo(CoreSettings::default(), "ok").await;
    let tool = WorkflowTool::new(&DEBUG);
    let r = h.ok(&tool, step(2, 3, true, "f")).await;
    assert!(r["warnings"][0].as_str().unwrap().contains("continuation_id"));
}
