//! `planner`: sequential planning with revisions and branches, entirely local (no model).
//!
//! Each call records one planning step in the conversation thread; the plan is rebuilt from
//! the recorded steps every time: a revision replaces the content of an earlier step, a step
//! with `branch_id` goes to that branch (created from `branch_from_step` of the main line), a
//! re-sent step number replaces the earlier record. The answer carries the plan so far, then
//! `planning_complete` with the whole plan when `next_step_required` is false.

use super::common::{json_output, object_schema, pick_common, props, Common};
use super::steps::{pick_steps, record, recorded};
use super::workflow::open_thread;
use crate::error::ToolError;
use crate::tools::{Tool, ToolContext, ToolKind, ToolOutput, ToolSpec};
use futures_util::future::LocalBoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

const NAME: &str = "planner";

/// One recorded planning step.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct PlanStep {
    /// 1-based.
    pub step_number: u32,
    /// Planned steps.
    pub total_steps: u32,
    /// More steps follow.
    pub next_step_required: bool,
    /// The step's content.
    pub step: String,
    /// This step revises an earlier one.
    #[serde(default)]
    pub is_step_revision: bool,
    /// Which step it revises.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revises_step_number: Option<u32>,
    /// Alternatives branch off here.
    #[serde(default)]
    pub is_branch_point: bool,
    /// The main-line step a branch starts from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch_from_step: Option<u32>,
    /// The branch this step belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch_id: Option<String>,
    /// The plan needs more steps than `total_steps`.
    #[serde(default)]
    pub more_steps_needed: bool,
}

/// One step of the plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanEntry {
    /// Step number.
    pub step_number: u32,
    /// Current content.
    pub content: String,
    /// How often it was revised.
    pub revisions: u32,
    /// Alternatives branch off here.
    pub branch_point: bool,
}

/// A branch of the plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Branch {
    /// Main-line step it starts from.
    pub from_step: u32,
    /// Its steps.
    pub steps: Vec<PlanEntry>,
}

/// The plan so far.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Plan {
    /// The main line.
    pub main: Vec<PlanEntry>,
    /// Branches by id.
    pub branches: BTreeMap<String, Branch>,
}

/// Why a step cannot be applied: (field, message).
pub type PlanError = (&'static str, String);

impl Plan {
    /// Build from recorded steps (oldest first); steps that do not apply are skipped.
    pub fn from_steps(steps: &[PlanStep]) -> Plan {
        let mut p = Plan::default();
        for s in steps {
            let _ = p.apply(s);
        }
        p
    }

    /// Apply one step; the plan is unchanged when it does not apply.
    pub fn apply(&mut self, s: &PlanStep) -> Result<(), PlanError> {
        let mut next = self.clone();
        next.apply_in_place(s)?;
        *self = next;
        Ok(())
    }

    fn apply_in_place(&mut self, s: &PlanStep) -> Result<(), PlanError> {
        if s.branch_from_step.is_some() && s.branch_id.is_none() {
            return Err(("branch_id", "give the branch a branch_id when branching with branch_from_step".into()));
        }
        let list = match &s.branch_id {
            None => &mut self.main,
            Some(id) => {
                if !self.branches.contains_key(id) {
                    let Some(from) = s.branch_from_step else {
                        return Err((
                            "branch_from_step",
                            format!("branch '{id}' is new: say which step it branches from"),
                        ));
                    };
                    if !self.main.iter().any(|e| e.step_number == from) {
                        return Err(("branch_from_step", format!("step {from} is not in the main plan")));
                    }
                    self.branches.insert(id.clone(), Branch { from_step: from, steps: Vec::new() });
                }
                match self.branches.get_mut(id) {
                    Some(b) => &mut b.steps,
                    None => return Err(("branch_id", format!("branch '{id}' is unknown"))),
                }
            }
        };
        if s.is_step_revision {
            let Some(target) = s.revises_step_number else {
                return Err(("revises_step_number", "a revision must name the step it revises".into()));
            };
            let Some(e) = list.iter_mut().find(|e| e.step_number == target) else {
                return Err(("revises_step_number", format!("step {target} is not in this line of the plan")));
            };
            e.content = s.step.clone();
            e.revisions += 1;
            e.branch_point |= s.is_branch_point;
            return Ok(());
        }
        list.retain(|e| e.step_number != s.step_number);
        list.push(PlanEntry {
            step_number: s.step_number,
            content: s.step.clone(),
            revisions: 0,
            branch_point: s.is_branch_point,
        });
        list.sort_by_key(|e| e.step_number);
        Ok(())
    }

    /// The plan as markdown.
    pub fn render(&self) -> String {
        let mut out = String::from("## Plan\n");
        for e in &self.main {
            let mark = if e.branch_point { " (branch point)" } else { "" };
            out.push_str(&format!("{}. {}{mark}\n", e.step_number, e.content));
        }
        for (id, b) in &self.branches {
            out.push_str(&format!("\n### Branch {id} (from step {})\n", b.from_step));
            for e in &b.steps {
                out.push_str(&format!("{}. {}\n", e.step_number, e.content));
            }
        }
        out
    }
}

/// The tool.
pub struct Planner(ToolSpec);

impl Default for Planner {
    fn default() -> Self {
        Self::new()
    }
}

impl Planner {
    /// Build it.
    pub fn new() -> Self {
        let mut properties = pick_common(&["continuation_id"]);
        properties.extend(pick_steps(&["step_number", "total_steps", "next_step_required"]));
        properties.extend(props(json!({
            "step": { "type": "string", "minLength": 1, "maxLength": 20000,
                      "description": "This planning step: at step 1 the task, scope and constraints; later, the next part of the plan (or the revised content)." },
            "is_step_revision": { "type": "boolean", "description": "This step replaces the content of an earlier step." },
            "revises_step_number": { "type": "integer", "minimum": 1, "maximum": 1000, "description": "The step being revised." },
            "is_branch_point": { "type": "boolean", "description": "Alternative approaches branch off at this step." },
            "branch_from_step": { "type": "integer", "minimum": 1, "maximum": 1000, "description": "Main-line step a new branch starts from." },
            "branch_id": { "type": "string", "minLength": 1, "maxLength": 100, "description": "Name of the branch this step belongs to, e.g. 'approach-b'." },
            "more_steps_needed": { "type": "boolean", "description": "The plan needs more steps than total_steps said." }
        })));
        Planner(ToolSpec {
            name: NAME.into(),
            title: Some("Planner".into()),
            description: "Interactive sequential planning for complex tasks: build a plan one step per call, revise \
                          earlier steps, branch into alternatives. No model is called; the plan is kept in the \
                          conversation thread (pass the returned continuation_id) and returned with every call."
                .into(),
            input_schema: object_schema(properties, &["step", "step_number", "total_steps", "next_step_required"]),
            kind: ToolKind::Builtin,
            read_only: true,
        })
    }
}

impl Tool for Planner {
    fn spec(&self) -> &ToolSpec {
        &self.0
    }

    fn call(
        &self,
        ctx: ToolContext,
        args: Map<String, Value>,
    ) -> LocalBoxFuture<'static, Result<ToolOutput, ToolError>> {
        Box::pin(async move { run(&ctx, &args).await })
    }
}

fn parse(args: &Map<String, Value>) -> Result<PlanStep, ToolError> {
    let c = Common(args);
    let step_number = c.u32("step_number").unwrap_or(1).max(1);
    let more = c.bool("more_steps_needed").unwrap_or(false);
    let next = c.bool("next_step_required").unwrap_or(false);
    if more && !next {
        return Err(ToolError::InvalidArguments {
            field: "more_steps_needed".into(),
            message: "more steps are needed, so next_step_required must be true".into(),
        });
    }
    let mut total = c.u32("total_steps").unwrap_or(step_number).max(step_number);
    if more {
        total = total.max(step_number + 1);
    }
    Ok(PlanStep {
        step_number,
        total_steps: total,
        next_step_required: next,
        step: c.str("step").unwrap_or_default().to_string(),
        is_step_revision: c.bool("is_step_revision").unwrap_or(false),
        revises_step_number: c.u32("revises_step_number"),
        is_branch_point: c.bool("is_branch_point").unwrap_or(false),
        branch_from_step: c.u32("branch_from_step"),
        branch_id: c.str("branch_id").map(str::to_string),
        more_steps_needed: more,
    })
}

async fn run(ctx: &ToolContext, args: &Map<String, Value>) -> Result<ToolOutput, ToolError> {
    let step = parse(args)?;
    let (mut thread, warnings) = open_thread(ctx, args, NAME, step.step_number).await?;
    let mut plan = Plan::from_steps(&recorded::<PlanStep>(&thread, NAME));
    plan.apply(&step).map_err(|(field, message)| ToolError::InvalidArguments { field: field.into(), message })?;
    let done = !step.next_step_required;
    let status = if done { "planning_complete" } else { "pause_for_planner" };
    let ack = format!("Recorded planning step {}/{} ({status}).", step.step_number, step.total_steps);
    record(ctx, &mut thread, NAME, step.step_number, "step", &step, &ack, json!({ "status": status }), None).await?;
    let kind = match (&step.branch_id, step.is_step_revision) {
        (_, true) => "revision",
        (Some(_), false) => "branch_step",
        (None, false) => "step",
    };
    let mut v = json!({
        "status": status,
        "step_number": step.step_number,
        "total_steps": step.total_steps,
        "next_step_required": step.next_step_required,
        "continuation_id": thread.record.continuation_id,
        "step_recorded": { "kind": kind, "step_number": step.step_number, "branch_id": step.branch_id,
                           "revises_step_number": step.revises_step_number },
        "plan": plan,
        "branches": plan.branches.keys().collect::<Vec<_>>(),
        "metadata": { "tool": NAME, "provider_calls": 0 },
    });
    if !warnings.is_empty() {
        v["warnings"] = json!(warnings);
    }
    if done {
        v["plan_summary"] = json!(plan.render());
        v["next_steps"] = json!(
            "PLANNING IS COMPLETE. Present the whole plan with its steps, branches and their trade-offs, and start \
             with step 1 when the user agrees."
        );
    } else if step.total_steps >= 5 && step.step_number <= 3 {
        v["required_actions"] = json!([
            "Reflect before the next step: is the scope right, and what are the dependencies?",
            "Consider alternative approaches and mark a branch point where they diverge",
            "Revise an earlier step (is_step_revision) if it no longer fits",
        ]);
        v["next_steps"] = json!(format!(
            "Complex plan: think deeply before step {} — then call planner with it and the continuation_id.",
            step.step_number + 1
        ));
    } else {
        v["next_steps"] = json!(format!(
            "Continue with step {} of the plan: call planner with it and the continuation_id{}.",
            step.step_number + 1,
            if step.step_number + 1 >= step.total_steps {
                ", and next_step_required false if it is the last"
            } else {
                ""
            }
        ));
    }
    Ok(json_output(v, None))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn s(n: u32, text: &str) -> PlanStep {
        PlanStep { step_number: n, total_steps: 5, next_step_required: true, step: text.into(), ..PlanStep::default() }
    }

    #[test]
    fn revisions_and_branches() {
        let mut p = Plan::default();
        p.apply(&s(1, "scope")).unwrap();
        p.apply(&PlanStep { is_branch_point: true, ..s(2, "design") }).unwrap();
        p.apply(&s(3, "build")).unwrap();
        p.apply(&PlanStep { is_step_revision: true, revises_step_number: Some(1), ..s(4, "narrower scope") }).unwrap();
        p.apply(&PlanStep { branch_from_step: Some(2), branch_id: Some("alt".into()), ..s(5, "other design") })
            .unwrap();
        p.apply(&PlanStep { branch_id: Some("alt".into()), ..s(6, "alt build") }).unwrap();
        assert_eq!(p.main.iter().map(|e| e.step_number).collect::<Vec<_>>(), vec![1, 2, 3]);
        assert_eq!(p.main[0].content, "narrower scope");
        assert_eq!(p.main[0].revisions, 1);
        assert!(p.main[1].branch_point);
        let b = &p.branches["alt"];
        assert_eq!(b.from_step, 2);
        assert_eq!(b.steps.iter().map(|e| e.content.as_str()).collect::<Vec<_>>(), vec!["other design", "alt build"]);
        assert!(p.render().contains("### Branch alt (from step 2)"));

        let before = p.clone();
        let e = p.apply(&PlanStep { is_step_revision: true, revises_step_number: Some(9), ..s(7, "x") }).unwrap_err();
        assert_eq!(e.0, "revises_step_number");
        let e = p.apply(&PlanStep { branch_id: Some("new".into()), ..s(7, "x") }).unwrap_err();
        assert_eq!(e.0, "branch_from_step");
        let e = p.apply(&PlanStep { branch_from_step: Some(1), ..s(7, "x") }).unwrap_err();
        assert_eq!(e.0, "branch_id");
        let e = p.apply(&PlanStep { branch_from_step: Some(8), branch_id: Some("b".into()), ..s(7, "x") }).unwrap_err();
        assert_eq!(e.0, "branch_from_step");
        let revise_in_new_branch = PlanStep {
            branch_from_step: Some(1),
            branch_id: Some("c".into()),
            is_step_revision: true,
            revises_step_number: Some(1),
            ..s(7, "x")
        };
        assert_eq!(p.apply(&revise_in_new_branch).unwrap_err().0, "revises_step_number");
        assert_eq!(p, before, "a rejected step leaves the plan unchanged (no half-created branch)");
    }

    #[test]
    fn resent_step_replaces() {
        let p = Plan::from_steps(&[s(1, "a"), s(2, "b"), s(2, "b2")]);
        assert_eq!(p.main.len(), 2);
        assert_eq!(p.main[1].content, "b2");
    }
}
