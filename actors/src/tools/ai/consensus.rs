//! `consensus`: polls several models, each with a stance (for, against, neutral), on one
//! proposal, then synthesises their answers.
//!
//! One invocation consults exactly one model, the one at `current_model_index` (default: the
//! next one not yet consulted in this thread), with the proposal (step 1's `step`), the
//! agent's initial analysis (step 1's `findings`) and the relevant files, and stores its
//! answer in the thread. The answer is `consulting_next_model` with the next index, until the
//! last model: then `consensus_workflow_complete` with every response and a synthesis — made
//! by one more model call when expert analysis is on and the per-invocation call budget has
//! room, otherwise the responses collected as they are (the reason is reported).

use super::common::{
    call_model, common_properties, image_parts, json_output, object_schema, paths_section, props, request_from_args,
    result_meta, user_message, CallBudget, Common,
};
use super::steps::{consolidate, pick_steps, record, recorded, replies, StepRecord, STEP_REQUIRED};
use super::workflow::{check_files, merge_files, open_thread};
use crate::conversation::Thread;
use crate::error::ToolError;
use crate::provider::router::StepInfo;
use crate::provider::service::{ChatCall, ChatResult};
use crate::provider::types::ChatMessage;
use crate::tools::{Tool, ToolContext, ToolKind, ToolOutput, ToolSpec};
use futures_util::future::LocalBoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

const NAME: &str = "consensus";
const OWN: [&str; 3] = ["models", "current_model_index", "model_responses"];

/// One model to consult.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Consultant {
    /// Model name or alias.
    pub model: String,
    /// for | against | neutral.
    #[serde(default = "neutral")]
    pub stance: String,
    /// Replaces the default instructions of the stance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stance_prompt: Option<String>,
}

fn neutral() -> String {
    "neutral".into()
}

/// A stored answer of one consultant.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Consultation {
    /// Index in `models`.
    pub index: usize,
    /// Model requested.
    pub model: String,
    /// Model that answered.
    pub answered_by: String,
    /// Stance.
    pub stance: String,
    /// The answer.
    pub content: String,
}

fn stance_instructions(c: &Consultant) -> String {
    if let Some(p) = c.stance_prompt.as_deref().filter(|p| !p.trim().is_empty()) {
        return p.to_string();
    }
    match c.stance.as_str() {
        "for" => "Take the supportive perspective: bring out the proposal's merits and how to make it work, but \
                  be honest about real blockers; do not support a fundamentally flawed idea."
            .into(),
        "against" => "Take the critical perspective: look for risks, flaws, hidden costs and better alternatives, \
                      while acknowledging what is genuinely sound."
            .into(),
        _ => "Give a balanced, objective assessment of the benefits and the risks.".into(),
    }
}

/// The tool.
pub struct Consensus(ToolSpec);

impl Default for Consensus {
    fn default() -> Self {
        Self::new()
    }
}

impl Consensus {
    /// Build it.
    pub fn new() -> Self {
        let mut properties = common_properties();
        properties.insert(
            "model".into(),
            json!({ "type": "string", "maxLength": 100, "description": "model for the final synthesis, or \"auto\" (default)" }),
        );
        properties.extend(pick_steps(&[
            "step",
            "step_number",
            "total_steps",
            "next_step_required",
            "findings",
            "relevant_files",
            "use_assistant_model",
        ]));
        properties.extend(props(json!({
            "models": { "type": "array", "minItems": 1, "maxItems": 10,
                        "items": { "type": "object",
                                   "properties": { "model": { "type": "string", "minLength": 1, "maxLength": 100 },
                                                   "stance": { "type": "string", "enum": ["for", "against", "neutral"] },
                                                   "stance_prompt": { "type": "string", "maxLength": 5000 } },
                                   "required": ["model"], "additionalProperties": false },
                        "description": "Models to consult, in order, each with a stance (default neutral) and optional custom stance instructions; each (model, stance) pair once. Required on the first call." },
            "current_model_index": { "type": "integer", "minimum": 0, "maximum": 9,
                                     "description": "Index in models of the model to consult in this call (default: the next one not yet consulted)." },
            "model_responses": { "type": "array", "maxItems": 20,
                                 "items": { "type": "object",
                                            "properties": { "model": { "type": "string", "maxLength": 100 },
                                                            "stance": { "type": "string", "maxLength": 20 },
                                                            "content": { "type": "string", "maxLength": 100000 } },
                                            "required": ["content"], "additionalProperties": false },
                                 "description": "Further opinions gathered elsewhere, included in the synthesis." }
        })));
        Consensus(ToolSpec {
            name: NAME.into(),
            title: Some("Consensus".into()),
            description: "Multi-model consensus on a proposal or decision: consults the listed models one per call, \
                          each with a stance (for/against/neutral), then synthesises agreement and disagreement. \
                          Step 1: put the proposal in step and your own analysis in findings; then call again with \
                          the returned continuation_id and current_model_index until status is \
                          consensus_workflow_complete."
                .into(),
            input_schema: object_schema(properties, &STEP_REQUIRED),
            kind: ToolKind::Workflow,
            read_only: true,
        })
    }
}

impl Tool for Consensus {
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

fn invalid(field: &str, message: impl Into<String>) -> ToolError {
    ToolError::InvalidArguments { field: field.into(), message: message.into() }
}

/// The models from this call, or else from the thread's first step.
fn consultants(args: &Map<String, Value>, earlier: &[StepRecord]) -> Result<Vec<Consultant>, ToolError> {
    let raw = args.get("models").or_else(|| earlier.iter().find_map(|s| s.extra.get("models")));
    let Some(raw) = raw else {
        return Err(invalid("models", "required on the first call: the models to consult"));
    };
    let models: Vec<Consultant> = serde_json::from_value(raw.clone()).map_err(|e| invalid("models", e.to_string()))?;
    if models.is_empty() {
        return Err(invalid("models", "list at least one model"));
    }
    for (i, m) in models.iter().enumerate() {
        if models[..i].iter().any(|o| o.model == m.model && o.stance == m.stance) {
            return Err(invalid(
                &format!("models/{i}"),
                format!("{} with stance {} is listed twice; use each (model, stance) pair once", m.model, m.stance),
            ));
        }
    }
    Ok(models)
}

/// The consultations stored in the thread, one per index (the latest wins).
pub fn consultations(thread: &Thread) -> Vec<Consultation> {
    let mut out: Vec<Consultation> = Vec::new();
    for (content, meta) in replies(thread, NAME, "consulted") {
        let c = &meta["consulted"];
        let Some(index) = c["index"].as_u64().map(|i| i as usize) else { continue };
        out.retain(|x| x.index != index);
        out.push(Consultation {
            index,
            model: c["model"].as_str().unwrap_or_default().into(),
            answered_by: c["answered_by"].as_str().unwrap_or_default().into(),
            stance: c["stance"].as_str().unwrap_or("neutral").into(),
            content: content.into(),
        });
    }
    out.sort_by_key(|c| c.index);
    out
}

async fn run(ctx: &ToolContext, args: &Map<String, Value>) -> Result<ToolOutput, ToolError> {
    let own: Vec<String> = OWN.iter().map(|s| s.to_string()).collect();
    let mut step = StepRecord::from_args(NAME, args, &own)?;
    merge_files(&mut step, args);
    check_files(ctx, "relevant_files", &step.relevant_files).await?;
    let (mut thread, warnings) = open_thread(ctx, args, NAME, step.step_number).await?;
    let earlier: Vec<StepRecord> = recorded(&thread, NAME);
    let models = consultants(args, &earlier)?;
    let index = match Common(args).u32("current_model_index") {
        Some(i) => i as usize,
        None => consultations(&thread).iter().map(|c| c.index + 1).max().unwrap_or(0),
    };
    let Some(consultant) = models.get(index) else {
        return Err(invalid(
            "current_model_index",
            format!("{index} is past the last model (there are {}); consensus is complete", models.len()),
        ));
    };
    let cons = consolidate(earlier.into_iter().chain([step.clone()]));
    let budget = CallBudget::new(ctx);
    let (files, _) = paths_section(ctx, "relevant_files", &cons.relevant_files).await?;
    let images = image_parts(ctx, args).await?;
    let initial_findings = cons.steps.first().map(|s| s.findings.as_str()).unwrap_or_default();
    let system = format!(
        "You are one of several expert consultants asked, independently, to evaluate a proposal. {}\n\n\
         Answer in markdown: a one-line verdict; your analysis (technical feasibility, fit with the project, value \
         to users, implementation complexity, alternatives); your confidence from 1 to 10; key takeaways.",
        stance_instructions(consultant)
    );
    let prompt = format!(
        "PROPOSAL:\n{}\n\nTHE AGENT'S ANALYSIS:\n{}{files}",
        cons.initial_request(),
        if initial_findings.is_empty() { "(none)" } else { initial_findings }
    );
    let total = step.total_steps.max(models.len() as u32);
    let call = ChatCall {
        model: Some(consultant.model.clone()),
        tool: NAME.into(),
        step: Some(StepInfo {
            step_number: step.step_number,
            total_steps: total,
            next_step_required: true,
            deep: false,
        }),
        locked_model: None,
        request: request_from_args(args, vec![ChatMessage::text("system", system), user_message(prompt, &images)]),
    };
    let res = call_model(ctx, &budget, call).await?;
    let mut meta = super::common::answer_meta(&res);
    meta["consulted"] =
        json!({ "index": index, "model": consultant.model, "answered_by": res.model, "stance": consultant.stance });
    let part = format!("model{index}");
    record(ctx, &mut thread, NAME, step.step_number, &part, &step, &res.response.content, meta, Some(&res.model))
        .await?;

    let consulted = json!({ "index": index, "model": consultant.model, "answered_by": res.model,
                            "provider": res.provider, "stance": consultant.stance, "response": res.response.content });
    let mut v = json!({
        "step_number": step.step_number,
        "total_steps": total,
        "continuation_id": thread.record.continuation_id,
        "model_consulted": consulted,
        "models_total": models.len(),
    });
    if !warnings.is_empty() {
        v["warnings"] = json!(warnings);
    }
    if let Some(next) = models.get(index + 1) {
        v["status"] = json!("consulting_next_model");
        v["next_step_required"] = json!(true);
        v["next_model_index"] = json!(index + 1);
        v["next_model"] = json!({ "model": next.model, "stance": next.stance });
        v["required_actions"] = json!([
            "Read this model's response and weigh it against your own analysis",
            "Note your assessment of the responses so far in findings",
        ]);
        v["next_steps"] = json!(format!(
            "Call consensus again with current_model_index {}, step_number {}, the continuation_id and your \
             findings to consult {} ({}).",
            index + 1,
            step.step_number + 1,
            next.model,
            next.stance
        ));
        v["next_call"] = json!({ "tool": NAME, "arguments": {
            "continuation_id": thread.record.continuation_id, "current_model_index": index + 1,
            "step_number": step.step_number + 1, "total_steps": total, "next_step_required": index + 2 < models.len() } });
        v["metadata"] = metadata(&res, &budget);
        return Ok(json_output(v, Some(&res)));
    }
    complete(ctx, args, &mut thread, &step, cons.initial_request(), &budget, res, v).await
}

#[allow(clippy::too_many_arguments)]
async fn complete(
    ctx: &ToolContext,
    args: &Map<String, Value>,
    thread: &mut Thread,
    step: &StepRecord,
    proposal: &str,
    budget: &CallBudget,
    last: ChatResult,
    mut v: Value,
) -> Result<ToolOutput, ToolError> {
    let responses = consultations(thread);
    let extra: Vec<Value> = args.get("model_responses").and_then(Value::as_array).cloned().unwrap_or_default();
    let skip = match Common(args).bool("use_assistant_model") {
        Some(false) => Some("use_assistant_model is false".to_string()),
        None if !ctx.env.settings.expert_analysis => Some("the server's expert_analysis setting is off".to_string()),
        _ if budget.remaining() == 0 => {
            Some("max_provider_calls_per_invocation leaves no call for a model synthesis".to_string())
        }
        _ => None,
    };
    let mut answer = last;
    v["synthesis"] = match skip {
        Some(reason) => json!({ "type": "collected", "reason": reason }),
        None => {
            let res = synthesise(ctx, args, thread, proposal, &responses, &extra, step, budget).await?;
            let mut meta = super::common::answer_meta(&res);
            meta["synthesis"] = json!(true);
            record(
                ctx,
                thread,
                NAME,
                step.step_number,
                "synthesis",
                step,
                &res.response.content,
                meta,
                Some(&res.model),
            )
            .await?;
            answer = res;
            json!({ "type": "model", "content": answer.response.content, "model": answer.model, "provider": answer.provider })
        }
    };
    v["status"] = json!("consensus_workflow_complete");
    v["next_step_required"] = json!(false);
    v["responses"] = json!(responses);
    if !extra.is_empty() {
        v["additional_responses"] = json!(extra);
    }
    v["next_steps"] = json!(
        "CONSENSUS IS COMPLETE. Present where the models agree and disagree, the final recommendation with its \
         rationale, and the concrete next steps."
    );
    v["metadata"] = metadata(&answer, budget);
    Ok(json_output(v, Some(&answer)))
}

#[allow(clippy::too_many_arguments)]
async fn synthesise(
    ctx: &ToolContext,
    args: &Map<String, Value>,
    thread: &Thread,
    proposal: &str,
    responses: &[Consultation],
    extra: &[Value],
    step: &StepRecord,
    budget: &CallBudget,
) -> Result<ChatResult, ToolError> {
    let mut prompt = format!("PROPOSAL:\n{proposal}\n\n=== CONSULTANT RESPONSES ===\n");
    for r in responses {
        prompt.push_str(&format!("--- {} (stance: {}) ---\n{}\n\n", r.model, r.stance, r.content));
    }
    for r in extra {
        let who = r["model"].as_str().unwrap_or("additional opinion");
        let stance = r["stance"].as_str().unwrap_or("unspecified");
        prompt
            .push_str(&format!("--- {who} (stance: {stance}) ---\n{}\n\n", r["content"].as_str().unwrap_or_default()));
    }
    if !step.findings.is_empty() {
        prompt.push_str(&format!("=== THE AGENT'S CURRENT ASSESSMENT ===\n{}\n", step.findings));
    }
    let system = "You synthesise independent expert opinions on one proposal. Report the points of agreement, the \
                  points of disagreement with the strongest argument on each side, and a final recommendation \
                  with its rationale, risks and concrete next steps. Answer in markdown.";
    let c = Common(args);
    let call = ChatCall {
        model: c.str("model").map(str::to_string),
        tool: NAME.into(),
        step: Some(StepInfo {
            step_number: step.step_number,
            total_steps: step.total_steps,
            next_step_required: false,
            deep: c.deep(),
        }),
        locked_model: thread.record.model.clone(),
        request: request_from_args(args, vec![ChatMessage::text("system", system), user_message(prompt, &[])]),
    };
    call_model(ctx, budget, call).await
}

fn metadata(res: &ChatResult, budget: &CallBudget) -> Value {
    let mut m = result_meta(res);
    m["tool"] = json!(NAME);
    m["provider_calls"] = json!(budget.used());
    m
}
