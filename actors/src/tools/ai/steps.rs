//! The step pattern shared by the workflow tools (and consensus, docgen, planner): the step
//! argument schema, the [`StepRecord`] each call stores in its conversation thread, reading
//! the recorded steps back, and consolidating them (backtracking, repeated steps) for the
//! final expert call.
//!
//! Storage: every invocation appends one user/assistant pair to the thread. The user message
//! holds the step as JSON (metadata `{"kind": "workflow_step", "tool", "step_number"}`), the
//! assistant message the tool's reply (an acknowledgement, or the model's answer; metadata
//! `{"kind": "workflow_reply", ...}`). The thread is the only state, so a restart loses
//! nothing, and appends are idempotent per (request, tool, step).

use super::common::Common;
use crate::conversation::Thread;
use crate::error::ToolError;
use crate::ports::MessageRole;
use crate::tools::ToolContext;
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use serde_json::{json, Map, Value};

/// Metadata `kind` of a stored step.
pub const KIND_STEP: &str = "workflow_step";
/// Metadata `kind` of a stored reply.
pub const KIND_REPLY: &str = "workflow_reply";

/// Confidence levels, lowest first.
pub const CONFIDENCE: [&str; 7] = ["exploring", "low", "medium", "high", "very_high", "almost_certain", "certain"];

/// Issue severities, most severe first.
pub const SEVERITIES: [&str; 4] = ["critical", "high", "medium", "low"];

/// Longest `findings`, characters.
pub const MAX_FINDINGS_CHARS: usize = 50_000;

/// The step properties (JSON Schema) of the workflow pattern.
pub fn step_properties() -> Map<String, Value> {
    super::common::props(json!({
        "step": { "type": "string", "minLength": 1, "maxLength": 20000,
                  "description": "What this step is about. Step 1: state the task and your plan. Later steps: what you investigated and why." },
        "step_number": { "type": "integer", "minimum": 1, "maximum": 1000,
                         "description": "Index of this step, starting at 1." },
        "total_steps": { "type": "integer", "minimum": 1, "maximum": 1000,
                         "description": "Your current estimate of the steps needed; adjust it as you learn." },
        "next_step_required": { "type": "boolean",
                                "description": "true while you will call again with another step; false on the final step." },
        "findings": { "type": "string", "maxLength": MAX_FINDINGS_CHARS,
                      "description": "What you found in this step: concrete facts, evidence, code paths (at most 50,000 characters)." },
        "files_checked": { "type": "array", "maxItems": 500, "items": { "type": "string", "minLength": 1, "maxLength": 4096 },
                           "description": "Every file you examined so far, relevant or not." },
        "relevant_files": { "type": "array", "maxItems": 100, "items": { "type": "string", "minLength": 1, "maxLength": 4096 },
                            "description": "Files that matter for the result. The server reads them (only under its allowed roots) for the final expert analysis; give absolute paths or paths relative to the first allowed root." },
        "relevant_context": { "type": "array", "maxItems": 200, "items": { "type": "string", "minLength": 1, "maxLength": 500 },
                              "description": "Functions, types or methods central to the result, e.g. 'Parser::parse_header'." },
        "issues_found": { "type": "array", "maxItems": 200,
                          "items": { "type": "object",
                                     "properties": { "severity": { "type": "string", "enum": SEVERITIES },
                                                     "description": { "type": "string", "minLength": 1, "maxLength": 5000 },
                                                     "location": { "type": "string", "maxLength": 1000, "description": "file:line or symbol" } },
                                     "required": ["severity", "description"], "additionalProperties": false },
                          "description": "Problems identified so far, each with severity and description." },
        "confidence": { "type": "string", "enum": CONFIDENCE,
                        "description": "How sure you are of the result. 'certain' finishes without expert analysis." },
        "hypothesis": { "type": "string", "maxLength": 10000, "description": "Your current theory or conclusion." },
        "backtrack_from_step": { "type": "integer", "minimum": 1, "maximum": 1000,
                                 "description": "Discard the recorded steps from this step number on (a wrong path) and continue from this step." },
        "use_assistant_model": { "type": "boolean",
                                 "description": "On the final step, ask the expert model to validate and extend the work (default: the server's expert_analysis setting). false finishes locally with no provider call." }
    }))
}

/// The named subset of [`step_properties`].
pub fn pick_steps(keys: &[&str]) -> Map<String, Value> {
    let all = step_properties();
    keys.iter().filter_map(|k| all.get(*k).map(|v| (k.to_string(), v.clone()))).collect()
}

/// Required step fields.
pub const STEP_REQUIRED: [&str; 5] = ["step", "step_number", "total_steps", "next_step_required", "findings"];

/// One issue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Issue {
    /// critical | high | medium | low.
    pub severity: String,
    /// What is wrong.
    pub description: String,
    /// Where.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
}

/// One recorded step.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct StepRecord {
    /// Tool that recorded it.
    pub tool: String,
    /// 1-based.
    pub step_number: u32,
    /// Planned steps (at least `step_number`).
    pub total_steps: u32,
    /// More steps follow.
    pub next_step_required: bool,
    /// The step text.
    pub step: String,
    /// What was found.
    #[serde(default)]
    pub findings: String,
    /// Files examined.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files_checked: Vec<String>,
    /// Files that matter.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub relevant_files: Vec<String>,
    /// Symbols that matter.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub relevant_context: Vec<String>,
    /// Issues.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub issues_found: Vec<Issue>,
    /// Confidence level.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<String>,
    /// Theory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hypothesis: Option<String>,
    /// Discard steps from this number on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backtrack_from_step: Option<u32>,
    /// The tool's own fields, as given.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub extra: Map<String, Value>,
}

fn invalid(field: &str, message: impl Into<String>) -> ToolError {
    ToolError::InvalidArguments { field: field.into(), message: message.into() }
}

impl StepRecord {
    /// The step from validated arguments; `extra_keys` are the tool's own fields to keep.
    /// `total_steps` below `step_number` is raised to it.
    pub fn from_args(tool: &str, args: &Map<String, Value>, extra_keys: &[String]) -> Result<StepRecord, ToolError> {
        let c = Common(args);
        let step_number = c.u32("step_number").unwrap_or(1).max(1);
        let backtrack_from_step = c.u32("backtrack_from_step");
        if let Some(b) = backtrack_from_step {
            if b >= step_number {
                return Err(invalid(
                    "backtrack_from_step",
                    format!("must be below step_number ({step_number}): it names the first recorded step to discard"),
                ));
            }
        }
        let issues_found = match args.get("issues_found") {
            Some(v) => serde_json::from_value(v.clone()).map_err(|e| invalid("issues_found", e.to_string()))?,
            None => Vec::new(),
        };
        Ok(StepRecord {
            tool: tool.to_string(),
            step_number,
            total_steps: c.u32("total_steps").unwrap_or(step_number).max(step_number),
            next_step_required: c.bool("next_step_required").unwrap_or(false),
            step: c.str("step").unwrap_or_default().to_string(),
            findings: c.str("findings").unwrap_or_default().to_string(),
            files_checked: c.strings("files_checked"),
            relevant_files: c.strings("relevant_files"),
            relevant_context: c.strings("relevant_context"),
            issues_found,
            confidence: c.str("confidence").map(str::to_string),
            hypothesis: c.str("hypothesis").filter(|h| !h.trim().is_empty()).map(str::to_string),
            backtrack_from_step,
            extra: extra_keys.iter().filter_map(|k| args.get(k).map(|v| (k.clone(), v.clone()))).collect(),
        })
    }

    /// The confidence level (default `low`).
    pub fn confidence(&self) -> &str {
        self.confidence.as_deref().unwrap_or("low")
    }
}

/// The recorded steps of `tool` in a thread, oldest first (records that do not parse as
/// `T` are skipped).
pub fn recorded<T: DeserializeOwned>(thread: &Thread, tool: &str) -> Vec<T> {
    thread
        .history
        .iter()
        .filter(|m| m.role == MessageRole::User && is_kind(&m.metadata, KIND_STEP, tool))
        .filter_map(|m| serde_json::from_str(&m.content).ok())
        .collect()
}

/// The stored replies of `tool` whose metadata has `key`, with that metadata, oldest first.
pub fn replies<'a>(thread: &'a Thread, tool: &str, key: &str) -> Vec<(&'a str, &'a Value)> {
    thread
        .history
        .iter()
        .filter(|m| m.role == MessageRole::Assistant && is_kind(&m.metadata, KIND_REPLY, tool))
        .filter(|m| m.metadata.get(key).is_some())
        .map(|m| (m.content.as_str(), &m.metadata))
        .collect()
}

fn is_kind(meta: &Value, kind: &str, tool: &str) -> bool {
    meta.get("kind").and_then(Value::as_str) == Some(kind) && meta.get("tool").and_then(Value::as_str) == Some(tool)
}

/// Whether a stored message is a step or reply of `tool` (used to keep them out of the
/// replayed history, since the expert prompt consolidates them).
pub fn is_step_message(meta: &Value, tool: &str) -> bool {
    is_kind(meta, KIND_STEP, tool) || is_kind(meta, KIND_REPLY, tool)
}

/// Store one step and the tool's reply to it (idempotent per request, tool, step and
/// `part`). `reply_meta` is merged into the reply's metadata; `model` marks a model answer.
#[allow(clippy::too_many_arguments)]
pub async fn record<T: Serialize>(
    ctx: &ToolContext,
    thread: &mut Thread,
    tool: &str,
    step_number: u32,
    part: &str,
    step: &T,
    reply: &str,
    reply_meta: Value,
    model: Option<&str>,
) -> Result<(), ToolError> {
    let content = serde_json::to_string(step).map_err(|e| ToolError::Internal(format!("step encoding: {e}")))?;
    let mut meta = json!({ "kind": KIND_REPLY, "tool": tool, "step_number": step_number });
    if let (Value::Object(m), Value::Object(extra)) = (&mut meta, reply_meta) {
        m.extend(extra);
    }
    let key = format!("{}#{tool}#{step_number}#{part}", ctx.call_id);
    ctx.env
        .conversations
        .record_step(
            thread,
            &key,
            (&content, json!({ "kind": KIND_STEP, "tool": tool, "step_number": step_number })),
            (reply, meta),
            model,
        )
        .await
}

/// All recorded steps merged: backtracking applied, a repeated step number replacing the
/// earlier record, files, context and issues deduplicated in first-seen order, the tool's own
/// fields with the latest value winning.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Consolidated {
    /// Surviving steps in order.
    pub steps: Vec<StepRecord>,
    /// Files examined.
    pub files_checked: Vec<String>,
    /// Files that matter.
    pub relevant_files: Vec<String>,
    /// Symbols that matter.
    pub relevant_context: Vec<String>,
    /// Issues.
    pub issues: Vec<Issue>,
    /// The tool's own fields.
    pub extra: Map<String, Value>,
}

fn push_unique<T: PartialEq + Clone>(into: &mut Vec<T>, items: &[T]) {
    for i in items {
        if !into.contains(i) {
            into.push(i.clone());
        }
    }
}

/// Merge steps (oldest first).
pub fn consolidate(records: impl IntoIterator<Item = StepRecord>) -> Consolidated {
    let mut steps: Vec<StepRecord> = Vec::new();
    for r in records {
        if let Some(b) = r.backtrack_from_step {
            steps.retain(|s| s.step_number < b);
        }
        steps.retain(|s| s.step_number != r.step_number);
        steps.push(r);
    }
    let mut c = Consolidated::default();
    for s in &steps {
        push_unique(&mut c.files_checked, &s.files_checked);
        push_unique(&mut c.relevant_files, &s.relevant_files);
        push_unique(&mut c.relevant_context, &s.relevant_context);
        push_unique(&mut c.issues, &s.issues_found);
        c.extra.extend(s.extra.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    c.steps = steps;
    c
}

impl Consolidated {
    /// The first surviving step's text (the task as first stated).
    pub fn initial_request(&self) -> &str {
        self.steps.first().map(|s| s.step.as_str()).unwrap_or_default()
    }

    /// The latest confidence.
    pub fn confidence(&self) -> &str {
        self.steps.last().map(StepRecord::confidence).unwrap_or("low")
    }

    /// The latest hypothesis given.
    pub fn hypothesis(&self) -> Option<&str> {
        self.steps.iter().rev().find_map(|s| s.hypothesis.as_deref())
    }

    /// Issue counts by severity.
    pub fn issue_counts(&self) -> Value {
        let mut m = Map::new();
        for sev in SEVERITIES {
            let n = self.issues.iter().filter(|i| i.severity == sev).count();
            if n > 0 {
                m.insert(sev.to_string(), json!(n));
            }
        }
        Value::Object(m)
    }

    /// The work as a prompt section for the expert model.
    pub fn render(&self) -> String {
        let mut out = format!("Initial request: {}\n", self.initial_request());
        if !self.extra.is_empty() {
            out.push_str("\nParameters:\n");
            for (k, v) in &self.extra {
                let v = v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string());
                out.push_str(&format!("- {k}: {v}\n"));
            }
        }
        for s in &self.steps {
            out.push_str(&format!(
                "\n--- Step {}/{} (confidence: {}) ---\n",
                s.step_number,
                s.total_steps,
                s.confidence()
            ));
            out.push_str(&format!("Step: {}\n", s.step));
            if !s.findings.is_empty() {
                out.push_str(&format!("Findings: {}\n", s.findings));
            }
            if let Some(h) = &s.hypothesis {
                out.push_str(&format!("Hypothesis: {h}\n"));
            }
        }
        let list = |title: &str, items: &[String], out: &mut String| {
            if !items.is_empty() {
                out.push_str(&format!("\n{title}:\n"));
                for i in items {
                    out.push_str(&format!("- {i}\n"));
                }
            }
        };
        list("Files examined", &self.files_checked, &mut out);
        list("Relevant files", &self.relevant_files, &mut out);
        list("Relevant code elements", &self.relevant_context, &mut out);
        if !self.issues.is_empty() {
            out.push_str("\nIssues found:\n");
            for i in &self.issues {
                let at = i.location.as_deref().map(|l| format!(" ({l})")).unwrap_or_default();
                out.push_str(&format!("- [{}] {}{at}\n", i.severity, i.description));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn step(n: u32, files: &[&str], back: Option<u32>) -> StepRecord {
        StepRecord {
            tool: "debug".into(),
            step_number: n,
            total_steps: 4,
            next_step_required: true,
            step: format!("step {n}"),
            findings: format!("found {n}"),
            relevant_files: files.iter().map(|f| f.to_string()).collect(),
            backtrack_from_step: back,
            issues_found: vec![Issue {
                severity: "high".into(),
                description: format!("issue {}", n % 2),
                location: None,
            }],
            hypothesis: (n == 2).then(|| "h2".to_string()),
            ..StepRecord::default()
        }
    }

    #[test]
    fn consolidation_backtracks_dedups_and_replaces() {
        let c = consolidate(vec![
            step(1, &["a.rs"], None),
            step(2, &["b.rs", "a.rs"], None),
            step(3, &["c.rs"], None),
            step(3, &["d.rs"], None), // re-sent step 3 replaces the first
        ]);
        assert_eq!(c.steps.iter().map(|s| s.step_number).collect::<Vec<_>>(), vec![1, 2, 3]);
        assert_eq!(c.relevant_files, vec!["a.rs", "b.rs", "d.rs"]);
        assert_eq!(c.issues.len(), 2);
        assert_eq!(c.hypothesis(), Some("h2"));
        let c = consolidate(vec![step(1, &["a.rs"], None), step(2, &["b.rs"], None), step(3, &["c.rs"], Some(2))]);
        assert_eq!(c.steps.iter().map(|s| s.step_number).collect::<Vec<_>>(), vec![1, 3]);
        assert_eq!(c.relevant_files, vec!["a.rs", "c.rs"]);
        assert_eq!(c.hypothesis(), None);
        assert_eq!(c.initial_request(), "step 1");
        let r = c.render();
        assert!(r.contains("Initial request: step 1") && r.contains("found 3") && !r.contains("found 2"), "{r}");
    }

    #[test]
    fn from_args_validates_and_normalises() {
        let args = props(json!({ "step": "s", "step_number": 3, "total_steps": 2, "next_step_required": true,
                                 "findings": "f", "issues_found": [{ "severity": "low", "description": "d" }],
                                 "analysis_type": "security", "other": 1 }));
        let r = StepRecord::from_args("analyze", &args, &["analysis_type".to_string()]).unwrap();
        assert_eq!(r.total_steps, 3, "raised to step_number");
        assert_eq!(r.confidence(), "low");
        assert_eq!(r.issues_found[0].severity, "low");
        assert_eq!(r.extra.len(), 1);
        let bad = props(json!({ "step": "s", "step_number": 2, "total_steps": 2, "next_step_required": true,
                                "findings": "f", "backtrack_from_step": 2 }));
        let e = StepRecord::from_args("analyze", &bad, &[]).unwrap_err();
        assert!(matches!(e, ToolError::InvalidArguments { ref field, .. } if field == "backtrack_from_step"));
    }

    use super::super::common::props;
}
