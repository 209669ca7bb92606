//! `activity`: recent log activity (INFO and above) from the in-memory ring the tracing layer
//! fills, filtered by level, substring and time window.

use super::spec;
use crate::error::ToolError;
use crate::ports::ActivityQuery;
use crate::tools::{Tool, ToolContext, ToolOutput, ToolSpec};
use futures_util::future::LocalBoxFuture;
use serde_json::{json, Map, Value};

/// The tool.
pub struct Activity(ToolSpec);

impl Default for Activity {
    fn default() -> Self {
        Self::new()
    }
}

impl Activity {
    /// Build it.
    pub fn new() -> Self {
        Activity(spec(
            "activity",
            "Recent server activity (log events), newest last, with optional filters.",
            json!({
                "type": "object",
                "properties": {
                    "lines": { "type": "integer", "minimum": 1, "maximum": 2000, "description": "most events to return (default 200)" },
                    "filter": { "type": "string", "maxLength": 200, "description": "case-insensitive substring of message or target" },
                    "level": { "type": "string", "enum": ["error", "warn", "info", "debug", "trace"], "description": "minimum level" },
                    "since_ms": { "type": "integer", "minimum": 0, "description": "only events at or after this Unix time (ms)" },
                    "until_ms": { "type": "integer", "minimum": 0, "description": "only events at or before this Unix time (ms)" }
                },
                "additionalProperties": false
            }),
        ))
    }
}

impl Tool for Activity {
    fn spec(&self) -> &ToolSpec {
        &self.0
    }

    fn call(
        &self,
        ctx: ToolContext,
        args: Map<String, Value>,
    ) -> LocalBoxFuture<'static, Result<ToolOutput, ToolError>> {
        let q = ActivityQuery {
            limit: args.get("lines").and_then(Value::as_u64).unwrap_or(200) as usize,
            min_level: args.get("level").and_then(Value::as_str).map(str::to_string),
            contains: args.get("filter").and_then(Value::as_str).map(str::to_string),
            since_ms: args.get("since_ms").and_then(Value::as_i64),
            until_ms: args.get("until_ms").and_then(Value::as_i64),
        };
        let events = ctx.env.activity.recent(&q);
        Box::pin(async move { Ok(ToolOutput::json(json!({ "count": events.len(), "events": events }))) })
    }
}
