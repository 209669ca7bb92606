//! `docgen`: guides the agent through documenting code file by file, entirely local (no
//! model). Step 1 is discovery (count the files to document); later steps document one file
//! each and report `num_files_documented`; the workflow cannot finish while files remain.
//! Steps are recorded in the conversation thread like the other workflow tools.

use super::common::{json_output, object_schema, pick_common, props, Common};
use super::steps::{pick_steps, record, StepRecord, STEP_REQUIRED};
use super::workflow::open_thread;
use crate::error::ToolError;
use crate::tools::{Tool, ToolContext, ToolKind, ToolOutput, ToolSpec};
use futures_util::future::LocalBoxFuture;
use serde_json::{json, Map, Value};

const NAME: &str = "docgen";
const OWN: [&str; 6] = [
    "num_files_documented",
    "total_files_to_document",
    "document_complexity",
    "document_flow",
    "update_existing",
    "comments_on_complex_logic",
];

/// The tool.
pub struct Docgen(ToolSpec);

impl Default for Docgen {
    fn default() -> Self {
        Self::new()
    }
}

impl Docgen {
    /// Build it.
    pub fn new() -> Self {
        let mut properties = pick_common(&["continuation_id"]);
        properties.extend(pick_steps(&[
            "step",
            "step_number",
            "total_steps",
            "next_step_required",
            "findings",
            "files_checked",
            "relevant_files",
        ]));
        properties.extend(props(json!({
            "num_files_documented": { "type": "integer", "minimum": 0, "maximum": 100000,
                                      "description": "Files fully documented so far (raise it only when a file is completely done)." },
            "total_files_to_document": { "type": "integer", "minimum": 0, "maximum": 100000,
                                         "description": "Files that need documentation, counted during discovery (step 1)." },
            "document_complexity": { "type": "boolean", "description": "Include time/space complexity (Big O) of non-trivial functions (default true)." },
            "document_flow": { "type": "boolean", "description": "Include call-flow information: callers and callees (default true)." },
            "update_existing": { "type": "boolean", "description": "Improve existing documentation that is incomplete or wrong (default true)." },
            "comments_on_complex_logic": { "type": "boolean", "description": "Add inline comments on complex logic (default true)." }
        })));
        Docgen(ToolSpec {
            name: NAME.into(),
            title: Some("Documentation generation".into()),
            description: "Step-by-step documentation of code: step 1 discovers and counts the files to document, then \
                          one file per step, with complexity, call-flow and inline comments as asked; refuses to \
                          finish while files remain. No model is called; you write the documentation. Pass the \
                          returned continuation_id to every later call."
                .into(),
            input_schema: object_schema(properties, &STEP_REQUIRED),
            kind: ToolKind::Builtin,
            read_only: true,
        })
    }
}

impl Tool for Docgen {
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

fn invalid(field: &str, message: String) -> ToolError {
    ToolError::InvalidArguments { field: field.into(), message }
}

/// The documentation rules the flags ask for.
pub fn rules(args: &Map<String, Value>) -> Vec<&'static str> {
    let c = Common(args);
    let on = |k: &str| c.bool(k).unwrap_or(true);
    let mut r = vec![
        "Document every function, method, type and module in the file; do not skip any",
        "Change no code: only documentation and comments",
        "If you find a bug, do not fix it: report it to the user",
    ];
    if on("document_complexity") {
        r.push("State the time and space complexity (Big O) of non-trivial functions");
    }
    if on("document_flow") {
        r.push("Describe the call flow where it helps: what calls the function and what it calls");
    }
    r.push(if on("update_existing") {
        "Improve existing documentation that is incomplete or wrong instead of adding duplicates"
    } else {
        "Leave existing documentation as it is; add only what is missing"
    });
    if on("comments_on_complex_logic") {
        r.push("Add inline comments that explain complex logic");
    }
    r
}

async fn run(ctx: &ToolContext, args: &Map<String, Value>) -> Result<ToolOutput, ToolError> {
    let own: Vec<String> = OWN.iter().map(|s| s.to_string()).collect();
    let step = StepRecord::from_args(NAME, args, &own)?;
    let c = Common(args);
    let done_files = c.u32("num_files_documented").unwrap_or(0);
    let total_files = c.u32("total_files_to_document").unwrap_or(0);
    if done_files > total_files {
        return Err(invalid(
            "num_files_documented",
            format!("{done_files} is more than total_files_to_document ({total_files})"),
        ));
    }
    if !step.next_step_required && done_files < total_files {
        return Err(invalid(
            "next_step_required",
            format!(
                "cannot finish: {done_files} of {total_files} files are documented; document the remaining {} \
                 (or correct total_files_to_document) first",
                total_files - done_files
            ),
        ));
    }
    let (mut thread, warnings) = open_thread(ctx, args, NAME, step.step_number).await?;
    let status = if step.next_step_required { "pause_for_docgen" } else { "docgen_complete" };
    let ack = format!("Recorded docgen step {} ({done_files}/{total_files} files documented).", step.step_number);
    record(ctx, &mut thread, NAME, step.step_number, "step", &step, &ack, json!({ "status": status }), None).await?;
    let mut v = json!({
        "status": status,
        "step_number": step.step_number,
        "total_steps": step.total_steps,
        "next_step_required": step.next_step_required,
        "continuation_id": thread.record.continuation_id,
        "documentation_progress": { "files_documented": done_files, "total_files": total_files,
                                    "remaining": total_files - done_files },
        "metadata": { "tool": NAME, "provider_calls": 0 },
    });
    if !warnings.is_empty() {
        v["warnings"] = json!(warnings);
    }
    let (actions, next): (Vec<&str>, String) = if !step.next_step_required {
        (Vec::new(), format!("DOCUMENTATION IS COMPLETE ({total_files} files). Summarise what was documented and any bugs you found."))
    } else if step.step_number == 1 || total_files == 0 {
        (
            vec![
                "Discover every file in scope that needs documentation (list them in files_checked)",
                "Count them and pass the count as total_files_to_document in the next call",
                "Do not write documentation yet",
            ],
            "Finish discovery, then call docgen with step_number 2, total_files_to_document and the continuation_id."
                .to_string(),
        )
    } else if done_files < total_files {
        let mut a = vec!["Document the next file completely, then raise num_files_documented by one"];
        a.extend(rules(args));
        (
            a,
            format!(
                "Document the next file ({} of {total_files}), then call docgen with step_number {} and the \
                 continuation_id.",
                done_files + 1,
                step.step_number + 1
            ),
        )
    } else {
        (
            vec!["Check that every file is fully documented"],
            "All files are documented: call docgen once more with next_step_required false to finish.".to_string(),
        )
    };
    if !actions.is_empty() {
        v["required_actions"] = json!(actions);
    }
    v["next_steps"] = json!(next);
    Ok(json_output(v, None))
}
