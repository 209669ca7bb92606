//! The workflow engine behind `thinkdeep`, `analyze`, `debug`, `codereview`, `precommit`,
//! `refactor`, `secaudit`, `testgen` and `tracer`: one generic [`WorkflowTool`] driven by a
//! per-tool [`WorkflowDef`] (its fields, guidance and expert prompt; see `workflow_defs`).
//!
//! The calling agent does the investigation; every call records one step in the
//! conversation thread (created at step 1; its `continuation_id` is returned every time).
//! While `next_step_required` is true the tool makes no provider call and answers with
//! `pause_for_<tool>` (confidence below `high`: keep investigating) or `<tool>_in_progress`
//! (confidence `high` or above: wrap up), plus required actions for the agent. The final step
//! (`next_step_required: false`) consolidates every recorded step and, unless expert analysis
//! is off (`use_assistant_model`, default the `expert_analysis` setting) or confidence is
//! `certain`, calls the model exactly once (`calling_expert_analysis` is reported as
//! progress) and answers `<tool>_complete`; otherwise `local_work_complete`. There is no
//! self-recursion: an invocation makes at most one provider call, within the per-invocation
//! budget.

use super::common::{
    call_model, common_properties, image_parts, json_output, object_schema, paths_section, request_from_args,
    result_meta, user_message, CallBudget, Common,
};
use super::steps::{
    consolidate, is_step_message, record, recorded, step_properties, Consolidated, StepRecord, STEP_REQUIRED,
};
use crate::conversation::Thread;
use crate::error::ToolError;
use crate::provider::router::StepInfo;
use crate::provider::service::{ChatCall, ChatResult};
use crate::provider::types::ChatMessage;
use crate::tools::{ProgressEvent, Tool, ToolContext, ToolKind, ToolOutput, ToolSpec};
use futures_util::future::LocalBoxFuture;
use serde_json::{json, Map, Value};

/// Guidance for the agent by phase.
#[derive(Debug)]
pub struct Actions {
    /// Step 1.
    pub first: &'static [&'static str],
    /// Later steps with confidence below `high`.
    pub investigating: &'static [&'static str],
    /// Later steps with confidence `high` or above.
    pub confirming: &'static [&'static str],
}

/// What makes one workflow tool different from the others.
#[derive(Debug)]
pub struct WorkflowDef {
    /// Tool name.
    pub name: &'static str,
    /// Human title.
    pub title: &'static str,
    /// What the tool is for (the step-pattern note is appended).
    pub description: &'static str,
    /// The tool's own argument properties (a JSON object of JSON Schemas).
    pub fields: fn() -> Value,
    /// Own fields holding file paths the server reads for the expert (string or array).
    pub file_fields: &'static [&'static str],
    /// Expert system prompt.
    pub expert_role: &'static str,
    /// What the expert must deliver.
    pub expert_task: &'static str,
    /// What the agent presents at the end.
    pub deliverable: &'static str,
    /// Required actions by phase.
    pub actions: Actions,
}

const STEP_NOTE: &str = "Step workflow: YOU do the investigation between calls; each call records one step \
(pass the returned continuation_id to every later call). Intermediate steps make no model call. The final \
step (next_step_required=false) consolidates all steps and asks an expert model once to validate them, \
unless use_assistant_model=false or confidence=certain. The server reads relevant_files itself (allowed \
roots only); never paste file contents.";

const EXPERT_RULES: &str = "You receive the consolidated work of an engineer (an AI agent) who investigated \
step by step, plus the relevant files. Validate it: confirm what holds with evidence, correct what is wrong, \
add what was missed, and rank your points by importance. Be specific (files, functions, lines) and concise; \
answer in markdown.";

/// A workflow tool.
pub struct WorkflowTool {
    def: &'static WorkflowDef,
    spec: ToolSpec,
    extra_keys: Vec<String>,
}

impl WorkflowTool {
    /// Build from its definition.
    pub fn new(def: &'static WorkflowDef) -> WorkflowTool {
        let own = super::common::props((def.fields)());
        let extra_keys = own.keys().cloned().collect();
        let mut properties = common_properties();
        properties.extend(step_properties());
        properties.extend(own);
        WorkflowTool {
            def,
            spec: ToolSpec {
                name: def.name.into(),
                title: Some(def.title.into()),
                description: format!("{} {STEP_NOTE}", def.description),
                input_schema: object_schema(properties, &STEP_REQUIRED),
                kind: ToolKind::Workflow,
                read_only: true,
            },
            extra_keys,
        }
    }
}

impl Tool for WorkflowTool {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    fn call(
        &self,
        ctx: ToolContext,
        args: Map<String, Value>,
    ) -> LocalBoxFuture<'static, Result<ToolOutput, ToolError>> {
        let def = self.def;
        let extra_keys = self.extra_keys.clone();
        Box::pin(async move { run(def, &extra_keys, &ctx, &args).await })
    }
}

/// Rank of a confidence level (unknown levels rank as `low`).
pub fn confidence_rank(c: &str) -> usize {
    super::steps::CONFIDENCE.iter().position(|x| *x == c).unwrap_or(1)
}

/// The intermediate status for a step.
pub fn intermediate_status(tool: &str, confidence: &str) -> String {
    if confidence_rank(confidence) >= confidence_rank("high") {
        format!("{tool}_in_progress")
    } else {
        format!("pause_for_{tool}")
    }
}

/// Why expert analysis is skipped on a final step, if it is.
pub fn expert_skip_reason(ctx: &ToolContext, args: &Map<String, Value>, confidence: &str) -> Option<String> {
    match Common(args).bool("use_assistant_model") {
        Some(false) => return Some("use_assistant_model is false".into()),
        None if !ctx.env.settings.expert_analysis => {
            return Some("the server's expert_analysis setting is off (pass use_assistant_model: true to ask)".into())
        }
        _ => {}
    }
    (confidence == "certain").then(|| "confidence is 'certain'".into())
}

/// The step's files: `relevant_files` plus the common `files` argument (kept with the step, so
/// files named at any step reach the final expert call).
pub fn merge_files(step: &mut StepRecord, args: &Map<String, Value>) {
    for f in Common(args).strings("files") {
        if !step.relevant_files.contains(&f) {
            step.relevant_files.push(f);
        }
    }
}

/// Check the step's relevant files now, so a bad path is reported at the step naming it.
pub async fn check_files(ctx: &ToolContext, field: &str, paths: &[String]) -> Result<(), ToolError> {
    for (i, p) in paths.iter().enumerate() {
        ctx.env.files.resolve(&format!("{field}/{i}"), p).await?;
    }
    Ok(())
}

/// Open the thread named by `continuation_id` (or a new one) and warn when a later step
/// starts a new thread.
pub async fn open_thread(
    ctx: &ToolContext,
    args: &Map<String, Value>,
    tool: &str,
    step_number: u32,
) -> Result<(Thread, Vec<String>), ToolError> {
    let thread =
        ctx.env.conversations.open(Common(args).str("continuation_id"), &ctx.session_id, &ctx.principal, tool).await?;
    let mut warnings = Vec::new();
    if thread.is_new && step_number > 1 {
        warnings.push(format!(
            "step {step_number} came without continuation_id: a new thread was started and earlier steps are not \
             part of it; pass the continuation_id returned by step 1"
        ));
    }
    Ok((thread, warnings))
}

async fn run(
    def: &'static WorkflowDef,
    extra_keys: &[String],
    ctx: &ToolContext,
    args: &Map<String, Value>,
) -> Result<ToolOutput, ToolError> {
    let mut step = StepRecord::from_args(def.name, args, extra_keys)?;
    merge_files(&mut step, args);
    check_files(ctx, "relevant_files", &step.relevant_files).await?;
    let (mut thread, warnings) = open_thread(ctx, args, def.name, step.step_number).await?;
    let mut records: Vec<StepRecord> = recorded(&thread, def.name);
    records.push(step.clone());
    let cons = consolidate(records);
    let budget = CallBudget::new(ctx);
    let name = def.name;

    if step.next_step_required {
        let status = intermediate_status(name, step.confidence());
        let ack = format!("Recorded step {}/{} of {name} ({status}).", step.step_number, step.total_steps);
        record(ctx, &mut thread, name, step.step_number, "step", &step, &ack, json!({ "status": status }), None)
            .await?;
        let mut v = base_response(def, &step, &cons, &thread, &status, &budget, None, &warnings);
        intermediate_guidance(def, &step, &thread, &mut v);
        return Ok(json_output(v, None));
    }

    if let Some(reason) = expert_skip_reason(ctx, args, step.confidence()) {
        let status = "local_work_complete";
        let ack = format!("{name} finished locally after {} step(s): {reason}.", cons.steps.len());
        record(ctx, &mut thread, name, step.step_number, "final", &step, &ack, json!({ "status": status }), None)
            .await?;
        let mut v = base_response(def, &step, &cons, &thread, status, &budget, None, &warnings);
        v["expert_analysis"] = json!({ "status": "skipped", "reason": reason });
        v["file_context"] = reference_only(&cons);
        v["next_steps"] = json!(format!(
            "{} IS COMPLETE (finished locally, no expert analysis: {reason}). Present {}.",
            name.to_uppercase(),
            def.deliverable
        ));
        return Ok(json_output(v, None));
    }

    ctx.progress.emit(ProgressEvent::Progress {
        progress: step.step_number as f64,
        total: Some(step.total_steps as f64),
        message: Some("calling_expert_analysis".into()),
    });
    let (res, embedded) = expert(def, ctx, args, &thread, &cons, &step, &budget).await?;
    let status = format!("{name}_complete");
    let mut meta = super::common::answer_meta(&res);
    meta["status"] = json!(status);
    record(ctx, &mut thread, name, step.step_number, "final", &step, &res.response.content, meta, Some(&res.model))
        .await?;
    let mut v = base_response(def, &step, &cons, &thread, &status, &budget, Some(&res), &warnings);
    let mut analysis = json!({ "status": "analysis_complete", "content": res.response.content,
                               "model": res.model, "provider": res.provider });
    if let Some(r) = &res.response.reasoning {
        analysis["reasoning"] = json!(r);
    }
    v["expert_analysis"] = analysis;
    v["file_context"] = if embedded > 0 {
        json!({ "type": "fully_embedded", "files_embedded": embedded,
                "note": "the server read the relevant files for the expert analysis" })
    } else {
        json!({ "type": "none", "files_embedded": 0, "note": "no relevant_files were given; the expert saw none" })
    };
    v["next_steps"] = json!(format!(
        "{} IS COMPLETE. Present {}. The expert analysis is a second opinion: check each of its points \
         against the code before acting on it, keep what holds and say what you discard and why.",
        name.to_uppercase(),
        def.deliverable
    ));
    Ok(json_output(v, Some(&res)))
}

/// The fields every workflow response has.
#[allow(clippy::too_many_arguments)]
fn base_response(
    def: &WorkflowDef,
    step: &StepRecord,
    cons: &Consolidated,
    thread: &Thread,
    status: &str,
    budget: &CallBudget,
    res: Option<&ChatResult>,
    warnings: &[String],
) -> Value {
    let mut metadata = res.map(result_meta).unwrap_or_else(|| json!({}));
    metadata["tool"] = json!(def.name);
    metadata["provider_calls"] = json!(budget.used());
    let mut v = json!({
        "status": status,
        "step_number": step.step_number,
        "total_steps": step.total_steps,
        "next_step_required": step.next_step_required,
        "continuation_id": thread.record.continuation_id,
        "metadata": metadata,
    });
    v[format!("{}_status", def.name)] = json!({
        "steps_recorded": cons.steps.len(),
        "files_checked": cons.files_checked.len(),
        "relevant_files": cons.relevant_files.len(),
        "relevant_context": cons.relevant_context.len(),
        "issues_by_severity": cons.issue_counts(),
        "current_confidence": step.confidence(),
        "hypothesis": cons.hypothesis(),
    });
    if !step.next_step_required {
        v["work_summary"] = json!({
            "initial_request": cons.initial_request(),
            "steps_taken": cons.steps.len(),
            "files_examined": cons.files_checked,
            "relevant_files": cons.relevant_files,
            "relevant_context": cons.relevant_context,
            "issues_found": cons.issues,
            "final_hypothesis": cons.hypothesis(),
            "confidence": step.confidence(),
        });
    }
    if !warnings.is_empty() {
        v["warnings"] = json!(warnings);
    }
    v
}

fn reference_only(cons: &Consolidated) -> Value {
    json!({ "type": "reference_only", "relevant_files": cons.relevant_files,
            "note": "files are referenced by path; the server reads them only for the final expert analysis" })
}

fn intermediate_guidance(def: &WorkflowDef, step: &StepRecord, thread: &Thread, v: &mut Value) {
    let next = step.step_number + 1;
    let confirming = confidence_rank(step.confidence()) >= confidence_rank("high");
    let actions = match (step.step_number, confirming) {
        (1, _) => def.actions.first,
        (_, false) => def.actions.investigating,
        (_, true) => def.actions.confirming,
    };
    let finish = if confirming {
        " When the work is complete, make that call the final one (next_step_required: false)."
    } else {
        ""
    };
    v["required_actions"] = json!(actions);
    v["next_steps"] = json!(format!(
        "STOP: do not call {name} again yet. First do the required actions yourself (the server does not \
         investigate). Then call {name} with step_number {next}, the continuation_id, your new findings, \
         files_checked, relevant_files and an updated confidence.{finish}",
        name = def.name
    ));
    v["file_context"] = json!({ "type": "reference_only", "relevant_files": step.relevant_files,
                                "note": "files are referenced by path; the server reads them only for the final expert analysis" });
    v["next_call"] = json!({
        "tool": def.name,
        "arguments": {
            "continuation_id": thread.record.continuation_id,
            "step_number": next,
            "total_steps": step.total_steps.max(next),
            "next_step_required": next < step.total_steps,
        }
    });
}

/// File paths for the expert: the relevant files of all steps and the tool's file fields.
fn expert_paths(def: &WorkflowDef, cons: &Consolidated) -> Vec<String> {
    let mut paths = cons.relevant_files.clone();
    let mut more = Vec::new();
    for f in def.file_fields {
        match cons.extra.get(*f) {
            Some(Value::String(s)) => more.push(s.clone()),
            Some(Value::Array(a)) => more.extend(a.iter().filter_map(Value::as_str).map(str::to_string)),
            _ => {}
        }
    }
    for p in more {
        if !paths.contains(&p) {
            paths.push(p);
        }
    }
    paths
}

/// The one expert call: consolidated work plus files; the thread's other messages (chat and
/// other tools) are replayed as history, this tool's own step messages are not (the prompt
/// consolidates them).
async fn expert(
    def: &WorkflowDef,
    ctx: &ToolContext,
    args: &Map<String, Value>,
    thread: &Thread,
    cons: &Consolidated,
    step: &StepRecord,
    budget: &CallBudget,
) -> Result<(ChatResult, usize), ToolError> {
    let c = Common(args);
    let (files, embedded) = paths_section(ctx, "relevant_files", &expert_paths(def, cons)).await?;
    let images = image_parts(ctx, args).await?;
    let prompt = format!(
        "=== {} WORK BY THE AGENT ===\n{}=== END WORK ===\n\nYour task: {}{files}",
        def.name.to_uppercase(),
        cons.render(),
        def.expert_task
    );
    let mut messages = vec![ChatMessage::text("system", format!("{}\n\n{EXPERT_RULES}", def.expert_role))];
    messages.extend(
        thread
            .history
            .iter()
            .filter(|m| !is_step_message(&m.metadata, def.name))
            .map(|m| ChatMessage::text(m.role.as_str(), m.content.clone())),
    );
    messages.push(user_message(prompt, &images));
    let call = ChatCall {
        model: c.str("model").map(str::to_string),
        tool: def.name.to_string(),
        step: Some(StepInfo {
            step_number: step.step_number,
            total_steps: step.total_steps,
            next_step_required: false,
            deep: c.deep(),
        }),
        locked_model: thread.record.model.clone().filter(|_| !thread.is_new),
        request: request_from_args(args, messages),
    };
    Ok((call_model(ctx, budget, call).await?, embedded))
}
