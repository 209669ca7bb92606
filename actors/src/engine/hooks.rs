//! Where methods that other modules add plug into the engine's MCP method match, for every
//! transport at once: `tasks/*`, `prompts/*`, and task-augmented `tools/call`.
//!
//! Each function is called by [`super::mcp`] before its own handling; `None` means "not
//! mine" (the engine carries on: -32601 for an unknown method, a normal `tools/call`).
//! A handler that answers later (a blocking `tasks/result`) starts its work with
//! [`super::start_call`] or delivers along `c.route` itself and returns `Answer::Started`.

use super::mcp::Answer;
use super::Caller;
use crate::protocol::jsonrpc::RequestId;
use serde_json::Value;

/// A request whose method the engine does not know (`tasks/get`, `prompts/list`, …).
pub fn request(_c: &Caller<'_>, _id: &RequestId, _method: &str, _params: &Option<Value>) -> Option<Answer> {
    None
}

/// A `tools/call` before the engine runs it (e.g. one with `params.task`).
pub fn tools_call(_c: &Caller<'_>, _id: &RequestId, _params: &Option<Value>) -> Option<Answer> {
    None
}

/// Add capabilities to the `initialize` result (`tasks`, `prompts`).
pub fn capabilities(_result: &mut Value) {}
