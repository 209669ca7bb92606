//! Shared pieces of the AI tools: the common argument schema (model, temperature,
//! thinking_mode, use_websearch, continuation_id, files, images), prompt assembly from the
//! thread history and server-read files, one routed provider call with its conversation
//! bookkeeping, and the `ToolOutput` JSON shape the old server's clients expect
//! (`status`, `content`, `metadata`, `continuation_offer`).
//!
//! Every provider call goes through [`call_model`] (or [`CallBudget::take`] before a Files
//! API / web-search operation) with the invocation's [`CallBudget`], which enforces
//! `max_provider_calls_per_invocation`: a tool that would exceed it fails instead of calling.

use crate::conversation::Thread;
use crate::error::ToolError;
use crate::provider::router::StepInfo;
use crate::provider::service::{ChatCall, ChatResult};
use crate::provider::types::{ChatMessage, ChatRequest};
use crate::tools::{ToolContext, ToolOutput};
use base64::Engine as _;
use serde_json::{json, Map, Value};
use std::cell::Cell;

/// JSON Schema properties every AI tool accepts.
pub fn common_properties() -> Map<String, Value> {
    let v = json!({
        "model": { "type": "string", "maxLength": 100, "description": "model name or alias, or \"auto\" (default)" },
        "temperature": { "type": "number", "minimum": 0, "maximum": 1 },
        "thinking_mode": { "type": "string", "enum": ["minimal", "low", "medium", "high", "max"] },
        "use_websearch": { "type": "boolean", "description": "let the provider search the web (default false)" },
        "continuation_id": { "type": "string", "minLength": 1, "maxLength": 200, "description": "continue a previous conversation" },
        "files": { "type": "array", "maxItems": 50, "items": { "type": "string", "minLength": 1, "maxLength": 4096 },
                   "description": "paths the server reads (only under its allowed roots)" },
        "images": { "type": "array", "maxItems": 10, "items": { "type": "string", "minLength": 1 },
                    "description": "image paths (server-side), data: URLs or https URLs" }
    });
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// A full object schema: the common properties plus `extra`, with `required` and no others.
pub fn schema(extra: Value, required: &[&str]) -> Value {
    let mut props = common_properties();
    if let Value::Object(e) = extra {
        props.extend(e);
    }
    json!({ "type": "object", "properties": props, "required": required, "additionalProperties": false })
}

/// A JSON object literal as a map (anything else gives an empty map).
pub fn props(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// The named subset of [`common_properties`] (for tools that take only some of them).
pub fn pick_common(keys: &[&str]) -> Map<String, Value> {
    let all = common_properties();
    keys.iter().filter_map(|k| all.get(*k).map(|v| (k.to_string(), v.clone()))).collect()
}

/// A closed object schema from `properties` and `required`.
pub fn object_schema(properties: Map<String, Value>, required: &[&str]) -> Value {
    json!({ "type": "object", "properties": properties, "required": required, "additionalProperties": false })
}

/// The provider-call allowance of one tool invocation (`max_provider_calls_per_invocation`).
/// Create one per invocation and pass it to every provider call the invocation makes.
#[derive(Debug)]
pub struct CallBudget {
    max: u32,
    used: Cell<u32>,
}

impl CallBudget {
    /// The allowance configured for this server.
    pub fn new(ctx: &ToolContext) -> CallBudget {
        CallBudget::with_max(ctx.env.settings.max_provider_calls_per_invocation)
    }

    /// An explicit allowance.
    pub fn with_max(max: u32) -> CallBudget {
        CallBudget { max, used: Cell::new(0) }
    }

    /// Count one provider call; fails (and counts nothing) when the allowance is spent.
    pub fn take(&self, tool: &str) -> Result<(), ToolError> {
        let used = self.used.get();
        if used >= self.max {
            return Err(ToolError::Execution(format!(
                "{tool} needs more than {} provider call(s) in one invocation \
                 (max_provider_calls_per_invocation); no further call was made",
                self.max
            )));
        }
        self.used.set(used + 1);
        Ok(())
    }

    /// Calls made so far.
    pub fn used(&self) -> u32 {
        self.used.get()
    }

    /// Calls still allowed.
    pub fn remaining(&self) -> u32 {
        self.max.saturating_sub(self.used.get())
    }
}

/// Typed access to the common arguments.
pub struct Common<'a>(pub &'a Map<String, Value>);

impl Common<'_> {
    /// A string argument.
    pub fn str(&self, k: &str) -> Option<&str> {
        self.0.get(k).and_then(Value::as_str)
    }
    /// A bool argument.
    pub fn bool(&self, k: &str) -> Option<bool> {
        self.0.get(k).and_then(Value::as_bool)
    }
    /// A non-negative integer argument.
    pub fn u32(&self, k: &str) -> Option<u32> {
        self.0.get(k).and_then(Value::as_u64).map(|n| n.min(u32::MAX as u64) as u32)
    }
    /// A number argument.
    pub fn f64(&self, k: &str) -> Option<f64> {
        self.0.get(k).and_then(Value::as_f64)
    }
    /// A list of strings.
    pub fn strings(&self, k: &str) -> Vec<String> {
        self.0
            .get(k)
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
            .unwrap_or_default()
    }
    /// Thinking as asked for: on for `medium`, `high`, `max`; off for `minimal` and `low`;
    /// the model's default when no mode is given.
    pub fn thinking(&self) -> Option<bool> {
        match self.str("thinking_mode") {
            Some("medium" | "high" | "max") => Some(true),
            Some("minimal" | "low") => Some(false),
            _ => None,
        }
    }
    /// Whether the caller asked for depth (thinking mode `high` or `max`), for auto routing.
    pub fn deep(&self) -> bool {
        matches!(self.str("thinking_mode"), Some("high" | "max"))
    }
}

/// Read `files` and render them as one prompt section (no contents are logged).
pub async fn files_section(ctx: &ToolContext, args: &Map<String, Value>, field: &str) -> Result<String, ToolError> {
    Ok(paths_section(ctx, field, &Common(args).strings(field)).await?.0)
}

/// Read `paths` (allowed roots and size limits apply; errors name `field`) and render them
/// as one prompt section; also returns how many files were read. Empty for no paths.
pub async fn paths_section(ctx: &ToolContext, field: &str, paths: &[String]) -> Result<(String, usize), ToolError> {
    if paths.is_empty() {
        return Ok((String::new(), 0));
    }
    let files = ctx.env.files.read_texts(field, paths).await?;
    let mut out = String::from("\n\n=== FILES ===\n");
    for f in &files {
        out.push_str(&format!("--- {} ---\n{}\n", f.path.display(), f.text));
    }
    out.push_str("=== END FILES ===\n");
    Ok((out, files.len()))
}

/// Image parts for a vision request.
pub async fn image_parts(ctx: &ToolContext, args: &Map<String, Value>) -> Result<Vec<Value>, ToolError> {
    let mut parts = Vec::new();
    for (i, img) in Common(args).strings("images").into_iter().enumerate() {
        let url = if img.starts_with("data:") || img.starts_with("https://") || img.starts_with("http://") {
            img
        } else {
            let field = format!("images/{i}");
            let (path, len) = ctx.env.files.resolve(&field, &img).await?;
            if len > ctx.env.files.max_file_bytes {
                return Err(ToolError::InvalidArguments {
                    field,
                    message: format!(
                        "image is {len} bytes; the limit is {} (tools.max_file_bytes)",
                        ctx.env.files.max_file_bytes
                    ),
                });
            }
            let bytes = tokio::fs::read(&path).await.map_err(|e| ToolError::InvalidArguments {
                field: field.clone(),
                message: format!("cannot read image: {e}"),
            })?;
            let mime = match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
                Some("png") => "image/png",
                Some("gif") => "image/gif",
                Some("webp") => "image/webp",
                _ => "image/jpeg",
            };
            format!("data:{mime};base64,{}", base64::engine::general_purpose::STANDARD.encode(bytes))
        };
        parts.push(json!({ "type": "image_url", "image_url": { "url": url } }));
    }
    Ok(parts)
}

/// What one AI turn needs.
pub struct Turn<'a> {
    /// Tool name.
    pub tool: &'a str,
    /// System prompt.
    pub system: String,
    /// The user's message for this turn (stored in the thread).
    pub prompt: String,
    /// Extra context appended to the prompt for the provider only (files), not stored.
    pub context: String,
    /// Image parts.
    pub images: Vec<Value>,
    /// Workflow position (auto routing).
    pub step: Option<StepInfo>,
    /// Provider-side tools, if any.
    pub tools: Option<Vec<Value>>,
}

/// A user message: plain text, or text plus image parts.
pub fn user_message(text: String, images: &[Value]) -> ChatMessage {
    let content = if images.is_empty() {
        Value::String(text)
    } else {
        let mut parts = vec![json!({ "type": "text", "text": text })];
        parts.extend(images.iter().cloned());
        Value::Array(parts)
    };
    ChatMessage {
        role: "user".into(),
        content,
        reasoning_content: None,
        tool_calls: None,
        tool_call_id: None,
        name: None,
    }
}

fn has_images(messages: &[ChatMessage]) -> bool {
    messages.iter().any(|m| {
        m.content.as_array().is_some_and(|parts| parts.iter().any(|p| p.get("type") == Some(&json!("image_url"))))
    })
}

/// A request from the common arguments (temperature, thinking_mode, use_websearch).
pub fn request_from_args(args: &Map<String, Value>, messages: Vec<ChatMessage>) -> ChatRequest {
    let c = Common(args);
    ChatRequest {
        messages,
        temperature: c.f64("temperature"),
        thinking: c.thinking(),
        web_search: c.bool("use_websearch").unwrap_or(false),
        ..ChatRequest::default()
    }
}

/// One routed provider call, counted against `budget`. Requests carrying images are refused
/// up front when the resolved model has no vision.
pub async fn call_model(ctx: &ToolContext, budget: &CallBudget, call: ChatCall) -> Result<ChatResult, ToolError> {
    if has_images(&call.request.messages) {
        let (m, _) = ctx.env.providers.resolve(&call)?;
        if !m.capabilities.vision {
            return Err(ToolError::InvalidArguments {
                field: "images".into(),
                message: format!("model {} does not accept images; choose a vision model (see listmodels)", m.name),
            });
        }
    }
    budget.take(&call.tool)?;
    let mut call = call;
    if call.request.idempotency_key.is_none() {
        call.request.idempotency_key = Some(idempotency_key(ctx, &call.tool, budget.used()));
    }
    ctx.env.providers.chat(ctx, call).await
}

/// A stable key per (call, tool, provider call number): the retries of one provider call
/// share it, which vendors that honour `Idempotency-Key` dedupe; two calls never share one
/// (clients reuse request ids, so the request id cannot be part of it).
fn idempotency_key(ctx: &ToolContext, tool: &str, n: u32) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for part in [ctx.call_id.as_ref(), tool, &n.to_string()] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    format!("exai-{:x}", h.finalize())
}

/// The per-answer metadata stored with an assistant message.
pub fn answer_meta(res: &ChatResult) -> Value {
    json!({
        "usage": res.response.usage, "latency_ms": res.provider_ms, "attempts": res.attempts,
        "provider": res.provider, "routing": res.routing, "fallback_from": res.fallback_from,
    })
}

/// The routing and cost metadata of an answer as tools report it.
pub fn result_meta(res: &ChatResult) -> Value {
    json!({
        "model": res.model,
        "provider": res.provider,
        "requested_model": res.requested_model,
        "fallback_from": res.fallback_from,
        "routing": res.routing,
        "usage": res.response.usage,
        "attempts": res.attempts,
        "provider_ms": res.provider_ms,
    })
}

/// One routed provider call inside a thread (the whole history is re-sent); stores the
/// exchange. Makes exactly one provider call.
pub async fn converse(
    ctx: &ToolContext,
    args: &Map<String, Value>,
    thread: &mut Thread,
    turn: Turn<'_>,
) -> Result<ChatResult, ToolError> {
    let c = Common(args);
    let mut messages = vec![ChatMessage::text("system", turn.system.clone())];
    messages.extend(thread.messages());
    messages.push(user_message(format!("{}{}", turn.prompt, turn.context), &turn.images));
    let mut request = request_from_args(args, messages);
    request.tools = turn.tools.clone();
    let call = ChatCall {
        model: c.str("model").map(str::to_string),
        tool: turn.tool.to_string(),
        step: turn.step,
        locked_model: thread.record.model.clone().filter(|_| !thread.is_new),
        request,
    };
    // A new thread is created while the provider works, locked to the model routing chose,
    // so only the append of the exchange waits for the answer.
    let res = if thread.is_new {
        let (m, _) = ctx.env.providers.resolve(&call)?;
        thread.record.model = Some(m.name.clone());
        thread.record.provider = Some(m.provider.clone());
        let budget = CallBudget::new(ctx);
        let conversations = &ctx.env.conversations;
        let (res, created) =
            futures_util::future::join(call_model(ctx, &budget, call), conversations.create(&mut *thread)).await;
        created?;
        thread.is_new = false;
        res?
    } else {
        call_model(ctx, &CallBudget::new(ctx), call).await?
    };
    ctx.env
        .conversations
        .record_exchange(
            thread,
            &ctx.call_id,
            &turn.prompt,
            &res.response.content,
            &res.model,
            &res.provider,
            answer_meta(&res),
        )
        .await?;
    Ok(res)
}

/// A JSON tool result (pretty text plus structured content), attributed to the answer's
/// provider and model when there is one.
pub fn json_output(v: Value, res: Option<&ChatResult>) -> ToolOutput {
    let text = serde_json::to_string_pretty(&v).unwrap_or_default();
    ToolOutput {
        content: vec![crate::tools::Content::Text(text)],
        structured: Some(v),
        provider: res.map(|r| r.provider.clone()),
        model: res.map(|r| r.model.clone()),
    }
}

/// The standard result JSON of an AI tool.
pub fn output(
    ctx: &ToolContext,
    tool: &str,
    status: &str,
    thread: &Thread,
    res: &ChatResult,
    extra: Value,
) -> ToolOutput {
    let remaining = ctx.env.conversations.remaining(thread);
    let mut metadata = result_meta(res);
    metadata["tool"] = json!(tool);
    let mut v = json!({
        "status": status,
        "content": res.response.content,
        "content_type": "markdown",
        "metadata": metadata,
        "continuation_offer": {
            "continuation_id": thread.record.continuation_id,
            "remaining_turns": remaining,
            "note": if remaining > 0 { "pass continuation_id to continue this conversation" } else { "turn limit reached" },
        },
    });
    if let Some(r) = &res.response.reasoning {
        v["reasoning"] = json!(r);
    }
    if !res.response.tool_calls.is_empty() {
        v["tool_calls"] = json!(res.response.tool_calls);
    }
    if let (Value::Object(m), Value::Object(e)) = (&mut v, extra) {
        m.extend(e);
    }
    json_output(v, Some(res))
}
