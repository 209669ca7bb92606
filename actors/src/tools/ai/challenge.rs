//! `challenge`: wraps a statement in instructions to re-evaluate it critically instead of
//! agreeing by reflex. No model is called; the agent applies the instructions itself.

use super::common::{json_output, object_schema, props};
use crate::error::ToolError;
use crate::tools::{Tool, ToolContext, ToolKind, ToolOutput, ToolSpec};
use futures_util::future::LocalBoxFuture;
use serde_json::{json, Map, Value};

/// The critical re-evaluation instructions around `statement`.
pub fn challenge_prompt(statement: &str) -> String {
    format!(
        "RE-EVALUATE CRITICALLY; do not agree by default.\n\nStatement:\n\"{statement}\"\n\n\
         Before answering, check the statement on its merits: is it correct, complete and supported by the \
         evidence (look at the code or facts again if needed)? If it is wrong or only partly right, say exactly \
         where and why. If it holds, say why it holds. Give your own reasoned conclusion, briefly, whichever way \
         it goes."
    )
}

/// The tool.
pub struct Challenge(ToolSpec);

impl Default for Challenge {
    fn default() -> Self {
        Self::new()
    }
}

impl Challenge {
    /// Build it.
    pub fn new() -> Self {
        Challenge(ToolSpec {
            name: "challenge".into(),
            title: Some("Challenge".into()),
            description: "Prevents reflexive agreement: wraps a statement (typically the user's pushback or claim) \
                          in instructions to re-evaluate it critically, and returns them for you to follow. Use it \
                          when a claim deserves scrutiny rather than automatic acceptance. No model is called."
                .into(),
            input_schema: object_schema(
                props(json!({ "prompt": { "type": "string", "minLength": 1, "maxLength": 100000,
                                          "description": "The statement to scrutinise, as the user made it." } })),
                &["prompt"],
            ),
            kind: ToolKind::Builtin,
            read_only: true,
        })
    }
}

impl Tool for Challenge {
    fn spec(&self) -> &ToolSpec {
        &self.0
    }

    fn call(
        &self,
        _ctx: ToolContext,
        args: Map<String, Value>,
    ) -> LocalBoxFuture<'static, Result<ToolOutput, ToolError>> {
        Box::pin(async move {
            let statement = args.get("prompt").and_then(Value::as_str).unwrap_or_default();
            if statement.trim().is_empty() {
                return Err(ToolError::InvalidArguments {
                    field: "prompt".into(),
                    message: "must not be blank".into(),
                });
            }
            Ok(json_output(
                json!({
                    "status": "challenge_created",
                    "original_statement": statement,
                    "challenge_prompt": challenge_prompt(statement),
                    "instructions": "Present the challenge_prompt's critical evaluation to the user: investigate the \
                                     statement, then agree or disagree with reasons. Do not simply accept it.",
                }),
                None,
            ))
        })
    }
}
