//! Built-in tools that need no model: `version`, `listmodels`, `status`, `health`, `activity`,
//! `toolcall_log_tail`, `provider_capabilities`, and the test-only `debug_sleep` (registered
//! only when fault injection is enabled in config). `activity` and `toolcall_log_tail` are
//! typed tools (`crate::tools::typed`): derived input and output schemas.

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
        Arc::new(activity::Activity::tool()),
        Arc::new(toolcall_log::ToolCallLogTail::tool()),
        Arc::new(info::ProviderCapabilities::new()),
    ]
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use crate::ports::{ActivityEvent, CallOutcome, ToolCallRecord};
    use crate::tools::Tool;
    use serde_json::{json, Value};

    fn validator(schema: &Value) -> jsonschema::Validator {
        jsonschema::validator_for(schema).unwrap()
    }

    #[test]
    fn typed_tools_derive_strict_input_schemas() {
        let activity = super::activity::Activity::tool();
        let input = &activity.spec().input_schema;
        assert_eq!(input["type"], "object");
        assert_eq!(input["additionalProperties"], false);
        let v = validator(input);
        assert!(v.is_valid(&json!({})));
        assert!(v.is_valid(&json!({"lines": 5, "level": "warn", "filter": "x", "since_ms": 0})));
        for bad in [json!({"lines": 0}), json!({"lines": 2001}), json!({"level": "loud"}), json!({"bogus": 1})] {
            assert!(!v.is_valid(&bad), "{bad}");
        }
        let tail = super::toolcall_log::ToolCallLogTail::tool();
        let v = validator(&tail.spec().input_schema);
        assert!(v.is_valid(&json!({"n": 500, "outcome": "over_capacity", "this_session": true})));
        for bad in [json!({"n": 501}), json!({"outcome": "fine"}), json!({"tool": "x".repeat(129)})] {
            assert!(!v.is_valid(&bad), "{bad}");
        }
    }

    #[test]
    fn typed_tool_results_satisfy_their_output_schemas() {
        let event = ActivityEvent { at_ms: 1, level: "INFO".into(), target: "exai".into(), message: "m".into() };
        let out = super::activity::ActivityResult { count: 1, events: vec![event] };
        let activity = super::activity::Activity::tool();
        assert!(validator(activity.output_schema().unwrap()).is_valid(&serde_json::to_value(&out).unwrap()));
        let row = ToolCallRecord {
            id: 7,
            started_at_ms: 1,
            session_id: "s".into(),
            request_id: "1".into(),
            tool: "chat".into(),
            protocol: "mcp-ws".into(),
            outcome: CallOutcome::Timeout,
            error_code: None,
            total_ms: 1.5,
            global_wait_ms: 0.0,
            provider_wait_ms: 0.0,
            processing_ms: 1.0,
            provider: Some("glm".into()),
            model: None,
            args_bytes: 2,
        };
        let out = super::toolcall_log::TailResult { count: 1, calls: vec![row] };
        let tail = super::toolcall_log::ToolCallLogTail::tool();
        let schema = tail.output_schema().unwrap();
        assert_eq!(schema["type"], "object");
        let v = validator(schema);
        assert!(v.is_valid(&serde_json::to_value(&out).unwrap()));
        assert!(!v.is_valid(&json!({"count": 1, "calls": [{"id": "x"}]})));
    }
}
