//! Built-in tools that need no model: `version`, `listmodels`, `status`, `health`, `activity`,
//! `toolcall_log_tail`, `provider_capabilities`, and the test-only `debug_sleep` (registered
//! only when fault injection is enabled in config).

mod activity;
mod debug_sleep;
mod info;
mod toolcall_log;

use super::{Tool, ToolKind, ToolSpec};
use serde_json::Value;
use std::sync::Arc;

pub use debug_sleep::DebugSleep;

fn spec(name: &str, description: &str, schema: Value) -> ToolSpec {
    ToolSpec {
        name: name.into(),
        title: None,
        description: description.into(),
        input_schema: schema,
        kind: ToolKind::Builtin,
        read_only: true,
    }
}

/// All built-in tools in listing order.
pub fn all() -> Vec<Arc<dyn Tool>> {
    vec![
        Arc::new(info::Version::new()),
        Arc::new(info::ListModels::new()),
        Arc::new(info::Status::new()),
        Arc::new(info::Health::new()),
        Arc::new(activity::Activity::new()),
        Arc::new(toolcall_log::ToolCallLogTail::new()),
        Arc::new(info::ProviderCapabilities::new()),
    ]
}
