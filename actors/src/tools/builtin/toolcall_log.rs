//! `toolcall_log_tail`: the most recent tool calls from the store's tool-call log (names,
//! outcomes and latencies; arguments are never stored). A typed tool: its input and output
//! schemas are derived from [`TailArgs`] and [`TailResult`].

use crate::error::ToolError;
use crate::ports::{CallOutcome, ToolCallQuery, ToolCallRecord};
use crate::tools::typed::{Typed, TypedTool};
use crate::tools::{ToolContext, ToolKind};
use futures_util::future::LocalBoxFuture;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Arguments of `toolcall_log_tail`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TailArgs {
    /// Rows (default 50).
    #[schemars(range(min = 1, max = 500))]
    pub n: Option<u32>,
    /// Only this tool.
    #[schemars(length(max = 128))]
    pub tool: Option<String>,
    /// Only this outcome.
    pub outcome: Option<CallOutcome>,
    /// Only calls of the calling session.
    pub this_session: Option<bool>,
    /// Only calls started at or after this Unix time (ms).
    #[schemars(range(min = 0))]
    pub since_ms: Option<i64>,
}

/// Result of `toolcall_log_tail`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct TailResult {
    /// Number of rows returned.
    pub count: usize,
    /// The calls, newest first.
    pub calls: Vec<ToolCallRecord>,
}

/// The tool.
pub struct ToolCallLogTail;

impl ToolCallLogTail {
    /// Build it.
    pub fn tool() -> Typed<ToolCallLogTail> {
        Typed::new(
            ToolCallLogTail,
            "toolcall_log_tail",
            "The most recent tool calls (newest first) from the tool-call log, with outcome and latency.",
            ToolKind::Builtin,
            true,
        )
    }
}

impl TypedTool for ToolCallLogTail {
    type Args = TailArgs;
    type Output = TailResult;

    fn run(&self, ctx: ToolContext, args: TailArgs) -> LocalBoxFuture<'static, Result<TailResult, ToolError>> {
        let q = ToolCallQuery {
            limit: args.n.unwrap_or(50),
            tool: args.tool,
            session_id: args.this_session.filter(|b| *b).map(|_| ctx.session_id.to_string()),
            outcome: args.outcome,
            since_ms: args.since_ms,
        };
        Box::pin(async move {
            let calls = ctx
                .env
                .store
                .recent_tool_calls(&q)
                .await
                .map_err(|e| ToolError::Unavailable(format!("tool-call log: {e}")))?;
            Ok(TailResult { count: calls.len(), calls })
        })
    }
}
