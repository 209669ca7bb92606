//! MCP prompts (`prompts/list`, `prompts/get`), as the old server had them: one prompt per
//! registered tool plus `continue` (go on with the last conversation through `chat`), so
//! editors offer `/exai:chat`-style shortcuts.
//!
//! A prompt name may carry a model after a colon (`chat:glm-4.6`, `continue:kimi-k2.6`): the
//! message then tells the client to use that model. `prompts/get` returns one user message
//! telling the client which tool to call (and with which model), followed by the optional
//! `request` argument. An unknown prompt, an unknown model or a bad argument is -32602.
//! Listing pages have the `tools/list` page size and `page-N` cursors.

use crate::catalog::Catalog;
use crate::protocol::mcp::RpcError;
use crate::tools::registry::Registry;
use serde_json::{json, Value};

/// The prompt that continues the last conversation.
pub const CONTINUE: &str = "continue";

fn request_argument() -> Value {
    json!([{
        "name": "request",
        "description": "What to ask (optional: without it the message only names the tool and model)",
        "required": false,
    }])
}

/// The first sentence of a tool description (what a slash-command menu can show).
fn summary(description: &str) -> String {
    let first = description.split(". ").next().unwrap_or(description).trim();
    first.trim_end_matches('.').to_string()
}

fn all_prompts(registry: &Registry) -> Vec<Value> {
    let mut out = Vec::with_capacity(registry.len() + 1);
    for name in registry.names() {
        let Some(e) = registry.get(&name) else { continue };
        let spec = e.tool.spec();
        let mut p = json!({
            "name": spec.name,
            "description": format!("Use exai's `{}` tool: {}. Name it `{}:<model>` to pick a model.",
                                   spec.name, summary(&spec.description), spec.name),
            "arguments": request_argument(),
        });
        if let Some(t) = &spec.title {
            p["title"] = json!(t);
        }
        out.push(p);
    }
    if registry.get("chat").is_some() {
        out.push(json!({
            "name": CONTINUE,
            "title": "Continue the conversation",
            "description": "Continue the last exai conversation with `chat` (its `continuation_id`). \
                            Name it `continue:<model>` to pick a model.",
            "arguments": request_argument(),
        }));
    }
    out
}

/// `prompts/list` (with optional `cursor`).
pub fn list(params: Option<&Value>, registry: &Registry, page_size: usize) -> Result<Value, RpcError> {
    let cursor = match params.and_then(|p| p.get("cursor")) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.as_str()),
        Some(_) => return Err(RpcError::invalid_params("cursor must be a string")),
    };
    let all = all_prompts(registry);
    let size = page_size.max(1);
    let pages = all.len().div_ceil(size).max(1);
    let idx = match cursor {
        None => 0,
        Some(c) => c
            .strip_prefix("page-")
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|n| *n > 0 && *n < pages)
            .ok_or_else(|| RpcError::invalid_params(format!("invalid cursor '{c}'")))?,
    };
    let page: Vec<Value> = all.into_iter().skip(idx * size).take(size).collect();
    let mut v = json!({ "prompts": page });
    if idx + 1 < pages {
        v["nextCursor"] = json!(format!("page-{}", idx + 1));
    }
    Ok(v)
}

/// `prompts/get {name, arguments?}`.
pub fn get(params: Option<&Value>, registry: &Registry, catalog: &Catalog) -> Result<Value, RpcError> {
    let name = params
        .and_then(|p| p.get("name"))
        .and_then(Value::as_str)
        .ok_or_else(|| RpcError::invalid_params("prompts/get: name (string) is required"))?;
    let request = match params.and_then(|p| p.get("arguments")) {
        None | Some(Value::Null) => None,
        Some(Value::Object(args)) => match args.get("request") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.trim().is_empty() => None,
            Some(Value::String(s)) => Some(s.as_str()),
            Some(_) => return Err(RpcError::invalid_params("prompts/get: argument 'request' must be a string")),
        },
        Some(_) => return Err(RpcError::invalid_params("prompts/get: arguments must be an object")),
    };
    let (base, model) = match name.split_once(':') {
        Some((b, m)) if !m.is_empty() => (b, Some(m)),
        Some(_) => return Err(RpcError::invalid_params(format!("Unknown prompt: {name} (no model after ':')"))),
        None => (name, None),
    };
    let model = match model {
        Some(m) => Some(
            catalog
                .resolve(m)
                .map_err(|e| RpcError::invalid_params(format!("Unknown prompt: {name} ({e})")))?
                .name
                .clone(),
        ),
        None => None,
    };
    let with_model = model.as_ref().map(|m| format!(" with `model` set to `{m}`")).unwrap_or_default();
    let (tool, description, mut text) = if base == CONTINUE && registry.get("chat").is_some() {
        (
            "chat".to_string(),
            "Continue the last exai conversation".to_string(),
            format!(
                "Continue our last exai conversation: call the exai MCP server's `chat` tool{with_model}, \
                 passing the `continuation_id` from its last response."
            ),
        )
    } else {
        let Some(e) = registry.get(base) else {
            return Err(RpcError::invalid_params(format!("Unknown prompt: {name}")));
        };
        let spec = e.tool.spec();
        if model.is_some() && spec.kind == crate::tools::ToolKind::Builtin {
            return Err(RpcError::invalid_params(format!("Unknown prompt: {name} (`{}` uses no model)", spec.name)));
        }
        (
            spec.name.clone(),
            format!("Use exai's `{}` tool", spec.name),
            format!("Use the exai MCP server's `{}` tool{with_model} for this request.", spec.name),
        )
    };
    if let Some(r) = request {
        text.push_str("\n\n");
        text.push_str(r);
    }
    let mut v = json!({
        "description": description,
        "messages": [{ "role": "user", "content": { "type": "text", "text": text } }],
        "_meta": { "exai/tool": tool },
    });
    if let Some(m) = model {
        v["_meta"]["exai/model"] = json!(m);
    }
    Ok(v)
}
