//! `toolcall_log_tail`: the most recent tool calls from the store's tool-call log (names,
//! outcomes and latencies; arguments are never stored).

use super::spec;
use crate::error::ToolError;
use crate::ports::{CallOutcome, ToolCallQuery};
use crate::tools::{Tool, ToolContext, ToolOutput, ToolSpec};
use futures_util::future::LocalBoxFuture;
use serde_json::{json, Map, Value};

/// The tool.
pub struct ToolCallLogTail(ToolSpec);

impl Default for ToolCallLogTail {
    fn default() -> Self {
        Self::new()
    }
}

impl ToolCallLogTail {
    /// Build it.
    pub fn new() -> Self {
        ToolCallLogTail(spec(
            "toolcall_log_tail",
            "The most recent tool calls (newest first) from the tool-call log, with outcome and latency.",
            json!({
                "type": "object",
                "properties": {
                    "n": { "type": "integer", "minimum": 1, "maximum": 500, "description": "rows (default 50)" },
                    "tool": { "type": "string", "maxLength": 128 },
                    "outcome": { "type": "string", "enum": ["ok", "error", "over_capacity", "timeout", "cancelled"] },
                    "this_session": { "type": "boolean", "description": "only calls of the calling session" },
                    "since_ms": { "type": "integer", "minimum": 0 }
                },
                "additionalProperties": false
            }),
        ))
    }
}

impl Tool for ToolCallLogTail {
    fn spec(&self) -> &ToolSpec {
        &self.0
    }

    fn call(
        &self,
        ctx: ToolContext,
        args: Map<String, Value>,
    ) -> LocalBoxFuture<'static, Result<ToolOutput, ToolError>> {
        let q = ToolCallQuery {
            limit: args.get("n").and_then(Value::as_u64).unwrap_or(50) as u32,
            tool: args.get("tool").and_then(Value::as_str).map(str::to_string),
            session_id: args
                .get("this_session")
                .and_then(Value::as_bool)
                .filter(|b| *b)
                .map(|_| ctx.session_id.to_string()),
            outcome: args.get("outcome").and_then(Value::as_str).and_then(CallOutcome::parse),
            since_ms: args.get("since_ms").and_then(Value::as_i64),
        };
        Box::pin(async move {
            let rows = ctx
                .env
                .store
                .recent_tool_calls(&q)
                .await
                .map_err(|e| ToolError::Unavailable(format!("tool-call log: {e}")))?;
            Ok(ToolOutput::json(json!({ "count": rows.len(), "calls": rows })))
        })
    }
}
