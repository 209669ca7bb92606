//! `debug_sleep`: a test-only tool that waits, reporting progress and streaming chunks.
//!
//! Registered only when `debug.fault_injection` is enabled. It exists so that tests against
//! the real binary can hold a call in flight (cancellation, over-capacity, staged shutdown,
//! concurrency on one connection) without a provider.

use super::spec;
use crate::error::ToolError;
use crate::tools::{ProgressEvent, Tool, ToolContext, ToolOutput, ToolSpec};
use futures_util::future::LocalBoxFuture;
use serde_json::{json, Map, Value};
use std::time::Duration;

/// The tool.
pub struct DebugSleep(ToolSpec);

impl DebugSleep {
    /// Build it.
    pub fn new() -> Self {
        DebugSleep(spec(
            "debug_sleep",
            "Test-only: waits `ms` milliseconds in steps of `step_ms`, sending progress and a chunk per step, then returns `text` (`repeat` times).",
            json!({
                "type": "object",
                "properties": {
                    "ms": { "type": "integer", "minimum": 0, "maximum": 600000 },
                    "step_ms": { "type": "integer", "minimum": 1, "maximum": 60000 },
                    "text": { "type": "string", "maxLength": 1048576 },
                    "repeat": { "type": "integer", "minimum": 1, "maximum": 1000 }
                },
                "required": ["ms"],
                "additionalProperties": false
            }),
        ))
    }
}

impl Default for DebugSleep {
    fn default() -> Self {
        Self::new()
    }
}

impl Tool for DebugSleep {
    fn spec(&self) -> &ToolSpec {
        &self.0
    }

    fn call(
        &self,
        ctx: ToolContext,
        args: Map<String, Value>,
    ) -> LocalBoxFuture<'static, Result<ToolOutput, ToolError>> {
        let total = args.get("ms").and_then(Value::as_u64).unwrap_or(0);
        let step = args.get("step_ms").and_then(Value::as_u64).unwrap_or(100).max(1);
        let repeat = args.get("repeat").and_then(Value::as_u64).unwrap_or(1).clamp(1, 1000) as usize;
        let text = args.get("text").and_then(Value::as_str).unwrap_or("slept").repeat(repeat);
        Box::pin(async move {
            let steps = total.div_ceil(step).max(1);
            let mut left = total;
            for i in 0..steps {
                let d = left.min(step);
                tokio::time::sleep(Duration::from_millis(d)).await;
                left -= d;
                ctx.progress.emit(ProgressEvent::Progress {
                    progress: (i + 1) as f64,
                    total: Some(steps as f64),
                    message: Some(format!("step {} of {}", i + 1, steps)),
                });
                ctx.progress.emit(ProgressEvent::Chunk(format!("tick {} ", i + 1)));
            }
            // Logged inside the call's span: tests check the line names the session and request.
            tracing::info!(ms = total, "debug_sleep done");
            Ok(ToolOutput::text(text))
        })
    }
}
