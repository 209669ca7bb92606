//! `activity`: recent log activity (INFO and above) from the in-memory ring the tracing layer
//! fills, filtered by level, substring and time window. A typed tool: its input and output
//! schemas are derived from [`ActivityArgs`] and [`ActivityResult`].

use crate::error::ToolError;
use crate::ports::{ActivityEvent, ActivityQuery};
use crate::tools::typed::{Typed, TypedTool};
use crate::tools::{ToolContext, ToolKind};
use futures_util::future::LocalBoxFuture;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Minimum level of the events returned.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum MinLevel {
    /// Errors only.
    Error,
    /// Warnings and errors.
    Warn,
    /// Info and above.
    Info,
    /// Debug and above.
    Debug,
    /// Everything.
    Trace,
}

impl MinLevel {
    fn as_str(self) -> &'static str {
        match self {
            MinLevel::Error => "error",
            MinLevel::Warn => "warn",
            MinLevel::Info => "info",
            MinLevel::Debug => "debug",
            MinLevel::Trace => "trace",
        }
    }
}

/// Arguments of `activity`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ActivityArgs {
    /// Most events to return (default 200).
    #[schemars(range(min = 1, max = 2000))]
    pub lines: Option<u32>,
    /// Case-insensitive substring of message or target.
    #[schemars(length(max = 200))]
    pub filter: Option<String>,
    /// Minimum level.
    pub level: Option<MinLevel>,
    /// Only events at or after this Unix time (ms).
    #[schemars(range(min = 0))]
    pub since_ms: Option<i64>,
    /// Only events at or before this Unix time (ms).
    #[schemars(range(min = 0))]
    pub until_ms: Option<i64>,
}

/// Result of `activity`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ActivityResult {
    /// Number of events returned.
    pub count: usize,
    /// The events, oldest first.
    pub events: Vec<ActivityEvent>,
}

/// The tool.
pub struct Activity;

impl Activity {
    /// Build it.
    pub fn tool() -> Typed<Activity> {
        Typed::new(
            Activity,
            "activity",
            "Recent server activity (log events), newest last, with optional filters.",
            ToolKind::Builtin,
            true,
        )
    }
}

impl TypedTool for Activity {
    type Args = ActivityArgs;
    type Output = ActivityResult;

    fn run(&self, ctx: ToolContext, args: ActivityArgs) -> LocalBoxFuture<'static, Result<ActivityResult, ToolError>> {
        let q = ActivityQuery {
            limit: args.lines.unwrap_or(200) as usize,
            min_level: args.level.map(|l| l.as_str().to_string()),
            contains: args.filter,
            since_ms: args.since_ms,
            until_ms: args.until_ms,
        };
        let events = ctx.env.activity.recent(&q);
        Box::pin(async move { Ok(ActivityResult { count: events.len(), events }) })
    }
}
