//! `chat`: general chat or a second opinion, with optional server-read files, images, web
//! search, thinking and conversation threads. One provider call per invocation.

use super::common::{converse, files_section, image_parts, output, schema, Turn};
use crate::error::ToolError;
use crate::tools::{Tool, ToolContext, ToolKind, ToolOutput, ToolSpec};
use futures_util::future::LocalBoxFuture;
use serde_json::{json, Map, Value};

const SYSTEM: &str = "You are a senior engineering collaborator giving a focused, candid second opinion. \
Be concrete, point out risks and trade-offs, and say when you are unsure.";

/// The tool.
pub struct Chat(ToolSpec);

impl Default for Chat {
    fn default() -> Self {
        Self::new()
    }
}

impl Chat {
    /// Build it.
    pub fn new() -> Self {
        Chat(ToolSpec {
            name: "chat".into(),
            title: Some("Chat".into()),
            description: "General chat and second opinions with an AI model (Kimi, GLM or a configured \
                          OpenAI-compatible provider); optional files, images, web search and continuation."
                .into(),
            input_schema: schema(
                json!({ "prompt": { "type": "string", "minLength": 1, "maxLength": 100000 },
                        "stream": { "type": "boolean", "description": "stream the answer as progress (default: when a progress token is given)" } }),
                &["prompt"],
            ),
            kind: ToolKind::Simple,
            read_only: true,
        })
    }
}

impl Tool for Chat {
    fn spec(&self) -> &ToolSpec {
        &self.0
    }

    fn call(
        &self,
        ctx: ToolContext,
        args: Map<String, Value>,
    ) -> LocalBoxFuture<'static, Result<ToolOutput, ToolError>> {
        Box::pin(async move {
            let prompt = args.get("prompt").and_then(Value::as_str).unwrap_or_default().to_string();
            let cid = args.get("continuation_id").and_then(Value::as_str);
            let mut thread = ctx.env.conversations.open(cid, &ctx.session_id, &ctx.principal, "chat").await?;
            let turn = Turn {
                tool: "chat",
                system: SYSTEM.into(),
                prompt,
                context: files_section(&ctx, &args, "files").await?,
                images: image_parts(&ctx, &args).await?,
                step: None,
                tools: None,
            };
            let res = converse(&ctx, &args, &mut thread, turn).await?;
            Ok(output(&ctx, "chat", "continuation_available", &thread, &res, Value::Null))
        })
    }
}
